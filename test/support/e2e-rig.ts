/**
 * End-to-end rig: one BUILT firmware script (firmware/<board>-<modem>.js, read from
 * disk — the suite runs `npm run build` first; nothing is built here) in the virtual
 * board on a fake clock, its modem UART wired to the modem simulator, whose TCP
 * socket reaches a real broker on loopback (Aedes in-process or Mosquitto), and a
 * phone: MQTT.js connected to the same broker, subscribed to `led/#`.
 *
 *   const rig = await startRig({ board: "pico", modem: "sim800" });   // boots, waits for "online"
 *   (with `phone: false` and a broker that serves the board alone, such as the misbehaving
 *   one in ./misbehaving-broker.ts, pass `boot: false` and follow the board through that broker)
 *   await rig.command("toggle");                // phone → led (QoS 1), waits for the new led/state
 *   expect(rig.lit()).toBe(true);               // the LED pin, polarity applied
 *   await rig.retained("led/state");            // what a fresh subscriber gets
 *   await rig.close();                          // in afterEach/finally; bounded
 *
 * The device configuration is written to Storage "led.json" like `npm run flash` does:
 * WiFi credentials matching the simulated AP, an APN matching the simulated network,
 * broker "broker.example":1883 (the simulator's hostMap sends it to the test broker;
 * "broker.example":8883 to its TLS listener, if it has one),
 * keepAlive 60, a fixed clientId. Passwords are the SECRETS below, so any test can
 * check that none of them is ever printed (rig.leakedSecrets()).
 *
 * Time: the board's clock is fake and only moves inside rig.waitFor() (VirtualBoard
 * runUntil: small steps while bytes flow, timer-to-timer jumps when all is quiet), so a
 * 60 s keep-alive costs well under a second of real time. Every wait is bounded in
 * board time AND real time, and a timeout says what was awaited, with the board's last
 * console lines and the last UART bytes.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import mqtt, { type MqttClient } from "mqtt";
import type { AedesOptions } from "aedes";
import { VirtualBoard } from "../../scripts/simulators/virtual-board/index";
import { type Esp8266Sim, type Sim800Sim, type Sim7600Sim } from "../../scripts/simulators/modem-sim/index";
import type { BoardDef } from "../../src/board/board";
import { controlPinOf, modemEntry, type ModemKind } from "../../scripts/modems";
import type { DeviceConfig } from "../../src/app/config";
import { startAedes, startMosquitto, type MosquittoOptions, type RunningBroker } from "./brokers";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Where the built scripts are read from (env E2E_FIRMWARE_DIR: another build output, e.g. `npx tsx scripts/build/build.ts --out dir`). */
export const FIRMWARE_DIR = process.env.E2E_FIRMWARE_DIR ? path.resolve(process.env.E2E_FIRMWARE_DIR) : path.join(ROOT, "firmware");
export const BOARDS_DIR = path.join(ROOT, "boards");

/** Credentials used by every rig: none of them may ever reach the board's console. */
/** Each led.json modem section (scripts/modems.ts: configKey) as the rigs fill it in. */
const modemCredentials: Record<string, Record<string, string>> = {
  get wifi() {
    return { ssid: SECRETS.ssid, password: SECRETS.wifiPassword };
  },
  get gprs() {
    return { apn: SECRETS.apn, user: SECRETS.apnUser, password: SECRETS.apnPassword };
  },
};

export const SECRETS = {
  ssid: "e2e-lab",
  wifiPassword: 'W1fi-S3cret,"x',
  apn: "internet.e2e",
  apnUser: "apn-user",
  apnPassword: "Apn-S3cret-7",
  brokerUser: "board",
  brokerPassword: "Mqtt-S3cret-9",
} as const;
export const BROKER_HOST = "broker.example";
export const BROKER_PORT = 1883;
/** The port of MQTT over TLS: the simulator sends it to the broker's TLS listener (broker.tlsPort). */
export const BROKER_TLS_PORT = 8883;

export interface Script {
  board: BoardDef;
  modem: ModemKind;
  /** "pico-sim800" */
  name: string;
  file: string;
}

/** Every board in boards/*.ts with its default-exported BoardDef (sorted by id). */
export async function loadBoards(): Promise<BoardDef[]> {
  const out: BoardDef[] = [];
  for (const f of readdirSync(BOARDS_DIR).filter((n) => n.endsWith(".ts") && !n.endsWith(".d.ts")).sort()) {
    const b: BoardDef = (await import(pathToFileURL(path.join(BOARDS_DIR, f)).href)).default;
    if (!b || !Array.isArray(b.modems)) throw new Error(`boards/${f}: no default-exported BoardDef`);
    out.push(b);
  }
  return out;
}

export async function loadBoard(id: string): Promise<BoardDef> {
  const file = path.join(BOARDS_DIR, id + ".ts");
  if (!existsSync(file)) throw new Error(`no board "${id}" (boards/${id}.ts)`);
  return (await import(pathToFileURL(file).href)).default as BoardDef;
}

/** Every script the build must have made: each board × each of its modems. */
export async function expectedScripts(): Promise<Script[]> {
  const out: Script[] = [];
  for (const board of await loadBoards()) {
    for (const modem of board.modems as ModemKind[]) {
      const name = `${board.id}-${modem}`;
      out.push({ board, modem, name, file: path.join(FIRMWARE_DIR, name + ".js") });
    }
  }
  return out;
}

/** The built script's exact bytes; a clear failure when the build has not run. */
export function readFirmware(name: string): string {
  const file = path.join(FIRMWARE_DIR, name + ".js");
  if (!existsSync(file)) {
    throw new Error(`${path.relative(ROOT, file) || file} is missing: the end-to-end tests run the BUILT scripts — run \`npm run build\` first (npm test does)`);
  }
  return readFileSync(file, "latin1");
}

export interface PhoneMessage {
  topic: string;
  payload: string;
  retain: boolean;
  /** Board time (ms) when the phone got it. */
  at: number;
}

export interface RigOptions {
  board: string;
  modem: ModemKind;
  /** A running broker to use (not stopped by close()), or which one to start (default "aedes"). */
  broker?: RunningBroker | "aedes" | "mosquitto";
  aedes?: AedesOptions;
  mosquitto?: MosquittoOptions;
  /** Merged over the default led.json (broker: merged field by field). */
  config?: Partial<DeviceConfig>;
  /** Phone credentials (a broker with authentication). */
  phoneAuth?: { username: string; password: string };
  /** Connect the phone (default true; false for a broker that serves the board alone, e.g. the misbehaving one). */
  phone?: boolean;
  /** Extra simulator options (seed, maxChunk, baud, …). */
  sim?: Record<string, unknown>;
  /** Start the board at once (default true); false: call rig.boot() yourself. */
  boot?: boolean;
  /** Copy the board's console to stdout (also env E2E_ECHO=1). */
  echo?: boolean;
}

export interface UartEntry {
  dir: "board>" | "modem>";
  bytes: string;
  /** Board time, ms. */
  t: number;
}

export interface WaitOptions {
  /** Board time bound, ms (default 180 000). */
  timeoutMs?: number;
  /** Real time bound, ms (default 20 000). */
  realTimeoutMs?: number;
  /** Real ms without UART traffic before the fake clock jumps to the next timer (default 600, env E2E_QUIET_MS): long enough that a slow broker reply on a busy machine is not mistaken for silence. */
  quietMs?: number;
}

export class Rig {
  readonly vb: VirtualBoard;
  readonly sim: Esp8266Sim | Sim800Sim | Sim7600Sim;
  readonly uart: ReturnType<VirtualBoard["uart"]>;
  /** Every byte across the modem UART, with board time. */
  readonly wire: UartEntry[] = [];
  /** Everything the phone received on led/# (and any other subscription). */
  readonly messages: PhoneMessage[] = [];
  phone!: MqttClient;
  /** CONNACKs the phone got (it reconnects by itself). */
  phoneConnects = 0;
  booted = false;
  /** Pulses the board gave the modem's control line (ESP8266 CH_PD, SIM800 PWRKEY). */
  resetPulses = 0;
  private ownBroker: boolean;
  private closed = false;

  constructor(
    readonly board: BoardDef,
    readonly modem: ModemKind,
    readonly broker: RunningBroker,
    ownBroker: boolean,
    readonly config: DeviceConfig,
    readonly firmware: string,
    private readonly opts: RigOptions,
  ) {
    this.ownBroker = ownBroker;
    const hostMap = (host: string, port: number) =>
      host === BROKER_HOST && port === BROKER_PORT
        ? { host: "127.0.0.1", port: broker.port }
        : host === BROKER_HOST && port === BROKER_TLS_PORT && broker.tlsPort
          ? { host: "127.0.0.1", port: broker.tlsPort }
          : { host: "127.0.0.1", port: 9 };
    const simOpts = { seed: 7, transcript: false, hostMap, ...(opts.sim ?? {}) };
    this.sim = modemEntry(modem).simulator(modemCredentials[modemEntry(modem).configKey], simOpts) as Esp8266Sim | Sim800Sim | Sim7600Sim;
    this.vb = new VirtualBoard({
      board,
      clock: "fake",
      storage: { "led.json": JSON.stringify(config) },
      echo: opts.echo || process.env.E2E_ECHO === "1",
    });
    this.uart = this.vb.uart(board.uart);
    this.uart.onWrite((bytes) => {
      this.wire.push({ dir: "board>", bytes, t: this.vb.now() });
      if (this.wire.length > 20000) this.wire.splice(0, 5000);
      this.sim.receive(bytes);
    });
    this.sim.on("tx", (chunk: string) => {
      this.wire.push({ dir: "modem>", bytes: chunk, t: this.vb.now() });
      this.uart.inject(chunk);
    });
    // The module's control line (the registry's): the ESP8266 restarts when the board
    // raises CH_PD (the end of its reset pulse); the SIM800 (re)boots at the end of a PWRKEY pulse.
    const controlPin = controlPinOf(board, modem);
    this.vb.on("pin", (name: string, level: number) => {
      if (controlPin && name === controlPin && level === 1) {
        this.resetPulses++;
        modemEntry(modem).onControlPulse(this.sim);
      }
    });
  }

  /** The simulator as its dialect (throws for the other modem). */
  get esp(): Esp8266Sim {
    if (this.modem !== "esp8266") throw new Error(`${this.name}: not an ESP8266 rig`);
    return this.sim as Esp8266Sim;
  }
  get sim800(): Sim800Sim {
    if (this.modem !== "sim800") throw new Error(`${this.name}: not a SIM800 rig`);
    return this.sim as Sim800Sim;
  }
  get sim7600(): Sim7600Sim {
    if (this.modem !== "sim7600") throw new Error(`${this.name}: not a SIM7600 rig`);
    return this.sim as Sim7600Sim;
  }

  /** The LED pin: the configured one, else the board's. */
  get ledPin(): string {
    return this.config.ledPin || this.board.led;
  }
  get activeLow(): boolean {
    return this.config.ledActiveLow ?? !!this.board.ledActiveLow;
  }
  /** The pin level that means lit / dark. */
  level(lit: boolean): number {
    return lit !== this.activeLow ? 1 : 0;
  }
  /** The LED as the pin shows it (undefined: pin never driven). */
  lit(): boolean | undefined {
    const l = this.vb.pin(this.ledPin);
    return l === undefined ? undefined : (l === 1) !== this.activeLow;
  }
  /** Topic under the configured prefix/topic. */
  topic(sub = ""): string {
    const base = (this.config.prefix ? this.config.prefix + "/" : "") + (this.config.topic || "led");
    return sub ? base + "/" + sub : base;
  }

  /** Connects the phone, subscribed at QoS 1 to <topic> (it sees its own commands) and <topic>/#. */
  async connectPhone(): Promise<void> {
    const auth = this.opts.phoneAuth;
    const phone = mqtt.connect(`mqtt://127.0.0.1:${this.broker.port}`, {
      clientId: `phone-${this.board.id}-${this.modem}-${Math.random().toString(16).slice(2, 8)}`,
      reconnectPeriod: 200,
      connectTimeout: 5000,
      ...(auth ?? {}),
    });
    this.phone = phone;
    phone.on("connect", () => this.phoneConnects++);
    phone.on("message", (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString("latin1"), retain: !!packet.retain, at: this.vb.now() });
    });
    phone.on("error", () => {}); // reconnects by itself; waits below are bounded
    await realWait(() => phone.connected, 5000, "the phone connects to the broker");
    await bounded(new Promise<void>((ok, ko) =>
      phone.subscribe([this.topic(), this.topic() + "/#"], { qos: 1 }, (e) => (e ? ko(e) : ok()))), 5000, "the phone to subscribe");
  }

  /**
   * Restarts the broker (every connection drops) and waits, in real time — the board's
   * clock stands still, so it cannot reconnect meanwhile — until the phone has
   * reconnected and subscribed again, so it misses none of the board's messages.
   */
  async restartBroker(): Promise<void> {
    const n = this.phoneConnects;
    await this.broker.restart();
    await realWait(() => this.phoneConnects > n && this.phone.connected, 8000, "the phone to reconnect to the broker");
    await bounded(new Promise<void>((ok, ko) =>
      this.phone.subscribe([this.topic(), this.topic() + "/#"], { qos: 1 }, (e) => (e ? ko(e) : ok()))), 5000, "the phone to subscribe again");
  }

  /** Runs the built script in the board (as from .bootcde, then E "init"). */
  boot(): void {
    if (this.booted) throw new Error("rig: already booted");
    this.booted = true;
    this.vb.run(this.firmware, ".bootcde");
  }

  /** Advances the board (fake clock) until pred holds; bounded in board and real time. */
  async waitFor(pred: () => boolean, what: string, o: WaitOptions = {}): Promise<void> {
    const t0 = this.vb.now(), r0 = performance.now();
    const ok = await this.vb.runUntil(pred, {
      timeoutMs: o.timeoutMs ?? 180_000,
      realTimeoutMs: o.realTimeoutMs ?? 20_000,
      quietMs: o.quietMs ?? (Number(process.env.E2E_QUIET_MS) || 600),
      throwOnTimeout: false,
    });
    if (!ok) {
      throw new Error(`${this.name}: timed out waiting for ${what} (${Math.round(this.vb.now() - t0)} ms board time, ` +
        `${Math.round(performance.now() - r0)} ms real)\n${this.diagnostics()}`);
    }
  }

  /** Lets the board run for ms of board time (bounded in real time too), whatever happens. */
  async idle(ms: number): Promise<void> {
    await this.vb.runUntil(() => false, { timeoutMs: ms, realTimeoutMs: 20_000, quietMs: Number(process.env.E2E_QUIET_MS) || 600, throwOnTimeout: false });
  }

  /** Index to pass as `after` to waitForMessage(): only messages from now on count. */
  mark(): number {
    return this.messages.length;
  }

  /**
   * Runs the board until the phone has a message on topic (and payload, if given) after
   * index `after`. Only LIVE messages count (retain flag 0: forwarded as they were
   * published), not retained copies a re-subscribing phone gets from the broker,
   * unless o.retained is true.
   */
  async waitForMessage(topic: string, payload?: string, after = 0, o: WaitOptions & { retained?: boolean } = {}): Promise<PhoneMessage> {
    const find = () => this.messages.slice(after)
      .find((m) => m.topic === topic && (payload === undefined || m.payload === payload) && (o.retained || !m.retain));
    await this.waitFor(() => !!find(), `the phone to get ${topic}${payload === undefined ? "" : " = " + JSON.stringify(payload)}`, o);
    return find()!;
  }

  /** Live (non-retained) messages on a topic after index `after`. */
  received(topic: string, after = 0): PhoneMessage[] {
    return this.messages.slice(after).filter((m) => m.topic === topic && !m.retain);
  }

  /** Waits (board running) until the board's session is up: led/status "online" seen after `after`, then led/state. */
  async waitOnline(after = 0, o: WaitOptions = {}): Promise<void> {
    await this.waitForMessage(this.topic("status"), "online", after, o);
    await this.waitForMessage(this.topic("state"), undefined, after, o);
  }

  /** The phone publishes a byte string (QoS 1 unless said) and waits for the broker's PUBACK (real time, bounded). */
  async publish(topic: string, payload: string, o: { retain?: boolean; qos?: 0 | 1 | 2 } = {}): Promise<void> {
    await realWait(() => this.phone.connected, 8000, "the phone to be connected");
    await bounded(new Promise<void>((ok, ko) =>
      this.phone.publish(topic, Buffer.from(payload, "latin1"), { qos: o.qos ?? 1, retain: !!o.retain }, (e) => (e ? ko(e) : ok()))), 5000, `phone publish ${topic}`);
  }

  /**
   * The phone sends a command to <topic> and the board is run until it has handled it:
   * a new <topic>/state (or, for a payload the app ignores, its "ignored" log line).
   * Returns the led/state payload (undefined for an ignored command).
   */
  async command(payload: string, o: WaitOptions = {}): Promise<string | undefined> {
    const after = this.mark();
    const logs = this.vb.console.length;
    await this.publish(this.topic(), payload);
    const ignored = () => this.vb.console.slice(logs).some((l) => l.startsWith("led: ignored"));
    await this.waitFor(() => this.received(this.topic("state"), after).length > 0 || ignored(), `the board to handle ${JSON.stringify(payload)}`, o);
    return this.received(this.topic("state"), after)[0]?.payload;
  }

  /** The phone toggles the LED; throws unless the pin flipped and led/state reported the new level. */
  async toggleObeyed(what: string): Promise<void> {
    const before = this.lit();
    const state = await this.command("toggle");
    const want = before ? "off" : "on";
    if (this.lit() !== !before || state !== want) {
      throw new Error(`${this.name}: toggle ${what}: LED ${before} → ${this.lit()}, led/state ${state} (want ${want})\n${this.diagnostics()}`);
    }
  }

  /** What a NEW subscriber to topic gets as the retained message (undefined: none). Real time; the board does not run. */
  async retained(topic: string, waitMs = 1500): Promise<string | undefined> {
    const c = mqtt.connect(`mqtt://127.0.0.1:${this.broker.port}`, {
      clientId: "peek-" + Math.random().toString(16).slice(2, 10), reconnectPeriod: 0, connectTimeout: 5000, ...(this.opts.phoneAuth ?? {}),
    });
    c.on("error", () => {});
    try {
      let got: string | undefined;
      c.on("message", (t, p, packet) => { if (t === topic && packet.retain) got = p.toString("latin1"); });
      await realWait(() => c.connected, 5000, "a fresh MQTT client to connect");
      await bounded(new Promise<void>((ok, ko) => c.subscribe(topic, { qos: 1 }, (e) => (e ? ko(e) : ok()))), 5000, "subscribe " + topic);
      await realWait(() => got !== undefined, waitMs, "", false);
      return got;
    } finally {
      c.end(true);
    }
  }

  /** Board writes (AT commands and data) after index `from` of rig.wire. */
  boardBytes(from = 0): string {
    return this.wire.slice(from).filter((e) => e.dir === "board>").map((e) => e.bytes).join("");
  }

  /** The connections the board opened: its modem's open commands (the registry's openCommands) sent. */
  opens(): number {
    return modemEntry(this.modem).openCommands.reduce((n, c) => n + this.commands(c).length, 0);
  }

  /** Board times (ms) of the open commands the board wrote (from rig.wire, which keeps the latest 15,000 to 20,000 writes). */
  openTimes(): number[] {
    const opens = modemEntry(this.modem).openCommands;
    return this.wire.filter((e) => e.dir === "board>" && opens.some((c) => e.bytes.startsWith(c))).map((e) => e.t);
  }

  /** AT commands the board sent (all, or matching a prefix). */
  commands(prefix = ""): string[] {
    return (this.sim as { commands: string[] }).commands.filter((c) => c.startsWith(prefix));
  }

  /** Every secret that appeared in the board's console (should be []). */
  leakedSecrets(): string[] {
    const text = this.vb.console.join("\n");
    const secrets = [SECRETS.wifiPassword, SECRETS.wifiPassword.replace(/[,"\\]/g, (c) => "\\" + c), SECRETS.apnPassword, SECRETS.brokerPassword];
    return secrets.filter((s) => text.includes(s));
  }

  /**
   * What must hold at the end of every run: no uncaught error on the board, no secret
   * in its console, no protocol violation seen by the modem simulator. Returns the
   * problems (empty when healthy), each with context.
   */
  problems(): string[] {
    const out: string[] = [];
    if (this.vb.uncaught) out.push(`${this.vb.uncaught} uncaught error(s): ${this.vb.console.filter((l) => l.startsWith("Uncaught")).join(" | ")}`);
    const leaked = this.leakedSecrets();
    if (leaked.length) out.push(`secret(s) printed on the console: ${leaked.map((s) => JSON.stringify(s)).join(", ")}`);
    if (this.sim.violations.length) out.push(`modem simulator saw violations: ${this.sim.violations.join(" | ")}`);
    return out;
  }

  get name(): string {
    return `${this.board.id}-${this.modem}`;
  }

  /** The board's last console lines and the last UART traffic (14 chunks, env E2E_WIRE_TAIL for more), for failure messages. */
  diagnostics(): string {
    const n = Number(process.env.E2E_WIRE_TAIL) || 14;
    const tail = this.wire.slice(-n).map((e) => `  ${String(Math.round(e.t)).padStart(8)} ${e.dir} ${JSON.stringify(e.bytes).slice(0, 120)}`);
    return `board console (last 15):\n  ${this.vb.console.slice(-15).join("\n  ")}\nuart (last ${n}):\n${tail.join("\n")}\n` +
      `phone: ${this.messages.slice(-8).map((m) => `${m.topic}=${m.payload}${m.retain ? "(r)" : ""}`).join(", ")}`;
  }

  /** Stops the board, the simulator, the phone and (if started here) the broker. Bounded; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.vb.dispose();
    this.sim.close();
    if (this.phone) await bounded(new Promise<void>((ok) => this.phone.end(true, {}, () => ok())), 2000, "", false);
    if (this.ownBroker) await this.broker.stop();
  }
}

/** Builds a rig; boots the board and waits for it to be online unless opts.boot === false. */
export async function startRig(opts: RigOptions): Promise<Rig> {
  const board = await loadBoard(opts.board);
  if (!board.modems.includes(opts.modem)) throw new Error(`board ${board.id} has no ${opts.modem} build`);
  const firmware = readFirmware(`${board.id}-${opts.modem}`);
  let broker: RunningBroker;
  let own = true;
  if (opts.broker && typeof opts.broker === "object") {
    broker = opts.broker;
    own = false;
  } else if (opts.broker === "mosquitto") {
    broker = await startMosquitto(opts.mosquitto);
  } else {
    broker = await startAedes({ aedes: opts.aedes });
  }
  const c = opts.config ?? {};
  const modemKey = modemEntry(opts.modem).configKey;
  const config: DeviceConfig = {
    [modemKey]: modemCredentials[modemKey],
    keepAlive: 60,
    clientId: `led-e2e-${board.id}-${opts.modem}`,
    ...c,
    broker: { host: BROKER_HOST, port: BROKER_PORT, ...(c.broker ?? {}) },
  };
  const rig = new Rig(board, opts.modem, broker, own, config, firmware, opts);
  try {
    if (opts.phone !== false) await rig.connectPhone();
    if (opts.boot !== false) {
      rig.boot();
      await rig.waitOnline();
    }
  } catch (e) {
    await rig.close();
    throw e;
  }
  return rig;
}

/** Polls cond on the real clock every 5 ms; throws `what` after ms (or resolves false when throwOnTimeout is false). */
export async function realWait(cond: () => boolean, ms: number, what: string, throwOnTimeout = true): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      if (throwOnTimeout) throw new Error("timed out waiting for " + what);
      return false;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** Awaits p at most ms; throws `what` on timeout (or just returns when throwOnTimeout is false). */
export async function bounded<T>(p: Promise<T>, ms: number, what: string, throwOnTimeout = true): Promise<T | undefined> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<"__timeout">((ok) => (t = setTimeout(() => ok("__timeout"), ms)));
  try {
    const r = await Promise.race([p, timeout]);
    if (r === "__timeout") {
      if (throwOnTimeout) throw new Error("timed out: " + what);
      return undefined;
    }
    return r as T;
  } finally {
    clearTimeout(t);
  }
}

/** Index of the PINGREQs the board sent (AT+CIPSEND=2, or =0,2 on link 0, then C0 00), with their board times. */
export function pingTimes(wire: UartEntry[]): number[] {
  const out: number[] = [];
  let armed = false;
  for (const e of wire) {
    if (e.dir !== "board>") continue;
    if (/AT\+CIPSEND=2\r|AT\+CIPSEND=0,2\r/.test(e.bytes)) armed = true;
    else if (armed && e.bytes.includes("\xc0\x00")) {
      out.push(e.t);
      armed = false;
    } else if (armed && /^AT/.test(e.bytes)) armed = false;
  }
  return out;
}
