/**
 * npm run flash, without hardware: --dry-run writes the exact espruino command,
 * the .bootcde bytes and led.json, and nothing printed holds a secret.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../scripts/bundle";
import { espruinoArgs, flash, parseArgs, redactor } from "../scripts/flash";

const WIFI_PW = "wifi-S3CRET-hunter2";
const BROKER_PW = "broker-S3CRET-pw\"x";
const tmp = mkdtempSync(path.join(os.tmpdir(), "flash-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const configFile = path.join(tmp, "config.json");
writeFileSync(configFile, JSON.stringify({
  wifi: { ssid: "lab-net", password: WIFI_PW },
  gprs: { apn: "internet", password: "apn-S3CRET" },
  broker: { host: "127.0.0.1", port: 1883, username: "dev", password: BROKER_PW },
  topic: "led",
}));
/** A stand-in script whose bytes must arrive unchanged (escapes, as the build writes non-ASCII). */
const fwFile = path.join(tmp, "fw.js");
const FW = 'var s="\\xff\\x01";print("hi "+s.length);';
writeFileSync(fwFile, FW, "latin1");

/** The environment without LED_* overrides from the developer's shell. */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LED_")));
const secretForms = [WIFI_PW, BROKER_PW, "apn-S3CRET", Buffer.from(WIFI_PW).toString("base64").slice(0, 12)];

describe("npm run flash -- --dry-run", () => {
  it("writes the command, the .bootcde bytes and led.json, and prints no secret", () => {
    const dir = path.join(tmp, "dry");
    const r = spawnSync(path.join(ROOT, "node_modules/.bin/tsx"), [
      "scripts/flash.ts", "--board", "pico", "--modem", "esp8266", "--port", "/dev/ttyACM0", "--baud", "115200",
      "--config", configFile, "--firmware", fwFile, "--dry-run", dir,
    ], { cwd: ROOT, env: cleanEnv, encoding: "utf8", timeout: 60_000 });
    const out = r.stdout + r.stderr;
    expect(r.status, out).toBe(0);
    for (const s of secretForms) expect(out).not.toContain(s);
    expect(out).toContain(dir.startsWith(ROOT) ? path.relative(ROOT, dir) : dir);

    const argv: string[] = JSON.parse(readFileSync(path.join(dir, "command.json"), "utf8"));
    expect(argv[0]).toBe("node_modules/.bin/espruino");
    expect(argv).toEqual(espruinoArgs({ port: "/dev/ttyACM0", baud: 115200, bootFile: path.join(dir, "bootcde.js"), configFile: path.join(dir, "led.json") }));
    const line = readFileSync(path.join(dir, "command.txt"), "utf8");
    expect(line).toContain("--port /dev/ttyACM0 -b 115200");
    expect(line).toContain(`--storage .bootcde:${path.join(dir, "bootcde.js")}`);
    expect(line).toContain(`--storage led.json:${path.join(dir, "led.json")}`);
    expect(out).toContain(line.trim());

    // Exactly the script's bytes, and exactly the config that would be sent: this build's modem only.
    expect(readFileSync(path.join(dir, "bootcde.js"), "latin1")).toBe(FW);
    const sent = JSON.parse(readFileSync(path.join(dir, "led.json"), "utf8"));
    expect(sent).toEqual({
      wifi: { ssid: "lab-net", password: WIFI_PW },
      broker: { host: "127.0.0.1", port: 1883, username: "dev", password: BROKER_PW },
      topic: "led",
    });
    expect(statSync(path.join(dir, "led.json")).mode & 0o077).toBe(0);
    const shown = readFileSync(path.join(dir, "led.redacted.json"), "utf8");
    for (const s of secretForms) expect(shown).not.toContain(s);
  }, 60_000);

  it("defaults: the board's first modem, the built firmware file, tmp/flash-dry-run", async () => {
    const lines: string[] = [];
    const built = path.join(ROOT, "firmware/pico-esp8266.js");
    const r = await flash({ board: "pico", config: configFile, dryRun: path.join(tmp, "dry2"), env: cleanEnv, log: (l) => lines.push(l) });
    if (!existsSync(built)) {
      expect(r.ok).toBe(false);
      expect(r.errors.join("\n")).toMatch(/npm run build/);
      return;
    }
    expect(r.ok, r.errors.join("\n")).toBe(true);
    expect(readFileSync(path.join(tmp, "dry2/bootcde.js"), "latin1")).toBe(readFileSync(built, "latin1"));
    expect(r.argv).toContain("--port");
    for (const s of secretForms) expect(lines.join("\n")).not.toContain(s);
  });

  it("refuses a bad config without printing it, and a modem the board is not built for", async () => {
    const bad = path.join(tmp, "bad.json");
    writeFileSync(bad, JSON.stringify({ wifi: { ssid: "x", password: "short" }, broker: { host: "h", port: 99999, password: BROKER_PW } }));
    const r = await flash({ board: "pico", config: bad, firmware: fwFile, dryRun: path.join(tmp, "dry3"), env: cleanEnv, log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.errors.join("\n")).toMatch(/wifi.password/);
    expect(r.errors.join("\n")).toMatch(/broker.port/);
    expect(r.errors.join("\n")).not.toContain(BROKER_PW);
    expect(existsSync(path.join(tmp, "dry3/led.json"))).toBe(false);

    const m = await flash({ board: "espruino-wifi", modem: "sim800", config: configFile, firmware: fwFile, dryRun: path.join(tmp, "dry4"), env: cleanEnv });
    expect(m.ok).toBe(false);
    expect(m.errors[0]).toMatch(/espruino-wifi is built for esp8266/);
  });

  it("refuses a script outside what Espruino accepts", async () => {
    const badFw = path.join(tmp, "bad-fw.js");
    writeFileSync(badFw, "const m = new Map();");
    const r = await flash({ board: "pico", config: configFile, firmware: badFw, dryRun: path.join(tmp, "dry5"), env: cleanEnv, log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.errors.join("\n")).toMatch(/missing-global/);
  });
});

describe("flash helpers", () => {
  it("parses the npm run flash arguments", () => {
    expect(parseArgs(["--board", "pico", "--port", "/dev/ttyACM0", "--dry-run"])).toEqual({ board: "pico", port: "/dev/ttyACM0", dryRun: true });
    expect(parseArgs(["--board", "pico", "--dry-run", "out", "--baud", "9600"])).toEqual({ board: "pico", dryRun: "out", baud: 9600 });
    expect(parseArgs(["--modem", "lte", "--board", "pico"])).toEqual({ error: expect.stringMatching(/--modem/) });
    expect(parseArgs(["--port", "/dev/x"])).toEqual({ error: expect.stringMatching(/--board/) });
  });

  it("the output filter masks secrets and base64 upload chunks from the tool's echo", () => {
    const clean = redactor({ wifi: { ssid: "lab", password: WIFI_PW }, broker: { password: BROKER_PW } });
    expect(clean(`require("Storage").write("led.json",atob("eyJ3aWZpIjp7InNzaWQi"),0,40)`)).toBe(`require("Storage").write("led.json",atob("***"),0,40)`);
    expect(clean(`x ${WIFI_PW} y ${JSON.stringify(BROKER_PW)}`)).toBe('x *** y "***"');
    expect(clean("lab")).toBe("lab");
  });
});
