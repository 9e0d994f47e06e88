/**
 * ESP8266 dialect of the modem simulator: Espressif's AT firmware 1.x in
 * single-connection, normal (non-transparent) mode, as the ESP8266 AT
 * Instruction Set and its AT Command Examples describe it:
 *
 *   echo on until ATE0 (the part echoes "<cmd>\r\r\n"); replies framed
 *   "\r\n<text>\r\n"; after a reset: boot noise (the ROM talks at 74880 baud,
 *   garbage at 115200), then "ready"; with a saved AP it re-joins by itself
 *   ("WIFI CONNECTED", "WIFI GOT IP") unless autoJoin is false;
 *   AT, AT+GMR, ATE0/ATE1, AT+CWMODE=<1..3>, AT+CIPMUX=<0|1> ("link is builded"
 *   + ERROR while a link is up), AT+RST -> OK, noise, "ready";
 *   AT+CWJAP="ssid","pwd" (and _CUR/_DEF; `,` `"` `\` escaped with `\`) ->
 *   ["WIFI DISCONNECT"] "WIFI CONNECTED" "WIFI GOT IP" OK, or "+CWJAP:<n>" FAIL
 *   (1 timeout, 2 wrong password, 3 AP not found, 4 failed); any command while
 *   it runs -> "busy p...";
 *   AT+CIPSTART="TCP"|"SSL","host",port -> "CONNECT" OK | "ALREADY CONNECTED"
 *   ERROR | "DNS Fail" ERROR | ERROR "CLOSED" (refused) | "no ip" ERROR (not joined);
 *   "SSL" opens a REAL TLS client to the broker (the core's SSL link: no
 *   certificate check) and answers CONNECT once the handshake is done; a failed
 *   handshake answers ERROR "CLOSED" (or, with sslFail "send-fail", CONNECT at
 *   once and SEND FAIL "CLOSED" for the first AT+CIPSEND);
 *   1.x (default): AT+CIPSSLSIZE=<2048..4096> -> OK (the SSL buffer, set before
 *   an SSL link), AT+CIPSSLCSNI -> ERROR (unknown), no SNI;
 *   2.x (firmware 2, ESP-AT): AT+CIPSSLSIZE -> ERROR (not in ESP-AT),
 *   AT+CIPSSLCSNI="name" -> OK, sent as SNI by the next SSL link;
 *   AT+CIPSEND=<n> (1..2048) -> OK "> " (no line end), exactly n raw bytes,
 *   "Recv <n> bytes", "SEND OK" | "link is not valid" ERROR;
 *   socket data -> "\r\n+IPD,<len>:<bytes>" (at most 1460 bytes each);
 *   remote close -> "CLOSED"; AT+CIPCLOSE -> "CLOSED" OK | ERROR (no link);
 *   WiFi lost (netDown) -> "WIFI DISCONNECT" then "CLOSED" for an open link.
 *
 * Multiple connections (AT+CIPMUX=1, up to MUX_LINKS links with ids 0..4; only
 * while no link is open, else "link is builded" ERROR; back to 0 at a reset):
 *   AT+CIPSTART=<id>,"TCP"|"SSL","host",port -> "<id>,CONNECT" OK | "ALREADY
 *   CONNECTED" ERROR (id in use) | ERROR "<id>,CLOSED" (refused); the single-link
 *   form answers ERROR in this mode, and the <id> form ERROR in mode 0; at most
 *   one SSL link (a second: ERROR); a failed handshake: ERROR "<id>,CLOSED";
 *   AT+CIPSEND=<id>,<n> -> as above, or "link is not valid" ERROR;
 *   socket data -> "\r\n+IPD,<id>,<len>:<bytes>"; remote close -> "<id>,CLOSED";
 *   AT+CIPCLOSE=<id> -> "<id>,CLOSED" OK (id 5: every open link), ERROR when
 *   that id has no link; AT+CIPSTATUS adds "+CIPSTATUS:<id>,"TCP",...,0" per link;
 *   WiFi lost -> "WIFI DISCONNECT" then "<id>,CLOSED" per open link.
 * In both modes: AT+CIPDINFO=<0|1> (1: +IPD carries ",<remote IP>,<remote port>"
 * before the colon), AT+CIFSR -> +CIFSR:STAIP,"<ip>" +CIFSR:STAMAC,"<mac>" OK.
 *
 * Knobs beyond the core's faults: Esp8266SimOptions below; `commands` records
 * every command line (the password of AT+CWJAP is replaced by "***"), `joins`
 * the credentials AT+CWJAP delivered (tests check escaping), `link` the socket.
 */
import { ModemSimCore, type SimOptions, type TcpLink } from "./core";

export interface Esp8266SimOptions extends SimOptions {
  /** The access point in range: its SSID and password. Unset: any SSID / password joins. */
  ssid?: string;
  password?: string;
  /** Join delay in ms (default 20). */
  joinDelay?: number;
  /** Re-join the saved AP by itself after a reboot (default true, as the part does). */
  autoJoin?: boolean;
  /** Host names that resolve (besides dotted IPs and "localhost"); others answer "DNS Fail". Default: any name. */
  hosts?: string[];
  /** Answer +CWJAP:<n> FAIL with this code whatever the credentials (e.g. 1 or 4). */
  joinFail?: number;
  /** Send "ready" when the sim is created (default: start quiet, booted). */
  bootBanner?: boolean;
  /** AT firmware generation: 1 (NONOS AT 1.x, default) or 2 (ESP-AT 2.x). */
  firmware?: 1 | 2;
  /** How a failed TLS handshake shows: "error" (ERROR, CLOSED: default) or "send-fail". */
  sslFail?: "error" | "send-fail";
}

const MAX_SEND = 2048;
const MAX_IPD = 1460;
/** Link ids 0..4 with AT+CIPMUX=1; AT+CIPCLOSE=5 closes them all. */
const MUX_LINKS = 5;
const CLOSE_ALL_ID = 5;
/** The station's address and MAC (AT+CIFSR), and the remote IP shown for a named host (AT+CIPDINFO=1). */
const STATION_IP = "192.168.4.2";
const STATION_MAC = "5c:cf:7f:00:11:22";
const NAMED_HOST_IP = "192.0.2.1";
/** Local ports of the links in AT+CIPSTATUS. */
const FIRST_LOCAL_PORT = 4001;

/** Splits the quoted, backslash-escaped parameters of an AT set command. */
export function atParams(arg: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i];
    if (c == "\\" && i + 1 < arg.length) cur += arg[++i];
    else if (c == '"') quoted = !quoted;
    else if (c == "," && !quoted) {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

export class Esp8266Sim extends ModemSimCore {
  /** Station has an IP. */
  joined = false;
  /** A saved AP (set by a successful AT+CWJAP; the part keeps it in flash). */
  saved = false;
  mux = 0;
  mode = 1;
  /** Every command line received (passwords masked). */
  readonly commands: string[] = [];
  /** [ssid, password] as each AT+CWJAP delivered them, unescaped. */
  readonly joins: string[][] = [];
  link: TcpLink | null = null;
  /** The links of multiple-connection mode (AT+CIPMUX=1), by id. */
  readonly muxLinks: (TcpLink | null)[] = new Array(MUX_LINKS).fill(null);
  /** AT+CIPDINFO=1: +IPD shows the remote IP and port. */
  dinfo = false;
  /** AT+CIPSSLSIZE as last set (1.x), else undefined. */
  sslSize: number | undefined;
  /** AT+CIPSSLCSNI as last set (2.x), else undefined. */
  sni: string | undefined;
  /** How a failed TLS handshake shows (from opts.sslFail; tests may change it). */
  sslFail: "error" | "send-fail";
  /** The TLS handshake of the SSL link failed after CONNECT was reported ("send-fail"): its reason. */
  private _sslBroken: string | null = null;
  /** An AT+CIPSEND waiting for the handshake behind an early CONNECT ("send-fail"). */
  private _sslWait: (() => void) | null = null;
  /** The access point in range (unset field: anything matches); tests may change it while the sim runs. */
  ap: { ssid?: string; password?: string };
  /** Every AT+CWJAP fails with this +CWJAP code while set (from opts.joinFail; tests may change it). */
  joinFail: number | undefined;
  private _o: Esp8266SimOptions;
  /** An AT+CWJAP is in progress: the part answers "busy p..." to anything else. */
  private _joining = false;
  /** AT+RST answered: reboot once its "OK" has left (the tail of what was sent). */
  private _rst: string | null = null;

  constructor(opts: Esp8266SimOptions = {}) {
    super(opts);
    this._o = opts;
    this.ap = { ssid: opts.ssid, password: opts.password };
    this.joinFail = opts.joinFail;
    this.sslFail = opts.sslFail ?? "error";
    this.on("tx", (c: string) => {
      if (this._rst === null) return;
      const t = this._rst + c;
      this._rst = t.slice(-3);
      if (t.indexOf("OK\r\n") >= 0) {
        this._rst = null;
        this.later(() => this.reboot(), 2);
      }
    });
    if (opts.bootBanner) this.later(() => this.onReboot(), 1);
  }

  protected echoText(cmd: string): string {
    return cmd + "\r\r\n";
  }


  private _drop(): void {
    if (this.link) this.link.close();
    this.link = null;
    this._dropMux();
    this._sslBroken = null;
    this._sslWait = null;
  }

  /** Closes every multiple-connection link (no "<id>,CLOSED"); returns the ids that were open. */
  private _dropMux(): number[] {
    const ids: number[] = [];
    this.muxLinks.forEach((l, id) => {
      if (!l) return;
      l.close();
      this.muxLinks[id] = null;
      ids.push(id);
    });
    return ids;
  }

  /** "+IPD,[<id>,]<len>[,<ip>,<port>]:" */
  private _ipdHeader(id: number | null, len: number, link: TcpLink): string {
    const ip = /^\d+\.\d+\.\d+\.\d+$/.test(link.host) ? link.host : NAMED_HOST_IP;
    return "\r\n+IPD," + (id == null ? "" : id + ",") + len + (this.dinfo ? "," + ip + "," + link.port : "") + ":";
  }

  protected onReboot(): void {
    this._drop();
    this._rst = null;
    this._joining = false;
    this.joined = false;
    this.mux = 0;
    this.dinfo = false;
    this.sslSize = this.sni = undefined;
    this.send("\r\nready\r\n");
    if (this.saved && this._o.autoJoin !== false) {
      this.later(() => {
        this.joined = true;
        this.send("WIFI CONNECTED\r\nWIFI GOT IP\r\n");
      }, (this._o.joinDelay ?? 20) * 2);
    }
  }

  protected onNetDown(): void {
    const had = this.joined;
    this.joined = false;
    if (had) this.send("WIFI DISCONNECT\r\n");
    if (this.link) {
      this._drop();
      this.send("CLOSED\r\n");
    }
    for (const id of this._dropMux()) this.send(id + ",CLOSED\r\n");
  }

  /** A host name the part cannot resolve (not an address, not in opts.hosts): "DNS Fail", ERROR, and true. */
  private _dnsFails(host: string): boolean {
    const hosts = this._o.hosts;
    const isIp = /^\d+\.\d+\.\d+\.\d+$/.test(host) || host == "localhost";
    if (isIp || !hosts || hosts.indexOf(host) >= 0) return false;
    this.later(() => this.reply("DNS Fail", "ERROR"), 5);
    return true;
  }

  protected onCommand(line: string): void {
    const up = line.toUpperCase();
    const eq = up.indexOf("=");
    const name = eq < 0 ? up : up.slice(0, eq);
    const arg = eq < 0 ? "" : line.slice(eq + 1);
    const isJoin = /^AT\+CWJAP(_CUR|_DEF)?$/.test(name) && eq > 0;
    this.commands.push(isJoin ? line.replace(/,.*/, ',"***"') : line);
    const ok = () => this.reply("OK");
    const err = () => this.reply("ERROR");
    if (this._joining) return this.sendLine(this.busyLine());
    if (this.basicCommand(name)) return;
    if (name == "AT+GMR")
      return this._o.firmware == 2
        ? this.reply("AT version:2.2.0.0(ESP8266)", "SDK version:v3.4", "OK")
        : this.reply("AT version:1.7.4.0(May 11 2020 19:13:04)", "SDK version:3.0.4", "OK");
    if (name == "AT+RST") {
      ok();
      // the part reboots right after its OK has gone out
      if (this.fault.muted) this.later(() => this.reboot(), 5);
      else this._rst = "";
      return;
    }
    if (/^AT\+CWMODE(_CUR|_DEF)?$/.test(name) && eq > 0) {
      const m = Number(arg);
      if (!(m >= 1 && m <= 3)) return err();
      this.mode = m;
      return ok();
    }
    if (name == "AT+CIPMUX" && eq > 0) {
      if (arg != "0" && arg != "1") return err();
      if (this.link || this.muxLinks.some((l) => l)) return this.reply("link is builded", "ERROR");
      this.mux = Number(arg);
      return ok();
    }
    if (name == "AT+CIPDINFO" && eq > 0) {
      if (arg != "0" && arg != "1") return err();
      this.dinfo = arg == "1";
      return ok();
    }
    if (name == "AT+CIFSR")
      return this.reply('+CIFSR:STAIP,"' + (this.joined ? STATION_IP : "0.0.0.0") + '"', '+CIFSR:STAMAC,"' + STATION_MAC + '"', "OK");
    if (isJoin) return this._join(arg);
    if (name == "AT+CIPSTART" && eq > 0) return this.mux == 1 ? this._startMux(arg) : this._start(arg);
    if (name == "AT+CIPSSLSIZE" && eq > 0 && this._o.firmware != 2) {
      const n = Number(arg);
      if (!(n >= 2048 && n <= 4096)) return err();
      this.sslSize = n;
      return ok();
    }
    if (name == "AT+CIPSSLCSNI" && eq > 0 && this._o.firmware == 2) {
      const p = atParams(arg);
      if (p.length != 1 || !p[0] || p[0].length > 64) return err();
      this.sni = p[0];
      return ok();
    }
    if (name == "AT+CIPSEND" && eq > 0) return this.mux == 1 ? this._sendMux(arg) : this._send(arg);
    if (name == "AT+CIPCLOSE" && this.mux == 1) return this._closeMux(eq > 0 ? arg : "");
    if (name == "AT+CIPCLOSE") {
      if (!this.link) return err();
      this._drop();
      return this.reply("CLOSED", "OK");
    }
    if (name == "AT+CIPSTATUS") {
      const open = this.muxLinks.map((l, id) => ({ l, id })).filter((x) => x.l);
      const stat = this.link || open.length ? 3 : this.joined ? 2 : 5;
      const lines = open.map(({ l, id }) => `+CIPSTATUS:${id},"${l!.tls ? "SSL" : "TCP"}","${l!.host}",${l!.port},${FIRST_LOCAL_PORT + id},0`);
      return this.reply("STATUS:" + stat, ...lines, "OK");
    }
    err();
  }

  private _join(arg: string): void {
    const p = atParams(arg);
    if (p.length < 2 || this.mode == 2) return this.reply("ERROR");
    this.joins.push([p[0], p[1]]);
    const o = this._o;
    const was = this.joined;
    this.joined = false;
    if (this.link) {
      this._drop();
      this.send("CLOSED\r\n");
    }
    for (const id of this._dropMux()) this.send(id + ",CLOSED\r\n");
    if (was) this.send("WIFI DISCONNECT\r\n");
    this._joining = true;
    this.later(() => {
      this._joining = false;
      const code = this.joinFail ?? (this.ap.ssid != null && p[0] != this.ap.ssid ? 3 : this.ap.password != null && p[1] != this.ap.password ? 2 : 0);
      if (code) return this.reply("+CWJAP:" + code, "FAIL");
      this.joined = true;
      this.saved = true;
      this.send("WIFI CONNECTED\r\n");
      this.later(() => {
        this.send("WIFI GOT IP\r\n");
        this.reply("OK");
      }, 2);
    }, o.joinDelay ?? 20);
  }

  private _start(arg: string): void {
    const p = atParams(arg);
    if (this.mux != 0 || p.length < 3 || !/^(TCP|SSL)$/.test(p[0].toUpperCase())) return this.reply("ERROR");
    const host = p[1];
    const port = Number(p[2]);
    if (!(port > 0 && port < 65536)) return this.reply("ERROR");
    if (this.link) return this.reply("ALREADY CONNECTED", "ERROR");
    if (!this.joined) return this.reply("no ip", "ERROR");
    if (this._dnsFails(host)) return;
    let opened = false;
    const ssl = p[0].toUpperCase() == "SSL";
    const early = ssl && this.sslFail == "send-fail";
    const connected = () => {
      const w = this._sslWait;
      this._sslWait = null;
      if (w) w();
      if (opened) return;
      opened = true;
      this.reply("CONNECT", "OK");
    };
    const link: TcpLink = this.openTcp(host, port, {
      // "send-fail": the module reports CONNECT once TCP is up and finds out
      // about the handshake later
      onTcp: () => early && connected(),
      onConnect: connected,
      onData: (bytes) => {
        for (let i = 0; i < bytes.length; i += MAX_IPD) {
          const part = bytes.slice(i, i + MAX_IPD);
          this.sendIpd(this._ipdHeader(null, part.length, link), part);
        }
      },
      onClose: (reason) => {
        if (this.link !== link) return;
        // a failed handshake behind an early CONNECT: the link looks open
        // until the next AT+CIPSEND answers SEND FAIL
        if (early && opened && !link.connected && /^tls/.test(reason)) {
          this._sslBroken = reason;
          const w = this._sslWait;
          this._sslWait = null;
          if (w) w();
          return;
        }
        this.link = null;
        if (opened) this.send("CLOSED\r\n");
        else this.reply("ERROR", "CLOSED");
      },
    }, undefined, ssl ? { servername: this.sni } : undefined);
    this.link = link;
  }

  private _send(arg: string): void {
    const n = Number(arg);
    if (this.mux != 0 || !(n >= 1 && n <= MAX_SEND) || String(n) != arg.trim()) return this.reply("ERROR");
    const link = this.link;
    if (!link || !(link.connected || (link.tls && this.sslFail == "send-fail"))) return this.reply("link is not valid", "ERROR");
    // The prompt is "> " (the core lets the board write once the ">" is out).
    this.send("\r\nOK\r\n> ");
    const done = (bytes: string) => {
      if (this._sslBroken && this.link === link) {
        this.log("SSL handshake had failed: " + this._sslBroken);
        this._drop();
        return this.reply("SEND FAIL", "CLOSED");
      }
      if (this.link !== link || !link.connected) return this.reply("SEND FAIL");
      link.write(bytes);
      this.reply("SEND OK");
    };
    this.expectRaw(n, (bytes) => {
      this.reply(`Recv ${n} bytes`);
      // behind an early CONNECT the handshake may still run: the answer waits for it
      if (this.link === link && !link.connected && !this._sslBroken) this._sslWait = () => done(bytes);
      else done(bytes);
    });
  }

  /** A link id of multiple-connection mode ("0".."4"), or -1. */
  private _muxId(text: string): number {
    return /^\s*[0-4]\s*$/.test(text) ? Number(text) : -1;
  }

  private _startMux(arg: string): void {
    const p = atParams(arg);
    const id = this._muxId(p[0]);
    if (id < 0 || p.length < 4 || !/^(TCP|SSL)$/.test(p[1].toUpperCase())) return this.reply("ERROR");
    const host = p[2];
    const port = Number(p[3]);
    if (!(port > 0 && port < 65536)) return this.reply("ERROR");
    if (this.muxLinks[id]) return this.reply("ALREADY CONNECTED", "ERROR");
    if (!this.joined) return this.reply("no ip", "ERROR");
    const ssl = p[1].toUpperCase() == "SSL";
    // the part holds one SSL link at most
    if (ssl && this.muxLinks.some((l) => l && l.tls)) return this.reply("ERROR");
    if (this._dnsFails(host)) return;
    let opened = false;
    const link: TcpLink = this.openTcp(host, port, {
      onConnect: () => {
        if (opened) return;
        opened = true;
        this.reply(id + ",CONNECT", "OK");
      },
      onData: (bytes) => {
        for (let i = 0; i < bytes.length; i += MAX_IPD) {
          const part = bytes.slice(i, i + MAX_IPD);
          this.sendIpd(this._ipdHeader(id, part.length, link), part);
        }
      },
      onClose: () => {
        if (this.muxLinks[id] !== link) return;
        this.muxLinks[id] = null;
        if (opened) this.send(id + ",CLOSED\r\n");
        else this.reply("ERROR", id + ",CLOSED");
      },
    }, id, ssl ? { servername: this.sni } : undefined);
    this.muxLinks[id] = link;
  }

  private _sendMux(arg: string): void {
    const p = arg.split(",");
    const id = this._muxId(p[0]);
    const n = Number(p[1]);
    if (id < 0 || p.length != 2 || !(n >= 1 && n <= MAX_SEND) || String(n) != p[1].trim()) return this.reply("ERROR");
    const link = this.muxLinks[id];
    if (!link || !link.connected) return this.reply("link is not valid", "ERROR");
    this.send("\r\nOK\r\n> ");
    this.expectRaw(n, (bytes) => {
      this.reply(`Recv ${n} bytes`);
      if (this.muxLinks[id] !== link || !link.connected) return this.reply("SEND FAIL");
      link.write(bytes);
      this.reply("SEND OK");
    });
  }

  private _closeMux(arg: string): void {
    const id = arg.trim() == String(CLOSE_ALL_ID) ? CLOSE_ALL_ID : this._muxId(arg);
    if (id < 0) return this.reply("ERROR");
    if (id == CLOSE_ALL_ID) {
      for (const open of this._dropMux()) this.send("\r\n" + open + ",CLOSED\r\n");
      return this.reply("OK");
    }
    const link = this.muxLinks[id];
    if (!link) return this.reply("ERROR");
    link.close();
    this.muxLinks[id] = null;
    this.reply(id + ",CLOSED", "OK");
  }
}
