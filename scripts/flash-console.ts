/**
 * Host side: writes files into an Espruino board's Storage by talking to its
 * JavaScript console (the REPL on its USB or serial port), one statement at a time,
 * and proves what it wrote by reading it back.
 *
 * Why talk to the console directly and not through the `espruino` command-line
 * tool: that tool trusts no answer. It prints "Unable to connect!" and exits 0,
 * scans Bluetooth through D-Bus before opening a serial port (and crashes where
 * there is no system D-Bus), looks board JSON up on the network, never reads back
 * what it wrote, does not stop the old program when it only writes Storage files,
 * and exits only after 500 ms of silence from the board, which a busy board never
 * gives. Here every step is one line the board answers with a marker, so each
 * step either succeeds visibly or fails with a reason, within a time limit.
 *
 * The session, in order (each line starts with 0x10, which tells Espruino not to
 * echo it, so no byte of led.json comes back on the console):
 *
 *   hello    print process.env.BOARD and VERSION    (no answer: one Ctrl-C, ask again)
 *   reset()  stop the old program, as the Web IDE does before an upload; .bootcde is
 *            not run again, so nothing executes from the files being replaced
 *   hello    the reset is done (input is handled in order)
 *   prepare  erase the old files; compact first if the new ones would not fit
 *   write    each file in chunks of 384 bytes: Storage.write(name, atob(...), offset[, size])
 *   compact  reclaim the erased copies when there are any (Storage fills up otherwise)
 *   verify   length and E.CRC32 of each file as Storage holds it, compared with the
 *            host's; a mismatch erases .bootcde (a half-written program must not boot)
 *   load()   start the new program; its first lines are collected for a moment
 *
 * A statement answers "@@flash ok N [json]" or "@@flash err N message"; the
 * marker is split in the statement ("@@"+"flash") so an echo never looks like an
 * answer, and N ties an answer to its statement, so output of a program still
 * running in between is skipped.
 */
import type { Clock } from "../src/session/transport";
import type { Link } from "./serial-port";

export interface StorageFile {
  name: string;
  /** The bytes, one char per byte (latin1). */
  data: string;
}

export interface ConsolePlan {
  /** Written in this order; put the program last (a failure then leaves no half program). */
  files: StorageFile[];
  /** The program file (erased again if anything fails after writing began). */
  program: string;
  /** process.env.BOARD values this firmware is built for; undefined = any board. */
  board?: { title: string; pattern: RegExp; names: string; hint?: (name: string | undefined) => string | undefined };
}

export interface Timeouts {
  /** First answer to hello, before one Ctrl-C and a second try. */
  hello: number;
  /** An ordinary statement (hello after reset, prepare, verify). */
  reply: number;
  /** One chunk written to flash (may erase a flash page first). */
  write: number;
  /** compact() of the whole Storage area. */
  compact: number;
  /** Wait after reset() before the next line. */
  settle: number;
  /** How long the new program's first lines are collected after load(). */
  watch: number;
  /** The whole session. */
  total: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  hello: 1500,
  reply: 5000,
  write: 10000,
  compact: 30000,
  settle: 300,
  watch: 1500,
  total: 60000,
};

export const CHUNK = 384;

export interface ConsoleOptions {
  clock: Clock;
  timeouts?: Partial<Timeouts>;
  /** Progress lines for the user (the caller redacts). */
  log?: (line: string) => void;
  /** Every line the board prints that is not an answer (for --verbose). */
  boardLine?: (line: string) => void;
  /** Every chunk sent and received (recording fixtures). */
  tap?: (dir: "tx" | "rx", data: string) => void;
}

export interface ConsoleResult {
  ok: boolean;
  /** One sentence: what went wrong and what to do. */
  error?: string;
  /** Where it failed, or "done". */
  stage: string;
  /** True once a byte of a file was sent: the board's Storage changed. */
  wrote: boolean;
  board?: string;
  version?: string;
  /** Storage bytes free after compacting. */
  free?: number;
  /** Per file: [length, CRC32] read back. */
  readBack?: Record<string, [number, number] | null>;
  /** Other boot files found in Storage (they run at boot too). */
  otherBoot?: string[];
  /** The first lines the new program printed. */
  started?: string[];
  /** Version is older than the firmware is made for. */
  warnings: string[];
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
  write: (n: number, f: StorageFile, offset: number) => {
    const part = Buffer.from(f.data.slice(offset, offset + CHUNK), "latin1").toString("base64");
    const size = offset === 0 ? `,${f.data.length}` : "";
    return statement(n, `if(!require("Storage").write(${JSON.stringify(f.name)},atob("${part}"),${offset}${size}))throw new Error("write failed")`);
  },
  compact: (n: number) => statement(n, `var S=require("Storage"),t=S.getStats().trashBytes;if(t)S.compact()`, "[t,S.getStats().freeBytes]"),
  verify: (n: number, plan: ConsolePlan) =>
    statement(n, "", `${JSON.stringify(plan.files.map((f) => f.name))}.map(function(n){var s=require("Storage").read(n);return s===undefined?null:[s.length,E.CRC32(s)]})`),
  eraseProgram: (n: number, plan: ConsolePlan) => statement(n, `require("Storage").erase(${JSON.stringify(plan.program)})`),
  load: `${ECHO_OFF}load()\n`,
};

/** Every line a successful session sends, in order (the dry run writes these). */
export function sessionLines(plan: ConsolePlan): string[] {
  let n = 1;
  const out = [lines.hello(n++), lines.reset, lines.hello(n++), lines.prepare(n++, plan)];
  for (const f of plan.files) for (let off = 0; off < f.data.length || off === 0; off += CHUNK) out.push(lines.write(n++, f, off));
  out.push(lines.compact(n++), lines.verify(n++, plan), lines.load);
  return out;
}

// ---- the session ------------------------------------------------------------------

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

/**
 * Runs the session on an open link. Never throws for a board's behaviour; leaves
 * the link open (the caller closes it) and resolves within timeouts.total, plus
 * timeouts.reply when a failure after writing began erases the program.
 */
export async function flashOverConsole(link: Link, plan: ConsolePlan, opts: ConsoleOptions): Promise<ConsoleResult> {
  const t: Timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const clock = opts.clock;
  const log = opts.log ?? (() => {});
  const start = clock.now();
  const result: ConsoleResult = { ok: false, stage: "hello", wrote: false, warnings: [] };

  // Receiving: answers are taken out of `buf`; every other complete line goes to boardLine.
  const answers: { ok: boolean; n: number; text: string }[] = [];
  let buf = "";
  let received = "";
  let closed = false;
  let wake: (() => void) | undefined;
  let watching: string[] | undefined;
  let pending = "";
  const otherLines = (s: string) => {
    pending += s;
    const parts = pending.split(/\r?\n/);
    pending = parts.pop()!;
    for (const raw of parts) {
      // Strip the prompt and the console's line-erase sequences around program output.
      const line = raw.replace(/\x1b\[J/g, "").replace(/^[\r>]+/, "").replace(/\r/g, "").trimEnd();
      if (!line || /^=undefined$/.test(line)) continue;
      opts.boardLine?.(line);
      if (watching && watching.length < 50) watching.push(line);
    }
    if (pending.length > 4096) pending = pending.slice(-4096);
  };
  link.onData((d) => {
    opts.tap?.("rx", d);
    if (received.length < 256) received += d;
    buf += d;
    // Lines before a complete answer (or all complete lines when none is in sight) are program output.
    let m: RegExpExecArray | null;
    let scanned = 0;
    while ((m = ANSWER.exec(buf.slice(scanned)))) {
      const at = scanned + m.index;
      otherLines(buf.slice(scanned, at));
      answers.push({ ok: m[1] === "ok", n: Number(m[2]), text: m[3] ?? "" });
      scanned = at + m[0].length;
    }
    const rest = buf.slice(scanned);
    // Keep a possible answer's beginning; hand on what cannot be part of one.
    const cut = rest.lastIndexOf("\n") + 1;
    const keep = rest.slice(cut);
    if (cut) otherLines(rest.slice(0, cut));
    buf = keep.length > 8192 ? keep.slice(-8192) : keep;
    wake?.();
  });
  link.onClose(() => {
    closed = true;
    wake?.();
  });
  const send = (s: string) => {
    opts.tap?.("tx", s);
    link.write(s);
  };

  const remaining = () => t.total - (clock.now() - start);
  /** Waits up to ms (bounded by the total unless `unbounded`) for answer n; undefined on time-out. */
  const waitFor = (n: number, ms: number, unbounded = false) =>
    new Promise<{ ok: boolean; text: string } | undefined | "closed" | "total">((resolve) => {
      const limit = unbounded ? ms : Math.min(ms, remaining());
      let timer: unknown;
      const check = () => {
        if (closed) return finish("closed");
        const i = answers.findIndex((a) => a.n === n);
        if (i >= 0) return finish(answers.splice(i, 1)[0]);
      };
      const finish = (v: { ok: boolean; text: string } | undefined | "closed" | "total") => {
        wake = undefined;
        if (timer !== undefined) clock.clearTimeout(timer);
        timer = undefined;
        resolve(v);
      };
      wake = check;
      timer = clock.setTimeout(() => {
        timer = undefined;
        finish(limit < ms ? "total" : undefined);
      }, Math.max(0, limit));
      check();
    });
  const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, Math.max(0, Math.min(ms, remaining()))));

  let n = 0;
  /** Sends a statement and returns its parsed answer, or throws a Failure naming the step. */
  const ask = async (step: string, line: (n: number) => string, ms: number): Promise<unknown> => {
    const id = ++n;
    send(line(id));
    const a = await waitFor(id, ms);
    if (a === "closed") throw new Failure(`the port closed during ${step}: was the board unplugged or reset? Plug it in and flash again`);
    if (a === "total") throw new Failure(`the flash took longer than ${t.total / 1000} s (stopped during ${step}); flash again, or give more time with --timeout`);
    if (!a) throw new Failure(`the board stopped answering during ${step} (no answer in ${ms / 1000} s)`);
    if (!a.ok) throw new Failure(`the board refused ${step}: ${a.text}`);
    try {
      return a.text ? JSON.parse(a.text) : undefined;
    } catch {
      throw new Failure(`the board's answer to ${step} came garbled (${sample(a.text)}): check the cable and the baud rate (--baud), then flash again`);
    }
  };

  try {
    // 1. Who is there?
    let hello: unknown;
    try {
      hello = await ask("hello", lines.hello, t.hello);
    } catch (e) {
      if (closed || remaining() <= 0) throw e;
      // No answer: a program may hold the console, or a half-typed line is waiting. One Ctrl-C (two
      // would end Espruino on Linux), then ask again.
      send(lines.ctrlC);
      await sleep(200);
      try {
        hello = await ask("hello", lines.hello, t.reply);
      } catch (e2) {
        if (!(e2 instanceof Failure) || closed || remaining() <= 0) throw e2;
        if (received.includes('"@@"+"flash ok')) {
          throw new Failure("the port only sends back what it is sent, which an Espruino console does not do: is it the right port (not a serial adapter with its RX tied to TX or to nothing), is Espruino on the board?");
        }
        throw new Failure(received
          ? `the port answered ${sample(received)}, which is not an Espruino console: is it the right port, is Espruino on the board, is the baud rate right (--baud, 9600 for a serial console)?`
          : `no answer from the port in ${(t.hello + 200 + t.reply) / 1000} s: is it the board's port, is Espruino on it (a board showing only a bootloader needs Espruino first), is the baud rate right (--baud)?`);
      }
    }
    const [boardName, version] = Array.isArray(hello) ? (hello as string[]) : [];
    result.board = boardName;
    result.version = version;
    log(`board     ${boardName ?? "?"}, Espruino ${version ?? "?"}`);
    if (plan.board && !(typeof boardName === "string" && plan.board.pattern.test(boardName))) {
      const hint = plan.board.hint?.(boardName);
      throw new Failure(`the board on this port is ${boardName ?? "unknown"} (Espruino ${version ?? "?"}), not ${plan.board.title} (${plan.board.names}): ${hint ? hint + ", or" : "pick the --board that matches it, or"} use the port of your ${plan.board.title}`);
    }
    const v = versionNumber(version);
    if (!(v >= versionNumber(FIRMWARE_VERSION))) {
      result.warnings.push(`the board runs Espruino ${version ?? "?"}; this firmware is made for ${FIRMWARE_VERSION} or later: update Espruino (the Web IDE's firmware updater)`);
    }

    // 2. Stop the old program before touching the files it runs from.
    result.stage = "reset";
    send(lines.reset);
    await sleep(t.settle);
    await ask("reset", lines.hello, t.reply);
    log("stopped   the old program (reset())");

    // 3. Make room.
    result.stage = "prepare";
    const [stats, boots] = (await ask("prepare", (i) => lines.prepare(i, plan), t.compact)) as [{ freeBytes: number }, string[]];
    const need = plan.files.reduce((a, f) => a + storageSize(f), 0);
    if (stats && stats.freeBytes < need) {
      throw new Failure(`Storage has ${stats.freeBytes} bytes free, the files need ${need}: erase other files (require("Storage").eraseAll() clears everything)`);
    }
    const known = new Set(plan.files.map((f) => f.name));
    result.otherBoot = (boots || []).filter((b) => !known.has(b));
    if (result.otherBoot.length) {
      result.warnings.push(`Storage also holds ${result.otherBoot.join(", ")}, which Espruino runs at boot as well; erase it unless you want it (require("Storage").erase(${JSON.stringify(result.otherBoot[0])}))`);
    }

    // 4. Write.
    for (const f of plan.files) {
      result.stage = `write ${f.name}`;
      result.wrote = true;
      for (let off = 0; off < f.data.length || off === 0; off += CHUNK) {
        await ask(`writing ${f.name} at byte ${off}`, (i) => lines.write(i, f, off), t.write);
      }
      log(`wrote     ${f.name} ${f.data.length} bytes`);
    }

    // 5. Compact, then 6. read back what Storage now holds.
    result.stage = "compact";
    const [trash, free] = (await ask("compact", lines.compact, t.compact)) as [number, number];
    result.free = free;
    log(`storage   ${free} bytes free${trash ? ` (compacted: ${trash} bytes of old copies reclaimed)` : ""}`);
    result.stage = "verify";
    const got = (await ask("verify", (i) => lines.verify(i, plan), t.reply)) as ([number, number] | null)[];
    result.readBack = {};
    const bad: string[] = [];
    plan.files.forEach((f, i) => {
      const r = Array.isArray(got) ? got[i] : null;
      result.readBack![f.name] = r ?? null;
      const want: [number, number] = [f.data.length, crc32(f.data)];
      if (!r) bad.push(`${f.name} is missing`);
      else if (r[0] !== want[0]) bad.push(`${f.name} holds ${r[0]} bytes, not ${want[0]}`);
      else if (r[1] >>> 0 !== want[1]) bad.push(`${f.name} has CRC32 ${hex(r[1])}, not ${hex(want[1])}`);
    });
    if (bad.length) throw new Failure(`read-back differs from what was sent: ${bad.join("; ")}`);
    log(`verified  ${plan.files.map((f) => `${f.name} CRC32 ${hex(crc32(f.data))}`).join(", ")} (read back from the board)`);

    // 7. Start it, and show what it says first.
    result.stage = "start";
    watching = [];
    send(lines.load);
    await sleep(t.watch);
    result.started = watching;
    watching = undefined;
    result.ok = true;
    result.stage = "done";
    return result;
  } catch (e) {
    if (!(e instanceof Failure)) throw e;
    result.error = e.message;
    if (result.wrote && !closed) {
      // A half-written or wrong program must not run at the next boot.
      const id = ++n;
      send(lines.eraseProgram(id, plan));
      // Its own short wait, even past the total: this leaves the board safe.
      const a = await waitFor(id, t.reply, true);
      result.error += a && a !== "closed" && a !== "total" && a.ok
        ? `; ${plan.program} was erased, so the board runs nothing at boot: flash again`
        : `; the board may hold a partial ${plan.program}: flash again`;
    }
    return result;
  }
}

const hex = (x: number) => "0x" + (x >>> 0).toString(16).padStart(8, "0");
