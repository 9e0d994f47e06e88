import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { brokerCredentials, CONFIG_KEYS, ENV_KEYS, EXAMPLE_WIFI_PASSWORD, loadConfig, redact, validate } from "../../scripts/config";
import { CONFIG_NAMES, ROOT } from "../../scripts/build/bundle";
import { flash } from "../../scripts/device/flash";

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
    [{ ...good, topic: 'le"d' }, "esp8266", /topic must not contain ", \\ or control characters/],
    [{ ...good, prefix: "kitchen\\" }, "esp8266", /prefix must not contain ", \\ or control characters/],
    [{ ...good, prefix: "a\tb" }, "esp8266", /prefix must not contain ", \\ or control characters/],
    [{ ...good, clientId: "led.kitchen" }, "esp8266", /clientId may hold only letters, digits, - and _/],
  ] as const)("rejects a bad setting with a clear message (%#)", (cfg, modem, msg) => {
    expect(validate(JSON.parse(JSON.stringify(cfg)), modem).join("\n")).toMatch(msg);
  });

  it("a UTF-8 prefix and a client id of letters, digits, - and _ pass", () => {
    expect(validate({ ...good, prefix: "küche", clientId: "led-41573033_x" }, "esp8266")).toEqual([]);
  });

  it("a missing file is one error that says how to create it, unless LED_* variables stand in for it", () => {
    const missing = loadConfig({ file: "/nonexistent/config.json", modem: "esp8266", env: {} });
    expect(missing.errors).toEqual([expect.stringMatching(/^\/nonexistent\/config.json does not exist: create it with `cp config.example.json config.json`/)]);
    // environment only: the file's absence is fine, what is missing is listed
    const envOnly = loadConfig({ file: "/nonexistent/config.json", modem: "esp8266", env: { LED_BROKER_HOST: "10.0.0.2" } });
    expect(envOnly.errors).toEqual([expect.stringMatching(/^wifi.ssid is required/), expect.stringMatching(/^broker.port is required/)]);
    // a file named on the command line (--config) must exist
    const named = loadConfig({ file: "/nonexistent/config.json", required: true, modem: "esp8266", env: { LED_BROKER_HOST: "10.0.0.2" } });
    expect(named.errors).toEqual([expect.stringMatching(/does not exist/)]);
  });

  it("a JSON syntax error is reported alone, with its line and column", () => {
    const text = '{\n  "wifi": { "ssid": "lab", "password": "wifi-secret-1" }\n  "broker": { "host": "h", "port": 1883 }\n}\n';
    const r = loadConfig({ file: file(text), modem: "esp8266", env: {} });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^\S*config.json is not valid JSON: line 3, column 3: /);
    expect(loadConfig({ file: file("[1, 2]"), modem: "esp8266" }).errors).toEqual([expect.stringMatching(/must hold one JSON object/)]);
  });

  it("unknown keys are refused, with the key they were probably meant to be", () => {
    const typo = validate({ ...good, keepalive: 30 }, "esp8266");
    expect(typo).toEqual(['unknown key "keepalive" (did you mean "keepAlive"?)']);
    expect(validate({ ...good, broker: { ...good.broker, hots: "x" } }, "esp8266")).toEqual(['unknown key "broker.hots" (did you mean "broker.host"?)']);
    expect(validate({ ...good, colour: "red" }, "esp8266")[0]).toMatch(/^unknown key "colour" \(known keys: wifi, gprs, broker, clientId/);
    // a section that is not an object: one error, not one per missing field
    expect(validate({ ...good, broker: "10.0.0.2:1883" }, "esp8266")).toEqual([expect.stringMatching(/^broker must be an object such as \{ "host": …, "port": …/)]);
  });

  it.each([
    ["mqtt://h:1883", /write "host": "h" and "port": 1883/],
    ["mqtts://broker.example", /without a scheme or port: for "mqtts:\/\/broker.example" write "host": "broker.example"$/],
    ["h:1883", /must not hold the port: write "host": "h" and "port": 1883/],
    ["my broker", /host name or IPv4 address/],
    ['a"b', /host name or IPv4 address/],
  ])("broker.host %j is refused, saying what to write", (host, msg) => {
    const errors = validate({ ...good, broker: { ...good.broker, host } }, "esp8266");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(msg);
  });

  it("good hosts and pins pass; bad pins are named", () => {
    for (const host of ["192.168.1.10", "broker.local", "mqtt-1.example.com", "raspberrypi"]) expect(validate({ ...good, broker: { ...good.broker, host } }, "esp8266")).toEqual([]);
    for (const ledPin of ["B2", "A13", "C15", "D12", "D17", "D5"]) expect(validate({ ...good, ledPin }, "esp8266")).toEqual([]);
    for (const ledPin of ["Z99", "A16", "b2", "LED1", "D"]) {
      expect(validate({ ...good, ledPin }, "esp8266")).toEqual([`ledPin must be a pin name: a port letter A to I and a number 0 to 15 (B2, A13), or D and a GPIO number on Linux (D17); not ${JSON.stringify(ledPin)}`]);
    }
  });

  it("config.example.json as committed is refused for its placeholder WiFi password", () => {
    const example = path.join(ROOT, "config.example.json");
    expect(JSON.parse(readFileSync(example, "utf8")).wifi.password).toBe(EXAMPLE_WIFI_PASSWORD);
    const r = loadConfig({ file: example, modem: "esp8266", env: {} });
    expect(r.errors).toEqual([`wifi.password is still config.example.json's placeholder "${EXAMPLE_WIFI_PASSWORD}": put your network's password there`]);
    // the SIM800 build carries no WiFi settings: the example is complete for it
    expect(loadConfig({ file: example, modem: "sim800", env: {} }).errors).toEqual([]);
  });

  it("a bad LED_* number or flag is reported once, naming the variable and the range", () => {
    const port = loadConfig({ file: file(good), modem: "esp8266", env: { LED_BROKER_PORT: "abc" } });
    expect(port.errors).toEqual(['LED_BROKER_PORT must be a whole number from 1 to 65535, not "abc"']);
    const ka = loadConfig({ file: file(good), modem: "esp8266", env: { LED_KEEPALIVE: "0" } });
    expect(ka.errors).toEqual(['LED_KEEPALIVE must be a whole number from 5 to 65535, not "0"']);
    const low = loadConfig({ file: file(good), modem: "esp8266", env: { LED_ACTIVE_LOW: "yes" } });
    expect(low.errors).toEqual(['LED_ACTIVE_LOW must be true or false, not "yes"']);
    // env only: the refused port is not also "required"
    const envOnly = loadConfig({ modem: "sim800", env: { LED_APN: "web", LED_BROKER_HOST: "h", LED_BROKER_PORT: "18 83" } });
    expect(envOnly.errors).toEqual(['LED_BROKER_PORT must be a whole number from 1 to 65535, not "18 83"']);
  });

  it("npm run flash refuses to write a led.json with an unknown key or a bad value", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ledcfg-flash-"));
    const fw = path.join(dir, "fw.js");
    writeFileSync(fw, "print(1);");
    for (const [bad, msg] of [
      [{ ...good, keepalive: 30 }, /unknown key "keepalive" \(did you mean "keepAlive"\?\)/],
      [{ ...good, ledPin: "Z99" }, /ledPin must be a pin name/],
      [{ ...good, broker: { ...good.broker, host: "mqtt://h:1883" } }, /"host": "h" and "port": 1883/],
    ] as const) {
      const out = path.join(dir, "dry-" + Math.random().toString(16).slice(2));
      const r = await flash({ board: "pico", modem: "esp8266", config: file(bad), firmware: fw, dryRun: out, env: {}, log: () => {} });
      expect(r.ok).toBe(false);
      expect(r.errors).toEqual([expect.stringMatching(msg)]);
      expect(r.errors.join("\n")).not.toContain("broker-secret");
      expect(existsSync(path.join(out, "led.json"))).toBe(false);
    }
    const missing = await flash({ board: "pico", modem: "esp8266", config: path.join(dir, "none.json"), firmware: fw, dryRun: path.join(dir, "d0"), env: {}, log: () => {} });
    expect(missing.errors).toEqual([expect.stringMatching(/none.json does not exist: create it with `cp config.example.json config.json`/)]);
  });

  it("the broker credentials for npm run broker: file, then environment; a broken file says so", () => {
    expect(brokerCredentials({ file: file(good), env: {} })).toEqual({ username: "board", password: "broker-secret" });
    expect(brokerCredentials({ file: file(good), env: { LED_BROKER_PASSWORD: "other" } })).toEqual({ username: "board", password: "other" });
    expect(brokerCredentials({ file: "/nonexistent/config.json", env: {} })).toEqual({ username: undefined, password: undefined });
    expect(brokerCredentials({ file: file("{ nope"), env: {} }).error).toMatch(/is not valid JSON/);
    expect(brokerCredentials({ env: { LED_BROKER_PASSWORD: "x" } }).error).toMatch(/needs broker.username/);
  });

  it("redacts every password, at any depth, and leaves the rest", () => {
    const r = redact(good);
    const text = JSON.stringify(r);
    for (const secret of ["wifi-secret-1", "apn-secret", "broker-secret"]) expect(text).not.toContain(secret);
    expect(r.wifi.ssid).toBe("lab");
    expect(r.broker.password).toBe("***");
  });

  it("every configuration key is kept by the minifier's property renaming, and has an environment variable", () => {
    const keys = new Set(Object.entries(CONFIG_KEYS).flatMap(([k, nested]) => [k, ...(nested ?? [])]));
    for (const k of keys) expect(CONFIG_NAMES).toContain(k);
    const paths = Object.entries(CONFIG_KEYS).flatMap(([k, nested]) => (nested ? nested.map((n) => k + "." + n) : [k]));
    expect(Object.values(ENV_KEYS).sort()).toEqual(paths.sort());
  });
});

describe("the SIM7600 / A7670 (LTE) configuration", () => {
  const env = { LED_APN: "internet", LED_APN_USER: "jo", LED_APN_PASSWORD: "pw", LED_BROKER_HOST: "b.example", LED_BROKER_PORT: "1883" };
  it("reads the same gprs section (apn, user, password) as the SIM800", () => {
    const r = loadConfig({ modem: "sim7600", env });
    expect(r.errors).toEqual([]);
    expect(r.config.gprs).toEqual({ apn: "internet", user: "jo", password: "pw" });
  });
  it("requires an APN", () => {
    expect(loadConfig({ modem: "sim7600", env: { ...env, LED_APN: "" } }).errors).toContain("gprs.apn is required for a SIM7600 / A7670 build (LED_APN)");
  });
  it("accepts broker.tls (the module's SSL service), like the SIM800", () => {
    const tls = { ...env, LED_BROKER_TLS: "true" };
    for (const modem of ["sim7600", "sim800"] as const) {
      const loaded = loadConfig({ modem, env: tls });
      expect(loaded.errors, modem).toEqual([]);
      expect(loaded.config.broker.tls, modem).toBe(true);
    }
  });
});
