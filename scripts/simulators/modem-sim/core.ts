/**
 * Modem simulator core (host side, Node 20). It plays the modem at the far end
 * of the board's UART and bridges every connection the board opens to a REAL
 * TCP socket on loopback. The AT dialects are plug-ins that extend this class.
 *
 * ============================ DIALECT CONTRACT ============================
 * Files: scripts/simulators/modem-sim/esp8266.ts exports `class Esp8266Sim extends ModemSimCore`
 *        scripts/simulators/modem-sim/sim7600.ts exports `class Sim7600Sim extends ModemSimCore`
 *        scripts/simulators/modem-sim/sim800.ts  exports `class Sim800Sim  extends ModemSimCore`
 * Each has `constructor(opts: SimOptions = {})` (a dialect may accept a wider
 * options type that extends SimOptions) and calls `super(opts)`.
 * scripts/simulators/modem-sim/index.ts: `createModemSim(kind, opts)` builds one of them.
 *
 * A dialect IMPLEMENTS:
 *   protected onCommand(cmd: string): void
 *       One command line from the board, without its "\r"/"\n" terminator,
 *       never empty, already echoed by the core when echo is on. Reply with
 *       sendLine()/send(). Set `this.echo = false` on ATE0 (true on ATE1).
 *   protected onReboot(): void
 *       Called by reboot() after the core has torn everything down (links
 *       closed WITHOUT their onClose, raw capture cancelled, echo back on,
 *       boot noise sent): reset dialect state and send the boot banner
 *       (ESP8266: "ready"; SIM800: "RDY", "+CPIN: READY", "Call Ready", ...).
 *   protected onNetDown(): void
 *       Called by netDown(): the radio network is lost. ESP8266: "WIFI
 *       DISCONNECT" and close its links ("0,CLOSED"); SIM800: "+PDP: DEACT"
 *       and close its links. Use dropLink()/link.close() and sendLine().
 *   optional override busyLine(): string   (default "busy p...")
 *   optional override echoText(cmd): string (default cmd + "\r\n"; ESP8266
 *       may return cmd + "\r\r\n" like the real part)
 *
 * The CORE PROVIDES (to dialects):
 *   send(text)            queue bytes to the board (seeded random chunks of
 *                         1..maxChunk, paced at `baud` if set, always async)
 *   sendLine(line)        send(line + "\r\n") (sendLine("") sends a bare "\r\n";
 *                         add the leading blank line yourself where the part does)
 *   sendIpd(header, payload)  send header + payload, honouring loseIpdBytes():
 *                         the header is sent unchanged, the payload loses bytes.
 *   expectRaw(n, done)    call right AFTER send(">") / send("> "): the next n
 *                         bytes from the board are captured raw (no framing,
 *                         no echo) and handed to done(bytes). With fault
 *                         `sendFail` armed the core answers "SEND FAIL"
 *                         itself and done() is NOT called. The "\n" of the
 *                         "\r\n" ending the command line is its terminator,
 *                         never data, even when it arrives in a later chunk.
 *                         Bytes that arrive before the prompt's ">" has left
 *                         the core are a board bug: recorded in `violations`
 *                         (still captured). The prompt counts as delivered
 *                         once its ">" is out: a board may write before the
 *                         trailing space arrives.
 *   openTcp(host, port, ev, tag?, tls?) -> TcpLink
 *                         real net.Socket (after opts.hostMap). ev.onConnect()
 *                         once connected; ev.onData(bytes) byte strings;
 *                         ev.onClose(reason) exactly once ("refused", "remote",
 *                         "dropped", "error: ...", "tls: ..."), NEVER after the
 *                         dialect's own link.close() and never after
 *                         reboot()/close(). `tag` (e.g. the ESP mux id) lets
 *                         tests drop a link. With `tls` (an SSL link) the core
 *                         runs a REAL TLS client (node:tls) over that socket:
 *                         ev.onTcp() once TCP is up, ev.onConnect() once the
 *                         handshake is done, ev.onData() the decrypted bytes,
 *                         link.write() encrypts; a handshake that fails ends
 *                         the link with "tls: <code>". Like the modules, it
 *                         does NOT check the server's certificate; SNI only
 *                         when tls.servername is given; the TLS versions are
 *                         the sim's `tls` profile (opts.tls, changeable).
 *   echo: boolean         on at start and after reboot.
 *   rand(): number        a seeded PRNG in [0,1) for dialects (chunking has its own,
 *                         so chunk sizes depend only on the seed and the output).
 *   log(s)                diagnostic line (opts.log).
 *   timers                setTimeout/clearTimeout to use for any dialect delay
 *                         (so close() can cancel them: use this.later(fn, ms)).
 *
 * FAULT KNOBS (for tests), all on the sim instance:
 *   sim.fault.refuseLink = true   openTcp() fails: ev.onClose("refused"), no connect
 *   sim.fault.busy = n            next n command lines answered busyLine() by the
 *                                 core, not passed to the dialect
 *   sim.fault.error = n           next n command lines answered "ERROR" by the core
 *   sim.fault.sendFail = n        next n raw captures answered "SEND FAIL" by the core
 *   sim.fault.loseIpd = n         next sendIpd() drops n payload bytes (also loseIpdBytes(n))
 *   sim.mute(true|false)          stop answering: everything to the board is discarded
 *   sim.stall(true|false)         a wedged module: bytes from the board are ignored
 *                                 (not heard at all), output to the board is held and
 *                                 goes out, in order, once the stall ends; a reboot()
 *                                 meanwhile (a reset pulse) drops what was held and
 *                                 queues its noise and banner behind the stall
 *   sim.dropLink(tag?)            tear down the link(s) with that tag (all if omitted);
 *                                 the dialect sees ev.onClose("dropped")
 *   sim.reboot()                  spontaneous reset: noise bytes, then onReboot()
 *   sim.netDown()                 network lost: onNetDown()
 *   sim.injectUrc(line)           send one line (line + "\r\n") now
 *   sim.garbage(n = 3)            n lines of random junk (printable and binary)
 *   sim.loseIpdBytes(n)           same as fault.loseIpd = n
 *
 * OBSERVATION: sim.on("tx", chunk => ...) bytes to the board; sim.receive(bytes)
 * bytes from the board; sim.transcript (when opts.transcript) records both
 * directions {dir: "board>"|"modem>", bytes, t}; sim.violations; sim.close().
 * ==========================================================================
 */
import { EventEmitter } from "node:events";
import net from "node:net";
import tls from "node:tls";

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
}

export interface SimOptions {
  /** PRNG seed for chunking, noise and garbage (default 1). */
  seed?: number;
  /** Deliver bytes to the board in random chunks of 1..maxChunk (default 64). */
  maxChunk?: number;
  /** If set, pace output at this UART rate: 10 bits per byte. */
  baud?: number;
  /** Record a transcript of both directions. */
  transcript?: boolean;
  log?: (s: string) => void;
  /** Map the host/port the board asks for to a loopback target (e.g. a test broker). */
  hostMap?: (host: string, port: number) => { host: string; port: number };
  /** Timers used for pacing and delays (tests inject a recorder). Default: Node timers. */
  timers?: Timers;
  /** Delay between the boot noise and onReboot() (ms, default 20). */
  rebootDelay?: number;
  /** What the module's TLS stack speaks on SSL links (default: Node's defaults, TLS 1.2 and 1.3). */
  tls?: TlsProfile;
}

/** The TLS versions the simulated module's SSL links offer (tests narrow them to make a handshake fail). */
export interface TlsProfile {
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
}

/** Per link: an SSL link (TLS client) and the SNI it sends, if any. */
export interface TlsLinkOptions {
  /** Server Name Indication in the ClientHello; absent or "": none. */
  servername?: string;
}

export interface TcpEvents {
  /** TCP is up (SSL links only: the handshake starts now, onConnect follows it). */
  onTcp?(): void;
  onConnect(): void;
  onData(bytes: string): void;
  onClose(reason: string): void;
}

export interface TcpLink {
  readonly id: number;
  readonly tag: unknown;
  readonly host: string;
  readonly port: number;
  connected: boolean;
  /** An SSL link (TLS over the socket). */
  readonly tls: boolean;
  write(bytes: string): void;
  /** Closes from the dialect's side: onClose is NOT called afterwards. */
  close(): void;
}

export interface TranscriptEntry {
  dir: "board>" | "modem>";
  bytes: string;
  t: number;
}

export interface Faults {
  refuseLink: boolean;
  busy: number;
  error: number;
  sendFail: number;
  loseIpd: number;
  muted: boolean;
  stalled: boolean;
}

/** Deterministic PRNG (mulberry32) in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Milliseconds a UART at `baud` needs for `n` bytes (start + 8 data + stop = 10 bits). */
export function uartMs(n: number, baud: number): number {
  return (n * 10 * 1000) / baud;
}

/** Splits `s` into chunks of 1..maxChunk drawn from `rand` (the chunking the core uses). */
export function chunkSizes(total: number, maxChunk: number, rand: () => number): number[] {
  const out: number[] = [];
  let left = total;
  while (left > 0) {
    const n = Math.min(left, 1 + Math.floor(rand() * maxChunk));
    out.push(n);
    left -= n;
  }
  return out;
}

const MAX_LINE = 2048;

const nodeTimers: Timers = {
  setTimeout: (fn, ms) => (ms > 0 ? setTimeout(fn, ms) : setImmediate(fn)),
  clearTimeout: (h) => {
    clearTimeout(h as NodeJS.Timeout);
    clearImmediate(h as NodeJS.Immediate);
  },
};

interface LinkState extends TcpLink {
  sock: net.Socket | null;
  /** The socket the bytes go through: sock, or the TLS socket over it. */
  io: net.Socket | null;
  ev: TcpEvents;
  ended: boolean;
}

export abstract class ModemSimCore extends EventEmitter {
  echo = true;
  readonly fault: Faults = { refuseLink: false, busy: 0, error: 0, sendFail: 0, loseIpd: 0, muted: false, stalled: false };
  readonly transcript: TranscriptEntry[] = [];
  /** Board misbehaviour seen by the core, e.g. raw data written before the prompt left. */
  readonly violations: string[] = [];
  readonly rand: () => number;
  private readonly _chunkRand: () => number;
  protected readonly opts: SimOptions;
  protected readonly timers: Timers;
  /** The TLS versions SSL links offer (from opts.tls; tests may change it while the sim runs). */
  tls: TlsProfile;

  private _in = "";
  private _skipLf = false;
  private _raw: { n: number; buf: string; at: number; done: (b: string) => void } | null = null;
  private _out = "";
  private _pumpTimer: unknown = null;
  private _queued = 0; // bytes ever queued to the board (less those discarded unsent)
  private _tail = ""; // the last two bytes queued (where expectRaw() finds the prompt's ">")
  private _emitted = 0; // bytes ever emitted to the board
  private _links: LinkState[] = [];
  private _nextId = 1;
  private _pending = new Set<unknown>();
  private _closed = false;
  private readonly _t0 = Date.now();

  constructor(opts: SimOptions = {}) {
    super();
    this.opts = opts;
    this._chunkRand = prng(opts.seed ?? 1);
    this.rand = prng(((opts.seed ?? 1) ^ 0x9e3779b9) >>> 0);
    this.timers = opts.timers ?? nodeTimers;
    this.tls = { ...opts.tls };
  }

  // ---------------------------------------------------------------- dialect API
  protected abstract onCommand(cmd: string): void;
  protected abstract onReboot(): void;
  protected abstract onNetDown(): void;
  protected busyLine(): string {
    return "busy p...";
  }
  protected echoText(cmd: string): string {
    return cmd + "\r\n";
  }

  protected log(s: string): void {
    if (this.opts.log) this.opts.log(s);
  }

  /** Runs fn after ms on the core's timers; cancelled by close() and reboot(). */
  protected later(fn: () => void, ms: number): unknown {
    const h = this.timers.setTimeout(() => {
      this._pending.delete(h);
      if (!this._closed) fn();
    }, ms);
    this._pending.add(h);
    return h;
  }

  /** Queues bytes to the board. */
  protected send(text: string): void {
    if (this._closed || this.fault.muted || !text) return;
    this._out += text;
    this._queued += text.length;
    this._tail = (this._tail + text).slice(-2);
    this._schedulePump();
  }

  protected sendLine(line: string): void {
    this.send(line + "\r\n");
  }

  /** Each line framed as the modules frame their answers: "\r\n<line>\r\n". */
  protected reply(...lines: string[]): void {
    for (const l of lines) this.send("\r\n" + l + "\r\n");
  }

  /** "AT" and "ATE0" / "ATE1", which every module answers alike: true when `name` was one of them. */
  protected basicCommand(name: string): boolean {
    if (name == "ATE0" || name == "ATE1") this.echo = name == "ATE1";
    else if (name != "AT") return false;
    this.reply("OK");
    return true;
  }

  protected sendIpd(header: string, payload: string): void {
    if (this.fault.loseIpd > 0) {
      const n = Math.min(this.fault.loseIpd, payload.length);
      this.fault.loseIpd = 0;
      const at = Math.floor(this.rand() * (payload.length - n + 1));
      this.log(`fault: lose ${n} IPD bytes`);
      payload = payload.slice(0, at) + payload.slice(at + n);
    }
    this.send(header + payload);
  }

  protected expectRaw(n: number, done: (bytes: string) => void): void {
    // The prompt is delivered once its ">" has left: with "> " just queued,
    // that is one byte before the end of the queue.
    const at = this._tail === "> " ? this._queued - 1 : this._queued;
    this._raw = { n, buf: "", at, done };
    if (n <= 0) this._finishRaw();
  }

  protected openTcp(host: string, port: number, ev: TcpEvents, tag?: unknown, tlsOpts?: TlsLinkOptions): TcpLink {
    const target = this.opts.hostMap ? this.opts.hostMap(host, port) : { host, port };
    const self = this;
    const link: LinkState = {
      id: this._nextId++,
      tag,
      host,
      port,
      connected: false,
      tls: !!tlsOpts,
      sock: null,
      io: null,
      ev,
      ended: false,
      write(bytes: string) {
        if (link.io && !link.ended) link.io.write(Buffer.from(bytes, "latin1"));
      },
      close() {
        self._endLink(link, null);
      },
    };
    this._links.push(link);
    if (this.fault.refuseLink) {
      this.log(`fault: refuse link to ${host}:${port}`);
      this.later(() => this._endLink(link, "refused"), 1);
      return link;
    }
    const sock = net.connect(target.port, target.host);
    link.sock = link.io = sock;
    sock.setNoDelay(true);
    let tcpUp = false;
    const up = () => {
      if (link.ended) return;
      link.connected = true;
      ev.onConnect();
    };
    sock.on("connect", () => {
      tcpUp = true;
      if (link.ended) return;
      if (!tlsOpts) return up();
      ev.onTcp?.();
      // The module's TLS client: no certificate check (rejectUnauthorized false),
      // SNI only when given, the versions of the sim's profile.
      const t = tls.connect({
        socket: sock,
        rejectUnauthorized: false,
        ...(tlsOpts.servername ? { servername: tlsOpts.servername } : {}),
        ...this.tls,
      });
      link.io = t;
      t.on("secureConnect", up);
      t.on("data", (d: Buffer) => {
        if (!link.ended) ev.onData(d.toString("latin1"));
      });
      t.on("error", (e: NodeJS.ErrnoException) => {
        this._endLink(link, (link.connected ? "error: " : "tls: ") + (e.code ?? e.message));
      });
      t.on("close", () => this._endLink(link, link.connected ? "remote" : "tls: closed during the handshake"));
    });
    if (!tlsOpts) {
      sock.on("data", (d: Buffer) => {
        if (!link.ended) ev.onData(d.toString("latin1"));
      });
    }
    sock.on("error", (e: NodeJS.ErrnoException) => {
      this._endLink(link, e.code === "ECONNREFUSED" ? "refused" : (tcpUp && tlsOpts && !link.connected ? "tls: " : "error: ") + (e.code ?? e.message));
    });
    sock.on("close", () => this._endLink(link, tcpUp && tlsOpts && !link.connected ? "tls: closed during the handshake" : "remote"));
    return link;
  }

  /** Open links (for dialects and tests). */
  links(): TcpLink[] {
    return this._links.filter((l) => !l.ended);
  }

  // ------------------------------------------------------------------ board side
  /** Bytes written by the board. */
  receive(bytes: string): void {
    if (this._closed || !bytes || this.fault.stalled) return;
    if (this.opts.transcript) this.transcript.push({ dir: "board>", bytes, t: Date.now() - this._t0 });
    let i = 0;
    while (i < bytes.length) {
      // The "\n" of a "\r\n" that ended a command is not raw data, even when
      // that command has just started a raw capture.
      if (this._skipLf) {
        this._skipLf = false;
        if (bytes[i] === "\n") {
          i++;
          continue;
        }
      }
      const raw = this._raw;
      if (raw) {
        if (raw.buf === "" && this._emitted < raw.at) {
          this.violations.push(`data written before the prompt was delivered (${JSON.stringify(bytes.slice(i, i + 20))})`);
          this.log("violation: data before prompt");
        }
        const take = Math.min(raw.n - raw.buf.length, bytes.length - i);
        raw.buf += bytes.slice(i, i + take);
        i += take;
        if (raw.buf.length >= raw.n) this._finishRaw();
        continue;
      }
      const c = bytes[i++];
      this._skipLf = c === "\r";
      if (c === "\r" || c === "\n") {
        const line = this._in;
        this._in = "";
        if (line) this._line(line);
      } else if (this._in.length < MAX_LINE) {
        this._in += c;
      }
    }
  }

  // ------------------------------------------------------------------ fault knobs
  mute(on: boolean): void {
    this.fault.muted = on;
    if (on) this._discardOut();
  }
  stall(on: boolean): void {
    this.log(`fault: stall ${on ? "on" : "off"}`);
    this.fault.stalled = on;
    if (!on) this._schedulePump();
  }
  dropLink(tag?: unknown): void {
    for (const l of this._links.slice()) if (!l.ended && (tag === undefined || l.tag === tag)) this._endLink(l, "dropped");
  }
  reboot(): void {
    if (this._closed) return;
    this.log("fault: reboot");
    for (const l of this._links.slice()) this._endLink(l, null);
    for (const h of this._pending) this.timers.clearTimeout(h);
    this._pending.clear();
    this._raw = null;
    this._in = "";
    this._skipLf = false;
    this._discardOut();
    this.echo = true;
    let noise = "";
    const n = 16 + Math.floor(this.rand() * 48);
    for (let k = 0; k < n; k++) noise += String.fromCharCode(Math.floor(this.rand() * 256));
    this.send(noise);
    this.later(() => this.onReboot(), this.opts.rebootDelay ?? 20);
  }
  netDown(): void {
    this.log("fault: network down");
    this.onNetDown();
  }
  injectUrc(line: string): void {
    this.sendLine(line);
  }
  garbage(lines = 3): void {
    for (let k = 0; k < lines; k++) {
      let s = "";
      const n = 1 + Math.floor(this.rand() * 40);
      const binary = this.rand() < 0.5;
      for (let j = 0; j < n; j++) {
        s += binary ? String.fromCharCode(Math.floor(this.rand() * 256)) : String.fromCharCode(33 + Math.floor(this.rand() * 94));
      }
      this.sendLine(s.replace(/[\r\n]/g, "?"));
    }
  }
  loseIpdBytes(n: number): void {
    this.fault.loseIpd = n;
  }

  /** Tears down sockets and timers; the sim is dead afterwards. */
  close(): void {
    if (this._closed) return;
    for (const l of this._links.slice()) this._endLink(l, null);
    this._closed = true;
    for (const h of this._pending) this.timers.clearTimeout(h);
    this._pending.clear();
    if (this._pumpTimer !== null) this.timers.clearTimeout(this._pumpTimer);
    this._pumpTimer = null;
    this._out = "";
    this.removeAllListeners("tx");
  }

  /** The transcript as readable text, one entry a line. */
  transcriptText(): string {
    return this.transcript.map((e) => `${String(e.t).padStart(6)} ${e.dir} ${JSON.stringify(e.bytes)}`).join("\n");
  }

  // ------------------------------------------------------------------ internals
  /** Drops the output not yet on the wire: it will never reach the board. */
  private _discardOut(): void {
    this._queued -= this._out.length;
    this._out = "";
    this._tail = "";
  }

  private _line(line: string): void {
    if (this.echo) this.send(this.echoText(line));
    if (this.fault.busy > 0) {
      this.fault.busy--;
      this.sendLine(this.busyLine());
      return;
    }
    if (this.fault.error > 0) {
      this.fault.error--;
      this.sendLine("ERROR");
      return;
    }
    try {
      this.onCommand(line);
    } catch (e) {
      this.log(`dialect threw on ${JSON.stringify(line)}: ${(e as Error).message}`);
      this.sendLine("ERROR");
    }
  }

  private _finishRaw(): void {
    const raw = this._raw!;
    this._raw = null;
    if (this.fault.sendFail > 0) {
      this.fault.sendFail--;
      this.log("fault: SEND FAIL");
      this.sendLine("SEND FAIL");
      return;
    }
    raw.done(raw.buf);
  }

  private _endLink(link: LinkState, reason: string | null): void {
    if (link.ended) return;
    link.ended = true;
    link.connected = false;
    this._links = this._links.filter((l) => l !== link);
    if (link.io && link.io !== link.sock) link.io.destroy();
    if (link.sock) link.sock.destroy();
    if (reason !== null) this.log(`link ${link.id} to ${link.host}:${link.port} ended: ${reason}`);
    if (reason !== null && !this._closed) {
      try {
        link.ev.onClose(reason);
      } catch (e) {
        this.log(`dialect threw in onClose: ${(e as Error).message}`);
      }
    }
  }

  /** Delay before the next chunk of n bytes may follow one just emitted (0 when unpaced). */
  protected chunkDelay(n: number): number {
    return this.opts.baud ? uartMs(n, this.opts.baud) : 0;
  }

  /**
   * Takes the next chunk (1..maxChunk bytes, from the chunk PRNG) and emits it
   * once it has crossed the wire: after uartMs(chunk) when paced, else on the
   * next turn of the event loop. One chunk is on the wire at a time.
   */
  private _schedulePump(): void {
    if (this._pumpTimer !== null || this._closed || !this._out || this.fault.stalled) return;
    const max = this.opts.maxChunk ?? 64;
    const n = Math.min(this._out.length, 1 + Math.floor(this._chunkRand() * max));
    const chunk = this._out.slice(0, n);
    this._out = this._out.slice(n);
    this._pumpTimer = this.timers.setTimeout(() => {
      this._pumpTimer = null;
      if (this._closed) return;
      if (this.fault.stalled) {
        // held: it goes out first once the stall ends
        this._out = chunk + this._out;
        return;
      }
      this._emitted += n;
      if (!this.fault.muted) {
        if (this.opts.transcript) this.transcript.push({ dir: "modem>", bytes: chunk, t: Date.now() - this._t0 });
        this.emit("tx", chunk);
      }
      this._schedulePump();
    }, this.chunkDelay(n));
  }
}
