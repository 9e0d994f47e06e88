/**
 * Host side: the parts of a flash that talk to an Espruino board's JavaScript
 * console (the REPL on its USB or serial port) directly, one statement at a time,
 * each answered. The Storage files themselves are written in between by the
 * `espruino` command-line tool (scripts/espruino-tool.ts); these two sessions make
 * that write safe and prove it:
 *
 * Before the tool (prepareBoard):
 *   hello    print process.env.BOARD and VERSION    (no answer: one Ctrl-C, ask again);
 *            a board other than the one the firmware is built for is refused here
 *   reset()  stop the old program, as the Web IDE does before an upload; .bootcde is
 *            not run again, so nothing executes from the files being replaced
 *   hello    the reset is done (input is handled in order)
 *   prepare  erase the old files; compact first if the new ones would not fit
 *
 * After the tool (finishBoard):
 *   hello    the console answers again
 *   compact  reclaim the erased copies when there are any (Storage fills up otherwise)
 *   verify   length and E.CRC32 of each file as Storage holds it, compared with the
 *            host's; a mismatch erases .bootcde (a damaged program must not boot)
 *   load()   start the new program; its first lines are collected for a moment
 *
 * After a failed tool run that reached the board (eraseProgram): hello, then erase
 * .bootcde, which may hold part of the program.
 *
 * Each line starts with 0x10, which tells Espruino not to echo it. A statement
 * answers "@@flash ok N [json]" or "@@flash err N message"; the marker is split in
 * the statement ("@@"+"flash") so an echo never looks like an answer, and N ties an
 * answer to its statement, so output of a program still running in between is skipped.
 */
import type { Clock } from "../../src/transport";
import type { Link } from "./serial-port";

export interface StorageFile {
  name: string;
  /** The bytes, one char per byte (latin1). */
  data: string;
}

export interface ConsolePlan {
  /** The files the tool writes. */
  files: StorageFile[];
  /** The program file (erased again if anything fails after writing began). */
  program: string;
  /** process.env.BOARD values this firmware is built for; undefined = any board. */
  board?: { title: string; pattern: RegExp; names: string; hint?: (name: string | undefined) => string | undefined };
}

export interface Timeouts {
  /** First answer to hello, before one Ctrl-C and a second try. */
  hello: number;
  /** An ordinary statement (hello after reset, prepare, verify, erase). */
  reply: number;
  /** compact() of the whole Storage area. */
  compact: number;
  /** Wait after reset() before the next line. */
  settle: number;
  /** How long the new program's first lines are collected after load(). */
  watch: number;
  /** The whole session (the caller passes what is left of the flash's time). */
  total: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  hello: 1500,
  reply: 5000,
  compact: 30000,
  settle: 300,
  watch: 1500,
  total: 60000,
};

export interface ConsoleOptions {
  clock: Clock;
  timeouts?: Partial<Timeouts>;
  /** Progress lines for the user (the caller redacts). */
  log?: (line: string) => void;
  /** Every line the board prints that is not an answer (for --verbose). */
  boardLine?: (line: string) => void;
  /** Every chunk sent and received (recording fixtures). */
  tap?: (dir: "tx" | "rx", data: string) => void;
  /** The flash's whole time limit in seconds, for the message when it runs out (default: total). */
  limitSeconds?: number;
}

export interface SessionResult {
  ok: boolean;
  /** One sentence: what went wrong and what to do. */
  error?: string;
  /** Where it stopped, or "done". */
  stage: string;
}

export interface PrepareResult extends SessionResult {
  /** True once the prepare statement ran: the old files are erased. */
  erased: boolean;
  board?: string;
  version?: string;
  /** Other boot files found in Storage (they run at boot too). */
  otherBoot?: string[];
  warnings: string[];
}

export interface FinishResult extends SessionResult {
  /** Storage bytes free after compacting, and the bytes of old copies it reclaimed. */
  free?: number;
  trash?: number;
  /** Per file: [length, CRC32] read back. */
  readBack?: Record<string, [number, number] | null>;
  /** The first lines the new program printed. */
  started?: string[];
}

/** Standard CRC-32 (IEEE 802.3), as Espruino's E.CRC32 and zlib compute it. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function crc32(bytes: string): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Bytes a file takes in Storage: a 32-byte header, data rounded up to 4. */
const storageSize = (f: StorageFile) => 32 + ((f.data.length + 3) & ~3);

// ---- the lines sent ------------------------------------------------------------

const ECHO_OFF = "\x10";
/** A statement whose answer is "@@flash ok N <JSON of result>" or "@@flash err N <error>". */
function statement(n: number, body: string, result?: string): string {
  const ok = result === undefined ? `print("@@"+"flash ok ${n}")` : `print("@@"+"flash ok ${n} "+JSON.stringify(${result}))`;
  return `${ECHO_OFF}try{${body}${body ? ";" : ""}${ok}}catch(e){print("@@"+"flash err ${n} "+e)}\n`;
}

export const lines = {
  hello: (n: number) => statement(n, "", "[process.env.BOARD,process.env.VERSION]"),
  ctrlC: "\x03",
  reset: `${ECHO_OFF}reset()\n`,
  prepare: (n: number, plan: ConsolePlan) => {
    const need = plan.files.reduce((a, f) => a + storageSize(f), 0);
    const erase = plan.files.map((f) => `S.erase(${JSON.stringify(f.name)})`).join(";");
    return statement(n, `var S=require("Storage");${erase};if(S.getStats().freeBytes<${need})S.compact()`,
      `[S.getStats(),S.list(/^\\.boot/)]`);
  },
  compact: (n: number) => statement(n, `var S=require("Storage"),t=S.getStats().trashBytes;if(t)S.compact()`, "[t,S.getStats().freeBytes]"),
  verify: (n: number, plan: ConsolePlan) =>
    statement(n, "", `${JSON.stringify(plan.files.map((f) => f.name))}.map(function(n){var s=require("Storage").read(n);return s===undefined?null:[s.length,E.CRC32(s)]})`),
  eraseProgram: (n: number, plan: ConsolePlan) => statement(n, `require("Storage").erase(${JSON.stringify(plan.program)})`),
  load: `${ECHO_OFF}load()\n`,
};

/** Every line a successful flash types on the console, before and after the tool (the dry run writes these). */
export function sessionLines(plan: ConsolePlan): { before: string[]; after: string[] } {
  return {
    before: [lines.hello(1), lines.reset, lines.hello(2), lines.prepare(3, plan)],
    after: [lines.hello(1), lines.compact(2), lines.verify(3, plan), lines.load],
  };
}

// ---- a session --------------------------------------------------------------------

const ANSWER = /@@flash (ok|err) (\d+)(?: ([^\r\n]*))?\r?\n/;

class Failure extends Error {}

/** Printable sample of what a port said (control bytes escaped), at most 40 chars. */
function sample(s: string): string {
  const t = JSON.stringify(s.slice(0, 40)).replace(/[\x7f-\x9f]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  return s.length > 40 ? t.slice(0, -1) + "…\"" : t;
}

/** "2v29.277" → 2.29 (major + minor/100); NaN when not that form. */
function versionNumber(v: string | undefined): number {
  const m = /^(\d+)v(\d+)/.exec(v || "");
  return m ? Number(m[1]) + Number(m[2]) / 100 : NaN;
}
export const FIRMWARE_VERSION = "2v29";

type Answer = { ok: boolean; text: string } | undefined | "closed" | "total";

/** One conversation with the console over an open link (the caller opens and closes the link). */
class Session {
  readonly t: Timeouts;
  closed = false;
  /** The first bytes received (to describe a port that is not an Espruino console). */
  received = "";
  /** While set, the program's lines are collected here (after load()). */
  watching: string[] | undefined;
  private answers: { ok: boolean; n: number; text: string }[] = [];
  private buf = "";
  private pending = "";
  private wake: (() => void) | undefined;
  private n = 0;
  private start: number;

  constructor(private link: Link, private opts: ConsoleOptions) {
    this.t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.start = opts.clock.now();
    link.onData((d) => this.onData(d));
    link.onClose(() => {
      this.closed = true;
      this.wake?.();
    });
  }

  private otherLines(s: string): void {
    this.pending += s;
    const parts = this.pending.split(/\r?\n/);
    this.pending = parts.pop()!;
    for (const raw of parts) {
      // Strip the prompt and the console's line-erase sequences around program output.
      const line = raw.replace(/\x1b\[J/g, "").replace(/^[\r>]+/, "").replace(/\r/g, "").trimEnd();
      if (!line || /^=undefined$/.test(line)) continue;
      this.opts.boardLine?.(line);
      if (this.watching && this.watching.length < 50) this.watching.push(line);
    }
    if (this.pending.length > 4096) this.pending = this.pending.slice(-4096);
  }

  private onData(d: string): void {
    this.opts.tap?.("rx", d);
    if (this.received.length < 256) this.received += d;
    this.buf += d;
    // Lines before a complete answer (or all complete lines when none is in sight) are program output.
    let m: RegExpExecArray | null;
    let scanned = 0;
    while ((m = ANSWER.exec(this.buf.slice(scanned)))) {
      const at = scanned + m.index;
      this.otherLines(this.buf.slice(scanned, at));
      this.answers.push({ ok: m[1] === "ok", n: Number(m[2]), text: m[3] ?? "" });
      scanned = at + m[0].length;
    }
    const rest = this.buf.slice(scanned);
    // Keep a possible answer's beginning; hand on what cannot be part of one.
    const cut = rest.lastIndexOf("\n") + 1;
    const keep = rest.slice(cut);
    if (cut) this.otherLines(rest.slice(0, cut));
    this.buf = keep.length > 8192 ? keep.slice(-8192) : keep;
    this.wake?.();
  }

  send(s: string): void {
    this.opts.tap?.("tx", s);
    this.link.write(s);
  }

  remaining(): number {
    return this.t.total - (this.opts.clock.now() - this.start);
  }

  /** Waits up to ms (bounded by the total unless `unbounded`) for answer n. */
  waitFor(n: number, ms: number, unbounded = false): Promise<Answer> {
    const clock = this.opts.clock;
    return new Promise<Answer>((resolve) => {
      const limit = unbounded ? ms : Math.min(ms, this.remaining());
      let timer: unknown;
      const finish = (v: Answer) => {
        this.wake = undefined;
        if (timer !== undefined) clock.clearTimeout(timer);
        timer = undefined;
        resolve(v);
      };
      const check = () => {
        if (this.closed) return finish("closed");
        const i = this.answers.findIndex((a) => a.n === n);
        if (i >= 0) return finish(this.answers.splice(i, 1)[0]);
      };
      this.wake = check;
      timer = clock.setTimeout(() => {
        timer = undefined;
        finish(limit < ms ? "total" : undefined);
      }, Math.max(0, limit));
      check();
    });
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => this.opts.clock.setTimeout(resolve, Math.max(0, Math.min(ms, this.remaining()))));
  }

  /** Sends a statement and returns its parsed answer, or throws a Failure naming the step. */
  async ask(step: string, line: (n: number) => string, ms: number): Promise<unknown> {
    const id = ++this.n;
    this.send(line(id));
    const a = await this.waitFor(id, ms);
    if (a === "closed") throw new Failure(`the port closed during ${step}: was the board unplugged or reset? Plug it in and flash again`);
    if (a === "total") throw new Failure(`the flash took longer than ${this.opts.limitSeconds ?? this.t.total / 1000} s (stopped during ${step}); flash again, or give more time with --timeout`);
    if (!a) throw new Failure(`the board stopped answering during ${step} (no answer in ${ms / 1000} s): press its reset button or plug it in again, then flash again`);
    if (!a.ok) throw new Failure(`the board refused ${step}: ${a.text}`);
    try {
      return a.text ? JSON.parse(a.text) : undefined;
    } catch {
      throw new Failure(`the board's answer to ${step} came garbled (${sample(a.text)}): check the cable and the baud rate (--baud), then flash again`);
    }
  }

  /** Asks who is there; without an answer, one Ctrl-C (two would end Espruino on Linux) and a second try. */
  async hello(): Promise<[string | undefined, string | undefined]> {
    let hello: unknown;
    try {
      hello = await this.ask("hello", lines.hello, this.t.hello);
    } catch (e) {
      if (this.closed || this.remaining() <= 0) throw e;
      // No answer: a program may hold the console, or a half-typed line is waiting.
      this.send(lines.ctrlC);
      await this.sleep(200);
      try {
        hello = await this.ask("hello", lines.hello, this.t.reply);
      } catch (e2) {
        if (!(e2 instanceof Failure) || this.closed || this.remaining() <= 0) throw e2;
        if (this.received.includes('"@@"+"flash ok')) {
          throw new Failure("the port only sends back what it is sent, which an Espruino console does not do: is it the right port (not a serial adapter with its RX tied to TX or to nothing), is Espruino on the board?");
        }
        throw new Failure(this.received
          ? `the port answered ${sample(this.received)}, which is not an Espruino console: is it the right port, is Espruino on the board, is the baud rate right (--baud, 9600 for a serial console)?`
          : `no answer from the port in ${(this.t.hello + 200 + this.t.reply) / 1000} s: is it the board's port, is Espruino on it (a board showing only a bootloader needs Espruino first), is the baud rate right (--baud)?`);
      }
    }
    const [board, version] = Array.isArray(hello) ? (hello as string[]) : [];
    return [board, version];
  }

  /** Erases the program file; its own short wait, even past the total: this leaves the board safe. */
  async eraseProgram(plan: ConsolePlan): Promise<boolean> {
    if (this.closed) return false;
    const id = ++this.n;
    this.send(lines.eraseProgram(id, plan));
    const a = await this.waitFor(id, this.t.reply, true);
    return !!a && a !== "closed" && a !== "total" && a.ok;
  }
}

/** Runs `body` on a session; a Failure becomes the result's error. Never throws for a board's behaviour. */
async function run<R extends SessionResult>(link: Link, opts: ConsoleOptions, result: R, body: (s: Session, r: R) => Promise<void>): Promise<R> {
  const s = new Session(link, opts);
  try {
    await body(s, result);
    result.ok = true;
    result.stage = "done";
  } catch (e) {
    if (!(e instanceof Failure)) throw e;
    result.error = e.message;
  }
  return result;
}

/** Before the tool: who is there, stop the old program, erase the old files and make room. */
export function prepareBoard(link: Link, plan: ConsolePlan, opts: ConsoleOptions): Promise<PrepareResult> {
  const log = opts.log ?? (() => {});
  return run<PrepareResult>(link, opts, { ok: false, stage: "hello", erased: false, warnings: [] }, async (s, r) => {
    const [board, version] = await s.hello();
    r.board = board;
    r.version = version;
    log(`board     ${board ?? "?"}, Espruino ${version ?? "?"}`);
    if (plan.board && !(typeof board === "string" && plan.board.pattern.test(board))) {
      const hint = plan.board.hint?.(board);
      throw new Failure(`the board on this port is ${board ?? "unknown"} (Espruino ${version ?? "?"}), not ${plan.board.title} (${plan.board.names}): ${hint ? hint + ", or" : "pick the --board that matches it, or"} use the port of your ${plan.board.title}`);
    }
    if (!(versionNumber(version) >= versionNumber(FIRMWARE_VERSION))) {
      r.warnings.push(`the board runs Espruino ${version ?? "?"}; this firmware is made for ${FIRMWARE_VERSION} or later: update Espruino (the Web IDE's firmware updater)`);
    }

    // Stop the old program before touching the files it runs from.
    r.stage = "reset";
    s.send(lines.reset);
    await s.sleep(s.t.settle);
    await s.ask("reset", lines.hello, s.t.reply);
    log("stopped   the old program (reset())");

    // Make room.
    r.stage = "prepare";
    const [stats, boots] = (await s.ask("prepare", (i) => lines.prepare(i, plan), s.t.compact)) as [{ freeBytes: number }, string[]];
    r.erased = true;
    const need = plan.files.reduce((a, f) => a + storageSize(f), 0);
    if (stats && stats.freeBytes < need) {
      throw new Failure(`Storage has ${stats.freeBytes} bytes free, the files need ${need}: erase other files (require("Storage").eraseAll() clears everything)`);
    }
    const known = new Set(plan.files.map((f) => f.name));
    r.otherBoot = (boots || []).filter((b) => !known.has(b));
    if (r.otherBoot.length) {
      r.warnings.push(`Storage also holds ${r.otherBoot.join(", ")}, which Espruino runs at boot as well; erase it unless you want it (require("Storage").erase(${JSON.stringify(r.otherBoot[0])}))`);
    }
  });
}

/** After the tool: compact, read back and compare, start the new program. A mismatch erases the program. */
export function finishBoard(link: Link, plan: ConsolePlan, opts: ConsoleOptions): Promise<FinishResult> {
  const log = opts.log ?? (() => {});
  return run<FinishResult>(link, opts, { ok: false, stage: "hello" }, async (s, r) => {
    await s.hello();
    r.stage = "compact";
    const [trash, free] = (await s.ask("compact", lines.compact, s.t.compact)) as [number, number];
    r.free = free;
    r.trash = trash;
    log(`storage   ${free} bytes free${trash ? ` (compacted: ${trash} bytes of old copies reclaimed)` : ""}`);

    r.stage = "verify";
    const got = (await s.ask("verify", (i) => lines.verify(i, plan), s.t.reply)) as ([number, number] | null)[];
    r.readBack = {};
    const bad: string[] = [];
    plan.files.forEach((f, i) => {
      const b = Array.isArray(got) ? got[i] : null;
      r.readBack![f.name] = b ?? null;
      const want: [number, number] = [f.data.length, crc32(f.data)];
      if (!b) bad.push(`${f.name} is missing`);
      else if (b[0] !== want[0]) bad.push(`${f.name} holds ${b[0]} bytes, not ${want[0]}`);
      else if (b[1] >>> 0 !== want[1]) bad.push(`${f.name} has CRC32 ${hex(b[1])}, not ${hex(want[1])}`);
    });
    if (bad.length) {
      const erased = await s.eraseProgram(plan);
      throw new Failure(`read-back differs from what was sent: ${bad.join("; ")}; ${erased
        ? `${plan.program} was erased, so the board runs nothing at boot: flash again`
        : `the board may hold a damaged ${plan.program}: flash again`}`);
    }
    log(`verified  ${plan.files.map((f) => `${f.name} CRC32 ${hex(crc32(f.data))}`).join(", ")} (read back from the board)`);

    // Start it, and show what it says first.
    r.stage = "start";
    s.watching = [];
    s.send(lines.load);
    await s.sleep(s.t.watch);
    r.started = s.watching;
    s.watching = undefined;
  });
}

/** After a failed write that reached the board: erase the program file, which may hold part of the program. */
export function eraseProgram(link: Link, plan: ConsolePlan, opts: ConsoleOptions): Promise<SessionResult> {
  return run<SessionResult>(link, opts, { ok: false, stage: "hello" }, async (s, r) => {
    await s.hello();
    r.stage = "erase";
    if (!(await s.eraseProgram(plan))) throw new Failure(`the board did not confirm erasing ${plan.program}`);
  });
}

const hex = (x: number) => "0x" + (x >>> 0).toString(16).padStart(8, "0");
