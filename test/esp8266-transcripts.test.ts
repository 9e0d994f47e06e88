/**
 * Replays the vendor-transcript fixtures in test/fixtures/esp8266/ (format in
 * its README.md) against the ESP8266 driver over the real AT engine and a fake
 * clock: the driver must write exactly the commands and bytes the transcript
 * shows, and report exactly its transport events. Each fixture runs twice:
 * the module's output fed in the transcript's chunks, and byte by byte.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { AtEngine } from "../src/at/engine";
import { Esp8266, type EspOptions } from "../src/modem/esp8266";
import { FakeClock } from "./support/fake-clock";
import { loadTranscript, type Step } from "./support/transcript";

const DIR = path.join(import.meta.dirname, "fixtures", "esp8266");

const load = (file: string): Step[] => loadTranscript(DIR, file);

/** Runs one fixture; `bytewise` feeds the module's output one byte at a time. */
function replay(file: string, bytewise: boolean) {
  const steps = load(file);
  const clock = new FakeClock();
  let uart = "";
  const log: string[] = [];
  const engine = new AtEngine({ write: (d) => void (uart += d) }, clock, (l) => log.push(l));
  const events: string[] = [];
  const states: string[] = [];
  let opts: EspOptions = { ssid: "lab", password: "secret" };
  const optLine = steps.find((s) => s.op == "@opts");
  if (optLine) {
    const o = JSON.parse(optLine.arg);
    opts = { ...o };
    if (o.hardReset) opts.hardReset = (done) => (events.push("hardreset"), done());
  }
  opts.log = (l) => log.push(l);
  const modem = new Esp8266(engine, clock, opts);
  modem.onState = (s, why) => {
    states.push(why ? `${s} ${why}` : s);
    log.push(`state ${s} ${why ?? ""}`);
  };
  engine.feed(""); // nothing pending: the engine takes empty chunks
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
    if (bytewise) for (const c of s) engine.feed(c);
    else engine.feed(s);
    clock.advance(0);
  };
  for (const st of steps) {
    const where = `${file}:${st.line} (${st.op} ${st.arg})${bytewise ? " bytewise" : ""}`;
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
      expect(uart.slice(0, want.length), where).toBe(want);
      uart = uart.slice(want.length);
    } else if (op == "<") feed(arg + "\r\n");
    else if (op == "<<") feed(JSON.parse(arg));
    else if (op == "~") clock.advance(Number(arg));
    else if (op == "=") {
      if (arg == "none") {
        expect(uart, `${where}: UART output`).toBe("");
        expect(events, `${where}: events`).toEqual([]);
      } else if (arg.startsWith("state ")) {
        // the next report with that text; reports before it are skipped
        const i = states.indexOf(arg.slice(6));
        expect(i, `${where}: state reports ${JSON.stringify(states)}`).toBeGreaterThanOrEqual(0);
        states.splice(0, i + 1);
      }
      else if (arg.startsWith("data ")) expect(events.shift(), where).toBe("data " + JSON.stringify(JSON.parse(arg.slice(5))));
      else expect(events.shift(), where).toBe(arg);
    }
  }
  expect(uart, `${file}: UART output left at the end`).toBe("");
  expect(events, `${file}: events left at the end`).toEqual([]);
  // The password never reaches a log line (the SSID may).
  const pw = opts.password;
  for (const l of log) expect(l.includes(pw), `log line ${JSON.stringify(l)} shows the password`).toBe(false);
}

const files = fs.readdirSync(DIR).filter((f) => f.endsWith(".txt")).sort();

describe("ESP8266 driver replays vendor transcripts", () => {
  it("has fixtures", () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
  });
  for (const f of files) {
    it(f, () => replay(f, false));
    it(f + " (byte by byte)", () => replay(f, true));
  }
});
