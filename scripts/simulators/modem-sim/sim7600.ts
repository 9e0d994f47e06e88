/**
 * SIMCom LTE dialect of the modem simulator (SIM7600 series, A76xx / A7670),
 * non-transparent TCP (AT+CIPMODE=0) on link numbers 0..9, the TCP/IP command
 * set as SIMCom's SIM7500/SIM7600 TCP/IP AT command manual and the A76XX AT
 * command manual describe it:
 *
 *   responses framed "\r\n<text>\r\n", echo on until ATE0;
 *   power-on banner: SIM7600 "RDY", A76xx "*ATREADY: 1"; then "+CPIN: READY",
 *   "SMS DONE", "PB DONE"; the module is deaf while it boots;
 *   AT+CPIN? -> "+CPIN: READY" OK | "+CME ERROR: 10" (no SIM) | "+CPIN: SIM PIN" OK;
 *   AT+CSQ -> "+CSQ: <rssi>,99" OK;
 *   AT+CEREG? / AT+CGREG? -> "+CEREG: 0,<stat>" / "+CGREG: 0,<stat>" OK, also
 *   concatenated on one line (AT+CEREG?;+CGREG?: both lines, one OK);
 *   AT+CGDCONT=1,"IP","apn" and AT+CGAUTH=1,<auth>[,"pwd","user"] -> OK (kept for tests);
 *   AT+CIPMODE=0 -> OK; AT+CIPRXGET=0|1 -> OK (push or pull mode);
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
 *   "\r\n+IPD<len>\r\n<bytes>" instead;
 *   the peer closes -> "+IPCLOSE: <link>,1"; AT+CIPCLOSE=<link> -> OK,
 *   "+CIPCLOSE: <link>,0" (a link not open: "+CIPCLOSE: <link>,4", ERROR);
 *   network loss -> "+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY", links gone, and
 *   AT+NETOPEN refused until AT+NETCLOSE;
 *   AT+CRESET -> OK, then a reboot; AT+CPOF -> OK, then off.
 *
 * Faults beyond the core's: Sim7600Options (slow registration, SIM states,
 * the APN) and the fields openErrors (the next AT+CIPOPENs answer
 * "+CME ERROR: <openErrorCode>"), powerKey() / powerDown() for PWRKEY; network
 * loss is the core's netDown(), the peer closing its dropLink(), a
 * spontaneous reset its reboot().
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
}

const MAX_SEND = 1500;
const MAX_READ_RAW = 1500;
const MAX_READ_HEX = 750;
const LINKS = 10;
/** What the module keeps unread per link before it stops reading the socket (bytes). */
const RX_BUFFER_BYTES = 64 * 1024;

const hex = (bytes: string) => Buffer.from(bytes, "latin1").toString("hex").toUpperCase();

interface Link {
  tcp: TcpLink;
  connected: boolean;
  /** Bytes received and not read yet (pull mode). */
  held: string;
  /** "+CIPRXGET: 1,<link>" said and not read empty since. */
  told: boolean;
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
  /** The next this many AT+CIPOPENs answer "+CME ERROR: <openErrorCode>" (a fault knob). */
  openErrors = 0;
  openErrorCode = 4;
  private _o: Sim7600SimOptions;
  private _slots: (Link | null)[] = [];
  private _polls = 0;
  private _booting = false;

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
    this._reply("NORMAL POWER DOWN");
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

  private _off(): void {
    this._dropAll();
    this.netOpen = false;
    this.powered = false;
    this.echo = false;
  }

  private _reply(...lines: string[]): void {
    for (const l of lines) this.send("\r\n" + l + "\r\n");
  }

  private _dropAll(): void {
    for (const l of this._slots) if (l) l.tcp.close();
    this._slots = [];
  }

  private _registered(): boolean {
    const o = this._o;
    return (o.sim ?? "READY") == "READY" && o.regStat !== 0 && this._polls > (o.regPolls ?? 2);
  }

  protected onReboot(): void {
    this._booting = false;
    this._dropAll();
    this.netOpen = this.netBroken = false;
    this.rxMode = 0;
    this._polls = 0;
    const sim = this._o.sim ?? "READY";
    this._reply(this._o.family == "a7670" ? "*ATREADY: 1" : "RDY");
    this.later(() => {
      this._reply(sim == "none" ? "+CPIN: NOT INSERTED" : "+CPIN: " + sim);
      if (sim == "READY") this.later(() => this._reply("SMS DONE", "PB DONE"), 5);
    }, 5);
  }

  protected onNetDown(): void {
    this._dropAll();
    if (this.netOpen) this.netBroken = true;
    this._reply("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY");
  }

  /** The answer line of a query that may stand in a concatenated command line; null: not one. */
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
    return null;
  }

  protected onCommand(line: string): void {
    this.commands.push(line);
    if (this._booting || !this.powered) return;
    const up = line.toUpperCase();
    // AT+CEREG?;+CGREG?: queries concatenated on one line, one OK at the end
    if (up.startsWith("AT+") && up.includes(";")) {
      const answers = up.slice(2).split(";").map((q) => this._query(q.trim()));
      return answers.every((a) => a !== null) ? this._reply(...(answers as string[]), "OK") : this._reply("ERROR");
    }
    const eq = up.indexOf("=");
    const name = eq < 0 ? up : up.slice(0, eq);
    const arg = eq < 0 ? "" : line.slice(eq + 1);
    const args = arg.split(",").map((s) => s.trim().replace(/^"|"$/g, ""));
    const o = this._o;
    const ok = () => this._reply("OK");
    const err = () => this._reply("ERROR");
    if (name == "AT") return ok();
    if (name == "ATE0" || name == "ATE1") {
      this.echo = name == "ATE1";
      return ok();
    }
    if (name == "AT+CPIN?") {
      const sim = o.sim ?? "READY";
      return sim == "none" ? this._reply("+CME ERROR: 10") : this._reply("+CPIN: " + sim, "OK");
    }
    const query = name.startsWith("AT+") && eq < 0 ? this._query(name.slice(2)) : null;
    if (query) return this._reply(query, "OK");
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
    if (name == "AT+NETOPEN") {
      if (this.netOpen) return this._reply("+IP ERROR: Network is already opened", "ERROR");
      ok();
      return void this.later(() => {
        const good = this._registered() && (!o.apn || this.cgdcont[2] == o.apn);
        this.netOpen = good;
        this._reply("+NETOPEN: " + (good ? 0 : 1));
      }, o.netopenDelay ?? 30);
    }
    if (name == "AT+NETCLOSE") {
      if (!this.netOpen) return this._reply("+IP ERROR: Network is already closed", "ERROR");
      this._dropAll();
      this.netOpen = this.netBroken = false;
      ok();
      return void this.later(() => this._reply("+NETCLOSE: 0"), 5);
    }
    if (name == "AT+CIPOPEN") return this._open(args);
    if (name == "AT+CIPSEND") return this._send(args);
    if (name == "AT+CIPCLOSE") {
      const n = Number(args[0]);
      const l = this._slots[n];
      if (!l) return this._reply(`+CIPCLOSE: ${args[0]},4`, "ERROR");
      l.tcp.close();
      this._slots[n] = null;
      return this._reply("OK", `+CIPCLOSE: ${n},0`);
    }
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

  private _open(args: string[]): void {
    const n = Number(args[0]);
    if (!(n >= 0 && n < LINKS) || args[1]?.toUpperCase() != "TCP" || !args[2] || !(Number(args[3]) > 0)) return this._reply("ERROR");
    if (this.openErrors > 0) {
      this.openErrors--;
      return this._reply("+CME ERROR: " + this.openErrorCode);
    }
    if (!this.netOpen || this.netBroken) return this._reply("+IP ERROR: Network not opened", "ERROR");
    if (this._slots[n]) return this._reply("+IP ERROR: Connection is already created", "ERROR");
    this._reply("OK");
    const link: Link = {
      connected: false,
      held: "",
      told: false,
      tcp: this.openTcp(args[2], Number(args[3]), {
        onConnect: () => {
          link.connected = true;
          this._reply(`+CIPOPEN: ${n},0`);
        },
        onData: (bytes) => {
          if (this.rxMode == 0) return this.sendIpd(`\r\n+IPD${bytes.length}\r\n`, bytes);
          link.held = (link.held + bytes).slice(0, RX_BUFFER_BYTES);
          if (!link.told) {
            link.told = true;
            this._reply(`+CIPRXGET: 1,${n}`);
          }
        },
        onClose: (reason) => {
          if (this._slots[n] !== link) return;
          this._slots[n] = null;
          // refused or unreachable before it connected: the open's answer; else the peer closed
          this._reply(link.connected ? `+IPCLOSE: ${n},1` : `+CIPOPEN: ${n},${reason == "refused" ? 1 : 10}`);
        },
      }, n),
    };
    this._slots[n] = link;
  }

  private _rxget(args: string[]): void {
    const mode = Number(args[0]);
    if (mode == 0 || mode == 1) {
      this.rxMode = mode;
      return this._reply("OK");
    }
    const n = Number(args[1]);
    const link = this._slots[n];
    if (!(mode >= 2 && mode <= 4) || !(n >= 0 && n < LINKS)) return this._reply("ERROR");
    if (mode == 4) return this._reply(`+CIPRXGET: 4,${n},${link ? link.held.length : 0}`, "OK");
    const max = mode == 2 ? MAX_READ_RAW : MAX_READ_HEX;
    const want = args[2] === undefined ? max : Number(args[2]);
    if (!link || !link.held || !(want >= 1 && want <= max)) return this._reply("+IP ERROR: No data", "ERROR");
    const bytes = link.held.slice(0, want);
    link.held = link.held.slice(bytes.length);
    if (!link.held) link.told = false;
    this.send(`\r\n+CIPRXGET: ${mode},${n},${bytes.length},${link.held.length}\r\n${mode == 2 ? bytes : hex(bytes)}\r\n\r\nOK\r\n`);
  }

  private _send(args: string[]): void {
    const n = Number(args[0]);
    const len = Number(args[1]);
    const link = this._slots[n];
    if (!link || !link.connected || !(len >= 1 && len <= MAX_SEND) || Math.floor(len) !== len) return this._reply("ERROR");
    // The prompt is "> " (the core lets the board write once the ">" is out).
    this.send("> ");
    this.expectRaw(len, (bytes) => {
      if (this._slots[n] !== link) return this._reply("OK", `+CIPSEND: ${n},${len},-1`);
      link.tcp.write(bytes);
      this._reply("OK", `+CIPSEND: ${n},${len},${len}`);
    });
  }
}
