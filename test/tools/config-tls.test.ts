/**
 * broker.tls in the device configuration (scripts/config.ts): checked like every
 * other key, LED_BROKER_TLS from the environment, port 8883 unless given; and
 * every cloud example in docs/examples/ passes the flash tool's checks for both
 * modems and is shown in the README (no network needed).
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig, validate } from "../../scripts/config";

const ROOT = path.resolve(import.meta.dirname, "../..");
const EXAMPLES = path.join(ROOT, "docs", "examples");
const base = { wifi: { ssid: "lab", password: "wifi-secret-1" }, broker: { host: "b.example", port: 1883 } };

function file(obj: unknown): string {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ledcfg-")), "config.json");
  fs.writeFileSync(f, JSON.stringify(obj));
  return f;
}

describe("broker.tls", () => {
  it("is true or false, nothing else", () => {
    expect(validate({ ...base, broker: { ...base.broker, tls: true } }, "esp8266")).toEqual([]);
    expect(validate({ ...base, broker: { ...base.broker, tls: false } }, "esp8266")).toEqual([]);
    for (const bad of ["yes", 1, "true", null]) {
      expect(validate({ ...base, broker: { ...base.broker, tls: bad } }, "esp8266").join("\n")).toMatch(/broker\.tls must be true or false/);
    }
  });

  it("makes the port 8883 when none is given; a given port stays", () => {
    const r = loadConfig({ file: file({ ...base, broker: { host: "b.example", tls: true } }), modem: "esp8266" });
    expect(r.errors).toEqual([]);
    expect(r.config.broker).toEqual({ host: "b.example", port: 8883, tls: true });
    const s = loadConfig({ file: file({ ...base, broker: { host: "b.example", tls: true, port: 443 } }), modem: "esp8266" });
    expect(s.config.broker.port).toBe(443);
    // no TLS, no port: still an error (no default is made up)
    const t = loadConfig({ file: file({ ...base, broker: { host: "b.example" } }), modem: "esp8266" });
    expect(t.errors.join("\n")).toMatch(/broker\.port/);
  });

  it("comes from LED_BROKER_TLS too", () => {
    const r = loadConfig({ modem: "sim800", env: { LED_APN: "web", LED_BROKER_HOST: "b.example", LED_BROKER_TLS: "true" } });
    expect(r.errors).toEqual([]);
    expect(r.config.broker).toEqual({ host: "b.example", port: 8883, tls: true });
    const off = loadConfig({ modem: "sim800", env: { LED_APN: "web", LED_BROKER_HOST: "b.example", LED_BROKER_PORT: "1883", LED_BROKER_TLS: "0" } });
    expect(off.config.broker.tls).toBe(false);
    expect(loadConfig({ modem: "sim800", env: { LED_APN: "web", LED_BROKER_HOST: "b.example", LED_BROKER_TLS: "maybe" } }).errors.join("\n")).toMatch(/LED_BROKER_TLS/);
  });
});

describe("the cloud examples in docs/examples/", () => {
  const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith(".json")).sort();
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

  it("are the four the README describes", () => {
    expect(files).toEqual(["hivemq-cloud.json", "onenet.json", "public-plain.json", "public-tls.json"]);
  });

  for (const f of files) {
    it(`${f} passes the flash tool's checks for both modems and is in the README`, () => {
      for (const modem of ["esp8266", "sim800"] as const) {
        const r = loadConfig({ file: path.join(EXAMPLES, f), modem });
        expect(r.errors, `${f} for ${modem}`).toEqual([]);
        // a prefix keeps this LED's topics apart from everyone else's on a shared broker
        expect(r.config.prefix, `${f}: prefix`).toBeTruthy();
        if (r.config.broker.tls) expect(r.config.broker.port).toBe(8883);
      }
      expect(readme).toContain(`docs/examples/${f}`);
    });
  }

  it("OneNET's device login: client id = device id, user name = product id, password = auth info", () => {
    const c = loadConfig({ file: path.join(EXAMPLES, "onenet.json"), modem: "sim800" }).config;
    expect(c.clientId).toMatch(/^\d+$/);
    expect(c.broker.username).toMatch(/^\d+$/);
    expect(c.broker.password).toBeTruthy();
    expect(c.broker.tls).toBeUndefined();
  });
});
