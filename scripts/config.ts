/**
 * Host side: reads the device configuration from a JSON file kept outside git
 * (config.json; config.example.json is the committed template) and LED_*
 * environment variables, which win over the file, and validates it. The result
 * is what `npm run flash` writes to the board's Storage as led.json.
 */
import fs from "node:fs";
import path from "node:path";
import type { DeviceConfig } from "../src/app/config";
import { EXAMPLE_WIFI_PASSWORD, isModemKind, MODEM_KINDS, MODEMS, modemEntry, type ModemKind } from "./modems";

export { EXAMPLE_WIFI_PASSWORD, type ModemKind };

export interface LoadOptions {
  /** Path of the JSON file; absent = environment only. */
  file?: string;
  /**
   * The file was named by the user (--config): its absence is an error. Otherwise a
   * missing file is an error only when no LED_* variable is set either.
   */
  required?: boolean;
  env?: Record<string, string | undefined>;
  /** A kind of the modem registry (scripts/modems.ts); any other is an error. */
  modem: ModemKind | string;
}

/**
 * Every key the configuration may hold: each top-level key, with the keys of the
 * objects that nest (null: a plain value). Anything else is refused, so a typo
 * ("keepalive") is reported instead of silently ignored.
 */
export const CONFIG_KEYS: Record<string, readonly string[] | null> = {
  // each modem's credentials (scripts/modems.ts)
  ...Object.fromEntries(Object.values(MODEMS).map((m) => [m.configKey, m.configFields])),
  broker: ["host", "port", "username", "password", "tls"],
  clientId: null,
  keepAlive: null,
  topic: null,
  prefix: null,
  ledPin: null,
  ledActiveLow: null,
  uartPath: null,
};

/** Environment variable → path in the config object. */
export const ENV_KEYS: Record<string, string> = {
  // each modem's (scripts/modems.ts)
  ...Object.assign({}, ...Object.values(MODEMS).map((m) => m.env)),
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

/** Numeric settings and the whole numbers they take. */
const NUMBERS: Record<string, [number, number]> = { "broker.port": [1, 65535], keepAlive: [5, 65535] };
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
  // The firmware writes it into Home Assistant's discovery JSON as it is (src/app/discovery.ts).
  else if (/["\\\u0001-\u001f\u007f]/.test(v)) errors.push(`${name} must not contain ", \\ or control characters (it goes into Home Assistant's discovery message)`);
  else if (utf8Len(v) > 200) errors.push(`${name} is too long (at most 200 bytes)`);
}

/** Edit distance of two short strings (for "did you mean"). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

function unknownKey(where: string, key: string, known: readonly string[]): string {
  const name = where ? where + "." + key : key;
  const near = known.find((k) => k.toLowerCase() === key.toLowerCase()) ?? known.find((k) => distance(k.toLowerCase(), key.toLowerCase()) <= 2);
  return `unknown key "${name}"` + (near ? ` (did you mean "${where ? where + "." + near : near}"?)` : ` (known keys${where ? " of " + where : ""}: ${known.join(", ")})`);
}

/** Keys the configuration may not hold, one message each. Returns the nesting keys that are not objects (reported). */
function checkKeys(c: Record<string, any>, errors: string[]): Set<string> {
  const top = Object.keys(CONFIG_KEYS);
  const bad = new Set<string>();
  for (const k of Object.keys(c)) {
    if (!(k in CONFIG_KEYS)) {
      errors.push(unknownKey("", k, top));
      continue;
    }
    const nested = CONFIG_KEYS[k];
    if (!nested) continue;
    const v = c[k];
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      errors.push(`${k} must be an object such as { ${nested.map((n) => `"${n}": …`).join(", ")} }`);
      bad.add(k);
      continue;
    }
    for (const n of Object.keys(v)) if (!nested.includes(n)) errors.push(unknownKey(k, n, nested));
  }
  return bad;
}

/** A DNS name or an IPv4 address: what AT+CIPSTART takes. */
const HOST_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/;

function checkHost(host: string, errors: string[]): void {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/:]*)(?::(\d+))?/i.exec(host);
  if (m) {
    errors.push(`broker.host must be a host name or address without a scheme or port: for "${host}" write "host": "${m[2]}"` +
      (m[3] ? ` and "port": ${m[3]}` : ""));
  } else if (/^[^:]+:\d+$/.test(host)) {
    const [h, p] = host.split(":");
    errors.push(`broker.host must not hold the port: write "host": "${h}" and "port": ${p}`);
  } else if (host.length > 253 || !HOST_RE.test(host)) {
    errors.push(`broker.host must be a host name or IPv4 address such as 192.168.1.10 or broker.local, not ${JSON.stringify(host)}`);
  }
}

/**
 * Espruino pin names: an STM32 port letter A to I and 0 to 15 (B2, A13), or D and a
 * number (Espruino on Linux numbers GPIOs so: D17).
 */
const PIN_RE = /^([A-I]([0-9]|1[0-5])|D[0-9]{1,3})$/;

/** Validates a configuration for a modem; returns the list of problems (empty = good). */
export function validate(c: Record<string, any>, modem: ModemKind): string[] {
  const errors: string[] = [];
  // A section that is not an object was reported once; its fields are not checked.
  const bad = checkKeys(c, errors);
  const str = (v: unknown) => typeof v === "string";
  const { configKey, validate: checkCredentials } = modemEntry(modem);
  if (!bad.has(configKey)) checkCredentials(c[configKey], errors);
  const b = c.broker;
  if (!bad.has("broker")) {
    if (!b || !str(b.host) || b.host === "") errors.push("broker.host is required (LED_BROKER_HOST)");
    else checkHost(b.host, errors);
    if (!b || b.port === undefined) errors.push("broker.port is required: a whole number from 1 to 65535, usually 1883 (LED_BROKER_PORT)");
    else if (!Number.isInteger(b.port) || b.port < 1 || b.port > 65535) errors.push(`broker.port must be a whole number from 1 to 65535, not ${JSON.stringify(b.port)}`);
    if (b && b.password !== undefined && (b.username === undefined || b.username === ""))
      errors.push("broker.password needs broker.username (MQTT 3.1.1 sends no password without a user name)");
    if (b && b.tls !== undefined && typeof b.tls !== "boolean") errors.push("broker.tls must be true or false (TLS through the modem; the port then defaults to 8883)");
  }
  if (c.clientId !== undefined) {
    if (!str(c.clientId) || c.clientId === "") errors.push("clientId must be a non-empty string (or left out: the chip's serial is used)");
    else if (!wellFormed(c.clientId)) errors.push("clientId is not valid text (a lone surrogate)");
    else if (utf8Len(c.clientId) > 23) errors.push("clientId is longer than 23 bytes, which MQTT 3.1.1 brokers need not accept");
    // Home Assistant's discovery topic holds it as the node id, which takes only these.
    else if (!/^[A-Za-z0-9_-]+$/.test(c.clientId)) errors.push("clientId may hold only letters, digits, - and _ (it names the board in Home Assistant's discovery topic too)");
  }
  if (c.keepAlive !== undefined && (!Number.isInteger(c.keepAlive) || c.keepAlive < 5 || c.keepAlive > 65535))
    errors.push(`keepAlive must be a whole number of seconds from 5 to 65535, not ${JSON.stringify(c.keepAlive)}`);
  if (c.topic !== undefined) checkTopicPart("topic", c.topic, errors);
  if (c.prefix !== undefined && c.prefix !== "") checkTopicPart("prefix", c.prefix, errors);
  if (c.ledPin !== undefined && (!str(c.ledPin) || !PIN_RE.test(c.ledPin)))
    errors.push(`ledPin must be a pin name: a port letter A to I and a number 0 to 15 (B2, A13), or D and a GPIO number on Linux (D17); not ${JSON.stringify(c.ledPin)}`);
  if (c.ledActiveLow !== undefined && typeof c.ledActiveLow !== "boolean") errors.push("ledActiveLow must be true or false");
  if (c.uartPath !== undefined && (!str(c.uartPath) || !c.uartPath.startsWith("/dev/"))) errors.push("uartPath must be a device path such as /dev/serial0");
  return errors;
}

/** A path as the user would type it: relative to the working directory when inside it. */
function shown(file: string): string {
  const r = path.relative(process.cwd(), file);
  return r && !r.startsWith("..") && !path.isAbsolute(r) ? r : file;
}

/** "Expected ',' … in JSON at position 27" → "line 3, column 5: Expected ',' …". */
function jsonError(text: string, e: Error): string {
  const msg = e.message.replace(/\s*\(line \d+ column \d+\)$/, "");
  const m = /^(.*?)(?: in JSON)? at position (\d+)/.exec(msg);
  if (!m) return msg;
  const before = text.slice(0, Number(m[2]));
  const line = before.split("\n").length;
  const column = before.length - before.lastIndexOf("\n");
  return `line ${line}, column ${column}: ${m[1]}`;
}

/** Reads a JSON object file: the object, or one error that says what is wrong with the file. */
export function readJsonObject(file: string): { value?: Record<string, any>; error?: string } {
  const text = fs.readFileSync(file, "utf8");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `${shown(file)} is not valid JSON: ${jsonError(text, e as Error)}` };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { error: `${shown(file)} must hold one JSON object ({ … })` };
  return { value: v as Record<string, any> };
}

/** How to make a configuration file, for a message. */
export const CREATE_HINT = "create it with `cp config.example.json config.json` and fill it in (or set the LED_* environment variables, see the README)";

/**
 * Reads file then environment, and validates for the given modem. Each problem is
 * reported once: a missing or unreadable file is the only error given about it.
 */
export function loadConfig(opts: LoadOptions): { config: DeviceConfig; errors: string[] } {
  const errors: string[] = [];
  const modem = opts.modem;
  if (!isModemKind(modem)) return { config: {} as DeviceConfig, errors: [`unknown modem ${JSON.stringify(modem)} (${MODEM_KINDS.join(", ")})`] };
  const env = opts.env ?? {};
  let c: Record<string, any> = {};
  if (opts.file && fs.existsSync(opts.file)) {
    const r = readJsonObject(opts.file);
    if (r.error) return { config: {} as DeviceConfig, errors: [r.error] };
    c = r.value!;
  } else if (opts.file) {
    const anyEnv = Object.keys(ENV_KEYS).some((k) => env[k] !== undefined && env[k] !== "");
    if (opts.required || !anyEnv) return { config: {} as DeviceConfig, errors: [`${shown(opts.file)} does not exist: ${CREATE_HINT}`] };
  }
  /** Settings whose environment variable was refused: their own check would repeat it. */
  const refused: string[] = [];
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    const range = NUMBERS[key];
    if (range) {
      const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!(n >= range[0] && n <= range[1])) {
        errors.push(`${name} must be a whole number from ${range[0]} to ${range[1]}, not ${JSON.stringify(raw)}`);
        refused.push(key);
      } else setPath(c, key, n);
    } else if (BOOLEANS.has(key)) {
      if (!/^(true|false|1|0)$/i.test(raw)) {
        errors.push(`${name} must be true or false, not ${JSON.stringify(raw)}`);
        refused.push(key);
      } else setPath(c, key, /^(true|1)$/i.test(raw));
    } else setPath(c, key, raw);
  }
  // TLS without a port: the port registered for MQTT over TLS.
  if (c.broker && c.broker.tls === true && c.broker.port === undefined) c.broker.port = 8883;
  // A build for one modem carries only that modem's credentials to the board.
  for (const m of Object.values(MODEMS)) if (m.configKey !== modemEntry(modem).configKey) delete c[m.configKey];
  errors.push(...validate(c, modem).filter((e) => !refused.some((k) => e.startsWith(k + " "))));
  return { config: c as DeviceConfig, errors };
}

/**
 * The broker credentials of a configuration (`npm run broker` asks boards and phones
 * for them): broker.username/password from the file if it exists, LED_BROKER_USERNAME /
 * LED_BROKER_PASSWORD winning. Nothing else in the file is checked here.
 */
export function brokerCredentials(opts: { file?: string; env?: Record<string, string | undefined> }): { username?: string; password?: string; error?: string } {
  let b: Record<string, unknown> = {};
  if (opts.file && fs.existsSync(opts.file)) {
    const r = readJsonObject(opts.file);
    if (r.error) return { error: r.error };
    if (r.value!.broker && typeof r.value!.broker === "object") b = r.value!.broker;
  }
  const env = opts.env ?? {};
  const username = env.LED_BROKER_USERNAME || (typeof b.username === "string" ? b.username : undefined) || undefined;
  const password = env.LED_BROKER_PASSWORD || (typeof b.password === "string" ? b.password : undefined) || undefined;
  if (password !== undefined && username === undefined) return { error: "broker.password needs broker.username (MQTT 3.1.1 sends no password without a user name)" };
  return { username, password };
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
