/**
 * ESP8266 driver (Espressif AT firmware 1.x and 2.x), one TCP or SSL socket
 * (AT+CIPMUX=0), as a Transport.
 *
 *   createModem(engine: AtEngine, clock: Clock,
 *               cfg: { wifi?: { ssid: string; password: string } },
 *               hw?: { hardReset?: (done: () => void) => void },
 *               log?: (s: string) => void): Esp8266
 *   new Esp8266(engine, clock, { ssid, password, ssl?, hardReset?, log? })
 *
 * The board wires engine.feed to the UART; the driver owns engine.onUrc/onData.
 * modem.onState(state, why?) reports "resetting", "joining", "joined",
 * "connecting", "connected" and "failed" (with a short reason, never a secret).
 *
 * open() brings the module up as far as it is not up yet: reset (hardReset,
 * else AT+RST) and "ready"; ATE0, AT+CWMODE=1, AT+CIPMUX=0; AT+CWJAP (secret);
 * then AT+CIPSTART. A command time-out or a spontaneous "ready" sends the next
 * open() back to the reset; "WIFI DISCONNECT" back to AT+CWJAP.
 * write() keeps at most 4,096 bytes queued and sends them with AT+CIPSEND in
 * pieces of at most 2,048 bytes, one at a time, retrying "busy" with back-off
 * (100, 150, ... ms; at most 6 attempts).
 *
 * onClose reasons: "closed" (close() or a new open()), "reboot" (a spontaneous
 * "ready"), "timeout" (the module stopped answering), "CLOSED" (the peer),
 * "WIFI DISCONNECT", "overflow", "send <final>" (SEND FAIL, ERROR, busy...),
 * "connect <DNS Fail | no ip | final>", "wifi <timeout | wrong password |
 * no AP | failed | final>" (+CWJAP:1..4), "<bring-up command> <final>".
 * Not done: AT+CIPSSLSIZE (1.x SSL may need a bigger buffer), certificates.
 */
import type { AtEngine, AtReply } from "../at/engine";
import type { Bytes, Clock, Transport, TransportHandler } from "../session/transport";

export interface EspOptions {
  ssid: string;
  password: string;
  /** AT+CIPSTART="SSL" instead of "TCP". */
  ssl?: boolean;
  /** Pulses CH_PD/RST and calls done(); absent: AT+RST. */
  hardReset?: (done: () => void) => void;
  /** Receives the state reports (never a secret). */
  log?: (s: string) => void;
}

/** Backslash before `,` `"` and `\\` (the AT firmware's escape rule for SSID and password). */
const esc = (s: string) => s.replace(/[,"\\]/g, (c) => "\\" + c);
/** Reasons for the +CWJAP:<n> failure codes ("timeout" and "failed" serve elsewhere too). */
const JOIN = ["", "timeout", "wrong password", "no AP", "failed"];

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
    // Unset locals read as undefined (falsy); open() sets q and busy through end().
    /** Handler of the current open(); 0 once its onClose went out. */
    let h: TransportHandler | 0 | undefined,
      /** 0: reset needed, 1: join needed, 2: joined. */
      st = 0,
      /** Generation, bumped whenever a socket ends: replies to older ones are ignored. */
      g = 0,
      /** The socket is open (1) or not. */
      up: number | undefined,
      /** Bytes waiting to be sent (at most 4,096). */
      q!: Bytes,
      /** 0: no CIPSEND in flight, else its attempt number ("busy" retries). */
      busy!: number;
    me.onState = (s, w) => o.log && o.log(s + " " + (w || ""));
    const state = (s: string, why?: string) => me.onState(s, why);
    /**
     * Sends a command; f gets every final but TIMEOUT (which resets) and none
     * from an older generation. `d`: CIPSEND data (also "" for the reset, which
     * makes it a data command: "OK" is then not final); `fin`: the final besides
     * the defaults ("busy ..." unless given). Only AT+CWJAP holds a secret.
     */
    const cmd = (c: string, t: number, f: (r: AtReply) => void, d?: Bytes, fin?: string) => {
      const k = g;
      e.send({
        cmd: c,
        timeout: t,
        finals: [fin || "busy"],
        data: d,
        secret: c[5] == "J", // AT+CWJAP
        done: (r) => {
          if (k == g) r.final == "TIMEOUT" ? reset(JOIN[1]) : f(r);
        },
      });
    };
    /** Ends the socket of the current open(): onClose exactly once; any reason but "closed" is a failure. */
    const end = (why: string) => {
      const k = h;
      g++;
      up = busy = h = 0 as never;
      q = "";
      if (k) {
        // closes the link on the module (no harm when there is none); its reply
        // is ignored, only a TIMEOUT of it resets the (dead) module
        if (st > 1) cmd("AT+CIPCLOSE", 5000, () => {});
        if (why != "closed") state(JOIN[4], why); // "failed"
        k.onClose(why);
      }
    };
    /** The module stopped answering or rebooted: the next open() starts from the reset. */
    const reset = (why: string) => {
      st = 0;
      end(why);
      e.abort();
    };
    const pump = (): void => {
      const k = g,
        d = q.slice(0, 2048);
      // (up: write() checks it, the callbacks check the generation)
      const go = () =>
        cmd(
          "AT+CIPSEND=" + d.length,
          5000,
          (r) => {
            const f = r.final;
            if (f == "SEND OK") {
              q = q.slice(d.length);
              busy = 0;
              pump();
            } else if (f[0] == "b" && ++busy < 7) clock.setTimeout(() => k == g && go(), 50 * busy);
            else end("send " + f);
          },
          d,
        );
      if (!busy && d) {
        busy = 1;
        go();
      }
    };
    e.onUrc = (l) => {
      const w = l == "WIFI DISCONNECT";
      if (l == "ready") reset("reboot");
      if (w) st = st && 1;
      if ((w || l == "CLOSED") && up) end(l);
    };
    e.onData = (b) => up && (h as TransportHandler).onData(b);
    me.open = (host, port, hd) => {
      const hr = o.hardReset,
        jap = `AT+CWJAP="${esc(o.ssid)}","${esc(o.password)}"`;
      /** Sends each command in turn while it answers OK, then AT+CIPSTART. */
      const seq = (l: string[]): void => {
        const c = l.shift();
        if (c) {
          if (c == jap) state("joining");
          cmd(c, 20000, (r) => {
            // a failed join: "+CWJAP:<n>" then FAIL (1.x) or ERROR (2.x)
            if (r.final != "OK") end(c == jap ? "wifi " + (JOIN[r.lines.join()[7] as any] || r.final) : c + " " + r.final);
            else {
              if (c == jap) {
                st = 2;
                state("joined");
              }
              seq(l);
            }
          });
        } else {
          state("connecting");
          cmd(`AT+CIPSTART="${o.ssl ? "SSL" : "TCP"}","${host}",${port}`, 20000, (r) => {
            if (r.final == "OK") {
              up = 1;
              state("connected");
              hd.onOpen();
            } else end("connect " + (r.lines[0] || r.final)); // "DNS Fail", "no ip" or the final
          });
        }
      };
      me.close(); // an open() still running ends with onClose("closed")
      h = hd;
      if (st) seq(st > 1 ? [] : [jap]);
      else {
        state("resetting");
        // AT+RST answers OK (an intermediate line: a data command), boot noise,
        // then "ready"; with hardReset the command only waits. Any final but
        // TIMEOUT goes on: ATE0 then checks the module.
        cmd(hr ? "" : "AT+RST", 6000, () => seq(["ATE0", "AT+CWMODE=1", "AT+CIPMUX=0", jap]), "", "ready");
        if (hr) hr(() => {});
      }
    };
    me.write = (b) => {
      // over 4,096 bytes waiting: end() drops them all with the socket
      if (up) (q += b).length > 4096 ? end("overflow") : pump();
    };
    me.close = () => end("closed");
  }
}

/**
 * The app's factory. cfg is the device configuration (its `wifi` part is used),
 * hw the board's control pins; log, when given, receives every state change.
 */
export const createModem = (
  engine: AtEngine,
  clock: Clock,
  cfg: { wifi?: { ssid: string; password: string } },
  hw?: { hardReset?: (done: () => void) => void },
  log?: (s: string) => void,
): Esp8266 => new Esp8266(engine, clock, Object.assign({ log }, cfg.wifi, hw));
