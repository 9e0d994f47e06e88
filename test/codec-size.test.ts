/**
 * The firmware side of the codec, bundled as the board build does
 * (test/fixtures/size/codec-entry.ts imports exactly what the session uses):
 * its size is held to a budget, the host-only server side (src/codec/server.ts)
 * is tree-shaken out, and the output stays inside what Espruino 2v29 accepts.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { bundle } from "../scripts/bundle";
import { checkEspruino, formatFinding } from "../scripts/espruino-check";

const ENTRY = "test/fixtures/size/codec-entry.ts";
/** Bytes, minified. Measured 2,213 when this was set (2,150 before the packet id of a drained QoS 1/2 PUBLISH was read); lower it as the codec shrinks. */
const BUDGET = 2240;

let code: string;
beforeAll(async () => {
  code = await bundle(ENTRY);
}, 120_000);

describe("firmware-side codec bundle", () => {
  it(`is at most ${BUDGET} bytes minified`, () => {
    expect(Buffer.byteLength(code)).toBeLessThanOrEqual(BUDGET);
  });

  it("leaves out the server side (CONNECT/SUBSCRIBE/UNSUBSCRIBE decoding, CONNACK/SUBACK encoding)", () => {
    // strings only src/codec/server.ts has
    for (const s of ['"protocol"', '"MQTT"', "keepAlive:", "subs:", "topics:"]) expect(code).not.toContain(s);
    // while the client side is there (property names are mangled in the bundle: look for its strings)
    for (const s of ['"oversize"', '"utf8"', '"range"', "encodeURIComponent", "decodeURIComponent"]) expect(code).toContain(s);
  });

  it("passes the Espruino compatibility check", () => {
    // the entry's sink is globalThis (missing on Espruino); the firmware has its own
    expect(code.startsWith("globalThis.x=") || code.includes(";globalThis.x=")).toBe(true);
    const script = code.replace("globalThis.x=", "var x=");
    expect(checkEspruino(script).map((f) => formatFinding(script, f))).toEqual([]);
  });
});
