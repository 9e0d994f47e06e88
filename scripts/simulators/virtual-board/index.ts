/**
 * A virtual Espruino board for host tests: runs the EXACT bytes of a built
 * firmware script in a node:vm context that offers Espruino's globals and
 * nothing from Node (no require of npm modules, no process, no Buffer, no Map…).
 *
 *   const vb = new VirtualBoard({ board, clock: "fake", storage: { "led.json": JSON.stringify(cfg) } });
 *   const uart = vb.uart("Serial2");
 *   uart.onWrite((bytes) => sim.receive(bytes));       // board → modem simulator
 *   sim.on("tx", (chunk) => uart.inject(chunk));        // modem simulator → board
 *   vb.on("pin", (name, level) => …);  vb.pin("B2");   // pin levels
 *   vb.run(readFileSync("firmware/pico-esp8266.js", "utf8"));   // runs, then E "init"
 *   await vb.runUntil(() => vb.pin("B2") === 1, { timeoutMs: 60_000 });
 *   expect(vb.uncaught).toBe(0);
 *
 * Espruino behaviour mimicked on purpose:
 * - code runs, THEN E "init" fires, then onInit() (as at boot from .bootcde);
 *   vb.powerOn() runs Storage ".bootcde" like the board at power-on;
 * - save()/load()/reset() take effect when the interpreter is idle: "kill", then
 *   (load) a fresh interpreter running .bootcde or the named file and "init";
 * - timer ids are small integers reused like Espruino's (max id + 1); clearTimeout()
 *   with NO argument clears every timer, clearTimeout(undefined) and an id that is
 *   not (or no longer) a timer throw ("Unknown Timeout"), as on the board;
 * - UART data arrives asynchronously (the board's idle loop), never inside a write();
 * - an exception escaping a timer, event or top-level code is printed as
 *   "Uncaught …" and counted in vb.uncaught, and the board keeps running.
 * Not mimicked: memory limits, the parser's syntax gaps (run scripts/build/espruino-check.ts),
 * methods invisible through X.prototype, promise-rejection reporting.
 */
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import type { BoardDef } from "../../../src/board/board";

const RUNTIME = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "runtime.js"), "utf8");

export interface VirtualBoardOptions {
  /** The board whose pins (LED1, BTN1, modem control pins) and UARTs to offer. */
  board?: BoardDef;
  /** "fake": time moves only through advance()/runUntil(); "real": timers follow the wall clock. */
  clock?: "real" | "fake";
  /** getSerial()'s answer. */
  serial?: string;
  /** Storage files preloaded (byte strings), e.g. { "led.json": JSON.stringify(config) }. */
  storage?: Record<string, string>;
  /** LED1/LED2/BTN1… aliases; default: the board's known map, or LED1 = board.led. */
  aliases?: Record<string, string>;
  /** Copy every console line to the host's stdout. */
  echo?: boolean;
  /** process.version inside (default "2v29"). */
  version?: string;
  /** Storage capacity in bytes (getFree()); default 128 KB. */
  storageSize?: number;
}

export interface UartHandle {
  readonly name: string;
  /** Called with the bytes of every write the firmware makes (synchronously). Returns an unsubscribe function. */
  onWrite(cb: (bytes: string) => void): () => void;
  /** Bytes for the board: delivered as a "data" event when the board is next idle. */
  inject(bytes: string): void;
  /** Everything written so far (the last 1 MB). */
  readonly written: string;
  clearWritten(): void;
  /** The last setup(): baud and options (pins as names). */
  readonly baud: number | undefined;
  readonly options: Record<string, unknown> | undefined;
}

export interface RunUntilOptions {
  /** Fake clock: virtual ms per step (default 10). Real clock: polling period. */
  stepMs?: number;
  /** Fake clock: real ms slept per step, so real I/O keeps pace (default 1). */
  realMs?: number;
  /** Fake clock: after this long (real ms) without UART traffic, jump to the next timer (default 100). */
  quietMs?: number;
  /** Give up after this much board time (ms; default 60 000). */
  timeoutMs?: number;
  /** Give up after this much real time (ms; default 25 000). */
  realTimeoutMs?: number;
  /** Throw on timeout (default) or resolve false. */
  throwOnTimeout?: boolean;
}

/** LEDs and buttons of the boards in boards/ (espruino-notes.md, "Board facts"). */
const BOARD_ALIASES: Record<string, Record<string, string>> = {
  "original": { LED1: "A13", LED2: "A14", LED3: "A15", BTN1: "B12", BTN: "B12" },
  "pico": { LED1: "B2", LED2: "B12", BTN1: "C13", BTN: "C13" },
  "espruino-wifi": { LED1: "B2", LED2: "B12", BTN1: "C13", BTN: "C13" },
  "discovery-f4": { LED1: "D13", LED2: "D12", LED3: "D14", LED4: "D15", BTN1: "A0", BTN: "A0" },
  "nucleo-f401re": { LED1: "A5", BTN1: "C13", BTN: "C13" },
  "nucleo-f411re": { LED1: "A5", BTN1: "C13", BTN: "C13" },
  "linux": {},
};

interface Timer {
  id: number;
  due: number;
  seq: number;
  fn: (...a: unknown[]) => unknown;
  args: unknown[];
  interval?: number;
  /** digitalPulse steps: not visible to clearTimeout. */
  internal?: () => void;
}
interface Watch { id: number; fn: unknown; pin: string; edge: string; repeat: boolean; last: number }
interface Internals {
  rx(name: string, bytes: string): void;
  emitE(ev: string): void;
  onInit(): void;
  format(v: unknown): string;
  watchEvent(fn: unknown, state: number, time: number, lastTime: number, pin: string): void;
}

const SERIALS = ["Serial1", "Serial2", "Serial3", "Serial4", "Serial5", "Serial6", "USB"];
const PIN_MODES = new Set(["analog", "input", "input_pullup", "input_pulldown", "output", "opendrain", "opendrain_pullup",
  "af_output", "af_opendrain", "auto"]);
const MAX_LOG = 20000;
const MAX_WRITTEN = 1 << 20;

export class VirtualBoard extends EventEmitter {
  readonly board: BoardDef | undefined;
  readonly fake: boolean;
  /** Every console line (print, console.log, "Uncaught …"). */
  readonly console: string[] = [];
  /** Exceptions that escaped the firmware (timers, events, top-level code). */
  uncaught = 0;
  readonly errors: unknown[] = [];
  /** Storage: file name → byte string. The host may read and change it at any time. */
  readonly storage = new Map<string, string>();
  /** Bytes of code evaluated (the script text held in RAM, roughly). */
  codeBytes = 0;
  /** save() calls seen. */
  saves = 0;

  private opts: VirtualBoardOptions;
  private pinNames: string[];
  private aliases: Record<string, string>;
  private levels = new Map<string, number>();
  private modes = new Map<string, string>();
  private timers: Timer[] = [];
  private watches: Watch[] = [];
  private seq = 0;
  private nowMs = 0;
  private realStart = performance.now();
  private timeOffset = 0;
  private wake: NodeJS.Timeout | undefined;
  private events: Array<() => void> = [];
  private drainScheduled = false;
  private ctx: vm.Context | undefined;
  private internals: Internals | undefined;
  private uarts = new Map<string, { listeners: Set<(b: string) => void>; written: string; baud?: number; options?: Record<string, unknown>; rx: string }>();
  private activity = 0;
  private disposed = false;
  private generation = 0;

  constructor(opts: VirtualBoardOptions = {}) {
    super();
    this.opts = opts;
    this.board = opts.board;
    this.fake = (opts.clock ?? "fake") === "fake";
    for (const [k, v] of Object.entries(opts.storage ?? {})) this.storage.set(k, v);
    const names: string[] = [];
    for (const port of "ABCDEFGH") for (let i = 0; i < 16; i++) names.push(port + i);
    const b = opts.board;
    this.aliases = { ...(opts.aliases ?? (b && BOARD_ALIASES[b.id]) ?? (b ? { LED1: b.led } : {})) };
    for (const n of [b?.led, b?.rx, b?.tx, b?.enable, b?.reset, b?.boot, b?.pwrkey, b?.simReset, ...Object.values(this.aliases)]) {
      if (n && !names.includes(n)) names.push(n);
    }
    this.pinNames = names;
  }

  // ---------------------------------------------------------------- running code

  /** Evaluates firmware code (as Espruino does from .bootcde), then fires E "init" and onInit(). */
  run(code: string, filename = ".bootcde"): void {
    if (!this.ctx) this.boot();
    this.evaluate(code, filename);
    this.init();
  }

  /**
   * Evaluates code in the running interpreter, like a line typed at the REPL (no "init"),
   * and returns its value; an exception is reported as "Uncaught" and undefined returned.
   */
  eval(code: string): unknown {
    if (!this.ctx) this.boot();
    return this.evaluate(code, "REPL");
  }

  /** Power-on: a fresh interpreter runs Storage ".bootcde" (as written by npm run flash), then "init". */
  powerOn(): void {
    this.boot();
    const code = this.storage.get(".bootcde");
    if (code !== undefined) this.evaluate(code, ".bootcde");
    this.init();
  }

  /** Stops every timer and forgets the interpreter (the host keeps Storage, console and counters). */
  dispose(): void {
    this.disposed = true;
    this.ctx = undefined;
    this.internals = undefined;
    this.timers = [];
    this.watches = [];
    this.events = [];
    if (this.wake) clearTimeout(this.wake);
    this.wake = undefined;
  }

  /** Board time in ms (what getTime() * 1000 reads, before any setTime()). */
  now(): number {
    return this.fake ? this.nowMs : performance.now() - this.realStart;
  }

  /** Fake clock: moves board time forward by `ms`, running due timers in order and delivering pending I/O. */
  advance(ms: number): void {
    if (!this.fake) throw new Error("advance() needs clock: \"fake\"");
    const target = this.nowMs + Math.max(0, ms);
    this.drain();
    for (;;) {
      const t = this.nextTimer();
      if (!t || t.due > target) break;
      this.nowMs = Math.max(this.nowMs, t.due);
      this.fire(t);
      this.drain();
    }
    this.nowMs = target;
    this.drain();
  }

  /**
   * Waits until pred() holds. Fake clock: alternates advancing board time (stepMs) with
   * sleeping realMs of real time, so a simulator and broker on the real clock keep up; once
   * nothing has crossed a UART for quietMs (real), it jumps from timer to timer until traffic
   * resumes (so a 60 s keep-alive costs little real time).
   * Real clock: polls every stepMs. Bounded by timeoutMs (board time) and realTimeoutMs.
   */
  async runUntil(pred: () => boolean, o: RunUntilOptions = {}): Promise<boolean> {
    const stepMs = o.stepMs ?? 10, realMs = o.realMs ?? 1, quietMs = o.quietMs ?? 100;
    const timeoutMs = o.timeoutMs ?? 60_000, realTimeoutMs = o.realTimeoutMs ?? 25_000;
    const start = this.now(), realStart = performance.now();
    let quietSince = performance.now(), lastActivity = this.activity;
    const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
    for (;;) {
      if (pred()) return true;
      const realNow = performance.now();
      if (this.now() - start >= timeoutMs || realNow - realStart >= realTimeoutMs || this.disposed) {
        if (o.throwOnTimeout === false) return false;
        throw new Error(`runUntil: condition not met after ${Math.round(this.now() - start)} ms board time ` +
          `(${Math.round(realNow - realStart)} ms real); last console lines:\n  ${this.console.slice(-8).join("\n  ")}`);
      }
      if (!this.fake) {
        await sleep(stepMs);
        continue;
      }
      await sleep(realMs);
      if (this.activity !== lastActivity) {
        lastActivity = this.activity;
        quietSince = performance.now();
        this.advance(stepMs);
      } else if (performance.now() - quietSince >= quietMs) {
        // Quiet: jump from timer to timer for as long as nothing crosses a UART.
        const next = this.nextTimer();
        const limit = start + timeoutMs - this.nowMs;
        this.advance(next ? Math.min(Math.max(next.due - this.nowMs, 0), limit) : Math.min(stepMs, limit));
      } else {
        this.advance(stepMs);
      }
    }
  }

  // ---------------------------------------------------------------- host views

  /** The host end of a UART ("Serial2"). */
  uart(name: string): UartHandle {
    const u = this.uartState(name);
    const vb = this;
    return {
      name,
      onWrite(cb) {
        u.listeners.add(cb);
        return () => { u.listeners.delete(cb); };
      },
      inject(bytes) { vb.inject(name, bytes); },
      get written() { return u.written; },
      clearWritten() { u.written = ""; },
      get baud() { return u.baud; },
      get options() { return u.options; },
    };
  }

  /** A pin's level (0/1; an alias such as LED1 resolves to its pin), undefined if never driven or set. */
  pin(name: string): number | undefined {
    return this.levels.get(this.aliases[name] ?? name);
  }

  /** The mode last set with pinMode(), if any. */
  pinMode(name: string): string | undefined {
    return this.modes.get(this.aliases[name] ?? name);
  }

  /** Drives an input from outside (a button): digitalRead() sees it and setWatch() callbacks fire. */
  setPin(name: string, level: number): void {
    this.setLevel(this.aliases[name] ?? name, level ? 1 : 0, true);
  }

  /** Called with every console line; returns an unsubscribe function. */
  onLog(cb: (line: string) => void): () => void {
    this.on("log", cb);
    return () => { this.off("log", cb); };
  }

  /** Number of pending timers and intervals (not counting digitalPulse steps). */
  get timerCount(): number {
    return this.timers.filter((t) => !t.internal).length;
  }

  // ---------------------------------------------------------------- interpreter lifecycle

  private boot(): void {
    this.disposed = false;
    this.generation++;
    this.timers = [];
    this.watches = [];
    this.events = [];
    for (const u of this.uarts.values()) u.rx = "";
    const ctx = vm.createContext({}, { name: "espruino", codeGeneration: { strings: true, wasm: false } });
    const factory = vm.runInContext(RUNTIME, ctx, { filename: "espruino-runtime.js" });
    const b = this.board;
    this.internals = factory(this.bridge(), {
      pins: this.pinNames,
      aliases: this.aliases,
      serials: SERIALS,
      version: this.opts.version ?? "2v29",
      board: b?.id ?? "VIRTUAL",
      serial: this.serialText(),
    }) as Internals;
    this.ctx = ctx;
  }

  private evaluate(code: string, filename: string): unknown {
    this.codeBytes += Buffer.byteLength(code, "latin1");
    try {
      return new vm.Script(code, { filename }).runInContext(this.ctx!);
    } catch (e) {
      this.reportUncaught(e);
      return undefined;
    }
  }

  private init(): void {
    this.guard(() => this.internals!.emitE("init"));
    this.guard(() => this.internals!.onInit());
  }

  /** save()/load()/reset() from the firmware: done when the current execution returns, like Espruino's idle loop. */
  private control(what: string, arg: string): void {
    setImmediate(() => {
      if (this.disposed) return;
      this.guard(() => this.internals?.emitE("kill"));
      if (what === "save") {
        this.saves++;
        this.guard(() => this.internals?.emitE("init"));
        this.guard(() => this.internals?.onInit());
      } else if (what === "load") {
        this.boot();
        const file = arg || ".bootcde";
        const code = this.storage.get(file);
        if (code !== undefined) this.evaluate(code, file);
        this.init();
      } else if (what === "reset") {
        if (arg) this.storage.clear();
        this.boot();
        const code = this.storage.get(".bootrst");
        if (code !== undefined) this.evaluate(code, ".bootrst");
      }
    });
  }

  // ---------------------------------------------------------------- the bridge (host side of runtime.js)

  private bridge() {
    const gen = this.generation;
    const live = () => gen === this.generation && !this.disposed;
    return {
      log: (line: string) => { if (live()) this.log(line); },
      now: () => this.now() + this.timeOffset,
      setTime: (t: number) => { this.timeOffset = t * 1000 - this.now(); },
      serial: () => this.serialText(),
      memory: () => {
        const total = this.board?.vars ?? 5000;
        const usage = Math.min(total, Math.ceil(this.codeBytes / 12));
        return JSON.stringify({ free: total - usage, usage, total, history: 0, gc: 0, gctime: 0, blocksize: 13 });
      },
      pinWrite: (name: string, level: number) => { if (live()) this.setLevel(name, level ? 1 : 0, false); },
      pinRead: (name: string) => this.levels.get(name) ?? 0,
      pinMode: (name: string, mode: string) => {
        if (!PIN_MODES.has(mode)) return `Unknown pin mode "${mode}"`;
        this.modes.set(name, mode);
        return "";
      },
      getPinMode: (name: string) => this.modes.get(name) ?? "input",
      pulse: (name: string, value: number, timesJson: string) => {
        const times: number[] = JSON.parse(timesJson);
        if (!times.every((t) => typeof t === "number" && t >= 0)) return "digitalPulse: times must be positive numbers";
        let level = value, at = this.now();
        this.setLevel(name, level, false);
        for (const t of times) {
          at += t;
          level = level ? 0 : 1;
          const l = level;
          this.addTimer({ id: 0, due: at, seq: this.seq++, fn: () => undefined, args: [], internal: () => this.setLevel(name, l, false) });
        }
        return "";
      },
      watchAdd: (fn: unknown, pin: string, edge: string, repeat: boolean) => {
        const id = this.watches.reduce((m, w) => Math.max(m, w.id), 0) + 1;
        this.watches.push({ id, fn, pin, edge, repeat, last: this.now() });
        return id;
      },
      watchClear: (argc: number, id: unknown) => {
        if (argc === 0) { this.watches = []; return ""; }
        const i = this.watches.findIndex((w) => w.id === id);
        if (i < 0) return "Unknown Watch";
        this.watches.splice(i, 1);
        return "";
      },
      timerAdd: (fn: (...a: unknown[]) => unknown, ms: number, interval: boolean, args: unknown[]) => {
        // Espruino's timer ids: one more than the largest id in use (so ids are reused).
        const id = this.timers.reduce((m, t) => Math.max(m, t.id), 0) + 1;
        const delay = Math.max(0, ms);
        this.addTimer({ id, due: this.now() + delay, seq: this.seq++, fn, args, interval: interval ? Math.max(delay, 0.1) : undefined });
        return id;
      },
      timerClear: (argc: number, id: unknown, kind: string) => {
        if (argc === 0) {
          this.timers = this.timers.filter((t) => t.internal);
          this.rescheduleWake();
          return "";
        }
        if (id === undefined) return `clear${kind}(undefined) not allowed. Use clear${kind}() instead.`;
        const i = this.timers.findIndex((t) => !t.internal && t.id === id);
        if (i < 0) return `Unknown ${kind}`;
        this.timers.splice(i, 1);
        this.rescheduleWake();
        return "";
      },
      timerChange: (id: unknown, ms: number) => {
        const t = this.timers.find((x) => !x.internal && x.id === id);
        if (!t) return "Unknown Interval";
        t.interval = Math.max(ms, 0.1);
        t.due = this.now() + ms;
        this.rescheduleWake();
        return "";
      },
      uartSetup: (name: string, baud: number, optsJson: string) => {
        const u = this.uartState(name);
        u.baud = baud;
        u.options = JSON.parse(optsJson);
      },
      uartWrite: (name: string, bytes: string) => {
        if (!live() || !bytes.length) return;
        const u = this.uartState(name);
        this.activity++;
        u.written = (u.written + bytes).slice(-MAX_WRITTEN);
        for (const cb of [...u.listeners]) {
          try {
            cb(bytes);
          } catch (e) {
            // A fault of the host's listener, not of the firmware: surface it on the host.
            process.nextTick(() => { throw e; });
          }
        }
      },
      uartInject: (name: string, bytes: string) => this.inject(name, bytes),
      stRead: (name: string) => this.storage.get(name),
      stWrite: (name: string, data: string) => {
        const used = [...this.storage.entries()].reduce((n, [k, v]) => n + (k === name ? 0 : v.length), 0);
        if (used + data.length > (this.opts.storageSize ?? 131072)) return false;
        this.storage.set(name, data);
        return true;
      },
      stList: () => JSON.stringify([...this.storage.keys()]),
      stErase: (name: string) => { this.storage.delete(name); },
      stEraseAll: () => { this.storage.clear(); },
      stFree: () => (this.opts.storageSize ?? 131072) - [...this.storage.values()].reduce((n, v) => n + v.length, 0),
      stStats: () => JSON.stringify({ fileCount: this.storage.size, fileBytes: [...this.storage.values()].reduce((n, v) => n + v.length, 0) }),
      control: (what: string, arg: string) => this.control(what, arg),
    };
  }

  // ---------------------------------------------------------------- timers and events

  private addTimer(t: Timer): void {
    this.timers.push(t);
    this.rescheduleWake();
  }

  private nextTimer(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.timers) if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    return best;
  }

  private fire(t: Timer): void {
    if (t.internal) {
      this.timers.splice(this.timers.indexOf(t), 1);
      t.internal();
      return;
    }
    if (t.interval !== undefined) {
      t.due += t.interval;
      t.seq = this.seq++;
    } else {
      this.timers.splice(this.timers.indexOf(t), 1);
    }
    this.guard(() => t.fn.apply(undefined, t.args));
  }

  /** Real clock: one host timer for the earliest board timer. */
  private rescheduleWake(): void {
    if (this.fake || this.disposed) return;
    if (this.wake) clearTimeout(this.wake);
    this.wake = undefined;
    const next = this.nextTimer();
    if (!next) return;
    this.wake = setTimeout(() => {
      this.wake = undefined;
      this.drain();
      for (;;) {
        const t = this.nextTimer();
        if (!t || t.due > this.now()) break;
        this.fire(t);
        this.drain();
      }
      this.rescheduleWake();
    }, Math.max(0, next.due - this.now()));
  }

  private inject(name: string, bytes: string): void {
    if (!bytes.length) return;
    const u = this.uartState(name);
    this.activity++;
    const first = u.rx === "";
    u.rx += bytes;
    // Bytes that arrive before the board is idle again reach it as one "data" event.
    if (first) {
      this.queue(() => {
        const data = u.rx;
        u.rx = "";
        if (data) this.internals?.rx(name, data);
      });
    }
  }

  private queue(ev: () => void): void {
    this.events.push(ev);
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(() => {
        this.drainScheduled = false;
        this.drain();
      });
    }
  }

  /** Runs queued events (UART data, pin watches), as Espruino's idle loop does. */
  private drain(): void {
    if (this.disposed) { this.events = []; return; }
    let n = 0;
    while (this.events.length && n++ < 10000) {
      const ev = this.events.shift()!;
      this.guard(ev);
    }
    if (!this.fake) this.rescheduleWake();
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.reportUncaught(e);
    }
  }

  private reportUncaught(e: unknown): void {
    this.uncaught++;
    this.errors.push(e);
    let text: string;
    if (e && typeof e === "object" && "message" in e) {
      const err = e as { name?: string; message?: string; stack?: string };
      text = `${err.name ?? "Error"}: ${err.message}`;
    } else {
      text = this.internals ? this.internals.format(e) : String(e);
    }
    this.log("Uncaught " + text);
    this.emit("uncaught", e);
  }

  private setLevel(name: string, level: number, external: boolean): void {
    const prev = this.levels.get(name);
    if (prev === level) return;
    this.levels.set(name, level);
    this.emit("pin", name, level);
    if (!external) return;
    const time = this.now() / 1000;
    for (const w of [...this.watches]) {
      if (w.pin !== name) continue;
      if ((w.edge === "rising" && !level) || (w.edge === "falling" && level)) continue;
      if (!w.repeat) this.watches.splice(this.watches.indexOf(w), 1);
      const last = w.last;
      w.last = time;
      this.queue(() => this.internals?.watchEvent(w.fn, level, time, last, name));
    }
  }

  private uartState(name: string) {
    let u = this.uarts.get(name);
    if (!u) this.uarts.set(name, (u = { listeners: new Set(), written: "", rx: "" }));
    return u;
  }

  private serialText(): string {
    return this.opts.serial ?? "33FFD605-41573033-15720843";
  }

  private log(line: string): void {
    for (const l of line.split("\n")) {
      this.console.push(l);
      if (this.console.length > MAX_LOG) this.console.splice(0, this.console.length - MAX_LOG);
      if (this.opts.echo) process.stdout.write("[vb] " + l + "\n");
      this.emit("log", l);
    }
  }
}
