/**
 * Replays a flash recorded against a real Espruino interpreter
 * (test/fixtures/flash/*.json, made by test/espruino/record-flash-fixtures.ts):
 * each console session as the board on the other end (each line the flash sends
 * must be the line recorded, and is answered with what the interpreter printed
 * after it), and the espruino tool's run as it ended (its argv, output, exit).
 * Time is a FakeClock: drive() runs it to the next timer whenever nothing else is
 * left to do, so time-outs happen without waiting.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "../../scripts/repo";
import type { ToolRun } from "../../scripts/device/espruino-tool";
import type { Link } from "../../scripts/device/serial-port";
import { FakeClock } from "./fake-clock";

export type Exchange = ["tx" | "rx", string][];

export interface FlashFixture {
  about: string;
  options: { board: string; firmware: string; config: string };
  result: { ok: boolean; errors: string[] };
  /** The console sessions by number: 1 before the tool, 2 after it, 3 erasing after a failed tool run. */
  sessions: Record<string, Exchange>;
  /** The tool's run; argv with the temporary directory as $TMP and the board's device as $PORT. */
  tool?: { argv: string[] } & ToolRun;
}

/** A recorded run of the espruino tool alone (test/fixtures/flash/tool/*.json). */
export interface ToolFixture {
  about: string;
  argv: string[];
  run: ToolRun;
  timeoutMs: number;
}

/** A whole flash; the file keeps each session as "session N", one array entry per chunk. */
export function loadFixture(name: string): FlashFixture {
  const raw = JSON.parse(readFileSync(path.join(ROOT, "test/fixtures/flash", name + ".json"), "utf8"));
  const sessions: Record<string, Exchange> = {};
  for (const k of Object.keys(raw)) {
    const m = /^session (\d+)$/.exec(k);
    if (m) sessions[m[1]] = raw[k];
  }
  return { ...raw, tool: raw.tool ?? undefined, sessions };
}

export function loadToolFixture(name: string): ToolFixture {
  return JSON.parse(readFileSync(path.join(ROOT, "test/fixtures/flash/tool", name + ".json"), "utf8"));
}

export interface ReplayOptions {
  /** Replay only the exchange before the tx with this index (0-based among tx); later lines get no answer. */
  stopAfterTx?: number;
  /** Change what the board printed after a line, before it is played (then played as one chunk). */
  alterRx?: (data: string) => string;
  /** After the recording runs out, print this line every `everyMs` until the link is closed (a board that never goes quiet). */
  chatter?: { line: string; everyMs: number };
  /** Close the port (the board went away) when the tx with this index arrives. */
  closeAtTx?: number;
}

export class ReplayLink implements Link {
  /** Every line the flash sent. */
  sent: string[] = [];
  /** Sent lines that differ from the recording: [index, sent, recorded]. */
  mismatches: [number, string, string | undefined][] = [];
  closed = false;
  private cb: (d: string) => void = () => {};
  private closeCb: () => void = () => {};
  private pos = 0;
  private txIndex = 0;

  constructor(private exchange: Exchange, private clock: FakeClock, private opts: ReplayOptions = {}) {}

  onData(cb: (d: string) => void): void {
    this.cb = cb;
    this.playUntilTx();
  }

  onClose(cb: () => void): void {
    this.closeCb = cb;
  }

  write(data: string): void {
    if (this.closed) return;
    const i = this.txIndex++;
    this.sent.push(data);
    if (this.opts.closeAtTx === i) {
      this.closed = true;
      queueMicrotask(() => this.closeCb());
      return;
    }
    if (this.opts.stopAfterTx !== undefined && i > this.opts.stopAfterTx) return;
    const ex = this.exchange;
    const rec = this.pos < ex.length && ex[this.pos][0] === "tx" ? ex[this.pos][1] : undefined;
    if (rec !== data) this.mismatches.push([i, data, rec]);
    if (rec !== undefined) this.pos++;
    this.playUntilTx();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Plays the recorded output up to the next recorded tx (asynchronously, as a port would). */
  private playUntilTx(): void {
    const ex = this.exchange;
    let out: string[] = [];
    while (this.pos < ex.length && ex[this.pos][0] === "rx") out.push(ex[this.pos++][1]);
    if (this.opts.alterRx && out.length) out = [this.opts.alterRx(out.join(""))];
    const ended = this.pos >= ex.length;
    queueMicrotask(() => {
      for (const d of out) if (!this.closed) this.cb(d);
      if (ended && this.opts.chatter && !this.chattering) this.chatter();
    });
  }

  private chattering = false;
  private chatter(): void {
    this.chattering = true;
    const { line, everyMs } = this.opts.chatter!;
    const tick = () => {
      if (this.closed) return;
      this.cb(line);
      this.clock.setTimeout(tick, everyMs);
    };
    this.clock.setTimeout(tick, everyMs);
  }
}

/**
 * Awaits `p` while running the fake clock: whenever the flash waits on nothing
 * but a timer, time jumps to that timer. Returns the result and how long (fake) it took.
 */
export async function drive<T>(p: Promise<T>, clock: FakeClock): Promise<{ value: T; ms: number }> {
  const start = clock.now();
  let done = false;
  let value!: T;
  let error: unknown;
  p.then((v) => { done = true; value = v; }, (e) => { done = true; error = e; });
  for (let spins = 0; !done; spins++) {
    if (spins > 100_000) throw new Error("drive: the flash never finished");
    await new Promise((r) => setImmediate(r));
    if (done) break;
    const at = clock.nextAt();
    if (at !== undefined) clock.advance(Math.max(0, at - clock.now()));
  }
  if (error) throw error;
  return { value, ms: clock.now() - start };
}
