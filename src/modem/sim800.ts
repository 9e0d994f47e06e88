/**
 * SIM800 driver: one TCP socket over SIMCom's built-in TCP/IP stack, single
 * connection (AT+CIPMUX=0), non-transparent mode. Implements Transport.
 *
 *   new Sim800(engine, clock, { apn, user?, password?, powerOn?, log?, regDeadline?, ssl? })
 *   (exported as Modem too, the name the app uses)
 *
 * The board wires engine.feed to the UART; the driver owns engine.onUrc/onData.
 * modem.onState(state, why?) (default: to log) reports "resetting" (a PWRKEY
 * pulse), "attaching" (why: the AT+CSQ line, "+CSQ: <rssi 0..31, 99
 * unknown>,<ber>"), "joined" (attached with an IP; also after a socket closed
 * while the bearer stays up), "connecting", "connected" and "failed" (+ a
 * short reason, never a secret).
 *
 * open() while the bearer is down: AT (the auto-baud probe, repeated every 2 s
 * until the module answers), ATE0, AT+CPIN? (READY, else fails with the SIM's answer), AT+CSQ,
 * AT+CREG? (polled each second until 1 home or 5 roaming; regDeadline, from the
 * open, ends both polls), AT+CGATT=1, AT+CIPSHUT, AT+CIPMUX=0, AT+CIPHEAD=1,
 * AT+CSTT (secret), AT+CIICR, AT+CIFSR (the IP line, no OK). Then, and
 * directly while the bearer is up: AT+CIPSTART -> OK, CONNECT OK | CONNECT
 * FAIL | ALREADY CONNECT. With ssl (TLS), AT+CIPSSL=1 comes first (ERROR: the
 * firmware has no SSL; the open fails with "+CIPSSL ERROR"); the module then
 * runs the handshake after the TCP connect, checks no certificate (nothing
 * sets AT+SSLOPT / AT+SSLSETCERT) and sends no SNI; a failed handshake ends
 * AT+CIPSTART with CONNECT FAIL, CLOSE OK, CLOSED or ERROR, or shows later as
 * SEND FAIL: each ends the open() like any failure. Bytes go out with AT+CIPSEND=<n>, n <= 1460 (the
 * fixed-length form: the Ctrl-Z form cannot carry 0x1A), one at a time, at
 * most 4,096 bytes waiting; they come in as "+IPD,<n>:" frames. close()
 * abandons a send in flight (the session gave the link up: nothing waits behind
 * a stuck CIPSEND), sends AT+CIPCLOSE and reports onClose on its answer.
 * "CLOSED" ends the socket; "+PDP: DEACT", "RDY", "... POWER DOWN" end it and
 * the bearer (next open: full bring-up, AT+CIPSHUT first). A TIMEOUT (the
 * engine gives a CIPSEND 3 s for its "> ") means a stalled modem: the open
 * ends at once and so does the bearer. The next open() probes with AT until
 * the module answers, and carries on from there (no restart: AT+CIPSHUT resets
 * the TCP/IP stack). With powerOn (PWRKEY wired), a module that stays silent
 * for 10 s of probing is pulsed, and again every 10 s while it stays silent:
 * PWRKEY toggles power, so a stuck module that the first pulse switched off is
 * switched on by the next. A module that powered down is pulsed at the first
 * unanswered probe.
 */
import type { AtEngine } from "../at/engine";
import type { BoardDef, Pulse } from "../board/board";
import type { Bytes, Clock, CommonCloseReason, Transport, TransportHandler } from "../transport";
import type { ModemState, ModemStateDetail } from "./driver";

/**
 * The SIM800's unsolicited lines (prefix match), registered with the AT engine:
 * link events ("CLOSED", "CLOSE OK", "CONNECT OK", "ALREADY CONNECT"), and the
 * module's own: "RDY", "Call Ready", "SMS Ready", "NORMAL POWER DOWN",
 * "UNDER-VOLTAGE ...", "+PDP: DEACT". At most six alternatives per regex
 * (docs/espruino.md).
 */
export const SIM800_URCS = [/^CLOSE|^CONNECT|^ALREADY|^\d, *C/, /^RDY|^Call|^SMS|^NORMAL|^UNDER|^\+PDP/];

/**
 * Why a SIM800 open ended (onClose, and the why of the "failed" or "joined" state
 * that goes with it): the common reasons (src/transport.ts), or the module's own
 * words, as described at the top of this file.
 */
export type Sim800CloseReason =
  | CommonCloseReason
  | "TIMEOUT" // a command went unanswered: the module is stuck (the bearer counts as down)
  | "no answer" // the AT probe went unanswered until the registration deadline
  | "no network" // AT+CREG? found no registration by the deadline
  | `+CPIN${string}` // the SIM is not ready: its answer ("+CPIN: SIM PIN"; no SIM: "+CPIN? +CME ERROR: 10")
  | `+CIPSSL ${string}` // AT+CIPSSL=1 refused (a firmware without SSL): "+CIPSSL ERROR"
  | `${string}ERROR${string}` // a step's error, "<step> <final>" ("+CIICR ERROR"), or AT+CIPSTART's / AT+CIPSEND's ("+CME ERROR: 3")
  | "SEND FAIL" | "BUSY" // AT+CIPSEND's final (BUSY: the AT engine's queue was full; AT+CIPSTART's too)
  | "CONNECT FAIL" | "ALREADY CONNECT" | "CLOSE OK" // AT+CIPSTART's final (CLOSE OK or CLOSED: a failed TLS handshake)
  | `RDY${string}` | `${string}DOWN` | `${string}DEACT`; // restarted, powered down ("NORMAL POWER DOWN"), the PDP context lost ("+PDP: DEACT")
declare module "../transport" {
  interface LinkCloseReasons {
    sim800: Sim800CloseReason;
  }
}

export interface Sim800Options {
  apn: string;
  user?: string;
  password?: string;
  /** Pulses PWRKEY / RST; calls done once the module should be booting. */
  powerOn?: (done: () => void) => void;
  /** Receives the state reports (unless onState is replaced) and never a secret. */
  log?: (line: string) => void;
  /** ms from open() (probing included) until the network must be registered (default 60000). */
  regDeadline?: number;
  /** TLS: AT+CIPSSL=1 before each AT+CIPSTART. */
  ssl?: boolean;
}

/**
 * The bring-up steps, by name: each is one command after "AT" (the packed list
 * STEP_COMMANDS below, in this order). PROBE is the auto-baud probe "AT" itself;
 * CSTT and CIPSTART are filled in (the APN credentials; open()'s host and port).
 */
const PROBE = 0; // (tested as `!index`)
const CPIN = 2;
const CSQ = 3;
const CREG = 4;
const CGATT = 5;
const CIPSHUT = 6;
const CSTT = 9;
const CIICR = 10;
const CIFSR = 11;
const CIPSTART = 12; // the last step (tested as `index > CIFSR`)
/** Steps 0..12: "", E0, +CPIN?, +CSQ, +CREG?, +CGATT=1, +CIPSHUT, +CIPMUX=0, +CIPHEAD=1, (CSTT), +CIICR, +CIFSR, (CIPSTART). */
const STEP_COMMANDS = "|E0|+CPIN?|+CSQ|+CREG?|+CGATT=1|+CIPSHUT|+CIPMUX=0|+CIPHEAD=1||+CIICR|+CIFSR|";
/** The steps that get the long time-out. */
const LONG_STEPS = 1 << CGATT | 1 << CIPSHUT | 1 << CIICR | 1 << CIPSTART;

/** The socket's states. SOCKET_CONNECTED and SOCKET_SENDING share bit 0: the socket takes bytes. */
const SOCKET_NONE = 0;
const SOCKET_CONNECTED = 1;
const SOCKET_CLOSING = 2;
const SOCKET_SENDING = 3;
type SocketState = typeof SOCKET_NONE | typeof SOCKET_CONNECTED | typeof SOCKET_CLOSING | typeof SOCKET_SENDING;

/** Time-outs: the AT probe (and the poll interval), ordinary commands and CIPCLOSE, the long steps and CIPSEND. */
const PROBE_TIMEOUT_MS = 1e3;
const COMMAND_TIMEOUT_MS = 5e3;
const LONG_TIMEOUT_MS = 85e3;
/** A silent module gets a PWRKEY pulse after this long, and again as long as it stays silent. */
const POWER_KEY_REPEAT_MS = 10e3;
/** Default of regDeadline. */
const REGISTRATION_DEADLINE_MS = 60e3;
/** SIMCom TCP/IP application note: at most 1460 bytes per AT+CIPSEND. */
const MAX_SEND_CHUNK_BYTES = 1460;
/** Bytes write() keeps waiting; more closes the socket ("overflow"). */
const MAX_QUEUED_BYTES = 4096;

/**
 * The state lives in the constructor's closure (locals minify to one letter
 * and need no `this.`); open/write/close are bound there. Time-outs (ms on the
 * injected clock: tests speed it up): AT probe and registration poll 1 s,
 * ordinary commands and CIPCLOSE 5 s; CGATT=1, CIPSHUT, CIICR, CIPSTART and
 * CIPSEND 85 s (SIMCom's maximum for CIICR; CIPSEND's "> " has the engine's 3 s).
 */
export class Sim800 implements Transport {
  /** State reports; by default they go to opts.log. */
  onState!: (state: ModemState, why?: ModemStateDetail) => void;
  open!: (host: string, port: number, handler: TransportHandler) => void;
  write!: (bytes: Bytes) => void;
  close!: () => void;

  constructor(engine: AtEngine, clock: Clock, options: Sim800Options) {
    const me = this;
    // One `let` for the state and the helpers (one declaration minifies
    // smallest). Unset locals read as undefined (falsy) where that is what
    // they start as. Extra parameters of the helpers are scratch locals.
    let /** Handler of the current open(); 0 once its onClose went out. */
      handler: TransportHandler | 0 | undefined,
      /** Generation, bumped whenever an open() ends: replies to older ones are ignored. */
      generation = 0,
      /** Bearer up (attached, IP). */
      bearerUp: unknown,
      /** The module powered down: PWRKEY at the first unanswered probe of the next open(). */
      poweredDown: any,
      /** Time of the next PWRKEY pulse while the probe goes unanswered. */
      nextPowerKeyAt: number,
      socket: SocketState | undefined,
      /** Bytes waiting (at most MAX_QUEUED_BYTES); emptied when a socket connects. */
      outgoing!: Bytes,
      /** Step in progress (PROBE while resetting and probing, and once end() ran). */
      step: number | undefined,
      registrationDeadline: number,
      /** The command of each step (CSTT and CIPSTART are filled in). */
      steps = STEP_COMMANDS.split("|"),
      state = (name: ModemState, why?: ModemStateDetail) => {
        me.onState(name, why);
      },
      /**
       * Ends the current open(): onClose exactly once. bearerLost true (or 1): what
       * is in flight will not be answered usefully (the module restarted or is stuck,
       * or the bring-up was given up): the engine's queue is dropped and the
       * bearer counts as down.
       */
      end = (why: Sim800CloseReason, bearerLost?: unknown, ended?: TransportHandler | 0) => {
        ended = handler;
        generation++;
        handler = socket = step = 0;
        if (bearerLost) {
          bearerUp = 0;
          engine.abort();
        }
        if (ended) {
          state(bearerUp ? "joined" : "failed", why);
          ended.onClose(why);
        }
      },
      /**
       * Sends "AT" + text; onReply gets the final and the lines (joined by ",") and
       * never a reply that belongs to an older generation, nor a TIMEOUT but the AT
       * probe's: the modem is stuck, the open ends and the next open() probes
       * until it answers.
       */
      command = (text: string, timeoutMs: number, onReply: (final: string, lines: string, sentIn: number) => unknown, finals?: any, secret?: any, okNotFinal?: any, data?: Bytes, sentIn?: any) => {
        sentIn = generation;
        engine.send({
          cmd: "AT" + text,
          timeout: timeoutMs,
          done: (reply) => sentIn == generation && (reply.final == "TIMEOUT" && text ? end(reply.final, 1) : onReply(reply.final, reply.lines + "", sentIn)),
          finals,
          data,
          secret,
          okNotFinal,
        });
      },
      /** Closes the socket with a reason (CIPCLOSE); gives a bring-up up at once. */
      closeSocket = (why: Sim800CloseReason, previous?: SocketState) => {
        // A send in flight is abandoned (its ABORTED finds SOCKET_CLOSING: ignored). "CLOSE OK";
        // a "CLOSED" from the peer meanwhile ends it as well.
        if (handler && socket != SOCKET_CLOSING)
          socket
            ? ((previous = socket), (socket = SOCKET_CLOSING), previous > SOCKET_CLOSING && engine.abort(true), command("+CIPCLOSE", COMMAND_TIMEOUT_MS, () => end(why), ["CLOSE"]))
            : end(why, 1);
      },
      /** Sends the next piece of `outgoing` while the socket is connected and idle. */
      pump = (piece?: Bytes): void => {
        if (outgoing && socket == SOCKET_CONNECTED) {
          piece = outgoing.slice(0, MAX_SEND_CHUNK_BYTES);
          outgoing = outgoing.slice(MAX_SEND_CHUNK_BYTES);
          socket = SOCKET_SENDING;
          command("+CIPSEND=" + piece.length, LONG_TIMEOUT_MS, (final) => {
            if (socket! > SOCKET_CLOSING) socket = SOCKET_CONNECTED;
            final == "SEND OK" ? pump() : closeSocket(final as Sim800CloseReason);
          }, 0, 0, 0, piece);
        }
      },
      /** Not there yet: poll again until the deadline (1), then fail with why. */
      pollUntilDeadline = (why: Sim800CloseReason) => (clock.now() < registrationDeadline ? 1 : why),
      /** Runs a step of the bring-up; at CIPSTART with TLS, AT+CIPSSL=1 first (sslSet: done). */
      runStep = (index: number, sslSet?: unknown): void => {
        step = index;
        if (index > CIFSR && !sslSet) {
          if (!bearerUp) state("joined");
          bearerUp = 1;
          state("connecting");
          // TLS: AT+CIPSSL=1 before AT+CIPSTART (ERROR: a firmware without SSL)
          if (options.ssl) return command("+CIPSSL=1", COMMAND_TIMEOUT_MS, (final) => (final == "OK" ? runStep(index, 1) : end(("+CIPSSL " + final) as `+CIPSSL ${string}`)));
        }
        command(
          steps[index],
          // (PROBE is step 0: `!index`)
          index ? (LONG_STEPS >> index) & 1 ? LONG_TIMEOUT_MS : COMMAND_TIMEOUT_MS : PROBE_TIMEOUT_MS,
          (final, lines, sentIn, outcome?: any) => {
            // A check gives nothing (next step), 1 (poll again until the deadline) or why it failed.
            outcome = !index
              ? // the module answers once it has seen "AT" at our rate (TIMEOUT: not yet)
                final != "OK" && pollUntilDeadline("no answer")
              : index == CPIN
                ? // "+CPIN: SIM PIN" / "SIM PUK" fail as that line; no SIM as "+CPIN? +CME ERROR: 10"
                  !/READY/.test(lines) && lines
                : index == CSQ
                  ? state("attaching", lines as `+CSQ: ${string}`) // with the signal: "+CSQ: <rssi>,<ber>"
                  : index == CREG
                    ? !/G: \d,[15]/.test(lines) && pollUntilDeadline("no network")
                    : // AT+CIPSTART: all but CONNECT OK fail; all but CONNECT FAIL, CLOSED
                      // and CLOSE OK (a failed TLS handshake) (not ALREADY CONNECT, ERROR...)
                      // leave the bearer in doubt: AT+CIPSHUT and a fresh attach next time
                      index > CIFSR && !/T OK/.test(final) && ((bearerUp = final[0] == "C"), final);
            // e.g. "+CIICR ERROR" (the name only: AT+CSTT's arguments are secret)
            if (!outcome && /ERROR/.test(final)) outcome = steps[index].split("=")[0] + " " + final;
            outcome == 1
              ? // silent for 10 s (at once after a power down): PWRKEY, where wired, then probe on
                !index && options.powerOn && clock.now() >= nextPowerKeyAt
                ? ((nextPowerKeyAt = clock.now() + POWER_KEY_REPEAT_MS), state("resetting"), options.powerOn(() => sentIn == generation && runStep(PROBE)))
                : clock.setTimeout(() => sentIn == generation && runStep(index), PROBE_TIMEOUT_MS)
              : outcome
                ? end(outcome)
                : index > CIFSR
                  ? // connected: the bytes waiting are the ones written from now on
                    ((socket = SOCKET_CONNECTED), (outgoing = ""), state("connected"), (handler as TransportHandler).onOpen(), pump())
                  : runStep(index + 1);
          },
          // The IP line ends AT+CIFSR (no OK follows it): any line does (the IP is not used).
          index == CIPSHUT ? ["SHUT"] : index == CIFSR ? [""] : index > CIFSR && ["CONNECT", "ALREADY", "CLOSE"],
          index == CSTT, // AT+CSTT carries the APN credentials
          index > CIFSR,
        );
      };
    steps[CSTT] = `+CSTT="${options.apn}","${options.user || ""}","${options.password || ""}"`;
    me.onState = (name, why) => options.log && options.log(name + " " + (why || ""));
    engine.onData = (bytes) => socket && (handler as TransportHandler).onData(bytes);
    engine.urcs = SIM800_URCS;
    engine.onUrc = (line) => {
      if (line == "CLOSED") socket && end(line);
      // (unanchored alternatives first: Espruino tries none after a "^" one past the string's start)
      else if (/DOWN$|DEACT$|^RDY/.test(line)) {
        // Restarted, powered down or the PDP context lost: the socket and the bearer are gone.
        bearerUp = 0;
        poweredDown = poweredDown || /N$/.test(line);
        // (step is nonzero only while an open() is past the probe: end() zeroes it)
        if (step) end(line as Sim800CloseReason, 1);
      }
    };
    // One open() at a time: the next one after this one's onClose.
    me.open = (host, port, openHandler) => {
      handler = openHandler;
      steps[CIPSTART] = `+CIPSTART="TCP","${host}","${port}"`;
      registrationDeadline = clock.now() + (options.regDeadline || REGISTRATION_DEADLINE_MS);
      nextPowerKeyAt = poweredDown ? 0 : clock.now() + POWER_KEY_REPEAT_MS;
      poweredDown = 0;
      runStep(bearerUp ? CIPSTART : PROBE);
    };
    // connected or sending (bit 0) takes bytes; over MAX_QUEUED_BYTES waiting: closed
    me.write = (bytes) => socket! & SOCKET_CONNECTED && ((outgoing += bytes).length > MAX_QUEUED_BYTES ? closeSocket("overflow") : pump());
    me.close = () => closeSocket("closed");
  }
}

/**
 * The driver under the name the app uses ("virtual:modem" re-exports the one a
 * build carries): new Modem(engine, clock, options), where the app merges the
 * device configuration's credentials, the board's control pins and its log.
 */
export { Sim800 as Modem };

/** PWRKEY held low this long toggles the module's power (SIMCom: at least 1 s). */
const POWER_KEY_PULSE_MS = 1200;

/** The wiring on a board (src/modem/driver.ts): led.json's "gprs" credentials; PWRKEY pulsed to power on. */
export const modemOptions = (board: BoardDef, config: { gprs?: { apn: string; user?: string; password?: string } }, pulse: Pulse): Partial<Sim800Options> =>
  Object.assign({ powerOn: pulse(board.pwrkey, POWER_KEY_PULSE_MS) }, config.gprs);
