/**
 * Reads a modem transcript fixture (test/fixtures/<modem>/*.txt; the format is
 * in those folders' README): one step per directive line, `@include` expanded,
 * `#` comments and blank lines skipped; and replays one against a driver
 * (replayTranscript, describeTranscripts), parameterised by a ReplayDialect.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { AtEngine } from "../../src/at/engine";
import type { Transport } from "../../src/transport";
import type { ModemState, ModemStateDetail } from "../../src/modem/driver";
import { FakeClock } from "./fake-clock";

export interface Step {
  file: string;
  line: number;
  op: string;
  arg: string;
}

export function loadTranscript(dir: string, file: string): Step[] {
  const out: Step[] = [];
  fs.readFileSync(path.join(dir, file), "latin1")
    .split("\n")
    .forEach((raw, i) => {
      const text = raw.replace(/\r$/, "");
      if (!text.trim() || text.startsWith("#")) return;
      if (text.startsWith("@include ")) {
        out.push(...loadTranscript(dir, text.slice(9).trim()));
        return;
      }
      const m = /^(@opts|!|>>fill|>>|>|<<|<|~|=)(?: (.*))?$/.exec(text);
      if (!m) throw new Error(`${file}:${i + 1}: cannot parse ${JSON.stringify(text)}`);
      out.push({ file, line: i + 1, op: m[1], arg: m[2] ?? "" });
    });
  return out;
}

/** A driver under replay: a transport that reports its states. */
export interface ReplayedModem extends Transport {
  onState: (state: ModemState, why?: ModemStateDetail) => void;
}

/** What differs between the modems' transcript replays. */
export interface ReplayDialect {
  /** The fixtures' folder. */
  dir: string;
  /**
   * The driver for one fixture, on engine and clock, given its `@opts` line
   * parsed (undefined without one); its log lines go to log, board actions
   * (e.g. "hardreset") to events. checkLog runs on all log lines at the end.
   */
  start(
    engine: AtEngine,
    clock: FakeClock,
    o: Record<string, unknown> | undefined,
    log: (l: string) => void,
    events: string[],
  ): { modem: ReplayedModem; checkLog: (log: string[]) => void };
  /** Feed the engine an empty chunk once the driver is built. */
  primeEngine?: boolean;
  /** `<` lines arrive as "\r\n<line>\r\n" (else "<line>\r\n"). */
  leadingCrlf?: boolean;
  /** UART output is compared as JSON strings (else as is). */
  jsonUart?: boolean;
  /** A step's location names the file it stands in (else the fixture replayed). */
  stepFileInWhere?: boolean;
  /** Also replay each fixture with the module's output cut in seeded random chunks. */
  randomChunks?: boolean;
}

/** How the module's output is fed: as the transcript's chunks, byte by byte, or in random chunks (seeded). */
export type FeedMode = boolean | "random";

/**
 * Runs one fixture; `bytewise` true feeds the module's output one byte at a time,
 * "random" in chunks of 1 to 9 bytes drawn from a PRNG seeded by the file name.
 */
export function replayTranscript(d: ReplayDialect, file: string, bytewise: FeedMode): void {
  let seed = 7;
  for (const c of file) seed = (seed * 31 + c.charCodeAt(0)) >>> 0;
  const nextChunk = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return 1 + ((seed >>> 16) % 9);
  };
  const steps = loadTranscript(d.dir, file);
  const clock = new FakeClock();
  let uart = "";
  const log: string[] = [];
  const engine = new AtEngine({ write: (b) => void (uart += b) }, clock, (l) => log.push(l));
  const events: string[] = [];
  const states: string[] = [];
  const optLine = steps.find((s) => s.op == "@opts");
  const { modem, checkLog } = d.start(engine, clock, optLine ? JSON.parse(optLine.arg) : undefined, (l) => log.push(l), events);
  modem.onState = (s, why) => {
    states.push(why ? `${s} ${why}` : s);
    log.push(`state ${s} ${why ?? ""}`);
  };
  if (d.primeEngine) engine.feed(""); // nothing pending: the engine takes empty chunks
  const uartIs = (got: string, want: string, msg: string) => {
    if (d.jsonUart) expect(JSON.stringify(got), msg).toBe(JSON.stringify(want));
    else expect(got, msg).toBe(want);
  };
  const handler = {
    onOpen: () => events.push("open"),
    onData: (b: string) => {
      const last = events[events.length - 1];
      // The engine hands a frame over in pieces as they arrive: join adjacent pieces.
      if (last && last.startsWith("data ")) events[events.length - 1] = "data " + JSON.stringify(JSON.parse(last.slice(5)) + b);
      else events.push("data " + JSON.stringify(b));
    },
    onClose: (r: string) => events.push("close " + r),
  };
  const feed = (s: string) => {
    if (bytewise == "random") for (let at = 0, n = 0; at < s.length; at += n) engine.feed(s.slice(at, at + (n = nextChunk())));
    else if (bytewise) for (const c of s) engine.feed(c);
    else engine.feed(s);
    clock.advance(0);
  };
  for (const st of steps) {
    const where = `${d.stepFileInWhere ? st.file : file}:${st.line} (${st.op} ${st.arg})${bytewise == "random" ? " in random chunks" : bytewise ? " bytewise" : ""}`;
    const { op, arg } = st;
    if (op == "@opts") continue;
    if (op == "!") {
      const [verb, ...rest] = arg.split(" ");
      if (verb == "open") modem.open(rest[0], Number(rest[1]), handler);
      else if (verb == "close") modem.close();
      else if (verb == "write") modem.write(JSON.parse(rest.join(" ")));
      else if (verb == "fill") modem.write(rest[1].repeat(Number(rest[0])));
      else throw new Error(`${where}: unknown action`);
      clock.advance(0);
    } else if (op == ">" || op == ">>" || op == ">>fill") {
      const want = op == ">" ? arg + "\r\n" : op == ">>" ? JSON.parse(arg) : arg.split(" ")[1].repeat(Number(arg.split(" ")[0]));
      uartIs(uart.slice(0, want.length), want, where);
      uart = uart.slice(want.length);
    } else if (op == "<") feed((d.leadingCrlf ? "\r\n" : "") + arg + "\r\n");
    else if (op == "<<") feed(JSON.parse(arg));
    else if (op == "~") clock.advance(Number(arg));
    else if (op == "=") {
      if (arg == "none") {
        uartIs(uart, "", `${where}: UART output`);
        expect(events, `${where}: events`).toEqual([]);
      } else if (arg.startsWith("state ")) {
        // the next report with that text; reports before it are skipped
        const i = states.indexOf(arg.slice(6));
        expect(i, `${where}: state reports ${JSON.stringify(states)}`).toBeGreaterThanOrEqual(0);
        states.splice(0, i + 1);
      } else if (arg.startsWith("data ")) expect(events.shift(), where).toBe("data " + JSON.stringify(JSON.parse(arg.slice(5))));
      else expect(events.shift(), where).toBe(arg);
    }
  }
  uartIs(uart, "", `${file}: UART output left at the end`);
  expect(events, `${file}: events left at the end`).toEqual([]);
  checkLog(log);
}

/** The suite `title`: every fixture in d.dir (at least 15) replayed in its chunks, and byte by byte. */
export function describeTranscripts(title: string, d: ReplayDialect): void {
  const files = fs.readdirSync(d.dir).filter((f) => f.endsWith(".txt")).sort();
  describe(title, () => {
    it("has fixtures", () => {
      expect(files.length).toBeGreaterThanOrEqual(15);
    });
    for (const f of files) {
      it(f, () => replayTranscript(d, f, false));
      it(f + " (byte by byte)", () => replayTranscript(d, f, true));
      if (d.randomChunks) it(f + " (random chunks)", () => replayTranscript(d, f, "random"));
    }
  });
}
