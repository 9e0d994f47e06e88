/**
 * ESP8266 driver (Espressif AT firmware 1.x and 2.x), one TCP or SSL socket
 * (AT+CIPMUX=0), as a Transport.
 *
 *   new Esp8266(engine, clock, { ssid, password, ssl?, hardReset?, log? })
 *   (exported as Modem too, the name the app uses)
 *
 * The board wires engine.feed to the UART; the driver owns engine.onUrc/onData.
 * modem.onState(state, why?) reports "resetting", "joining", "joined",
 * "connecting", "connected" and "failed" (with a short reason, never a secret).
 *
 * open() brings the module up as far as it is not up yet: reset and "ready"
 * (hardReset: CH_PD pulsed at once and again every 6 s while the module stays
 * silent, for up to a minute; else AT+RST, 6 s); ATE0, AT+CWMODE=1,
 * AT+CIPMUX=0; AT+CWJAP (secret); then AT+CIPSTART. With ssl, AT+CIPSTART="SSL"
 * (TLS, one link at most) comes after AT+CIPSSLSIZE=4096 (1.x: the SSL buffer,
 * 2048..4096, set before the link; 2.x has no such command) and
 * AT+CIPSSLCSNI="<host>" (2.x: the SNI of the ClientHello; 1.x has no such
 * command): each answers ERROR on the firmware that lacks it, which is no
 * failure. The module then checks no certificate (nothing configures
 * AT+CIPSSLCCONF). A failed handshake answers ERROR (then CLOSED), or shows
 * later as SEND FAIL: both end the open() like any failure. A command time-out
 * (the engine gives a CIPSEND 3 s for its "> ") or a spontaneous "ready" sends
 * the next open() back to the reset; "WIFI DISCONNECT" back to AT+CWJAP.
 * write() keeps at most 4,096 bytes queued and sends them with AT+CIPSEND in
 * pieces of at most 2,048 bytes, one at a time, retrying "busy" with back-off
 * (100, 150, ... ms; at most 6 attempts). When the socket ends, onClose goes
 * out at once; AT+CIPCLOSE follows whatever is in flight (at most 8 s: a CIPSEND).
 *
 * onClose reasons: "closed" (close() or a new open()), "reboot" (a spontaneous
 * "ready"), "timeout" (the module stopped answering), "CLOSED" (the peer),
 * "WIFI DISCONNECT", "overflow", "send <final>" (SEND FAIL, ERROR, busy...),
 * "connect <DNS Fail | no ip | final>", "wifi <timeout | wrong password |
 * no AP | failed | final>" (+CWJAP:1..4), "<bring-up command> <final>".
 * Not done: certificates (AT+CIPSSLCCONF), TLS versions (the firmware's own).
 */
import type { AtEngine } from "../at/engine";
import type { BoardDef, Pulse } from "../board/board";
import type { Bytes, Clock, CommonCloseReason, Transport, TransportHandler } from "../transport";
import type { ModemState, ModemStateDetail } from "./driver";

/**
 * The ESP8266's unsolicited lines (prefix match, also after a "0," link id),
 * registered with the AT engine: link events ("CLOSED", "0,CONNECT", "ALREADY
 * CONNECTED"), Wi-Fi events ("WIFI DISCONNECT"), a reboot ("ready") and "busy".
 * Espruino's RegExp alternates only at the top level; at most six alternatives
 * each (docs/espruino.md).
 */
export const ESP8266_URCS = [/^CLOSE|^CONNECT|^ALREADY|^\d, *C/, /^WIFI|^ready|^busy /];

/**
 * Why an ESP8266 socket ended (onClose, and the "failed" state's why): the common
 * reasons (src/transport.ts) and the ones listed at the top of this file. Where
 * the module's own words follow a prefix, the type names the prefix.
 */
export type Esp8266CloseReason =
  | CommonCloseReason
  | "reboot" // a spontaneous "ready"
  | "timeout" // a command went unanswered: the next open() starts from the reset
  | "WIFI DISCONNECT"
  | `send ${string}` // AT+CIPSEND ended otherwise than SEND OK: "send SEND FAIL", "send ERROR", "send busy p..."
  | `connect ${string}` // AT+CIPSTART failed: "connect DNS Fail", "connect no ip", "connect ERROR"
  | `wifi ${string}` // AT+CWJAP failed: "wifi wrong password", "wifi no AP", "wifi FAIL"
  | `AT${string}`; // another bring-up command failed: "<command> <final>", e.g. "ATE0 ERROR"
declare module "../transport" {
  interface LinkCloseReasons {
    esp8266: Esp8266CloseReason;
  }
}

export interface EspOptions {
  ssid: string;
  password: string;
  /** TLS: AT+CIPSTART="SSL" instead of "TCP", after AT+CIPSSLSIZE / AT+CIPSSLCSNI. */
  ssl?: boolean;
  /** Pulses CH_PD/RST and calls done(); absent: AT+RST. */
  hardReset?: (done: () => void) => void;
  /** Receives the state reports (never a secret). */
  log?: (s: string) => void;
}

/** Where the module is on its way up: the next open() starts from there. */
const RESET_NEEDED = 0;
const JOIN_NEEDED = 1;
const JOINED = 2;
type ModuleState = typeof RESET_NEEDED | typeof JOIN_NEEDED | typeof JOINED;

/** Bytes write() keeps waiting; more closes the socket ("overflow"). */
const MAX_QUEUED_BYTES = 4096;
/** Bytes per AT+CIPSEND. */
const MAX_SEND_CHUNK_BYTES = 2048;
/** Attempts of one AT+CIPSEND answered "busy ...", and the back-off step between them (50, 100, ... ms). */
const MAX_SEND_ATTEMPTS = 6;
const BUSY_BACKOFF_STEP_MS = 50;
/** Time-outs: bring-up and connect commands, AT+CIPSEND and AT+CIPCLOSE, AT+RST. */
const COMMAND_TIMEOUT_MS = 20e3;
const SEND_TIMEOUT_MS = 5e3;
const RESET_TIMEOUT_MS = 6e3;
/** With hardReset: the wait for "ready", and the pulses repeated meanwhile. */
const HARD_RESET_WAIT_MS = 60e3;
const HARD_RESET_REPEAT_MS = 6e3;
/** Reasons for the +CWJAP:<n> failure codes; "timeout" and "failed" serve elsewhere too. */
const CWJAP_FAILURES = ["", "timeout", "wrong password", "no AP", "failed"] as const;
const TIMEOUT = 1;
const FAILED = 4;

/**
 * The state lives in the constructor's closure (locals minify to one letter and
 * need no `this.`); open/write/close are bound there.
 */
export class Esp8266 implements Transport {
  /** State reports; by default they go to opts.log. */
  onState!: (state: ModemState, why?: ModemStateDetail) => void;
  open!: (host: string, port: number, handler: TransportHandler) => void;
  write!: (bytes: Bytes) => void;
  close!: () => void;

  constructor(engine: AtEngine, clock: Clock, options: EspOptions) {
    const me = this;
    // One `let` for the state and the helpers (one declaration minifies
    // smallest). Unset locals read as undefined (falsy); open() sets outgoing and
    // sendAttempt through endSocket(). Extra parameters of the helpers are scratch locals.
    let /** Handler of the current open(); 0 once its onClose went out. */
      handler: TransportHandler | 0 | undefined,
      moduleState: ModuleState = RESET_NEEDED,
      /** Generation, bumped whenever a socket ends: replies to older ones are ignored. */
      generation = 0,
      /** The socket is open (1) or not. */
      socketOpen: number | undefined,
      /** Bytes waiting to be sent (at most MAX_QUEUED_BYTES). */
      outgoing!: Bytes,
      /** 0: no CIPSEND in flight, else its attempt number ("busy" retries). */
      sendAttempt!: number,
      /** Backslash before `,` `"` and `\\` (the AT firmware's escape rule for SSID and password). */
      escapeForAt = (text: string) => text.replace(/[,"\\]/g, (special) => "\\" + special),
      state = (name: ModemState, why?: Esp8266CloseReason) => me.onState(name, why),
      /**
       * Sends a command; onReply gets the final and the lines of every reply but a
       * TIMEOUT (which resets) and none from an older generation. `data`: CIPSEND
       * data (also "" for the reset, which makes it a data command: "OK" is
       * then not final); `extraFinal`: the final besides the defaults ("busy ..."
       * unless given). Only AT+CWJAP holds a secret.
       */
      command = (text: string, timeoutMs: number, onReply: (final: string, lines: string[]) => unknown, data?: Bytes, extraFinal?: string, sentIn?: number) => {
        sentIn = generation;
        engine.send({
          cmd: text,
          timeout: timeoutMs,
          finals: [extraFinal || "busy"],
          data: data,
          secret: text[5] == "J", // AT+CWJAP
          done: (reply) => sentIn == generation && (reply.final == "TIMEOUT" ? resetModule(CWJAP_FAILURES[TIMEOUT]) : onReply(reply.final, reply.lines)),
        });
      },
      /** Ends the socket of the current open(): onClose exactly once; any reason but "closed" is a failure. */
      endSocket = (why: Esp8266CloseReason, ended?: TransportHandler | 0) => {
        ended = handler;
        generation++;
        socketOpen = sendAttempt = handler = 0;
        outgoing = "";
        if (ended) {
          // closes the link on the module (no harm when there is none); its reply
          // is ignored, only a TIMEOUT of it resets the (dead) module
          if (moduleState > JOIN_NEEDED) command("AT+CIPCLOSE", SEND_TIMEOUT_MS, () => 0);
          if (why != "closed") state(CWJAP_FAILURES[FAILED] as "failed", why);
          ended.onClose(why);
        }
      },
      /** The module stopped answering or rebooted: the next open() starts from the reset. */
      resetModule = (why: Esp8266CloseReason) => {
        moduleState = RESET_NEEDED;
        endSocket(why);
        engine.abort();
      },
      /** Sends the next piece of `outgoing` unless a CIPSEND is in flight. */
      pump = (sentIn?: number, piece?: Bytes, attempt?: () => void): void => {
        sentIn = generation;
        piece = outgoing.slice(0, MAX_SEND_CHUNK_BYTES);
        // (socketOpen: write() checks it, the callbacks check the generation)
        attempt = () =>
          command(
            "AT+CIPSEND=" + piece!.length,
            SEND_TIMEOUT_MS,
            (final) =>
              final == "SEND OK"
                ? ((outgoing = outgoing.slice(piece!.length)), (sendAttempt = 0), pump())
                : final[0] == "b" && ++sendAttempt < MAX_SEND_ATTEMPTS + 1
                  ? clock.setTimeout(() => sentIn == generation && attempt!(), BUSY_BACKOFF_STEP_MS * sendAttempt)
                  : endSocket(("send " + final) as `send ${string}`),
            piece,
          );
        if (!sendAttempt && piece) {
          sendAttempt = 1;
          attempt();
        }
      };
    me.onState = (name, why) => options.log && options.log(name + " " + (why || ""));
    engine.urcs = ESP8266_URCS;
    engine.onUrc = (line, wifiLost?: boolean) => {
      wifiLost = line == "WIFI DISCONNECT";
      if (line == "ready") resetModule("reboot");
      if (wifiLost) moduleState = moduleState && JOIN_NEEDED;
      if ((wifiLost || line == "CLOSED") && socketOpen) endSocket(line as "WIFI DISCONNECT" | "CLOSED");
    };
    engine.onData = (bytes) => socketOpen && (handler as TransportHandler).onData(bytes);
    me.open = (host, port, openHandler, joinCommand?: string, connectCommand?: string, runInTurn?: (commands: string[]) => void, connectCommands?: string[], resetIn?: number, pulseUntilReady?: () => unknown) => {
      joinCommand = `AT+CWJAP="${escapeForAt(options.ssid)}","${escapeForAt(options.password)}"`;
      connectCommand = `AT+CIPSTART="${options.ssl ? "SSL" : "TCP"}","${host}",${port}`;
      // the connect, with TLS after its set-up commands (1.x: the SSL buffer of 4,096 bytes; 2.x: SNI)
      connectCommands = options.ssl ? ["AT+CIPSSLSIZE=4096", `AT+CIPSSLCSNI="${host}"`, connectCommand] : [connectCommand];
      /**
       * Sends each command in turn while it answers OK (an AT+CIPSSL... may
       * answer anything: the firmware without that command says ERROR); the
       * last one is AT+CIPSTART.
       */
      runInTurn = (commands, text?: string) => {
        text = commands.shift()!;
        if (text == joinCommand) state("joining");
        if (text == connectCommands![0]) state("connecting");
        command(text, COMMAND_TIMEOUT_MS, (final, lines) =>
          final != "OK" && text!.indexOf("AT+CIPSSL")
            ? endSocket(
                text == joinCommand
                  ? // a failed join: "+CWJAP:<n>" then FAIL (1.x) or ERROR (2.x)
                    (("wifi " + (CWJAP_FAILURES[lines.join()[7] as any] || final)) as `wifi ${string}`)
                  : text == connectCommand
                    ? (("connect " + (lines[0] || final)) as `connect ${string}`) // "DNS Fail", "no ip" or the final
                    : ((text + " " + final) as `AT${string}`),
              )
            : text == connectCommand
              ? ((socketOpen = 1), state("connected"), openHandler.onOpen())
              : (text == joinCommand && ((moduleState = JOINED), state("joined")), runInTurn!(commands)),
        );
      };
      me.close(); // an open() still running ends with onClose("closed")
      handler = openHandler;
      if (moduleState) runInTurn(moduleState > JOIN_NEEDED ? connectCommands : [joinCommand].concat(connectCommands));
      else {
        state("resetting");
        // AT+RST answers OK (an intermediate line: a data command), boot noise,
        // then "ready"; with hardReset the command only waits, up to a minute,
        // while CH_PD is pulsed now and every 6 s until "ready" (resetIn: this
        // generation until then). Any final but TIMEOUT goes on: ATE0 then
        // checks the module.
        resetIn = generation;
        command(
          options.hardReset ? "" : "AT+RST",
          options.hardReset ? HARD_RESET_WAIT_MS : RESET_TIMEOUT_MS,
          () => ((resetIn = -1), runInTurn!(["ATE0", "AT+CWMODE=1", "AT+CIPMUX=0", joinCommand!].concat(connectCommands!))),
          "",
          "ready",
        );
        (pulseUntilReady = () => resetIn == generation && options.hardReset && options.hardReset(() => clock.setTimeout(pulseUntilReady!, HARD_RESET_REPEAT_MS)))();
      }
    };
    // over MAX_QUEUED_BYTES waiting: endSocket() drops them all with the socket
    me.write = (bytes) => socketOpen && ((outgoing += bytes).length > MAX_QUEUED_BYTES ? endSocket("overflow") : pump());
    me.close = () => endSocket("closed");
  }
}

/**
 * The driver under the name the app uses ("virtual:modem" re-exports the one a
 * build carries): new Modem(engine, clock, options), where the app merges the
 * device configuration's credentials, the board's control pins and its log.
 */
export { Esp8266 as Modem };

/** CH_PD (EN) held low this long resets the module. */
const HARD_RESET_PULSE_MS = 200;

/** The wiring on a board (src/modem/driver.ts): led.json's "wifi" credentials; CH_PD pulsed for a hard reset. */
export const modemOptions = (board: BoardDef, config: { wifi?: { ssid: string; password: string } }, pulse: Pulse): Partial<EspOptions> =>
  Object.assign({ hardReset: pulse(board.enable, HARD_RESET_PULSE_MS) }, config.wifi);
