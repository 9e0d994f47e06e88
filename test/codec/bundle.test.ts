/**
 * The firmware side of the codec, bundled as the board build does
 * (test/fixtures/size/codec-entry.ts imports exactly what the session uses):
 * its size is held to a budget, the host-only server side (src/codec/server.ts
 * and the decoder's hook for it) is left out, and the output stays inside what Espruino 2v29 accepts.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { runInNewContext } from "node:vm";
import terser from "@rollup/plugin-terser";
import { bundle, terserOptions } from "../../scripts/build/bundle";
import { BUDGETS } from "../../scripts/build/build";
import { encode, type Decoder, type DecoderSink, type Packet } from "../../src/codec/index";
import { encodeServer, ServerDecoder } from "../../src/codec/server";
import { checkEspruino, formatFinding } from "../../scripts/build/espruino-check";

const ENTRY = "test/fixtures/size/codec-entry.ts";
/** Bytes, minified (the shared budgets table, scripts/build/build.ts). */
const BUDGET = BUDGETS.codecForSession;

let code: string;
beforeAll(async () => {
  code = await bundle(ENTRY);
}, 120_000);

describe("firmware-side codec bundle", () => {
  it(`is at most ${BUDGET} bytes minified`, () => {
    expect(Buffer.byteLength(code)).toBeLessThanOrEqual(BUDGET);
  });

  it("leaves out the server side: its Decoder refuses client->server packets, its encode() server packets", () => {
    const context: { x?: [typeof encode, new (maxPacket: number) => Decoder] } = {};
    runInNewContext(code, context);
    const [bundledEncode, BundledDecoder] = context.x!;
    const errors: [string, boolean][] = [];
    const packets: Packet[] = [];
    // the sink's method names are mangled too: take any call, a packet is an object, an error its message and fatality
    const sink = new Proxy({}, {
      get: () => (first: Packet | string, fatal: boolean) => (typeof first == "string" ? errors.push([first, fatal]) : packets.push(first)),
    }) as DecoderSink;
    // CONNACK decodes (field names are mangled in the bundle: compare the values); CONNECT and SUBSCRIBE (what a server decodes) are the fatal error "type"
    new BundledDecoder(1024).push(encodeServer({ type: 2, sessionPresent: false, returnCode: 0 }), sink);
    expect(packets.map((p) => Object.values(p))).toEqual([[2, false, 0]]);
    new BundledDecoder(1024).push(encode({ type: 1, clientId: "c", clean: true, keepAlive: 60 }), sink);
    new BundledDecoder(1024).push(encode({ type: 8, id: 1, subs: [{ topic: "t", qos: 0 }] }), sink);
    expect(errors).toEqual([["type", true], ["type", true]]);
    // the host's ServerDecoder decodes the same bytes with the same Decoder source
    const server: Packet[] = [];
    new ServerDecoder(1024).push(encode({ type: 1, clientId: "c", clean: true, keepAlive: 60 }), { packet: (p) => server.push(p), error: () => {} });
    expect(server).toEqual([{ type: 1, clientId: "c", clean: true, keepAlive: 60 }]);
    expect(() => bundledEncode({ type: 2, sessionPresent: false, returnCode: 0 } as unknown as Packet)).toThrow("type");
  });

  it("the FIRMWARE build constant strips the host-only decoding (the bundle is smaller with it)", async () => {
    const compress = { ...terserOptions.compress, global_defs: {} };
    const withHostPath = await bundle(ENTRY, { terser: terser({ ...terserOptions, compress }) });
    expect(Buffer.byteLength(withHostPath)).toBeGreaterThan(Buffer.byteLength(code) + 40);
  });

  it("passes the Espruino compatibility check", () => {
    // the entry's sink is globalThis (missing on Espruino); the firmware has its own
    expect(code.startsWith("globalThis.x=") || code.includes(";globalThis.x=")).toBe(true);
    const script = code.replace("globalThis.x=", "var x=");
    expect(checkEspruino(script).map((f) => formatFinding(script, f))).toEqual([]);
  });
});
