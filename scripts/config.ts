/**
 * Host side: reads the device configuration from a JSON file kept outside git
 * (config.json; config.example.json is the committed template) and LED_*
 * environment variables, which win over the file, and validates it. The result
 * is what `npm run flash` writes to the board's Storage as led.json.
 */
import fs from "node:fs";
import type { DeviceConfig } from "../src/app/config";

export type ModemKind = "esp8266" | "sim800";

export interface LoadOptions {
  /** Path of the JSON file; absent or missing file = environment only. */
  file?: string;
  env?: Record<string, string | undefined>;
  modem: ModemKind;
}

/** Environment variable → path in the config object. */
export const ENV_KEYS: Record<string, string> = {
  LED_WIFI_SSID: "wifi.ssid",
  LED_WIFI_PASSWORD: "wifi.password",
  LED_APN: "gprs.apn",
  LED_APN_USER: "gprs.user",
  LED_APN_PASSWORD: "gprs.password",
  LED_BROKER_HOST: "broker.host",
  LED_BROKER_PORT: "broker.port",
  LED_BROKER_USERNAME: "broker.username",
  LED_BROKER_PASSWORD: "broker.password",
  LED_BROKER_TLS: "broker.tls",
  LED_CLIENT_ID: "clientId",
  LED_KEEPALIVE: "keepAlive",
  LED_TOPIC: "topic",
  LED_PREFIX: "prefix",
  LED_PIN: "ledPin",
  LED_ACTIVE_LOW: "ledActiveLow",
  LED_UART_PATH: "uartPath",
};

const NUMBERS = new Set(["broker.port", "keepAlive"]);
const BOOLEANS = new Set(["ledActiveLow", "broker.tls"]);
const SECRET_KEYS = new Set(["password"]);

function setPath(obj: Record<string, any>, path: string, value: unknown): void {
  const parts = path.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] ??= {};
  o[parts[parts.length - 1]] = value;
}

/** No lone surrogate (String.prototype.isWellFormed is in Node 20; its type is in a later lib). */
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

function utf8Len(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function checkTopicPart(name: string, v: unknown, errors: string[]): void {
  if (typeof v !== "string" || v === "") errors.push(`${name} must be a non-empty string`);
  else if (!wellFormed(v)) errors.push(`${name} is not valid text (a lone surrogate)`);
  else if (/[+#\u0000]/.test(v)) errors.push(`${name} must not contain +, # or NUL (it is published to)`);
  else if (utf8Len(v) > 200) errors.push(`${name} is too long (at most 200 bytes)`);
}

/** Validates a configuration for a modem; returns the list of problems (empty = good). */
export function validate(c: Record<string, any>, modem: ModemKind): string[] {
  const errors: string[] = [];
  const str = (v: unknown) => typeof v === "string";
  if (modem === "esp8266") {
    const w = c.wifi;
    if (!w || !str(w.ssid) || w.ssid === "") errors.push("wifi.ssid is required for an ESP8266 build (LED_WIFI_SSID)");
    else if (utf8Len(w.ssid) > 32) errors.push("wifi.ssid is longer than 32 bytes");
    if (w && w.password !== undefined && !str(w.password)) errors.push("wifi.password must be a string");
    if (w && str(w.password) && w.password !== "" && (w.password.length < 8 || w.password.length > 64))
      errors.push("wifi.password must be empty (open network) or 8 to 64 characters");
  } else {
    const g = c.gprs;
    if (!g || !str(g.apn) || g.apn === "") errors.push("gprs.apn is required for a SIM800 build (LED_APN)");
    for (const k of ["user", "password"]) if (g && g[k] !== undefined && !str(g[k])) errors.push(`gprs.${k} must be a string`);
  }
  const b = c.broker;
  if (!b || !str(b.host) || b.host === "") errors.push("broker.host is required (LED_BROKER_HOST)");
  if (!b || !Number.isInteger(b.port) || b.port < 1 || b.port > 65535) errors.push("broker.port must be a whole number from 1 to 65535");
  if (b && b.tls !== undefined && typeof b.tls !== "boolean") errors.push("broker.tls must be true or false (TLS through the modem; the port then defaults to 8883)");
  if (b && b.password !== undefined && (b.username === undefined || b.username === ""))
    errors.push("broker.password needs broker.username (MQTT 3.1.1 sends no password without a user name)");
  if (c.clientId !== undefined) {
    if (!str(c.clientId) || c.clientId === "") errors.push("clientId must be a non-empty string (or left out: the chip's serial is used)");
    else if (!wellFormed(c.clientId)) errors.push("clientId is not valid text (a lone surrogate)");
    else if (utf8Len(c.clientId) > 23) errors.push("clientId is longer than 23 bytes, which MQTT 3.1.1 brokers need not accept");
  }
  if (c.keepAlive !== undefined && (!Number.isInteger(c.keepAlive) || c.keepAlive < 5 || c.keepAlive > 65535))
    errors.push("keepAlive must be a whole number of seconds from 5 to 65535");
  if (c.topic !== undefined) checkTopicPart("topic", c.topic, errors);
  if (c.prefix !== undefined && c.prefix !== "") checkTopicPart("prefix", c.prefix, errors);
  if (c.ledPin !== undefined && (!str(c.ledPin) || !/^[A-Z]{1,2}\d{1,3}$/.test(c.ledPin)))
    errors.push("ledPin must be a pin name such as B2 or D17");
  if (c.ledActiveLow !== undefined && typeof c.ledActiveLow !== "boolean") errors.push("ledActiveLow must be true or false");
  if (c.uartPath !== undefined && (!str(c.uartPath) || !c.uartPath.startsWith("/dev/"))) errors.push("uartPath must be a device path such as /dev/serial0");
  return errors;
}

/** Reads file then environment, and validates for the given modem. */
export function loadConfig(opts: LoadOptions): { config: DeviceConfig; errors: string[] } {
  const errors: string[] = [];
  let c: Record<string, any> = {};
  if (opts.file && fs.existsSync(opts.file)) {
    try {
      c = JSON.parse(fs.readFileSync(opts.file, "utf8"));
      if (typeof c !== "object" || c === null || Array.isArray(c)) throw new Error("not a JSON object");
    } catch (e) {
      errors.push(`${opts.file}: ${(e as Error).message}`);
      c = {};
    }
  } else if (opts.file && !opts.env) {
    errors.push(`${opts.file} does not exist (copy config.example.json)`);
  }
  const env = opts.env ?? {};
  for (const [name, path] of Object.entries(ENV_KEYS)) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    if (NUMBERS.has(path)) {
      const n = Number(raw);
      if (!Number.isFinite(n)) errors.push(`${name} must be a number`);
      setPath(c, path, n);
    } else if (BOOLEANS.has(path)) {
      if (!/^(true|false|1|0)$/i.test(raw)) errors.push(`${name} must be true or false`);
      setPath(c, path, /^(true|1)$/i.test(raw));
    } else setPath(c, path, raw);
  }
  // TLS without a port: the port registered for MQTT over TLS.
  if (c.broker && c.broker.tls === true && c.broker.port === undefined) c.broker.port = 8883;
  // A build for one modem carries only that modem's credentials to the board.
  if (opts.modem === "esp8266") delete c.gprs;
  else delete c.wifi;
  errors.push(...validate(c, opts.modem));
  return { config: c as DeviceConfig, errors };
}

/** A copy with every secret replaced, for printing. */
export function redact<T>(config: T): T {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEYS.has(k) && x ? "***" : walk(x);
      return out;
    }
    return v;
  };
  return walk(config) as T;
}
