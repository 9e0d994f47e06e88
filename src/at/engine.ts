/**
 * The AT engine: frames the modem's UART stream and runs one command at a time.
 * Drivers in src/modem/ code against exactly this public surface.
 *
 * Stream framing (feed() takes chunks of any size, split anywhere):
 * - Lines end with "\r\n" (a bare "\n" works too); they are trimmed, empty
 *   lines are ignored. A line longer than 256 bytes (MAX_LINE_BYTES; plus its "\r") is
 *   dropped (logged "long") and framing resumes after the next "\n"; so the
 *   engine never holds more than 257 bytes plus the chunk being fed.
 * - "> " at the start of a line is the send prompt: it has no line end. It
 *   writes the data of the `data` command in flight, else is ignored. Both
 *   modems send the space; a ">" followed by anything else is line noise, and a
 *   lone ">" waits for the next byte to tell which.
 * - "+IPD,<len>:", "+IPD,<id>,<len>:", "+IPD,<len>,<ip>,<port>:" and
 *   "+IPD,<id>,<len>,<ip>,<port>:" (ESP8266, SIM800), and the whole lines
 *   "+IPD<len>" and "+CCHRECV: DATA,<id>,<len>" (SIMCom LTE: TCP and SSL) at
 *   the start of a line are followed by
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
 * 3. a URC goes to onUrc, even mid-reply: a line matching one of `urcs` (the
 *    driver registers its modem's patterns there), or any "+XYZ..." line while
 *    a command is in flight, unless that command contains "+XYZ" (AT+CREG?
 *    gets its "+CREG: 0,1");
 * 4. any other line goes to the command in flight's `lines` (at most 32),
 *    or to onUrc when idle.
 * The engine knows AT, not a modem: which other lines are unsolicited ("CLOSED",
 * "WIFI DISCONNECT", "RDY" ...) is the driver's to say, in `urcs`.
 *
 * Commands: one in flight, at most 8 queued; a command sent to a full queue
 * ends with final "BUSY" (its done() runs from a 0 ms timer, never inside
 * send()). A `data` command writes its data once, on the first ">" after the
 * command was written, never before, then waits for SEND OK/SEND FAIL/ERROR.
 * A healthy modem prompts at once, so the wait for the prompt has its own bound:
 * a `data` command (with data: not "") with no "> " within 3 s ends with TIMEOUT;
 * its own timeout starts once the data is written.
 * TIMEOUT: the command ends, and the engine turns "stale": it sends nothing
 * until no line has arrived for 500 ms; lines arriving meanwhile that are
 * not URCs (the late reply) are dropped. A reply later than that quiet gap
 * cannot be told apart from the next command's: pick timeouts accordingly.
 * Every done() is called exactly once and may call send() again; a done()
 * that throws is logged. feed() never throws (a handler that throws there
 * costs the rest of that chunk, logged).
 * A `secret` command is logged as "AT+XYZ=<hidden>"; line contents are never logged.
 */
import type { Bytes, Clock } from "../transport";

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

/** Quiet gap required after a TIMEOUT before the next command is sent. */
const QUIET_GAP_MS = 500;
/** Longest wait for the "> " prompt of a `data` command. */
const PROMPT_TIMEOUT_MS = 3e3;
/** Longest line kept, without its "\r" (a longer one is dropped, logged "long"). */
const MAX_LINE_BYTES = 256;
/** Intermediate lines kept per command. */
const MAX_REPLY_LINES = 32;
/** Commands waiting behind the one in flight. */
const MAX_QUEUED = 8;
// Espruino's RegExp alternates only at the top level and has no "?" quantifier
// (scripts/build/espruino-check.ts enforces it), hence the flat lists of "^" prefixes.
/** Default finals besides "OK" (prefix match). */
const DEFAULT_FINALS = /^ERROR|^\+CM. ERROR|^FAIL|^SEND FAIL|^SEND OK/;

export interface AtEngine {
  /**
   * The modem's URC patterns, registered by its driver (src/modem/*.ts): prefix
   * regexes of at most six top-level alternatives each (Espruino 2v29 leaks the
   * tested string when about twelve alternatives of one regex fail in a row;
   * docs/espruino.md). None until a driver sets them; set them before the first feed().
   */
  urcs: RegExp[];
  /** Unsolicited lines (URCs) and lines that belong to no command. Set it before the first feed(). */
  onUrc: (line: string) => void;
  /**
   * Payload bytes of "+IPD" frames, exactly <len> bytes per frame, possibly in
   * several pieces. `id` is the link id of the mux forms, else -1. Set it before the first feed().
   */
  onData: (bytes: Bytes, id: number) => void;
  /** Feed every chunk the UART delivers, of any size. Never throws. */
  feed: (chunk: string) => void;
  /** Queues a command; one is in flight at a time, at most 8 wait (else final "BUSY"). */
  send: (command: AtCommand) => void;
  /**
   * Ends the command in flight and every queued one with final "ABORTED" and clears
   * the buffers. `live`: the modem is fine (the link is only being given up): the
   * buffers stay (the rest of a +IPD frame still goes to onData), and a
   * `data` command whose "> " has not come yet may still be prompted for, and the
   * modem would take the next bytes as its data: for 3 s, or until a line other
   * than the prompt and a quiet gap, the engine sends nothing; a prompt then gets
   * the data, and the modem's answer passes in the quiet gap that follows.
   */
  abort: (live?: boolean) => void;
}

/**
 * `new AtEngine(uart, clock, log?)`. A plain constructor function (smaller than
 * a class); state lives in its locals and the methods are closures over them
 * (a local costs one letter per use, `this.x` six).
 */
export const AtEngine = function (this: AtEngine, uart: Uart, clock: Clock, log?: (line: string) => void) {
  // One `let` for everything (state, then the helpers): each extra `const`/`let`
  // statement costs bytes. State left unset reads as intended (falsy, no handle).
  let self = this,
    say = (message: unknown) => log && log("" + message),
    unframed = "", // bytes not framed yet, always starting at a line start
    queue: AtCommand[] = [],
    owedBytes: number | undefined, // raw bytes still owed to the current +IPD frame
    frameLinkId: number, // link id of the current frame
    skippingLongLine: boolean | number | undefined, // dropping a long line up to its "\n"
    inFlight: AtCommand | 0 | undefined, // the command in flight
    replyLines!: string[],
    lastCommandText: string, // last command text sent (its echo is dropped)
    dataWritten: boolean | number, // nothing (more) to write for `inFlight`: no data, or written
    owedPromptData: Bytes | boolean | 0 | undefined, // the data of an aborted command still owed to its prompt (while stale)
    // The one timer: inFlight's timeout or, with no command in flight, the quiet gap
    // after a TIMEOUT (the engine is "stale"). So inFlight implies timer, and timer
    // without inFlight means stale. timer is falsy once its timer fired or was cleared:
    // Espruino reuses ids and throws on clearing a fired one. Handles are truthy
    // (Espruino's ids start at 1, Node's are objects).
    timer: unknown,
    complete = (command: AtCommand, final: string, lines?: string[]) => {
      try {
        command.done({ final: final, lines: lines || [] });
      } catch (thrown) {
        say(thrown);
      }
    },
    // Clears the timer; given a number, sets it: when it fires, inFlight ends with
    // TIMEOUT and the engine turns stale, or (no inFlight: stale) next() runs.
    armTimer = (delayMs?: number) => {
      if (timer) clock.clearTimeout(timer);
      timer =
        delayMs != null
          ? clock.setTimeout(() => {
              timer = 0;
              // a data command that timed out waiting for its prompt: a late "> " still
              // gets its bytes, or the modem would take the next command for them
              owedPromptData = inFlight && !dataWritten && inFlight.data;
              inFlight ? end("TIMEOUT", owedPromptData ? PROMPT_TIMEOUT_MS : QUIET_GAP_MS) : next();
            }, delayMs)
          : delayMs;
    },
    // Sends the next queued command unless one is in flight or the engine is stale.
    next = (_ignored?: unknown) => {
      if (!timer && (inFlight = queue.shift())) {
        replyLines = [];
        dataWritten = inFlight.data == null;
        // a number (not undefined: that would only clear); a command with data first waits for its prompt
        armTimer(inFlight.data ? PROMPT_TIMEOUT_MS : +inFlight.timeout);
        if ((lastCommandText = inFlight.cmd)) {
          say(inFlight.secret ? lastCommandText.split("=")[0] + "=<hidden>" : lastCommandText);
          uart.write(lastCommandText + "\r\n");
        }
      }
    },
    // Ends inFlight (if any) with `final` and clears the timer; a `quietGapMs` (after a
    // TIMEOUT) keeps the engine stale until no line has arrived for that long.
    end = (final: string, quietGapMs?: number, ended?: AtCommand | 0) => {
      ended = inFlight;
      armTimer(quietGapMs);
      if (ended) {
        inFlight = 0;
        complete(ended, final, replyLines);
        next();
      }
    };

  // none until the driver registers its modem's
  self.urcs = [];

  // rest, match, newlineAt, line: scratch locals (extra parameters cost less than a `let`)
  self.feed = (chunk: string, rest?: any, match?: any, newlineAt?: any, line?: any) => {
    rest = unframed + chunk;
    try {
      while (rest) {
        newlineAt = rest.indexOf("\n");
        if (owedBytes) {
          // a modem still delivering received data prompts after it: the prompt's wait
          // (or the stale time while a prompt is owed its bytes) starts again
          if ((inFlight && !dataWritten) || owedPromptData) armTimer(PROMPT_TIMEOUT_MS);
          match = rest.slice(0, owedBytes);
          rest = rest.slice(owedBytes);
          owedBytes -= match.length;
          self.onData(match, frameLinkId);
        } else if (!skippingLongLine && (match = /^> |^ *\+IPD,([\d.,]+):|^\+IPD(\d+)\r\n|^\+CCHRECV: DATA,(\d+,\d+)\r\n/.exec(rest))) {
          rest = rest.slice(match[0].length);
          if ((match = match[1] || match[2] || match[3])) {
            // 1 or 3 fields: <len>[,ip,port]; 2 or 4: <id>,<len>[,ip,port]
            match = match.split(",");
            newlineAt = match.length % 2;
            frameLinkId = newlineAt ? -1 : +match[0];
            owedBytes = match[1 - newlineAt] | 0;
          } else if (inFlight && !dataWritten) {
            dataWritten = 1;
            uart.write(inFlight.data!); // !dataWritten: it has data
            armTimer(+inFlight.timeout); // now for SEND OK
          } else if (owedPromptData) {
            // the prompt of an aborted command: its data (still stale: the answer is a late reply)
            uart.write(owedPromptData as Bytes);
            owedPromptData = 0;
          }
        } else if (newlineAt < 0 && !skippingLongLine && !rest[MAX_LINE_BYTES + 1]) break; // a line of at most MAX_LINE_BYTES plus "\r" is coming
        else {
          // A line; or a long one (dropped up to its "\n", even across chunks) or the rest of one.
          line = skippingLongLine || newlineAt < 0 || newlineAt > MAX_LINE_BYTES + 1 ? (skippingLongLine || say("long"), "") : rest.slice(0, newlineAt).trim();
          skippingLongLine = newlineAt < 0;
          rest = skippingLongLine ? "" : rest.slice(newlineAt + 1);
          // Empty lines and the echo are dropped; a final ends the command in
          // flight; URCs go to onUrc; other lines go to the command in flight
          // (at most MAX_REPLY_LINES), are dropped while stale, go to onUrc when idle.
          if (line && line != lastCommandText) {
            if (inFlight && ((inFlight.finals || []).some((final: string) => !line.indexOf(final)) || DEFAULT_FINALS.test(line) || (line == "OK" && dataWritten && !inFlight.okNotFinal))) end(line);
            else if ((inFlight && line[0] == "+" && lastCommandText.indexOf(line.split(":")[0]) < 1) || self.urcs.some((urc) => urc.test(line)) || !timer) self.onUrc(line);
            else if (inFlight) replyLines[MAX_REPLY_LINES - 1] || replyLines.push(line);
            else armTimer(QUIET_GAP_MS);
          }
        }
      }
    } catch (thrown) {
      rest = "";
      say(thrown);
    }
    unframed = rest;
  };

  // queue[MAX_QUEUED - 1]: the queue is full
  // next() takes (and ignores) push's result: one expression
  self.send = (command) => (queue[MAX_QUEUED - 1] ? clock.setTimeout(() => complete(command, "BUSY"), 0) : next(queue.push(command)));

  // aborted: scratch local
  self.abort = (live, aborted?: AtCommand[]) => {
    aborted = queue;
    queue = [];
    // a live modem goes on talking: the framing stays (a +IPD frame under way, a partial line or prompt)
    live || ((unframed = ""), (owedBytes = skippingLongLine = 0));
    owedPromptData = live && inFlight && !dataWritten && inFlight.data;
    end("ABORTED", owedPromptData ? PROMPT_TIMEOUT_MS : undefined);
    aborted.map((command) => complete(command, "ABORTED"));
  };
} as unknown as new (uart: Uart, clock: Clock, log?: (line: string) => void) => AtEngine;
