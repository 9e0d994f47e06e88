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
import type { Bytes, Clock, Transport, TransportHandler } from "../transport";

/**
 * The ESP8266's unsolicited lines (prefix match, also after a "0," link id),
 * registered with the AT engine: link events ("CLOSED", "0,CONNECT", "ALREADY
 * CONNECTED"), Wi-Fi events ("WIFI DISCONNECT"), a reboot ("ready") and "busy".
 * Espruino's RegExp alternates only at the top level; at most six alternatives
 * each (docs/espruino.md).
 */
export const ESP8266_URCS = [/^CLOSE|^CONNECT|^ALREADY|^\d, *C/, /^WIFI|^ready|^busy /];

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

/**
 * The state lives in the constructor's closure (locals minify to one letter and
 * need no `this.`); open/write/close are bound there.
 */
export class Esp8266 implements Transport {
  /** State reports; by default they go to opts.log. */
  onState!: (state: string, why?: string) => void;
  open!: (host: string, port: number, handler: TransportHandler) => void;
  write!: (bytes: Bytes) => void;
  close!: () => void;

  constructor(e: AtEngine, clock: Clock, o: EspOptions) {
    const me = this;
    // One `let` for the state and the helpers (one declaration minifies
    // smallest). Unset locals read as undefined (falsy); open() sets q and busy
    // through end(). Extra parameters of the helpers are scratch locals.
    let /** Handler of the current open(); 0 once its onClose went out. */
      h: TransportHandler | 0 | undefined,
      /** 0: reset needed, 1: join needed, 2: joined. */
      st = 0,
      /** Generation, bumped whenever a socket ends: replies to older ones are ignored. */
      g = 0,
      /** The socket is open (1) or not. */
      up: number | undefined,
      /** Bytes waiting to be sent (at most 4,096). */
      q!: Bytes,
      /** 0: no CIPSEND in flight, else its attempt number ("busy" retries). */
      busy!: number,
      /** Reasons for the +CWJAP:<n> failure codes ("timeout" and "failed" serve elsewhere too). */
      JOIN = ["", "timeout", "wrong password", "no AP", "failed"],
      /** Backslash before `,` `"` and `\\` (the AT firmware's escape rule for SSID and password). */
      esc = (s: string) => s.replace(/[,"\\]/g, (c) => "\\" + c),
      state = (s: string, why?: string) => me.onState(s, why),
      /**
       * Sends a command; f gets the final and the lines of every reply but a
       * TIMEOUT (which resets) and none from an older generation. `d`: CIPSEND
       * data (also "" for the reset, which makes it a data command: "OK" is
       * then not final); `fin`: the final besides the defaults ("busy ..."
       * unless given). Only AT+CWJAP holds a secret.
       */
      cmd = (c: string, t: number, f: (final: string, lines: string[]) => unknown, d?: Bytes, fin?: string, k?: number) => {
        k = g;
        e.send({
          cmd: c,
          timeout: t,
          finals: [fin || "busy"],
          data: d,
          secret: c[5] == "J", // AT+CWJAP
          done: (r) => k == g && (r.final == "TIMEOUT" ? reset(JOIN[1]) : f(r.final, r.lines)),
        });
      },
      /** Ends the socket of the current open(): onClose exactly once; any reason but "closed" is a failure. */
      end = (why: string, k?: TransportHandler | 0) => {
        k = h;
        g++;
        up = busy = h = 0;
        q = "";
        if (k) {
          // closes the link on the module (no harm when there is none); its reply
          // is ignored, only a TIMEOUT of it resets the (dead) module
          if (st > 1) cmd("AT+CIPCLOSE", 5e3, () => 0);
          if (why != "closed") state(JOIN[4], why); // "failed"
          k.onClose(why);
        }
      },
      /** The module stopped answering or rebooted: the next open() starts from the reset. */
      reset = (why: string) => {
        st = 0;
        end(why);
        e.abort();
      },
      pump = (k?: number, d?: Bytes, go?: () => void): void => {
        k = g;
        d = q.slice(0, 2048);
        // (up: write() checks it, the callbacks check the generation)
        go = () =>
          cmd(
            "AT+CIPSEND=" + d!.length,
            5e3,
            (f) =>
              f == "SEND OK"
                ? ((q = q.slice(d!.length)), (busy = 0), pump())
                : f[0] == "b" && ++busy < 7
                  ? clock.setTimeout(() => k == g && go!(), 50 * busy)
                  : end("send " + f),
            d,
          );
        if (!busy && d) {
          busy = 1;
          go();
        }
      };
    me.onState = (s, w) => o.log && o.log(s + " " + (w || ""));
    e.urcs = ESP8266_URCS;
    e.onUrc = (l, w?: boolean) => {
      w = l == "WIFI DISCONNECT";
      if (l == "ready") reset("reboot");
      if (w) st = st && 1;
      if ((w || l == "CLOSED") && up) end(l);
    };
    e.onData = (b) => up && (h as TransportHandler).onData(b);
    me.open = (host, port, hd, jap?: string, cs?: string, seq?: (l: string[]) => void, tl?: string[], u?: number, pl?: () => unknown) => {
      jap = `AT+CWJAP="${esc(o.ssid)}","${esc(o.password)}"`;
      cs = `AT+CIPSTART="${o.ssl ? "SSL" : "TCP"}","${host}",${port}`;
      // the connect, with TLS after its set-up commands (1.x: the SSL buffer; 2.x: SNI)
      tl = o.ssl ? ["AT+CIPSSLSIZE=4096", `AT+CIPSSLCSNI="${host}"`, cs] : [cs];
      /**
       * Sends each command in turn while it answers OK (an AT+CIPSSL... may
       * answer anything: the firmware without that command says ERROR); the
       * last one is AT+CIPSTART.
       */
      seq = (l, c?: string) => {
        c = l.shift()!;
        if (c == jap) state("joining");
        if (c == tl![0]) state("connecting");
        cmd(c, 2e4, (f, x) =>
          f != "OK" && c!.indexOf("AT+CIPSSL")
            ? end(
                c == jap
                  ? // a failed join: "+CWJAP:<n>" then FAIL (1.x) or ERROR (2.x)
                    "wifi " + (JOIN[x.join()[7] as any] || f)
                  : c == cs
                    ? "connect " + (x[0] || f) // "DNS Fail", "no ip" or the final
                    : c + " " + f,
              )
            : c == cs
              ? ((up = 1), state("connected"), hd.onOpen())
              : (c == jap && ((st = 2), state("joined")), seq!(l)),
        );
      };
      me.close(); // an open() still running ends with onClose("closed")
      h = hd;
      if (st) seq(st > 1 ? tl : [jap].concat(tl));
      else {
        state("resetting");
        // AT+RST answers OK (an intermediate line: a data command), boot noise,
        // then "ready"; with hardReset the command only waits, up to a minute,
        // while CH_PD is pulsed now and every 6 s until "ready" (u: this
        // generation until then). Any final but TIMEOUT goes on: ATE0 then
        // checks the module.
        u = g;
        cmd(o.hardReset ? "" : "AT+RST", o.hardReset ? 6e4 : 6e3, () => ((u = -1), seq!(["ATE0", "AT+CWMODE=1", "AT+CIPMUX=0", jap!].concat(tl!))), "", "ready");
        (pl = () => u == g && o.hardReset && o.hardReset(() => clock.setTimeout(pl!, 6e3)))();
      }
    };
    // over 4,096 bytes waiting: end() drops them all with the socket
    me.write = (b) => up && ((q += b).length > 4096 ? end("overflow") : pump());
    me.close = () => end("closed");
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
