/**
 * SIMCom LTE dialect of the modem simulator (SIM7600 series, A76xx / A7670),
 * non-transparent TCP (AT+CIPMODE=0) on link numbers 0..9, the TCP/IP command
 * set as SIMCom's SIM7500/SIM7600 TCP/IP AT command manual and the A76XX AT
 * command manual describe it, and the SSL service (AT+CCH*, sessions 0..1) as
 * their SSL AT command manuals describe it:
 *
 *   responses framed "\r\n<text>\r\n", echo on until ATE0;
 *   power-on banner: SIM7600 "RDY", A76xx "*ATREADY: 1"; then "+CPIN: READY",
 *   "SMS DONE", "PB DONE"; the module is deaf while it boots;
 *   concatenated command lines (AT+X;+Y;...): each command's answer lines in
 *   turn and one OK at the end; an ERROR or "+CME ERROR" stops the line there
 *   (lines a command says after its own OK, "+CIPCLOSE: 0,0" say, follow that OK);
 *   AT+CPIN? -> "+CPIN: READY" OK | "+CME ERROR: 10" (no SIM) | "+CPIN: SIM PIN" OK;
 *   AT+CSQ -> "+CSQ: <rssi>,99" OK;
 *   AT+CEREG? / AT+CGREG? -> "+CEREG: 0,<stat>" / "+CGREG: 0,<stat>" OK;
 *   AT+CGDCONT=1,"IP","apn" and AT+CGAUTH=1,<auth>[,"pwd","user"] -> OK (kept for tests);
 *   AT+CIPMODE=0 -> OK; AT+CIPRXGET=0|1 -> OK (push or pull mode);
 *   AT+CIPSRIP=0|1 -> OK (1, the default after boot: a "RECV FROM:<ip>:<port>"
 *   line before each pushed "+IPD<len>"); AT+CIPSRIP? -> "+CIPSRIP: <n>" OK;
 *   AT+NETOPEN -> OK, then "+NETOPEN: 0" (or "+NETOPEN: 1" when not registered
 *   or the APN is not the network's); when already open "+IP ERROR: Network is
 *   already opened" and ERROR; AT+NETOPEN? -> "+NETOPEN: <0|1>" OK;
 *   AT+NETCLOSE -> OK, then "+NETCLOSE: 0" (links closed); when not open
 *   "+IP ERROR: Network is already closed" and ERROR;
 *   AT+CIPOPEN=<link>,"TCP","host",port -> OK, then "+CIPOPEN: <link>,0" once
 *   connected, "+CIPOPEN: <link>,<err>" when not (a REAL socket on loopback);
 *   ERROR when the network is not open or the link is in use;
 *   AT+CIPSEND=<link>,<n> (n 1..1500) -> "> ", exactly n raw bytes, OK, then
 *   "+CIPSEND: <link>,<n>,<n>" (",-1" when the link went meanwhile);
 *   received TCP data: pull mode (AT+CIPRXGET=1) keeps it and says
 *   "+CIPRXGET: 1,<link>" once, until it was read empty with
 *   AT+CIPRXGET=2,<link>,<n> (raw, n <= 1500) or AT+CIPRXGET=3,<link>,<n> (hex,
 *   n <= 750): "+CIPRXGET: <2|3>,<link>,<read>,<left>", the bytes, OK;
 *   AT+CIPRXGET=4,<link> -> "+CIPRXGET: 4,<link>,<left>"; nothing held:
 *   "+IP ERROR: No data" and ERROR. Push mode (the default) sends
 *   "\r\n+IPD<len>\r\n<bytes>" instead (after "\r\nRECV FROM:<ip>:<port>" with AT+CIPSRIP=1);
 *   the peer closes -> "+IPCLOSE: <link>,1"; AT+CIPCLOSE=<link> -> OK,
 *   "+CIPCLOSE: <link>,0" (a link not open: "+CIPCLOSE: <link>,4", ERROR);
 *   network loss -> "+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY" (with the network
 *   service open), links gone, and AT+NETOPEN refused until AT+NETCLOSE;
 *   SSL service:
 *   AT+CCHSTART -> OK, then "+CCHSTART: 0" (or, option sslResultFirst, the
 *   manual's other order: "+CCHSTART: 0", then OK; the same for AT+CCHSTOP) (it activates the PDP context: not
 *   registered, a wrong APN or the knob cchstartErrors: "+CCHSTART: <err>",
 *   9 network error by default); ERROR when already started;
 *   AT+CCHSTOP -> OK, then "+CCHSTOP: 0" (its sessions closed, no report each);
 *   ERROR when not started;
 *   AT+CCHSSLCFG=<session>,<ssl_ctx 0..9> -> OK (before AT+CCHOPEN); AT+CSSLCFG=... -> OK;
 *   AT+CCHSET=<report_send 0|1>[,<recv_mode 0>] -> OK (1: "+CCHSEND: <s>,0" after
 *   each send's OK; the manual receive mode 1 is not simulated: ERROR);
 *   AT+CCHOPEN=<session 0..1>,"host",port[,<client_type 1 TCP | 2 TLS (default)>]
 *   -> OK, then "+CCHOPEN: <s>,0" once connected (with type 2 once the REAL TLS
 *   handshake is done, the core's SSL link: no certificate check, no SNI), or
 *   "+CCHOPEN: <s>,14" (the TCP connect failed) / "+CCHOPEN: <s>,15" (the
 *   handshake failed); ERROR when the service is not started or the session in use;
 *   AT+CCHSEND=<s>,<n> (n 1..2048) -> "> ", exactly n raw bytes, OK (ERROR when
 *   the session went meanwhile);
 *   received data -> "\r\n+CCHRECV: DATA,<s>,<len>\r\n<bytes>" (decrypted);
 *   the peer closes -> "+CCH_PEER_CLOSED: <s>"; AT+CCHCLOSE=<s> -> OK, then
 *   "+CCHCLOSE: <s>,0" (a session not open: ERROR);
 *   network loss -> "+CCH_PEER_CLOSED: <s>" for each open session and, with the
 *   service started, "+CCH: CCH STOP" (the service stopped: AT+CCHOPEN answers
 *   ERROR until AT+CCHSTART);
 *   AT+CRESET -> OK, then a reboot; AT+CPOF -> OK, then off.
 *   A reboot or a power down ends the network, the SSL service and every link and session.
 *
 * Faults beyond the core's: Sim7600Options (slow registration, SIM states,
 * the APN) and the fields openErrors (the next AT+CIPOPENs answer
 * "+CME ERROR: <openErrorCode>"), cchstartErrors (the next AT+CCHSTARTs end
 * "+CCHSTART: <cchstartErrorCode>"), powerKey() / powerDown() for PWRKEY;
 * network loss is the core's netDown(), the peer closing its dropLink() (the
 * tags: the link number, "ssl0" / "ssl1" for SSL sessions), a spontaneous
 * reset its reboot(); a failed handshake: the core's tls profile (or a peer
 * that speaks no TLS).
 */
import { ModemSimCore, type SimOptions, type TcpLink } from "./core";

export interface Sim7600SimOptions extends SimOptions {
  /** SIM state: "READY" (default), "SIM PIN", "SIM PUK", or "none" (+CME ERROR: 10). */
  sim?: string;
  /** rssi reported by AT+CSQ (default 20). */
  rssi?: number;
  /** Registration answers "0,2" (searching) this many times after boot (default 2): slow registration. */
  regPolls?: number;
  /** Registered status: 1 home (default) or 5 roaming; 0 = never registers. */
  regStat?: number;
  /** Registered on LTE (AT+CEREG?, default) or only on 2G/3G (AT+CGREG?; AT+CEREG? says 0,0). */
  lte?: boolean;
  /** The network's APN; AT+NETOPEN ends "+NETOPEN: 1" for another one. Default: any. */
  apn?: string;
  /** ms from AT+NETOPEN's OK to "+NETOPEN: 0" (default 30). */
  netopenDelay?: number;
  /** Boot banner of this family: "sim7600" ("RDY", default) or "a7670" ("*ATREADY: 1"). */
  family?: "sim7600" | "a7670";
  /** Send the boot banner when the sim is created (default: start quiet, booted). */
  bootBanner?: boolean;
  /** AT+CCHSTART / AT+CCHSTOP say their result line ("+CCHSTART: 0") before OK, the manual's other order (default: after). */
  sslResultFirst?: boolean;
}

const MAX_SEND = 1500;
const MAX_READ_RAW = 1500;
const MAX_READ_HEX = 750;
const LINKS = 10;
/** What the module keeps unread per link before it stops reading the socket (bytes). */
const RX_BUFFER_BYTES = 64 * 1024;
/** SSL sessions (AT+CCHOPEN's <session_id> 0..1) and the longest AT+CCHSEND. */
const SSL_SESSIONS = 2;
const MAX_SSL_SEND = 2048;
/** SSL contexts AT+CCHSSLCFG may name. */
const SSL_CONTEXTS = 10;
/** The SSL service's result codes used here (SIMCom's SSL manual): network error, TCP connect failed, handshake failed. */
const SSL_NETWORK_ERROR = 9;
const SSL_CONNECT_ERROR = 14;
const SSL_HANDSHAKE_ERROR = 15;

const hex = (bytes: string) => Buffer.from(bytes, "latin1").toString("hex").toUpperCase();

/** Splits a concatenated command line's tail ("+X;+Y") at the semicolons outside quotes. */
function splitCommands(tail: string): string[] {
  const parts: string[] = [];
  let part = "";
  let quoted = false;
  for (const c of tail) {
    if (c == '"') quoted = !quoted;
    if (c == ";" && !quoted) {
      parts.push(part);
      part = "";
    } else part += c;
  }
  parts.push(part);
  return parts.map((p) => p.trim()).filter((p) => p);
}

interface Link {
  tcp: TcpLink;
  connected: boolean;
  /** Bytes received and not read yet (pull mode). */
  held: string;
  /** "+CIPRXGET: 1,<link>" said and not read empty since. */
  told: boolean;
}

interface SslSession {
  tcp: TcpLink;
  connected: boolean;
}

export class Sim7600Sim extends ModemSimCore {
  /** Every command line received, for tests. */
  readonly commands: string[] = [];
  /** The arguments last given to AT+CGDCONT and AT+CGAUTH (tests check they arrived intact). */
  cgdcont: string[] = [];
  cgauth: string[] = [];
  powered = true;
  /** The network service (AT+NETOPEN) is open. */
  netOpen = false;
  /** The network dropped under an open service: AT+NETOPEN is refused until AT+NETCLOSE. */
  netBroken = false;
  /** AT+CIPRXGET mode: 0 push (the default), 1 pull. */
  rxMode = 0;
  /** AT+CIPSRIP: 1 (the default) puts "RECV FROM:<ip>:<port>" before each pushed "+IPD<len>". */
  srip = 1;
  /** The next this many AT+CIPOPENs answer "+CME ERROR: <openErrorCode>" (a fault knob). */
  openErrors = 0;
  openErrorCode = 4;
  /** The SSL service (AT+CCHSTART) is started. */
  sslStarted = false;
  /** AT+CCHSSLCFG: the SSL context of each session. */
  sslContexts: number[] = [];
  /** AT+CCHSET's <report_send_result>: 1 says "+CCHSEND: <s>,0" after a send's OK. */
  sslSendReport = 0;
  /** The next this many AT+CCHSTARTs end "+CCHSTART: <cchstartErrorCode>" (a fault knob). */
  cchstartErrors = 0;
  cchstartErrorCode = SSL_NETWORK_ERROR;
  private _o: Sim7600SimOptions;
  private _slots: (Link | null)[] = [];
  private _sessions: (SslSession | null)[] = [];
  private _polls = 0;
  private _booting = false;
  /** While a concatenated line runs: the answer lines of its current command (not sent yet). */
  private _captured: string[] | null = null;

  constructor(opts: Sim7600SimOptions = {}) {
    super(opts);
    this._o = opts;
    if (opts.bootBanner) {
      this._booting = true;
      this.later(() => this.onReboot(), opts.rebootDelay ?? 20);
    }
  }

  /** The board pulsed PWRKEY: a powered-off module boots, a running one restarts (taken as a reset). */
  powerKey(): void {
    this.powered = true;
    this.mute(false);
    this.reboot();
  }

  /** Power cut or switched off: the module says so and goes silent until powerKey(). */
  powerDown(): void {
    this.reply("NORMAL POWER DOWN");
    this._off();
  }

  /** Spontaneous reset: the module is deaf until its boot banner (onReboot). */
  reboot(): void {
    this._booting = true;
    super.reboot();
  }

  /** The link numbers in use (tests). */
  openLinks(): number[] {
    return this._slots.flatMap((l, i) => (l ? [i] : []));
  }

  /** The SSL session numbers in use (tests). */
  openSessions(): number[] {
    return this._sessions.flatMap((l, i) => (l ? [i] : []));
  }

  private _off(): void {
    this._dropAll();
    this.netOpen = false;
    this.sslStarted = false;
    this.powered = false;
    this.echo = false;
  }

  /** While a concatenated line runs, its commands' answers are captured (see onCommand). */
  protected override reply(...lines: string[]): void {
    if (this._captured) this._captured.push(...lines);
    else super.reply(...lines);
  }

  private _dropAll(): void {
    for (const l of this._slots) if (l) l.tcp.close();
    this._slots = [];
    this._dropSessions();
  }

  private _dropSessions(): void {
    for (const l of this._sessions) if (l) l.tcp.close();
    this._sessions = [];
  }

  private _registered(): boolean {
    const o = this._o;
    return (o.sim ?? "READY") == "READY" && o.regStat !== 0 && this._polls > (o.regPolls ?? 2);
  }

  protected onReboot(): void {
    this._booting = false;
    this._dropAll();
    this.netOpen = this.netBroken = this.sslStarted = false;
    this.rxMode = 0;
    this.srip = 1;
    this.sslContexts = [];
    this.sslSendReport = 0;
    this._polls = 0;
    const sim = this._o.sim ?? "READY";
    this.reply(this._o.family == "a7670" ? "*ATREADY: 1" : "RDY");
    this.later(() => {
      this.reply(sim == "none" ? "+CPIN: NOT INSERTED" : "+CPIN: " + sim);
      if (sim == "READY") this.later(() => this.reply("SMS DONE", "PB DONE"), 5);
    }, 5);
  }

  protected onNetDown(): void {
    for (let s = 0; s < SSL_SESSIONS; s++) if (this._sessions[s]) this.reply(`+CCH_PEER_CLOSED: ${s}`);
    const services = { ip: this.netOpen, ssl: this.sslStarted };
    this._dropAll();
    if (this.netOpen) this.netBroken = true;
    this.sslStarted = false;
    if (services.ip || !services.ssl) this.reply("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY");
    if (services.ssl) this.reply("+CCH: CCH STOP");
  }

  /** The answer line of a query; null: not one. */
  private _query(name: string): string | null {
    const o = this._o;
    if (name == "+CSQ") return `+CSQ: ${o.rssi ?? 20},99`;
    if (name == "+CEREG?" || name == "+CGREG?") {
      if (name == "+CEREG?") this._polls++;
      const lte = o.lte !== false;
      const reg = this._registered() && (lte || name == "+CGREG?");
      return `${name.slice(0, -1)}: 0,${reg ? o.regStat ?? 1 : this._polls > (o.regPolls ?? 2) && !lte ? 0 : 2}`;
    }
    if (name == "+NETOPEN?") return "+NETOPEN: " + (this.netOpen ? 1 : 0);
    if (name == "+CIPSRIP?") return "+CIPSRIP: " + this.srip;
    return null;
  }

  protected onCommand(line: string): void {
    this.commands.push(line);
    if (this._booting || !this.powered) return;
    const parts = /^AT\+/i.test(line) && line.includes(";") ? splitCommands(line.slice(2)) : [];
    if (parts.length > 1) return this._concatenated(parts);
    this._command(line);
  }

  /**
   * AT+X;+Y;...: each command in turn, its answer lines (its OK taken out), one
   * OK at the end; an error stops the line (the lines before it stay). Lines a
   * command says after its own OK follow the final OK.
   */
  private _concatenated(parts: string[]): void {
    const out: string[] = [];
    const afterOk: string[] = [];
    let failed = false;
    for (const part of parts) {
      this._captured = [];
      try {
        this._command("AT" + part);
      } finally {
        const lines = this._captured;
        this._captured = null;
        const error = lines.findIndex((l) => /^ERROR$|^\+CM. ERROR/.test(l));
        const ok = lines.indexOf("OK");
        if (error >= 0 && (ok < 0 || error < ok)) {
          out.push(...lines.slice(0, error + 1));
          failed = true;
        } else if (ok < 0) {
          out.push(...lines);
        } else {
          out.push(...lines.slice(0, ok));
          afterOk.push(...lines.slice(ok + 1));
        }
      }
      if (failed) break;
    }
    this.reply(...out, ...(failed ? [] : ["OK"]), ...afterOk);
  }

  /** One command (alone on its line, or one of a concatenated line as "AT<command>"). */
  private _command(line: string): void {
    const up = line.toUpperCase();
    const eq = up.indexOf("=");
    const name = eq < 0 ? up : up.slice(0, eq);
    const arg = eq < 0 ? "" : line.slice(eq + 1);
    const args = arg.split(",").map((s) => s.trim().replace(/^"|"$/g, ""));
    const o = this._o;
    const ok = () => this.reply("OK");
    const err = () => this.reply("ERROR");
    if (this.basicCommand(name)) return;
    if (name == "AT+CPIN?") {
      const sim = o.sim ?? "READY";
      return sim == "none" ? this.reply("+CME ERROR: 10") : this.reply("+CPIN: " + sim, "OK");
    }
    const query = name.startsWith("AT+") && eq < 0 ? this._query(name.slice(2)) : null;
    if (query) return this.reply(query, "OK");
    if (name == "AT+CGDCONT") {
      if (args[0] != "1" || args[1]?.toUpperCase() != "IP" || !args[2]) return err();
      this.cgdcont = args;
      return ok();
    }
    if (name == "AT+CGAUTH") {
      if (args[0] != "1" || !/^[0-3]$/.test(args[1] ?? "")) return err();
      this.cgauth = args;
      return ok();
    }
    if (name == "AT+CIPMODE") return arg == "0" || (arg == "1" && !this.netOpen) ? ok() : err();
    if (name == "AT+CIPRXGET") return this._rxget(args);
    if (name == "AT+CIPSRIP") {
      if (arg != "0" && arg != "1") return err();
      this.srip = Number(arg);
      return ok();
    }
    if (name == "AT+NETOPEN") {
      if (this.netOpen) return this.reply("+IP ERROR: Network is already opened", "ERROR");
      ok();
      return void this.later(() => {
        const good = this._networkUsable();
        this.netOpen = good;
        this.reply("+NETOPEN: " + (good ? 0 : 1));
      }, o.netopenDelay ?? 30);
    }
    if (name == "AT+NETCLOSE") {
      if (!this.netOpen) return this.reply("+IP ERROR: Network is already closed", "ERROR");
      for (const l of this._slots) if (l) l.tcp.close();
      this._slots = [];
      this.netOpen = this.netBroken = false;
      ok();
      return void this.later(() => this.reply("+NETCLOSE: 0"), 5);
    }
    if (name == "AT+CIPOPEN") return this._open(args);
    if (name == "AT+CIPSEND") return this._send(args);
    if (name == "AT+CIPCLOSE") {
      const n = Number(args[0]);
      const l = this._slots[n];
      if (!l) return this.reply(`+CIPCLOSE: ${args[0]},4`, "ERROR");
      l.tcp.close();
      this._slots[n] = null;
      return this.reply("OK", `+CIPCLOSE: ${n},0`);
    }
    if (name.startsWith("AT+CCH") || name == "AT+CSSLCFG") return this._ssl(name, args);
    if (name == "AT+CRESET") {
      ok();
      this._booting = true;
      return void this.later(() => this.reboot(), 5);
    }
    if (name == "AT+CPOF") {
      ok();
      return this._off();
    }
    err();
  }

  /** Registered, and the APN given is the network's (or the network takes any). */
  private _networkUsable(): boolean {
    return this._registered() && (!this._o.apn || this.cgdcont[2] == this._o.apn);
  }

  /** The SSL service's commands (AT+CCH*, AT+CSSLCFG). */
  private _ssl(name: string, args: string[]): void {
    const ok = () => this.reply("OK");
    const err = () => this.reply("ERROR");
    const s = Number(args[0]);
    const session = s >= 0 && s < SSL_SESSIONS && Math.floor(s) === s ? s : -1;
    // OK, then the result line a while later; or (sslResultFirst) the result line, then OK
    const okAndResult = (result: () => string, ms: number) => {
      if (!this._o.sslResultFirst) {
        ok();
        return void this.later(() => this.reply(result()), ms);
      }
      const captured = this._captured;
      if (captured) return void this.reply(result(), "OK");
      this.later(() => this.reply(result(), "OK"), ms);
    };
    if (name == "AT+CCHSTART") {
      if (this.sslStarted) return err();
      return okAndResult(() => {
        let code = this._networkUsable() ? 0 : SSL_NETWORK_ERROR;
        if (!code && this.cchstartErrors > 0) {
          this.cchstartErrors--;
          code = this.cchstartErrorCode;
        }
        this.sslStarted = !code;
        return "+CCHSTART: " + code;
      }, this._o.netopenDelay ?? 30);
    }
    if (name == "AT+CCHSTOP") {
      if (!this.sslStarted) return err();
      this._dropSessions();
      this.sslStarted = false;
      return okAndResult(() => "+CCHSTOP: 0", 5);
    }
    if (name == "AT+CCHSSLCFG") {
      const ctx = Number(args[1]);
      if (session < 0 || !(ctx >= 0 && ctx < SSL_CONTEXTS)) return err();
      this.sslContexts[session] = ctx;
      return ok();
    }
    if (name == "AT+CSSLCFG") return args[0] ? ok() : err();
    if (name == "AT+CCHSET") {
      if (!/^[01]$/.test(args[0] ?? "") || (args[1] !== undefined && args[1] != "0")) return err();
      this.sslSendReport = Number(args[0]);
      return ok();
    }
    if (name == "AT+CCHOPEN") return this._sslOpen(session, args);
    if (name == "AT+CCHSEND") return this._sslSend(session, Number(args[1]));
    if (name == "AT+CCHCLOSE") {
      const l = session < 0 ? null : this._sessions[session];
      if (!l) return err();
      l.tcp.close();
      this._sessions[session] = null;
      ok();
      return void this.later(() => this.reply(`+CCHCLOSE: ${session},0`), 5);
    }
    err();
  }

  private _sslOpen(s: number, args: string[]): void {
    const port = Number(args[2]);
    const type = args[3] === undefined ? 2 : Number(args[3]);
    if (s < 0 || !args[1] || !(port > 0 && port < 65536) || (type != 1 && type != 2)) return this.reply("ERROR");
    if (!this.sslStarted || this._sessions[s]) return this.reply("ERROR");
    this.reply("OK");
    const session: SslSession = {
      connected: false,
      tcp: this.openTcp(args[1], port, {
        onConnect: () => {
          session.connected = true;
          this.reply(`+CCHOPEN: ${s},0`);
        },
        onData: (bytes) => this.sendIpd(`\r\n+CCHRECV: DATA,${s},${bytes.length}\r\n`, bytes),
        onClose: (reason) => {
          if (this._sessions[s] !== session) return;
          this._sessions[s] = null;
          // before the session was up: the open's answer (the handshake, or TCP); else the peer closed
          this.reply(session.connected ? `+CCH_PEER_CLOSED: ${s}` : `+CCHOPEN: ${s},${reason.startsWith("tls:") ? SSL_HANDSHAKE_ERROR : SSL_CONNECT_ERROR}`);
        },
      }, "ssl" + s, type == 2 ? {} : undefined),
    };
    this._sessions[s] = session;
  }

  private _sslSend(s: number, len: number): void {
    const session = s < 0 ? null : this._sessions[s];
    if (!session || !session.connected || !(len >= 1 && len <= MAX_SSL_SEND) || Math.floor(len) !== len) return this.reply("ERROR");
    this.send("> ");
    this.expectRaw(len, (bytes) => {
      if (this._sessions[s] !== session) return this.reply("ERROR");
      session.tcp.write(bytes);
      this.reply("OK", ...(this.sslSendReport ? [`+CCHSEND: ${s},0`] : []));
    });
  }

  private _open(args: string[]): void {
    const n = Number(args[0]);
    if (!(n >= 0 && n < LINKS) || args[1]?.toUpperCase() != "TCP" || !args[2] || !(Number(args[3]) > 0)) return this.reply("ERROR");
    if (this.openErrors > 0) {
      this.openErrors--;
      return this.reply("+CME ERROR: " + this.openErrorCode);
    }
    if (!this.netOpen || this.netBroken) return this.reply("+IP ERROR: Network not opened", "ERROR");
    if (this._slots[n]) return this.reply("+IP ERROR: Connection is already created", "ERROR");
    this.reply("OK");
    const host = args[2];
    const port = Number(args[3]);
    const link: Link = {
      connected: false,
      held: "",
      told: false,
      tcp: this.openTcp(host, port, {
        onConnect: () => {
          link.connected = true;
          this.reply(`+CIPOPEN: ${n},0`);
        },
        onData: (bytes) => {
          if (this.rxMode == 0) return this.sendIpd(`${this.srip ? `\r\nRECV FROM:${host}:${port}` : ""}\r\n+IPD${bytes.length}\r\n`, bytes);
          link.held = (link.held + bytes).slice(0, RX_BUFFER_BYTES);
          if (!link.told) {
            link.told = true;
            this.reply(`+CIPRXGET: 1,${n}`);
          }
        },
        onClose: (reason) => {
          if (this._slots[n] !== link) return;
          this._slots[n] = null;
          // refused or unreachable before it connected: the open's answer; else the peer closed
          this.reply(link.connected ? `+IPCLOSE: ${n},1` : `+CIPOPEN: ${n},${reason == "refused" ? 1 : 10}`);
        },
      }, n),
    };
    this._slots[n] = link;
  }

  private _rxget(args: string[]): void {
    const mode = Number(args[0]);
    if (mode == 0 || mode == 1) {
      this.rxMode = mode;
      return this.reply("OK");
    }
    const n = Number(args[1]);
    const link = this._slots[n];
    if (!(mode >= 2 && mode <= 4) || !(n >= 0 && n < LINKS)) return this.reply("ERROR");
    if (mode == 4) return this.reply(`+CIPRXGET: 4,${n},${link ? link.held.length : 0}`, "OK");
    const max = mode == 2 ? MAX_READ_RAW : MAX_READ_HEX;
    const want = args[2] === undefined ? max : Number(args[2]);
    if (!link || !link.held || !(want >= 1 && want <= max)) return this.reply("+IP ERROR: No data", "ERROR");
    const bytes = link.held.slice(0, want);
    link.held = link.held.slice(bytes.length);
    if (!link.held) link.told = false;
    this.send(`\r\n+CIPRXGET: ${mode},${n},${bytes.length},${link.held.length}\r\n${mode == 2 ? bytes : hex(bytes)}\r\n\r\nOK\r\n`);
  }

  private _send(args: string[]): void {
    const n = Number(args[0]);
    const len = Number(args[1]);
    const link = this._slots[n];
    if (!link || !link.connected || !(len >= 1 && len <= MAX_SEND) || Math.floor(len) !== len) return this.reply("ERROR");
    // The prompt is "> " (the core lets the board write once the ">" is out).
    this.send("> ");
    this.expectRaw(len, (bytes) => {
      if (this._slots[n] !== link) return this.reply("OK", `+CIPSEND: ${n},${len},-1`);
      link.tcp.write(bytes);
      this.reply("OK", `+CIPSEND: ${n},${len},${len}`);
    });
  }
}
