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
import type { Bytes, Clock, Transport, TransportHandler } from "../transport";

/**
 * The SIM800's unsolicited lines (prefix match), registered with the AT engine:
 * link events ("CLOSED", "CLOSE OK", "CONNECT OK", "ALREADY CONNECT"), and the
 * module's own: "RDY", "Call Ready", "SMS Ready", "NORMAL POWER DOWN",
 * "UNDER-VOLTAGE ...", "+PDP: DEACT". At most six alternatives per regex
 * (docs/espruino.md).
 */
export const SIM800_URCS = [/^CLOSE|^CONNECT|^ALREADY|^\d, *C/, /^RDY|^Call|^SMS|^NORMAL|^UNDER|^\+PDP/];

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
 * The state lives in the constructor's closure (locals minify to one letter
 * and need no `this.`); open/write/close are bound there. Time-outs (ms on the
 * injected clock: tests speed it up): AT probe and registration poll 1 s,
 * ordinary commands and CIPCLOSE 5 s; CGATT=1, CIPSHUT, CIICR, CIPSTART and
 * CIPSEND 85 s (SIMCom's maximum for CIICR; CIPSEND's "> " has the engine's 3 s).
 */
export class Sim800 implements Transport {
  /** State reports; by default they go to opts.log. */
  onState!: (state: string, why?: string) => void;
  open!: (host: string, port: number, handler: TransportHandler) => void;
  write!: (bytes: Bytes) => void;
  close!: () => void;

  constructor(e: AtEngine, clock: Clock, o: Sim800Options) {
    const me = this;
    const P = 1e3;
    const T = 5e3;
    const L = 85e3;
    // One `let` for the state and the helpers (one declaration minifies
    // smallest). Unset locals read as undefined (falsy) where that is what
    // they start as. Extra parameters of the helpers are scratch locals.
    let /** Handler of the current open(); 0 once its onClose went out. */
      h: TransportHandler | 0 | undefined,
      /** Generation, bumped whenever an open() ends: replies to older ones are ignored. */
      g = 0,
      /** Bearer up (attached, IP). */
      up: unknown,
      /** The module powered down: PWRKEY at the first unanswered probe of the next open(). */
      rst: any,
      /** Time of the next PWRKEY pulse while the probe goes unanswered. */
      z: number,
      /** Socket: 0 none (yet), 1 connected, 2 closing, 3 connected with a CIPSEND in flight. */
      m: number | undefined,
      /** Bytes waiting (at most 4,096); emptied when a socket connects. */
      q!: Bytes,
      /** Step in progress (0 while resetting and probing, and once end() ran); the registration deadline. */
      s: number | undefined,
      d: number,
      /**
       * The bring-up, one command (after "AT") per step; step 9 (AT+CSTT) and
       * 12 (AT+CIPSTART, set by open) are filled in. Step 0 is the auto-baud
       * probe "AT".
       */
      steps = "|E0|+CPIN?|+CSQ|+CREG?|+CGATT=1|+CIPSHUT|+CIPMUX=0|+CIPHEAD=1||+CIICR|+CIFSR|".split("|"),
      state = (x: string, why?: string) => {
        me.onState(x, why);
      },
      /**
       * Ends the current open(): onClose exactly once. k true (or 1): what is in
       * flight will not be answered usefully (the module restarted or is stuck,
       * or the bring-up was given up): the engine's queue is dropped and the
       * bearer counts as down.
       */
      end = (why: string, k?: unknown, x?: TransportHandler | 0) => {
        x = h;
        g++;
        h = m = s = 0;
        if (k) {
          up = 0;
          e.abort();
        }
        if (x) {
          state(up ? "joined" : "failed", why);
          x.onClose(why);
        }
      },
      /**
       * Sends "AT" + c; f gets the final and the lines (joined by ",") and never
       * a reply that belongs to an older generation, nor a TIMEOUT but the AT
       * probe's: the modem is stuck, the open ends and the next open() probes
       * until it answers.
       */
      cmd = (c: string, t: number, f: (final: string, lines: string, k: number) => unknown, finals?: any, secret?: any, okNotFinal?: any, data?: Bytes, k?: any) => {
        k = g;
        e.send({
          cmd: "AT" + c,
          timeout: t,
          done: (r) => k == g && (r.final == "TIMEOUT" && c ? end(r.final, 1) : f(r.final, r.lines + "", k)),
          finals,
          data,
          secret,
          okNotFinal,
        });
      },
      /** Closes the socket with a reason (CIPCLOSE); gives a bring-up up at once. */
      shut = (why: string, x?: number) => {
        // A send in flight is abandoned (its ABORTED finds m == 2: ignored). "CLOSE OK";
        // a "CLOSED" from the peer meanwhile ends it as well.
        if (h && m != 2) m ? ((x = m), (m = 2), x > 2 && e.abort(true), cmd("+CIPCLOSE", T, () => end(why), ["CLOSE"])) : end(why, 1);
      },
      pump = (b?: Bytes): void => {
        if (q && m == 1) {
          // SIMCom TCP/IP application note: at most 1460 bytes per AT+CIPSEND.
          b = q.slice(0, 1460);
          q = q.slice(1460);
          m = 3;
          cmd("+CIPSEND=" + b.length, L, (f) => {
            if (m! > 2) m = 1;
            f == "SEND OK" ? pump() : shut(f);
          }, 0, 0, 0, b);
        }
      },
      /** Not there yet: poll again until the deadline, then fail with why. */
      wait = (why: string) => (clock.now() < d ? 1 : why),
      run = (i: number, x?: unknown): void => {
        s = i;
        if (i > 11 && !x) {
          if (!up) state("joined");
          up = 1;
          state("connecting");
          // TLS: AT+CIPSSL=1 before AT+CIPSTART (ERROR: a firmware without SSL)
          if (o.ssl) return cmd("+CIPSSL=1", T, (f) => (f == "OK" ? run(i, 1) : end("+CIPSSL " + f)));
        }
        cmd(
          steps[i],
          // CGATT=1 (5), CIPSHUT (6), CIICR (10) and CIPSTART (12) get the long time-out
          i ? (0b1010001100000 >> i) & 1 ? L : T : P,
          (f, x, k, v?: any) => {
            // A check gives nothing (next step), 1 (poll again until the deadline) or why it failed.
            v = !i
              ? // the module answers once it has seen "AT" at our rate (TIMEOUT: not yet)
                f != "OK" && wait("no answer")
              : i == 2
                ? // "+CPIN: SIM PIN" / "SIM PUK" fail as that line; no SIM as "+CPIN? +CME ERROR: 10"
                  !/READY/.test(x) && x
                : i == 3
                  ? state("attaching", x) // with the signal: "+CSQ: <rssi>,<ber>"
                  : i == 4
                    ? !/G: \d,[15]/.test(x) && wait("no network")
                    : // AT+CIPSTART: all but CONNECT OK fail; all but CONNECT FAIL, CLOSED
                      // and CLOSE OK (a failed TLS handshake) (not ALREADY CONNECT, ERROR...)
                      // leave the bearer in doubt: AT+CIPSHUT and a fresh attach next time
                      i > 11 && !/T OK/.test(f) && ((up = f[0] == "C"), f);
            // e.g. "+CIICR ERROR" (the name only: AT+CSTT's arguments are secret)
            if (!v && /ERROR/.test(f)) v = steps[i].split("=")[0] + " " + f;
            v == 1
              ? // silent for 10 s (at once after a power down): PWRKEY, where wired, then probe on
                !i && o.powerOn && clock.now() >= z
                ? ((z = clock.now() + 1e4), state("resetting"), o.powerOn(() => k == g && run(0)))
                : clock.setTimeout(() => k == g && run(i), P)
              : v
                ? end(v)
                : i > 11
                  ? // connected: the bytes waiting are the ones written from now on
                    ((m = 1), (q = ""), state("connected"), (h as TransportHandler).onOpen(), pump())
                  : run(i + 1);
          },
          // The IP line ends AT+CIFSR (no OK follows it): any line does (the IP is not used).
          i == 6 ? ["SHUT"] : i == 11 ? [""] : i > 11 && ["CONNECT", "ALREADY", "CLOSE"],
          i == 9, // AT+CSTT carries the APN credentials
          i > 11,
        );
      };
    steps[9] = `+CSTT="${o.apn}","${o.user || ""}","${o.password || ""}"`;
    me.onState = (x, why) => o.log && o.log(x + " " + (why || ""));
    e.onData = (b) => m && (h as TransportHandler).onData(b);
    e.urcs = SIM800_URCS;
    e.onUrc = (l) => {
      if (l == "CLOSED") m && end(l);
      else if (/^RDY|DOWN$|DEACT$/.test(l)) {
        // Restarted, powered down or the PDP context lost: the socket and the bearer are gone.
        up = 0;
        rst = rst || /N$/.test(l);
        // (s is nonzero only while an open() is past the probe: end() zeroes it)
        if (s) end(l, 1);
      }
    };
    // One open() at a time: the next one after this one's onClose.
    me.open = (host, port, handler) => {
      h = handler;
      steps[12] = `+CIPSTART="TCP","${host}","${port}"`;
      d = clock.now() + (o.regDeadline || 6e4);
      z = rst ? 0 : clock.now() + 1e4;
      rst = 0;
      run(up ? 12 : 0);
    };
    me.write = (b) => m! & 1 && ((q += b).length > 4096 ? shut("overflow") : pump());
    me.close = () => shut("closed");
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
