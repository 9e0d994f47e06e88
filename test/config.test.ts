import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ENV_KEYS, loadConfig, redact, validate } from "../scripts/config";
import { CONFIG_NAMES } from "../scripts/bundle";

const good = {
  wifi: { ssid: "lab", password: "wifi-secret-1" },
  gprs: { apn: "internet", user: "u", password: "apn-secret" },
  broker: { host: "10.0.0.2", port: 1883, username: "board", password: "broker-secret" },
  keepAlive: 60,
  topic: "led",
};

function file(obj: unknown): string {
  const dir = mkdtempSync(path.join(tmpdir(), "ledcfg-"));
  const f = path.join(dir, "config.json");
  writeFileSync(f, typeof obj === "string" ? obj : JSON.stringify(obj));
  return f;
}

describe("device configuration (scripts/config.ts)", () => {
  it("takes a good file and keeps only the built modem's credentials", () => {
    const esp = loadConfig({ file: file(good), modem: "esp8266" });
    expect(esp.errors).toEqual([]);
    expect(esp.config.wifi?.ssid).toBe("lab");
    expect(esp.config.gprs).toBeUndefined();
    const sim = loadConfig({ file: file(good), modem: "sim800" });
    expect(sim.errors).toEqual([]);
    expect(sim.config.wifi).toBeUndefined();
    expect(sim.config.gprs?.apn).toBe("internet");
  });

  it("lets LED_* environment variables win over the file, with types", () => {
    const r = loadConfig({
      file: file(good), modem: "esp8266",
      env: { LED_BROKER_PORT: "8883", LED_WIFI_SSID: "other", LED_ACTIVE_LOW: "true", LED_KEEPALIVE: "30" },
    });
    expect(r.errors).toEqual([]);
    expect(r.config.broker.port).toBe(8883);
    expect(r.config.wifi?.ssid).toBe("other");
    expect(r.config.ledActiveLow).toBe(true);
    expect(r.config.keepAlive).toBe(30);
  });

  it("works from the environment alone", () => {
    const r = loadConfig({ modem: "sim800", env: { LED_APN: "web", LED_BROKER_HOST: "b.example", LED_BROKER_PORT: "1883" } });
    expect(r.errors).toEqual([]);
    expect(r.config).toEqual({ gprs: { apn: "web" }, broker: { host: "b.example", port: 1883 } });
  });

  it.each([
    [{ ...good, wifi: undefined }, "esp8266", /wifi.ssid is required/],
    [{ ...good, gprs: { apn: "" } }, "sim800", /gprs.apn is required/],
    [{ ...good, broker: { host: "", port: 1883 } }, "esp8266", /broker.host is required/],
    [{ ...good, broker: { host: "h", port: 70000 } }, "esp8266", /broker.port/],
    [{ ...good, broker: { host: "h", port: 1883, password: "x" } }, "esp8266", /needs broker.username/],
    [{ ...good, wifi: { ssid: "lab", password: "short" } }, "esp8266", /8 to 64/],
    [{ ...good, topic: "led/#" }, "esp8266", /topic must not contain/],
    [{ ...good, keepAlive: 2 }, "esp8266", /keepAlive/],
    [{ ...good, clientId: "x".repeat(24) }, "esp8266", /longer than 23 bytes/],
    [{ ...good, ledPin: "led" }, "esp8266", /ledPin/],
    [{ ...good, clientId: "a\ud800b" }, "esp8266", /clientId is not valid text/],
    [{ ...good, topic: "led\udc00" }, "esp8266", /topic is not valid text/],
    [{ ...good, uartPath: "serial0" }, "esp8266", /uartPath/],
  ] as const)("rejects a bad setting with a clear message (%#)", (cfg, modem, msg) => {
    expect(validate(JSON.parse(JSON.stringify(cfg)), modem).join("\n")).toMatch(msg);
  });

  it("reports a file that is not JSON and a missing file", () => {
    expect(loadConfig({ file: file("{ nope"), modem: "esp8266" }).errors[0]).toMatch(/config.json: /);
    expect(loadConfig({ file: "/nonexistent/config.json", modem: "esp8266" }).errors[0]).toMatch(/does not exist/);
  });

  it("redacts every password, at any depth, and leaves the rest", () => {
    const r = redact(good);
    const text = JSON.stringify(r);
    for (const secret of ["wifi-secret-1", "apn-secret", "broker-secret"]) expect(text).not.toContain(secret);
    expect(r.wifi.ssid).toBe("lab");
    expect(r.broker.password).toBe("***");
  });

  it("every configuration key is kept by the minifier's property renaming", () => {
    const keys = new Set(Object.values(ENV_KEYS).flatMap((p) => p.split(".")));
    for (const k of keys) expect(CONFIG_NAMES).toContain(k);
  });
});
