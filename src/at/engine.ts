/**
 * The AT engine: frames the modem's UART stream and runs one command at a time.
 * Drivers in src/modem/ code against exactly this public surface.
 *
 * Stream framing (feed() takes chunks of any size, split anywhere):
 * - Lines end with "\r\n" (a bare "\n" works too); they are trimmed, empty
 *   lines are ignored. A line longer than 256 bytes (plus its "\r") is
 *   dropped (logged "long") and framing resumes after the next "\n"; so the
 *   engine never holds more than 257 bytes plus the chunk being fed.
 * - ">" (or "> ") at the start of a line is the send prompt: it has no line
 *   end. It writes the data of the `data` command in flight, else is ignored.
 * - "+IPD,<len>:", "+IPD,<id>,<len>:", "+IPD,<len>,<ip>,<port>:" and
 *   "+IPD,<id>,<len>,<ip>,<port>:" at the start of a line are followed by
 *   exactly <len> raw bytes (anything: "\r\n", "OK", "+IPD"...). They go to
 *   onData AS THEY ARRIVE, in one or more pieces that add up to <len> per frame
 *   (the Transport contract is "chunks of any size" anyway), so no frame is
 *   ever buffered and no frame size needs a limit.
 *
 * Lines, in this order:
 * 1. a line equal to the last command sent is its echo: dropped;
 * 2. with a command in flight, a final ends it (prefix match): the command's
 *    `finals`, then "OK" (not with `okNotFinal`, nor for a `data` command
 *    before its data was written: ESP8266 says "OK" before its ">"),
 *    "ERROR", "+CME ERROR", "+CMS ERROR", "SEND OK", "SEND FAIL", "FAIL";
 * 3. a known URC (below, also with a "0," / "0, " link prefix) goes to onUrc,
 *    even mid-reply, unless it is "+XYZ..." and the command in flight contains
 *    "+XYZ" (so AT+CREG? gets its "+CREG: 0,1" in `lines`);
 * 4. any other line goes to the command in flight's `lines` (at most 32),
 *    or to onUrc when idle.
 * URCs: "WIFI ...", "CLOSED", "CONNECT..." (CONNECT OK/FAIL, ESP's "0,CONNECT"),
 * "ALREADY CONNECT", "ready", "busy ...", "+PDP", "CLOSE OK", "RDY",
 * "Call Ready", "SMS Ready", "NORMAL POWER DOWN", "UNDER-VOLTAGE...", "+CPIN",
 * "+CREG", "+CGREG", "+CFUN", "+IPD" (without ':').
 *
 * Commands: one in flight, at most 8 queued; a command sent to a full queue
 * ends with final "BUSY" (its done() runs from a 0 ms timer, never inside
 * send()). A `data` command writes its data once, on the first ">" after the
 * command was written, never before, then waits for SEND OK/SEND FAIL/ERROR.
 * TIMEOUT: the command ends, and the engine turns "stale": it sends nothing
 * until no line has arrived for 500 ms; lines arriving meanwhile that are
 * not URCs (the late reply) are dropped. A reply later than that quiet gap
 * cannot be told apart from the next command's: pick timeouts accordingly.
 * Every done() is called exactly once and may call send() again; a done()
 * that throws is logged. feed() never throws (a handler that throws there
 * costs the rest of that chunk, logged).
 * A `secret` command is logged as "AT+XYZ=<hidden>"; line contents are never logged.
 */
import type { Bytes, Clock } from "../session/transport";

/** The modem's UART as the engine needs it: Espruino's SerialN fits. */
export interface Uart {
  write(data: string): void;
}

export interface AtReply {
  /**
   * The line that ended the command: "OK", "ERROR", "+CME ERROR: 10",
   * "SEND OK", "SEND FAIL", one of the command's own `finals`, "TIMEOUT"
   * when nothing final came in time, "ABORTED" (abort()), "BUSY" (queue full).
   */
  final: string;
  /** Intermediate lines received while the command was in flight (no echo). */
  lines: string[];
}

export interface AtCommand {
  /** The text to send without "\r\n"; "" sends nothing and only waits (for "ready" and the like). */
  cmd: string;
  /** Milliseconds before the command ends with final "TIMEOUT". */
  timeout: number;
  /**
   * Extra lines (matched as prefixes) that end this command besides the
   * defaults. With `okNotFinal`, "OK" is an intermediate line (SIM800's
   * CIPSTART answers "OK" and then "CONNECT OK").
   */
  finals?: string[];
  okNotFinal?: boolean;
  /** Bytes to write once the ">" prompt arrives (CIPSEND); never before it. */
  data?: Bytes;
  /** The command text holds a secret (password, APN credentials): never log it. */
  secret?: boolean;
  done(reply: AtReply): void;
}

/** Quiet gap (ms) required after a TIMEOUT before the next command is sent. */
const GUARD = 500;
/** Default finals besides "OK" (prefix match). */
const FIN = /^(\+CM. )?ERROR|^(SEND )?FAIL|^SEND OK/;
/** Known URCs (prefix match, optional "0," / "0, " link prefix). */
const URC = /^(\d, ?)?(WIFI|CLOSE|CONNECT|ALREADY|ready|busy |RDY|Call|SMS|NORMAL|UNDER|\+(C(PIN|G?REG|FUN)|IPD|PDP))/;

/**
 * State lives in constructor locals and the methods are closures over them:
 * the minifier shortens locals to one letter but never `this.x`, and this
 * engine must stay small. The surface is the one in the contract.
 */
export class AtEngine {
  /** Unsolicited lines (URCs) and lines that belong to no command. Set it before the first feed(). */
  onUrc!: (line: string) => void;
  /**
   * Payload bytes of "+IPD" frames, exactly <len> bytes per frame, possibly in
   * several pieces. `id` is the link id of the mux forms, else -1. Set it before the first feed().
   */
  onData!: (bytes: Bytes, id: number) => void;
  /** Feed every chunk the UART delivers, of any size. Never throws. */
  feed!: (chunk: string) => void;
  /** Queues a command; one is in flight at a time, at most 8 wait (else final "BUSY"). */
  send!: (command: AtCommand) => void;
  /** Ends the command in flight and every queued one with final "ABORTED" and clears the buffers. */
  abort!: () => void;

  constructor(uart: Uart, clock: Clock, log?: (line: string) => void) {
    const self = this,
      say = log || (() => {});
    // Left unset where undefined reads as intended (falsy, no handle): smaller.
    let buf = "", // unframed bytes, always starting at a line start
      queue: AtCommand[] = [],
      owed!: number, // raw bytes still owed to the current +IPD frame
      link!: number, // link id of the current frame
      skip!: boolean, // dropping a long line up to its "\n"
      stale!: boolean, // a command timed out: waiting for a quiet gap
      cur!: AtCommand | null, // in flight
      lines!: string[],
      last!: string, // last command text sent (its echo is dropped)
      wrote!: boolean, // nothing (more) to write for `cur`: no data, or written
      timer!: unknown, // cur's timeout
      guard!: unknown; // the quiet-gap timer while stale

    // Clears a live timer and returns null to store in its place. Never pass a
    // fired handle (Espruino reuses timer ids; clearTimeout(undefined) clears all).
    const clr = (h: unknown): null => {
      if (h != null) clock.clearTimeout(h);
      return null;
    };
    const fin = (c: AtCommand, f: string, l: string[]) => {
      try {
        c.done({ final: f, lines: l });
      } catch (e) {
        say("" + e);
      }
    };
    const next = () => {
      const c = queue[0];
      if (cur || stale || !c) return;
      queue.shift();
      cur = c;
      lines = [];
      wrote = c.data == null;
      last = c.cmd;
      timer = clock.setTimeout(() => {
        timer = null;
        end("TIMEOUT");
      }, c.timeout);
      if (last) {
        say(c.secret ? last.split("=")[0] + "=<hidden>" : last);
        uart.write(last + "\r\n");
      }
    };
    // Stale until no line has arrived for GUARD ms.
    const quiet = () => {
      stale = true;
      clr(guard);
      guard = clock.setTimeout(() => {
        guard = null;
        stale = false;
        next();
      }, GUARD);
    };
    const end = (f: string) => {
      const c = cur;
      if (!c) return;
      timer = clr(timer);
      cur = null;
      if (f == "TIMEOUT") quiet();
      fin(c, f, lines);
      next();
    };

    self.feed = (chunk) => {
      let b = buf + chunk;
      try {
        while (b) {
          if (owed) {
            const k = b.slice(0, owed);
            owed -= k.length;
            b = b.slice(k.length);
            self.onData(k, link);
            continue;
          }
          const p = b.indexOf("\n"),
            m = cur;
          if (skip) {
            skip = p < 0;
            b = skip ? "" : b.slice(p + 1);
            continue;
          }
          if (b[0] == ">") {
            if (m && !wrote) {
              wrote = true;
              uart.write(m.data!);
            }
            b = b.slice(1);
            continue;
          }
          const h = /^ *\+IPD,([\d.,]+):/.exec(b);
          if (h) {
            // 1 or 3 fields: <len>[,ip,port]; 2 or 4: <id>,<len>[,ip,port]
            const f = h[1].split(","),
              e = f.length % 2;
            link = e ? -1 : +f[0];
            owed = +f[1 - e] | 0;
            b = b.slice(h[0].length);
            continue;
          }
          // at most 256 bytes plus "\r"
          if ((p < 0 ? b.length : p) > 257) {
            say("long");
            skip = true;
            continue;
          }
          if (p < 0) break;
          const l = b.slice(0, p).trim();
          b = b.slice(p + 1);
          // Empty lines and the echo are dropped; a final ends the command in
          // flight; URCs go to onUrc; other lines go to the command in flight
          // (at most 32), are dropped while stale, go to onUrc when idle.
          if (!l || l == last) continue;
          if (m && ((m.finals || []).some((x) => !l.indexOf(x)) || FIN.test(l) || (l == "OK" && wrote && !m.okNotFinal))) end(l);
          else if ((URC.test(l) && !(m && l[0] == "+" && m.cmd.indexOf(l.split(":")[0]) > 0)) || !(m || stale)) self.onUrc(l);
          else if (m) lines.length < 32 && lines.push(l);
          else quiet();
        }
      } catch (e) {
        b = "";
        say("" + e);
      }
      buf = b;
    };

    self.send = (c) => {
      if (queue.length > 7) clock.setTimeout(() => fin(c, "BUSY", []), 0);
      else {
        queue.push(c);
        next();
      }
    };

    self.abort = () => {
      const q = queue;
      queue = [];
      buf = "";
      owed = 0;
      skip = stale = false;
      guard = clr(guard);
      end("ABORTED");
      for (const x of q) fin(x, "ABORTED", []);
    };
  }
}
