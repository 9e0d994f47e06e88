/**
 * SIMCom LTE driver (SIM7600 series and A76xx / A7670): one TCP socket, link 0,
 * over the module's own TCP/IP service in non-transparent mode (AT+CIPMODE=0),
 * or with `ssl` one TLS session, session 0, over its SSL service (AT+CCH*).
 * Implements Transport.
 *
 *   new Sim7600(engine, clock, { apn, user?, password?, powerOn?, log?, regDeadline?, ssl? })
 *   (exported as Modem too, the name the app uses)
 *
 * Receiving: pushed, not pulled. The module sends the line "+IPD<len>" (TLS:
 * "+CCHRECV: DATA,0,<len>") and then <len> raw bytes; the AT engine frames
 * both heads like the ESP8266's "+IPD,<len>:" and hands the bytes to
 * engine.onData as they arrive. Why not AT+CIPRXGET pulling (in hex, as plain
 * AT text)? It costs a command round trip per 128 bytes received (the engine's
 * lines are at most 256 characters) and 190 bytes of driver, and the SSL
 * service has no hex mode: its data comes raw either way. AT+CIPSRIP=0 drops
 * the "RECV FROM:<ip>:<port>" line the module would put before each "+IPD".
 *
 * open() while the service is not started: AT (repeated each second until
 * the module answers), ATE0, AT+CPIN?;+CSQ (READY, reported with the signal
 * as "attaching"; else fails with the SIM's answer), AT+CEREG?;+CGREG? (LTE,
 * or the packet domain of 2G/3G where the SIM7600 falls back to it; polled
 * each second until either says 1 home or 5 roaming; regDeadline, from the
 * open, ends both polls), AT+NETCLOSE (TLS: AT+CCHSTOP; any answer: it closes
 * a service and links left open, say after a board reset, and answers an
 * error when there is none), AT+CGDCONT=1,"IP",apn;+CGAUTH=1,... (secret: PAP
 * with the password first and the user second, the order of SIMCom's manual;
 * AT+CGAUTH=1,0 without a user), AT+NETOPEN (OK, then "+NETOPEN: 0"; TLS:
 * AT+CCHSTART, "+CCHSTART: 0"), AT+CIPSRIP=0 (TLS: AT+CCHSSLCFG=0,0, session 0
 * with SSL context 0). Then, and directly while the service stays started:
 * AT+CIPOPEN=0,"TCP","host",port (TLS: AT+CCHOPEN=0,"host",port,2); OK, then
 * "+CIPOPEN: 0,0" ("+CCHOPEN: 0,0"); any other code, ERROR or "+CME ERROR"
 * fails the open and the next one starts from AT+NETCLOSE (AT+CCHSTOP).
 * Bytes go out with AT+CIPSEND=0,<n> (AT+CCHSEND=0,<n>), n <= 1460, one at a
 * time, at most 4,096 bytes waiting: "> ", the n bytes, OK, then (TCP only)
 * "+CIPSEND: 0,<n>,<sent>": sent short of n (or "+CIPERROR: <err>", ERROR)
 * closes the socket.
 * close() abandons a send in flight, sends AT+CIPCLOSE=0 / AT+CCHCLOSE=0 (OK,
 * then "+CIPCLOSE: 0,<err>" / "+CCHCLOSE: 0,<err>") and reports onClose on
 * its answer. "+IPCLOSE: 0,<reason>" or "+CCH_PEER_CLOSED: 0" (the peer, or a
 * send time-out) ends the socket; "+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY"
 * or "+CCH: CCH STOP" (the network dropped), "RDY" / "*ATREADY" (restarted)
 * and "NORMAL POWER DOWN" (switched off) end it and the service. A TIMEOUT means a stalled
 * module: the open ends at once, and the next one probes with AT until it
 * answers. With powerOn (PWRKEY wired), a module that stays silent for 30 s
 * of probing is pulsed, and again every 30 s while it stays silent (it boots
 * in about 10 to 20 s).
 * TLS: the module does the handshake; no certificate is checked (AT+CSSLCFG
 * keeps its defaults: any TLS version, no authentication), as with the SIM800.
 */
import type { AtEngine } from "../at/engine";
import type { BoardDef, Pulse } from "../board/board";
import type { Bytes, Clock, CommonCloseReason, Transport, TransportHandler } from "../transport";
import type { ModemState } from "./driver";

/**
 * The lines that end the socket and the service: "+CIPEVENT: NETWORK CLOSED
 * UNEXPECTEDLY", "+CCH: CCH STOP" (the SSL service stopped, the network gone),
 * "RDY" (SIM7600 boot), "*ATREADY: 1" (A76xx boot), "NORMAL POWER DOWN".
 * Registered with the AT engine as the module's URCs (prefix match): "RDY"
 * and the others do not start with "+", and would otherwise go to the reply of
 * a command in flight. Five alternatives (Espruino's limit is six), the
 * unanchored ones first (Espruino tries none after a "^" one past the
 * string's start: docs/espruino.md). ("+CCHSTOP: 0", AT+CCHSTOP's answer,
 * does not end in STOP.)
 */
const NETWORK_GONE = /DOWN$|STOP$|^\+CIPEVENT|^RDY|^.ATR/;

/**
 * Why an open ended (onClose, and the why of the "failed" or "joined" state that
 * goes with it): the common reasons (src/transport.ts), or the module's own words.
 */
export type Sim7600CloseReason =
  | CommonCloseReason
  | "TIMEOUT" // a command went unanswered: the module is stuck (the network counts as down)
  | "no answer" // the AT probe went unanswered until the registration deadline
  | "no network" // neither AT+CEREG? nor AT+CGREG? found a registration by the deadline
  | `+CPIN${string}` // the SIM is not ready: its answer ("+CPIN: SIM PIN")
  | `${string}ERROR${string}` // a step's error ("+CME ERROR: 10", "ERROR", "+CIPERROR: 4")
  | `+NETOPEN: ${string}` | `+CIPOPEN: ${string}` // AT+NETOPEN / AT+CIPOPEN answered with an error code
  | `+CCHSTART: ${string}` | `+CCHOPEN: ${string}` // the same for TLS: AT+CCHSTART / AT+CCHOPEN
  | `+CIPSEND: ${string}` | "BUSY" // a send confirmed short, or the AT engine's queue was full
  | `+IPCLOSE: ${string}` | `+CCH_${string}` | `+CCHCLOSE: ${string}` // the peer closed the link (or the module did)
  | `+CIPEVENT: ${string}` | `+CCH: ${string}` // the network dropped ("NETWORK CLOSED UNEXPECTEDLY"; TLS: "CCH STOP")
  | `RDY${string}` | `${string}ATREADY${string}` | `${string}POWER DOWN`; // the module restarted, or switched off
declare module "../transport" {
  interface LinkCloseReasons {
    sim7600: Sim7600CloseReason;
  }
}

export interface Sim7600Options {
  apn: string;
  user?: string;
  password?: string;
  /** Pulses PWRKEY; calls done once the module should be booting. */
  powerOn?: (done: () => void) => void;
  /** Receives the state reports (unless onState is replaced) and never a secret. */
  log?: (line: string) => void;
  /** ms from open() (probing included) until the network must be registered (default 90000). */
  regDeadline?: number;
  /** TLS: the module's SSL service (AT+CCH*) instead of its TCP/IP one (AT+NETOPEN, AT+CIP*). */
  ssl?: boolean;
}

/**
 * The bring-up steps, by name: each is one command after "AT" (the packed list
 * below, in this order). PROBE is the probe "AT" itself; PDP_CONTEXT and
 * OPEN are filled in (the APN and its credentials; open()'s host and port).
 * Steps CLOSE_SERVICE, START_SERVICE and the one after it name the TCP/IP service's
 * commands, or with TLS the SSL service's.
 */
const PROBE = 0; // (tested as `!index`)
/** AT+CPIN?;+CSQ: the SIM's state and the signal, one command line. */
const SIM_AND_SIGNAL = 2;
const REGISTRATION = 3;
const CLOSE_SERVICE = 4;
/** AT+CGDCONT=1,"IP","<apn>";+CGAUTH=1,...: the PDP context and its credentials (secret), one command line. */
const PDP_CONTEXT = 5;
const START_SERVICE = 6;
const OPEN = 8; // the last step
/** Steps 0..3: "", E0, +CPIN?;+CSQ, +CEREG?;+CGREG? */
const COMMON_STEPS = "|E0|+CPIN?;+CSQ|+CEREG?;+CGREG?|";
/** Steps 4..8: +NETCLOSE, (PDP_CONTEXT), +NETOPEN, +CIPSRIP=0 (no "RECV FROM:" line before "+IPD"), (CIPOPEN) */
const TCP_STEPS = "+NETCLOSE||+NETOPEN|+CIPSRIP=0|";
/** The same with TLS: +CCHSTOP, (PDP_CONTEXT), +CCHSTART, +CCHSSLCFG=0,0 (session 0 uses SSL context 0), (CCHOPEN) */
const SSL_STEPS = "+CCHSTOP||+CCHSTART|+CCHSSLCFG=0,0|";
/**
 * The steps answered OK and later by a line of their own name ("+NETCLOSE: 0",
 * "+NETOPEN: 0", "+CIPOPEN: 0,0"; "+CCHSTOP: 0", "+CCHSTART: 0", "+CCHOPEN: 0,0"):
 * they get the long time-out, and that line ends them.
 */
const URC_ANSWERED_STEPS = 1 << CLOSE_SERVICE | 1 << START_SERVICE | 1 << OPEN;
/** The name part of a command that ends it ("+NETOPEN", "+NETCLOS", "+CIPOPEN", "+CCHSTAR"...). */
const ANSWER_NAME_CHARS = 8;

/** The socket's states. SOCKET_CONNECTED and SOCKET_SENDING share bit 0: the socket takes bytes. */
const SOCKET_NONE = 0;
const SOCKET_CONNECTED = 1;
const SOCKET_CLOSING = 2;
const SOCKET_SENDING = 3;
type SocketState = typeof SOCKET_NONE | typeof SOCKET_CONNECTED | typeof SOCKET_CLOSING | typeof SOCKET_SENDING;

/** Time-outs: the AT probe (and the poll interval), ordinary commands and AT+CIPCLOSE. */
const PROBE_TIMEOUT_MS = 1e3;
const COMMAND_TIMEOUT_MS = 5e3;
/** The service's start and stop, the open and each send: the module's own limits are 120 s (AT+CIPTIMEOUT). */
const LONG_TIMEOUT_MS = 125e3;
/** A silent module gets a PWRKEY pulse after this long, and again as long as it stays silent. */
const POWER_KEY_REPEAT_MS = 30e3;
/** Default of regDeadline. */
const REGISTRATION_DEADLINE_MS = 90e3;
/** At most this many bytes per AT+CIPSEND / AT+CCHSEND. */
const MAX_SEND_CHUNK_BYTES = 1460;
/** Bytes write() keeps waiting; more closes the socket ("overflow"). */
const MAX_QUEUED_BYTES = 4096;

/**
 * The state lives in the constructor's closure (locals minify to one letter
 * and need no `this.`); open/write/close are bound there. Time-outs are ms on
 * the injected clock (tests speed it up).
 */
export class Sim7600 implements Transport {
  /** State reports; by default they go to opts.log. */
  onState!: (state: ModemState, why?: string) => void;
  open!: (host: string, port: number, handler: TransportHandler) => void;
  write!: (bytes: Bytes) => void;
  close!: () => void;

  constructor(engine: AtEngine, clock: Clock, options: Sim7600Options) {
    const me = this;
    // One `let` for the state and the helpers. Unset locals read as undefined
    // (falsy) where that is what they start as. Extra parameters of the
    // helpers are scratch locals.
    let /** Handler of the current open(); 0 once its onClose went out. */
      handler: TransportHandler | 0 | undefined,
      /** Generation, bumped whenever an open() ends: replies to older ones are ignored. */
      generation = 0,
      /** The service is started (AT+NETOPEN / AT+CCHSTART done) and link 0 is free. */
      bearerUp: unknown,
      /** Time of the next PWRKEY pulse while the probe goes unanswered. */
      nextPowerKeyAt: number,
      socket: SocketState | undefined,
      /** Bytes waiting (at most MAX_QUEUED_BYTES); emptied when a socket connects. */
      outgoing!: Bytes,
      /** Step in progress (PROBE while probing, and once end() ran). */
      step: number | undefined,
      registrationDeadline: number,
      ssl = options.ssl,
      /** "+CIP" (TCP/IP service) or "+CCH" (SSL service): the prefix of the socket's commands. */
      service = ssl ? "+CCH" : "+CIP",
      /** The command of each step (PDP_CONTEXT and OPEN are filled in). */
      steps = (COMMON_STEPS + (ssl ? SSL_STEPS : TCP_STEPS)).split("|"),
      state = (name: ModemState, why?: string) => {
        me.onState(name, why);
      },
      /**
       * Ends the current open(): onClose exactly once. bearerLost: what is in
       * flight will not be answered usefully (the module restarted, is stuck,
       * lost the network, or the bring-up was given up): the engine's queue
       * is dropped and the next open() starts the bring-up again.
       */
      end = (why: Sim7600CloseReason, bearerLost?: unknown, ended?: TransportHandler | 0) => {
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
       * never a reply that belongs to an older generation, nor a TIMEOUT but the
       * probe's: the module is stuck, the open ends and the next open() probes.
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
      /** Closes the socket with a reason (AT+CIPCLOSE=0 / AT+CCHCLOSE=0); gives a bring-up up at once. */
      closeSocket = (why: Sim7600CloseReason, previous?: SocketState) => {
        // A send in flight is abandoned (its ABORTED finds SOCKET_CLOSING: ignored);
        // a "+IPCLOSE" meanwhile ends the socket as well.
        if (handler && socket != SOCKET_CLOSING)
          socket
            ? ((previous = socket), (socket = SOCKET_CLOSING), previous > SOCKET_CLOSING && engine.abort(true), command(service + "CLOSE=0", COMMAND_TIMEOUT_MS, () => end(why), [service + "CLOSE"], 0, 1))
            : end(why, 1);
      },
      /** Sends the next piece of `outgoing` while the socket is connected and idle. */
      pump = (piece?: Bytes): void => {
        if (outgoing && socket == SOCKET_CONNECTED) {
          piece = outgoing.slice(0, MAX_SEND_CHUNK_BYTES);
          outgoing = outgoing.slice(MAX_SEND_CHUNK_BYTES);
          socket = SOCKET_SENDING;
          // "> ", the bytes, OK, then (TCP/IP only) "+CIPSEND: 0,<asked>,<sent>"
          command(service + "SEND=0," + piece.length, LONG_TIMEOUT_MS, (final) => {
            if (socket! > SOCKET_CLOSING) socket = SOCKET_CONNECTED;
            final == (ssl ? "OK" : "+CIPSEND: 0," + [piece!.length, piece!.length]) ? pump() : closeSocket(final as Sim7600CloseReason);
          }, ["+CIPS", "+CIPER"], 0, !ssl, piece); // "+CIPSEND: ...", "+CIPERROR: <err>" (not "+CIPEVENT")
        }
      },
      /** Not there yet: poll again until the deadline (1), then fail with why. */
      pollUntilDeadline = (why: Sim7600CloseReason) => (clock.now() < registrationDeadline ? 1 : why),
      /** Runs a step of the bring-up. */
      runStep = (index: number, answeredByName?: number): void => {
        step = index;
        if (index >= OPEN) {
          if (!bearerUp) state("joined");
          bearerUp = 1;
          state("connecting");
        }
        answeredByName = (URC_ANSWERED_STEPS >> index) & 1;
        command(
          steps[index],
          // (PROBE is step 0: `!index`)
          index ? answeredByName ? LONG_TIMEOUT_MS : COMMAND_TIMEOUT_MS : PROBE_TIMEOUT_MS,
          (final, lines, sentIn, outcome?: any) => {
            // A check gives nothing (next step), 1 (poll again until the deadline) or why it failed.
            outcome = !index
              ? // the module answers once it has booted (TIMEOUT: not yet)
                final != "OK" && pollUntilDeadline("no answer")
              : index == CLOSE_SERVICE
                ? 0 // closed now, or there was nothing to close (an error): either will do
                : /ERROR/.test(final)
                  ? final // e.g. "+CME ERROR: 10" (no SIM), "ERROR"
                  : index == SIM_AND_SIGNAL
                    ? // "+CPIN: READY,+CSQ: <rssi>,<ber>": attaching, with the signal; "+CPIN: SIM PIN" / "SIM PUK" fail as those lines
                      /READY/.test(lines) ? state("attaching", lines) : lines
                    : index == REGISTRATION
                        ? !/G: \d,[15]/.test(lines) && pollUntilDeadline("no network")
                        : // the service's start and the open: "+NETOPEN: 0" and "+CIPOPEN: 0,0" only
                          answeredByName && !/[ ,]0$/.test(final) && final;
            outcome == 1
              ? // silent for 30 s: PWRKEY, where wired, then probe on
                !index && options.powerOn && clock.now() >= nextPowerKeyAt
                ? ((nextPowerKeyAt = clock.now() + POWER_KEY_REPEAT_MS), state("resetting"), options.powerOn(() => sentIn == generation && runStep(PROBE)))
                : clock.setTimeout(() => sentIn == generation && runStep(index), PROBE_TIMEOUT_MS)
              : outcome
                ? end(outcome, 1)
                : index >= OPEN
                  ? // connected: the bytes waiting are the ones written from now on
                    ((socket = SOCKET_CONNECTED), (outgoing = ""), state("connected"), (handler as TransportHandler).onOpen(), pump())
                  : runStep(index + 1);
          },
          answeredByName && [steps[index].slice(0, ANSWER_NAME_CHARS)],
          index == PDP_CONTEXT, // AT+CGAUTH carries the APN credentials
          answeredByName,
        );
      };
    // SIMCom's AT+CGAUTH: PAP (1), then the password, then the user; 0: none
    steps[PDP_CONTEXT] = `+CGDCONT=1,"IP","${options.apn}";+CGAUTH=1,` + (options.user ? `1,"${options.password || ""}","${options.user}"` : 0);
    me.onState = (name, why) => options.log && options.log(name + " " + (why || ""));
    engine.urcs = [NETWORK_GONE];
    // received bytes: "+IPD<len>" (TCP) or "+CCHRECV: DATA,0,<len>" (TLS) and the raw bytes, framed by the engine
    engine.onData = (bytes) => socket && (handler as TransportHandler).onData(bytes);
    engine.onUrc = (line) => {
      if (/^\+IPC|^\+CCH[_C]/.test(line)) socket && end(line as Sim7600CloseReason);
      else if (NETWORK_GONE.test(line)) {
        // The network dropped, or the module restarted or switched off: the socket and the network are gone.
        bearerUp = 0;
        // (step is nonzero only while an open() is past the probe: end() zeroes it)
        if (step) end(line as Sim7600CloseReason, 1);
      }
    };
    // One open() at a time: the next one after this one's onClose.
    me.open = (host, port, openHandler) => {
      handler = openHandler;
      // AT+CIPOPEN=0,"TCP","host",port or AT+CCHOPEN=0,"host",port,2 (2: a TLS client)
      steps[OPEN] = `${service}OPEN=0,${ssl ? "" : '"TCP",'}"${host}",${port}${ssl ? ",2" : ""}`;
      nextPowerKeyAt = (registrationDeadline = clock.now()) + POWER_KEY_REPEAT_MS;
      registrationDeadline += options.regDeadline || REGISTRATION_DEADLINE_MS;
      runStep(bearerUp ? OPEN : PROBE);
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
export { Sim7600 as Modem };

/**
 * PWRKEY held low this long: switches a module that is off on (SIM7600: at
 * least 0.1 s, typically 0.5 s; A7670 at least 0.05 s) and one that is on (and
 * stuck) off (both: at least 2.5 s), so repeated pulses bring a stuck module back.
 */
const POWER_KEY_PULSE_MS = 3000;

/** The wiring on a board (src/modem/driver.ts): led.json's "gprs" credentials (APN); PWRKEY pulsed to power on. */
export const modemOptions = (board: BoardDef, config: { gprs?: { apn: string; user?: string; password?: string } }, pulse: Pulse): Partial<Sim7600Options> =>
  Object.assign({ powerOn: pulse(board.pwrkey, POWER_KEY_PULSE_MS) }, config.gprs);
