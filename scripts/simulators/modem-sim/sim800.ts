/**
 * SIM800 dialect of the modem simulator: single connection (AT+CIPMUX=0),
 * non-transparent mode, the TCP/IP command set as SIMCom's SIM800 Series AT
 * Command Manual (V1.09, ch. 8) and the SIM800 TCP/IP application note describe it:
 *
 *   responses framed "\r\n<text>\r\n" (ATV1), echo on until ATE0;
 *   power-on banner "RDY" (absent when auto-bauding), "+CFUN: 1", "+CPIN: READY",
 *   "Call Ready", "SMS Ready";
 *   AT+CPIN? -> "+CPIN: READY" OK | "+CME ERROR: 10" (no SIM) | "+CPIN: SIM PIN" OK;
 *   AT+CSQ -> "+CSQ: <rssi>,<ber>" OK; AT+CREG? -> "+CREG: 0,<stat>" OK;
 *   AT+CGATT? / AT+CGATT=1; AT+CIPSHUT -> "SHUT OK"; AT+CIPMUX=0; AT+CIPHEAD=1;
 *   AT+CSTT="apn","user","pwd" -> OK (state IP START); AT+CIICR -> OK after a delay
 *   (IP GPRSACT; ERROR when the APN is not the network's); AT+CIFSR -> the IP
 *   line and NO "OK" (IP STATUS);
 *   AT+CIPSTART="TCP","host","port" -> OK, then "CONNECT OK" | "STATE: TCP CLOSED"
 *   + "CONNECT FAIL" | "ALREADY CONNECT";
 *   AT+CIPSSL=1|0 (before AT+CIPSTART; SIMCom's SSL application note) -> OK, or
 *   ERROR with sslSupport false (firmware without SSL); with SSL on, AT+CIPSTART
 *   opens a REAL TLS client to the broker (the core's SSL link: no certificate
 *   check, no SNI) and says "CONNECT OK" once the handshake is done; a failed
 *   handshake shows as sslFail says: "CONNECT FAIL" (default), "CLOSE OK",
 *   "ERROR", or "send-fail" ("CONNECT OK" once TCP is up, then "SEND FAIL" and
 *   "CLOSED" for the first AT+CIPSEND);
 *   AT+CIPSEND=<n> (n 1..1460) -> "> ", exactly n raw bytes, "SEND OK";
 *   the Ctrl-Z form AT+CIPSEND (no length) is recorded as a violation and refused;
 *   received TCP data -> "\r\n+IPD,<len>:<bytes>" (CIPHEAD=1; at most 1460 bytes each);
 *   remote close -> "CLOSED"; AT+CIPCLOSE -> "CLOSE OK"; network loss -> "+PDP: DEACT";
 *   AT+CFUN=1,1 -> OK, then a reboot; AT+CPOWD=1 -> "NORMAL POWER DOWN", then off.
 *
 * Knobs beyond the core's faults: Sim800Options below, and powerDown(under) /
 * powerKey() for the board's PWRKEY.
 */
import { ModemSimCore, type SimOptions, type TcpLink } from "./core";

export interface Sim800Options extends SimOptions {
  /** SIM state: "READY" (default), "SIM PIN", "SIM PUK", or "none" (+CME ERROR: 10). */
  sim?: string;
  /** rssi reported by AT+CSQ (default 18). */
  rssi?: number;
  /** AT+CREG? answers "0,2" (searching) this many times after boot (default 2). */
  regPolls?: number;
  /** Registered status: 1 home (default) or 5 roaming; 0 = never registers. */
  regStat?: number;
  /** The network's APN; CIICR fails with ERROR for another one. Default: any. */
  apn?: string;
  /** CIICR (PDP activation) delay in ms (default 30). */
  ciicrDelay?: number;
  /** Local IP (default "10.77.3.21"). */
  ip?: string;
  /** No "RDY" in the boot banner (the module is auto-bauding). */
  autobaud?: boolean;
  /** The first n "AT" lines after a boot get no answer (auto-baud synchronisation). */
  deafAt?: number;
  /** Send the boot banner when the sim is created (default: start quiet, booted). */
  bootBanner?: boolean;
  /** Attach to GPRS by itself once registered, as the part does by default (default true). */
  autoAttach?: boolean;
  /** The firmware has SSL (AT+CIPSSL answers OK; default true). */
  sslSupport?: boolean;
  /** How a failed TLS handshake shows after AT+CIPSTART's OK (default "connect-fail"). */
  sslFail?: "connect-fail" | "close-ok" | "error" | "send-fail";
}

const MAX_SEND = 1460;

export class Sim800Sim extends ModemSimCore {
  /** The TCP/IP state as AT+CIPSTATUS names it. */
  state = "IP INITIAL";
  attached = false;
  ciphead = false;
  /** The credentials last given to AT+CSTT (tests check they arrived intact). */
  cstt: string[] = [];
  /** Every command line received, for tests. */
  readonly commands: string[] = [];
  powered = true;
  /** AT+CIPSSL as last set. */
  ssl = false;
  /** How a failed TLS handshake shows (from opts.sslFail; tests may change it). */
  sslFail: NonNullable<Sim800Options["sslFail"]>;
  private _o: Sim800Options;
  /** The handshake behind an early "CONNECT OK" failed ("send-fail"): its reason. */
  private _sslBroken: string | null = null;
  /** An AT+CIPSEND waiting for the handshake behind an early "CONNECT OK". */
  private _sslWait: (() => void) | null = null;
  private _link: TcpLink | null = null;
  private _polls = 0;
  private _deaf = 0;
  private _booting = false;

  constructor(opts: Sim800Options = {}) {
    super(opts);
    this._o = opts;
    this.sslFail = opts.sslFail ?? "connect-fail";
    this._deaf = 0;
    if (opts.bootBanner) {
      this._booting = true;
      this.later(() => this.onReboot(), opts.rebootDelay ?? 20);
    }
  }

  /** Power lost or cut: the part says so and goes silent until powerKey(). */
  powerDown(under = false): void {
    this.reply(under ? "UNDER-VOLTAGE POWER DOWN" : "NORMAL POWER DOWN");
    this._off();
  }

  /** The board pulsed PWRKEY (or RST): a powered-off part boots, a running one reboots. */
  powerKey(): void {
    this.powered = true;
    this.mute(false);
    this.reboot();
  }

  /** Spontaneous reset: the part is deaf until its boot banner (onReboot). */
  reboot(): void {
    this._booting = true;
    super.reboot();
  }

  /** Off: no echo, no answers, no links (the power-down line already queued still goes out). */
  private _off(): void {
    this._drop();
    this.state = "IP INITIAL";
    this.powered = false;
    this.echo = false;
  }


  private _drop(): void {
    if (this._link) this._link.close();
    this._link = null;
    this._sslBroken = null;
    this._sslWait = null;
  }

  protected onReboot(): void {
    this._booting = false;
    this._drop();
    this.state = "IP INITIAL";
    this.attached = false;
    this.ciphead = false;
    this.ssl = false;
    this._polls = 0;
    this._deaf = this._o.deafAt ?? 0;
    const sim = this._o.sim ?? "READY";
    if (!this._o.autobaud) this.reply("RDY");
    this.later(() => {
      this.reply("+CFUN: 1", sim == "none" ? "+CPIN: NOT INSERTED" : "+CPIN: " + sim);
      if (sim == "READY") this.later(() => this.reply("Call Ready", "SMS Ready"), 5);
    }, 5);
  }

  protected onNetDown(): void {
    this._drop();
    if (this.state != "IP INITIAL") this.state = "PDP DEACT";
    this.reply("+PDP: DEACT");
  }

  protected onCommand(line: string): void {
    this.commands.push(line);
    if (this._booting || !this.powered) return;
    const up = line.toUpperCase();
    const eq = up.indexOf("=");
    const name = eq < 0 ? up : up.slice(0, eq);
    const arg = eq < 0 ? "" : line.slice(eq + 1);
    const o = this._o;
    if (name == "AT" && this._deaf > 0) {
      this._deaf--;
      return;
    }
    const ok = () => this.reply("OK");
    const err = () => this.reply("ERROR");
    const st = this.state;
    if (this.basicCommand(name)) return;
    if (name == "AT+CPIN?") {
      const sim = o.sim ?? "READY";
      return sim == "none" ? this.reply("+CME ERROR: 10") : this.reply("+CPIN: " + sim, "OK");
    }
    if (name == "AT+CSQ") return this.reply(`+CSQ: ${o.rssi ?? 18},0`, "OK");
    if (name == "AT+CREG?") {
      const reg = (o.sim ?? "READY") == "READY" && o.regStat !== 0 && this._polls++ >= (o.regPolls ?? 2);
      if (reg && o.autoAttach !== false) this.attached = true;
      return this.reply("+CREG: 0," + (reg ? o.regStat ?? 1 : 2), "OK");
    }
    if (name == "AT+CGATT?") return this.reply("+CGATT: " + (this.attached ? 1 : 0), "OK");
    if (name == "AT+CGATT") {
      const reg = o.regStat !== 0 && this._polls > (o.regPolls ?? 2);
      if (arg == "1" && !reg) return err();
      this.attached = arg == "1";
      return ok();
    }
    if (name == "AT+CIPSHUT") {
      this._drop();
      this.state = "IP INITIAL";
      return this.reply("SHUT OK");
    }
    if (name == "AT+CIPMUX") return arg == "0" && st == "IP INITIAL" ? ok() : err();
    if (name == "AT+CIPHEAD") {
      this.ciphead = arg == "1";
      return ok();
    }
    if (name == "AT+CSTT") {
      const parts = arg.split(",").map((s) => s.replace(/^"|"$/g, ""));
      if (st != "IP INITIAL" || !parts[0]) return err();
      this.cstt = parts;
      this.state = "IP START";
      return ok();
    }
    if (name == "AT+CIICR") {
      if (st != "IP START" || !this.attached) return err();
      this.state = "IP CONFIG";
      this.later(() => {
        if (this.state != "IP CONFIG") return;
        if (o.apn && this.cstt[0] != o.apn) {
          this.state = "PDP DEACT";
          return err();
        }
        this.state = "IP GPRSACT";
        ok();
      }, o.ciicrDelay ?? 30);
      return;
    }
    if (name == "AT+CIFSR") {
      if (st == "IP INITIAL" || st == "IP START" || st == "IP CONFIG" || st == "PDP DEACT") return err();
      if (st == "IP GPRSACT") this.state = "IP STATUS";
      return this.reply(o.ip ?? "10.77.3.21");
    }
    if (name == "AT+CIPSTATUS") return this.reply("OK", "STATE: " + st);
    if (name == "AT+CIPSTART") return this._start(arg);
    if (name == "AT+CIPSSL") {
      if (o.sslSupport === false || (arg != "0" && arg != "1") || this._link) return err();
      this.ssl = arg == "1";
      return ok();
    }
    if (name == "AT+CIPSEND") return this._send(arg);
    if (name == "AT+CIPCLOSE") {
      if (!this._link) return err();
      this._drop();
      this.state = "TCP CLOSED";
      return this.reply("CLOSE OK");
    }
    if (name == "AT+CFUN") {
      ok();
      if (arg.replace(/\s/g, "") == "1,1") {
        // Resetting from now on: deaf until the boot banner.
        this._booting = true;
        this.later(() => this.reboot(), 5);
      }
      return;
    }
    if (name == "AT+CPOWD") return this.powerDown();
    err();
  }

  private _start(arg: string): void {
    const m = /^"(TCP|UDP)"\s*,\s*"([^"]+)"\s*,\s*"?(\d+)"?$/i.exec(arg.trim());
    const st = this.state;
    if (!m || m[1].toUpperCase() != "TCP") return this.reply("ERROR");
    if (this._link) return this.reply("OK", "ALREADY CONNECT");
    if (st != "IP STATUS" && st != "TCP CLOSED") return this.reply("ERROR");
    this.reply("OK");
    this.state = "TCP CONNECTING";
    const ssl = this.ssl;
    const fail = this.sslFail;
    const connectOk = () => {
      const w = this._sslWait;
      this._sslWait = null;
      if (w) w();
      if (this.state != "TCP CONNECTING") return;
      this.state = "CONNECT OK";
      this.reply("CONNECT OK");
    };
    const link: TcpLink = this.openTcp(m[2], Number(m[3]), {
      // "send-fail": CONNECT OK once TCP is up, the handshake's outcome later
      onTcp: () => fail == "send-fail" && connectOk(),
      onConnect: connectOk,
      onData: (bytes) => {
        for (let i = 0; i < bytes.length; i += MAX_SEND) {
          const part = bytes.slice(i, i + MAX_SEND);
          if (this.ciphead) this.sendIpd(`\r\n+IPD,${part.length}:`, part);
          else this.send(part);
        }
      },
      onClose: (reason) => {
        if (this._link !== link) return;
        const was = this.state;
        const handshake = ssl && !link.connected && /^tls/.test(reason);
        if (handshake && was == "CONNECT OK") {
          // behind an early CONNECT OK: the next AT+CIPSEND finds out
          this._sslBroken = reason;
          const w = this._sslWait;
          this._sslWait = null;
          if (w) w();
          return;
        }
        this._link = null;
        this.state = "TCP CLOSED";
        if (was != "TCP CONNECTING") this.reply("CLOSED");
        else if (!handshake || fail == "connect-fail") this.reply("STATE: TCP CLOSED", "CONNECT FAIL");
        else this.reply(fail == "close-ok" ? "CLOSE OK" : "ERROR");
      },
    }, undefined, ssl ? {} : undefined);
    this._link = link;
  }

  private _send(arg: string): void {
    if (arg == "") {
      this.violations.push("AT+CIPSEND without a length (Ctrl-Z form) used");
      return this.reply("ERROR");
    }
    const n = Number(arg);
    const link = this._link;
    if (!link || this.state != "CONNECT OK" || !(n >= 1 && n <= MAX_SEND) || Math.floor(n) !== n) return this.reply("ERROR");
    // The prompt is "> " (the core lets the board write once the ">" is out).
    this.send("> ");
    const done = (bytes: string) => {
      if (this._sslBroken && this._link === link) {
        this.log("SSL handshake had failed: " + this._sslBroken);
        this._drop();
        this.state = "TCP CLOSED";
        return this.reply("SEND FAIL", "CLOSED");
      }
      if (this._link !== link) return this.reply("SEND FAIL");
      link.write(bytes);
      this.reply("SEND OK");
    };
    this.expectRaw(n, (bytes) => {
      // behind an early CONNECT OK the handshake may still run: the answer waits for it
      if (this._link === link && !link.connected && !this._sslBroken) this._sslWait = () => done(bytes);
      else done(bytes);
    });
  }
}
