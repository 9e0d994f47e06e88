/**
 * A real Espruino interpreter (its Linux build, path in ESPRUINO_BIN) standing in
 * for a board: one built script is written to the interpreter's Storage as
 * `.bootcde` with `led.json` beside it, exactly as `npm run flash` installs it,
 * and the interpreter is started with no file, so the code runs from Storage as
 * on a board. Its modem UART (Serial1) is a pseudo-terminal made by socat, whose
 * other end is the project's modem simulator; the simulator's sockets reach a
 * broker on loopback. The console is the process's stdin/stdout.
 *
 *   const rb = await RealBoard.start({ bin, modem: "esp8266", script, brokerPort });
 *   await rb.waitForLine(/connected/, 10_000);
 *   await rb.blocks();          // process.memory().usage after a garbage collection
 *   rb.cpuMs();                 // CPU time the interpreter process has used so far
 *   await rb.stop();
 *
 * The interpreter is built locally from the public espruino/Espruino source and is
 * never part of this repository; everything here skips when ESPRUINO_BIN is unset.
 *
 * `speed` > 1 runs the interpreter under libfaketime (Debian's `faketime`): its
 * clock, and so its timers, run that many times faster than real time. The modem
 * simulator and the broker keep real time, so on the board's clock their latency
 * counts `speed` times over: keep-alive and time-outs must leave room for that. It is
 * for memory over many keep-alive cycles and bounds in board time; the busy loop it makes
 * of the interpreter's idle sleep makes CPU figures meaningless under it.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { sleep, until } from "./wait";
import { createModemSim, type ModemSimCore } from "../../scripts/simulators/modem-sim/index";
import type { ModemKind } from "../../src/board/board";
import type { DeviceConfig } from "../../src/app/config";

/** (the one waiting helper, re-exported for the real-interpreter bench and tier) */
export { sleep, until };

export const ESPRUINO_BIN = process.env.ESPRUINO_BIN || "";
/** Why real-interpreter tests and benches do not run here, or "" when they can. */
export function realBoardUnavailable(): string {
  if (!ESPRUINO_BIN) return "ESPRUINO_BIN is not set: point it at a Linux build of the Espruino interpreter (see README, 'The real interpreter')";
  if (!existsSync(ESPRUINO_BIN)) return `ESPRUINO_BIN=${ESPRUINO_BIN} does not exist`;
  if (spawnSync("socat", ["-V"], { stdio: "ignore" }).status !== 0) return "socat is not installed (apt-get install socat)";
  return "";
}
export const FAKETIME_LIB = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"].find((f) =>
  existsSync(f),
);
/** The 32-bit libfaketime (Debian's faketime:i386), for a 32-bit interpreter build. */
export const FAKETIME_LIB32 = ["/usr/lib/i386-linux-gnu/faketime/libfaketimeMT.so.1"].find((f) => existsSync(f));
/**
 * The libfaketime that `bin` can preload: the loader ignores a library of the other
 * word size (with a warning on stderr), which would leave the clock unchanged.
 */
export function faketimeLibFor(bin: string): string | undefined {
  const head = Buffer.alloc(5);
  const fd = openSync(bin, "r");
  try {
    readSync(fd, head, 0, 5, 0);
  } finally {
    closeSync(fd);
  }
  // ELF header byte 4 (EI_CLASS): 1 = 32-bit, 2 = 64-bit
  return head[4] === 1 ? FAKETIME_LIB32 : FAKETIME_LIB;
}

/** Credentials the simulated network expects; none may ever reach the console. */
export const REAL_SECRETS = { ssid: "real-lab", wifiPassword: 'Wifi-R3al,"x', apn: "internet.real", apnPassword: "Apn-R3al-5" };
const BROKER_HOST = "broker.example";

export interface RealBoardOptions {
  bin?: string;
  /**
   * The interpreter that writes Storage before the board starts (default: bin). A build
   * with fewer blocks than the script has bytes cannot hold the script in RAM to write
   * it; another Linux build of the same flash layout can.
   */
  storageBin?: string;
  modem: ModemKind;
  /** The built script's text (firmware/<board>-<modem>.js). */
  script: string;
  /** The broker on 127.0.0.1 that "broker.example":1883 is mapped to. */
  brokerPort: number;
  /** Merged over the default led.json (keepAlive 60, clientId "real-board"). */
  config?: Partial<DeviceConfig>;
  /** Storage files besides .bootcde and led.json (e.g. a ".boot0" prelude). */
  files?: Record<string, string>;
  /** Modem simulator options (faults, delays). */
  sim?: Record<string, unknown>;
  /** Clock speed-up through libfaketime (default 1: real time). */
  speed?: number;
  /** Copy every console line to stdout. */
  echo?: boolean;
  /** Start with an empty Storage (no .bootcde, no led.json; `files` still written): the baseline of a measurement. */
  empty?: boolean;
  /** Write no led.json (the app then only says "no led.json" and waits). */
  noConfig?: boolean;
  /**
   * Run the script from RAM (given to the interpreter as a file) instead of from Storage.
   * The Linux build fakes flash with a file and reads code kept there 16 bytes at a time,
   * each read an fopen/fread/fclose, which makes every byte of function text the
   * interpreter walks about 4 times dearer than on a board, where Storage is memory-mapped
   * flash. Code in RAM is lexed as cheaply as a board lexes its flash: the CPU figures
   * are a board's; the block figures are not (the text itself takes RAM).
   */
  codeInRam?: boolean;
}


/**
 * Characters per Storage.write in the setup script: a larger file goes in pieces
 * (write(name, piece, offset, size)), one statement each, so the interpreter holds one
 * piece at a time instead of the whole text twice (the literal and its string), which a
 * 2,756-block build cannot for a 16 KB program.
 */
const STORAGE_PIECE_CHARS = 1024;

/** JavaScript source that writes `files` to Storage, run once by the interpreter before the board starts. */
function storageScript(files: Record<string, string>): string {
  const lines: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    if (text.length <= STORAGE_PIECE_CHARS) {
      lines.push(`require("Storage").write(${JSON.stringify(name)}, ${JSON.stringify(text)});`);
      continue;
    }
    for (let at = 0; at < text.length; at += STORAGE_PIECE_CHARS)
      lines.push(`require("Storage").write(${JSON.stringify(name)}, ${JSON.stringify(text.slice(at, at + STORAGE_PIECE_CHARS))}, ${at}, ${text.length});`);
  }
  return lines.join("\n");
}

export class RealBoard {
  readonly lines: string[] = [];
  /** Milliseconds (real time) from the interpreter's start to each console line. */
  readonly lineTimes: number[] = [];
  readonly startedAt = Date.now();
  sim!: ModemSimCore;
  private proc!: ChildProcess;
  private socat!: ChildProcess;
  private uartServer!: net.Server;
  private uartSock: net.Socket | null = null;
  private partial = "";
  private waiters: (() => void)[] = [];
  private exited = false;

  private constructor(readonly dir: string, readonly opts: RealBoardOptions) {}

  static async start(opts: RealBoardOptions): Promise<RealBoard> {
    const bin = opts.bin || ESPRUINO_BIN;
    const dir = mkdtempSync(path.join(os.tmpdir(), "real-board-"));
    const rb = new RealBoard(dir, opts);
    try {
      await rb.startUart();
      const config: DeviceConfig = {
        // like npm run flash: only this build's modem's credentials (the app merges them into the driver's options)
        ...(opts.modem === "esp8266"
          ? { wifi: { ssid: REAL_SECRETS.ssid, password: REAL_SECRETS.wifiPassword } }
          : { gprs: { apn: REAL_SECRETS.apn, user: "", password: REAL_SECRETS.apnPassword } }),
        broker: { host: BROKER_HOST, port: 1883 },
        clientId: "real-board",
        keepAlive: 60,
        ledPin: "D17",
        uartPath: path.join(dir, "modem"),
        ...opts.config,
      } as DeviceConfig;
      const files: Record<string, string> = {
        ...(opts.empty || opts.codeInRam ? {} : { ".bootcde": opts.script }),
        ...(opts.empty || opts.noConfig ? {} : { "led.json": JSON.stringify(config) }),
        ...opts.files,
      };
      if (Object.keys(files).length) {
        writeFileSync(path.join(dir, "setup.js"), storageScript(files));
        const r = spawnSync(opts.storageBin || bin, ["setup.js"], { cwd: dir, input: "", timeout: 20_000, killSignal: "SIGKILL", encoding: "latin1" });
        if (r.status !== 0) throw new Error(`writing Storage failed (exit ${r.status}): ${r.stdout.slice(-300)}`);
      }
      const env: NodeJS.ProcessEnv = { ...process.env };
      if ((opts.speed ?? 1) !== 1) {
        const lib = faketimeLibFor(bin);
        if (!lib) throw new Error("speed needs libfaketime for this interpreter's word size (apt-get install faketime, and libfaketime:i386 for a 32-bit build)");
        env.LD_PRELOAD = lib;
        env.FAKETIME = `+0 x${opts.speed}`;
        env.FAKETIME_NO_CACHE = "1";
      }
      if (opts.codeInRam) writeFileSync(path.join(dir, "firmware.js"), opts.script, "latin1");
      rb.proc = spawn(bin, opts.codeInRam ? ["firmware.js"] : [], { cwd: dir, env, stdio: ["pipe", "pipe", "pipe"] });
      rb.proc.stdout!.setEncoding("latin1");
      rb.proc.stdout!.on("data", (d: string) => rb.console(d));
      rb.proc.stderr!.setEncoding("latin1");
      rb.proc.stderr!.on("data", (d: string) => rb.console(d));
      rb.proc.on("exit", () => {
        rb.exited = true;
        rb.wake();
      });
      return rb;
    } catch (e) {
      await rb.stop();
      throw e;
    }
  }

  /** The simulator on a loopback TCP port, and socat turning that port into the pty the board opens. */
  private async startUart(): Promise<void> {
    const o = this.opts;
    const hostMap = (host: string, port: number) =>
      host === BROKER_HOST && port === 1883 ? { host: "127.0.0.1", port: o.brokerPort } : { host: "127.0.0.1", port: 9 };
    const simOpts = { seed: 11, hostMap, ...(o.sim ?? {}) };
    this.sim =
      o.modem === "esp8266"
        ? createModemSim("esp8266", { ssid: REAL_SECRETS.ssid, password: REAL_SECRETS.wifiPassword, ...simOpts })
        : createModemSim(o.modem, { apn: REAL_SECRETS.apn, ...simOpts });
    this.sim.on("tx", (chunk: string) => {
      if (process.env.UART_ECHO) console.log("uart<", JSON.stringify(chunk));
      this.uartSock?.write(Buffer.from(chunk, "latin1"));
    });
    this.uartServer = net.createServer((sock) => {
      this.uartSock = sock;
      sock.on("data", (d: Buffer) => { if (process.env.UART_ECHO) console.log("uart>", JSON.stringify(d.toString("latin1"))); this.sim.receive(d.toString("latin1")); });
      sock.on("error", () => {});
      sock.on("close", () => {
        if (this.uartSock === sock) this.uartSock = null;
      });
    });
    await new Promise<void>((ok, ko) => this.uartServer.once("error", ko).listen(0, "127.0.0.1", () => ok()));
    const port = (this.uartServer.address() as net.AddressInfo).port;
    const link = path.join(this.dir, "modem");
    this.socat = spawn("socat", [`pty,link=${link},raw,echo=0`, `tcp:127.0.0.1:${port}`], { stdio: "ignore" });
    const deadline = Date.now() + 5000;
    while (!existsSync(link) || !this.uartSock) {
      if (Date.now() > deadline) throw new Error("socat did not make the modem pty");
      await sleep(10);
    }
  }

  private console(d: string): void {
    const text = this.partial + d;
    const parts = text.split(/\r?\n/);
    this.partial = parts.pop()!;
    for (const raw of parts) {
      // the REPL's prompt and cursor control codes are not program output
      const line = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/^>+/, "").trim();
      if (!line) continue;
      this.lines.push(line);
      this.lineTimes.push(Date.now() - this.startedAt);
      if (this.lines.length > 50_000) {
        this.lines.splice(0, 10_000);
        this.lineTimes.splice(0, 10_000);
      }
      if (this.opts.echo) console.log("  board| " + line);
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private changed(ms: number): Promise<void> {
    return new Promise((ok) => {
      const t = setTimeout(ok, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        ok();
      });
    });
  }

  get alive(): boolean {
    return !this.exited;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Waits for a console line matching re (from line index `from` on); returns its index. */
  async waitForLine(re: RegExp, ms: number, from = 0): Promise<number> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.lines.findIndex((l, j) => j >= from && re.test(l));
      if (i >= 0) return i;
      if (this.exited) throw new Error(`interpreter exited while waiting for ${re}; last lines:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no console line ${re} within ${ms} ms; last lines:\n${this.tail()}`);
      await this.changed(Math.min(left, 200));
    }
  }

  tail(n = 15): string {
    return this.lines.slice(-n).join("\n");
  }

  /** Runs `expr` at the REPL (echo off for the line) and returns what it prints. */
  async eval(expr: string, ms = 5000): Promise<string> {
    const tag = "@" + Math.random().toString(36).slice(2, 8);
    const from = this.lines.length;
    // DLE (0x10) at the start of a line: Espruino does not echo that line
    this.proc.stdin!.write(`\x10print(${JSON.stringify(tag)}+(${expr}))\n`);
    const i = await this.waitForLine(new RegExp("^" + tag), ms, from);
    return this.lines[i].slice(tag.length);
  }

  /** Blocks in use after a garbage collection (process.memory() collects first). */
  async blocks(): Promise<number> {
    return Number(await this.eval("process.memory().usage"));
  }

  /**
   * Blocks at rest: the lowest of `samples` readings `gapMs` apart. A keep-alive cycle or a
   * send in flight holds its AT command, callbacks and packet for part of the time (the
   * SIM800's about 55 blocks: one reading in a cycle may catch them, the next not); a leak
   * raises the lowest reading too.
   */
  async blocksAtRest(samples = 5, gapMs = 170): Promise<number> {
    let lowest = Infinity;
    for (let i = 0; i < samples; i++) {
      if (i) await sleep(gapMs);
      lowest = Math.min(lowest, await this.blocks());
    }
    return lowest;
  }

  /** CPU time (user + system) the interpreter has used, in ms, from /proc/<pid>/schedstat (ns resolution). */
  cpuMs(): number {
    const s = readFileSync(`/proc/${this.pid}/schedstat`, "utf8");
    return Number(s.split(" ")[0]) / 1e6;
  }

  async stop(): Promise<void> {
    if (this.proc && !this.exited) {
      this.proc.kill("SIGKILL");
      const deadline = Date.now() + 3000;
      while (!this.exited && Date.now() < deadline) await sleep(10);
    }
    this.socat?.kill("SIGKILL");
    this.uartSock?.destroy();
    await new Promise<void>((ok) => (this.uartServer ? this.uartServer.close(() => ok()) : ok()));
    this.sim?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}


/** The phone: MQTT.js subscribed to the app's topics, counting state reports. */
export class Phone {
  states: string[] = [];
  status = "";
  private constructor(readonly client: MqttClient) {}
  static async connect(port: number, topic = "led"): Promise<Phone> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 200, clientId: "phone-" + Math.random().toString(16).slice(2, 8) });
    const p = new Phone(client);
    client.on("message", (t, m) => {
      if (t === topic + "/state") p.states.push(m.toString());
      if (t === topic + "/status") p.status = m.toString();
    });
    await client.subscribeAsync(topic + "/#", { qos: 1 });
    return p;
  }
  /** Publishes one command and waits for the board's next state report; returns it. */
  async command(payload: string, topic = "led", ms = 10_000): Promise<string> {
    const n = this.states.length;
    await this.client.publishAsync(topic, payload, { qos: 1 });
    await until(() => this.states.length > n, ms, `a state report after "${payload}"`);
    return this.states[this.states.length - 1];
  }
  async end(): Promise<void> {
    await this.client.endAsync(true);
  }
}

