/**
 * A scripted, misbehaving MQTT broker for tests: a small TCP server on loopback that
 * speaks just enough MQTT 3.1.1 to serve one client (the board) and then, on the
 * connection it is told to, does what a broken broker does. Real brokers (Aedes,
 * Mosquitto) cannot misbehave on demand; this one does nothing else.
 *
 *   const b = await startMisbehavingBroker({ now: () => vb.now() });   // times in board ms
 *   b.nextFault = { connack: hex("20 02 00 05") };   // the next connection gets a refusal
 *   b.drop();                                        // ends the current connection
 *   b.publish("led", "toggle", 1);                   // a command on the current connection
 *   b.conns[i].packets / .closed / .faultAt          // what the board sent, when it went
 *
 * Good behaviour (every connection, unless its Fault says otherwise): CONNECT is
 * answered CONNACK 20 02 00 00 (session present once `keepSession` is set and the
 * board connected before), SUBSCRIBE with a SUBACK granting each QoS asked, PINGREQ
 * with PINGRESP, the board's PUBLISH at QoS 1 with PUBACK (QoS 2: PUBREC, then
 * PUBCOMP on PUBREL), the board's PUBREC (to a QoS 2 command) with PUBREL. With
 * `keepSession`, QoS 1/2 PUBLISHes the board has not acknowledged are sent again
 * (DUP) after the next CONNACK, as a broker that keeps the session does (a Fault's
 * `send` starting with such a PUBLISH counts as one of them).
 *
 * A Fault (plain data, so a table of them can drive a real interpreter too):
 *   connack       bytes answered to CONNECT instead (null: no answer at all)
 *   refuseSubscribe  this many SUBSCRIBEs are answered 0x80 for every filter
 *   send          bytes sent once the connection is "ready" (after the first SUBACK,
 *                 or the CONNACK with the session present): the fault itself
 *   drip          ms between the bytes of `send` (a slow drip), else one write
 *   pingresp      false: PINGREQ is never answered (a half-dead broker)
 * `faultAt` (in `now()` time) is when the broker misbehaved: the refusing or
 * missing CONNACK, the first refused SUBACK, the first byte of `send`, the first
 * unanswered PINGREQ.
 *
 * The board's packets are decoded with mqtt-packet (the test oracle); what the broker
 * writes is assembled byte by byte here, so malformed packets are exactly as given.
 * It implements RunningBroker (test/support/brokers.ts) for the end-to-end rig.
 */
import net from "node:net";
import mqttPacket from "mqtt-packet";
import type { RunningBroker } from "./brokers";

export interface Fault {
  connack?: string | null;
  refuseSubscribe?: number;
  send?: string;
  drip?: number;
  pingresp?: boolean;
}

export interface BoardPacket {
  /** now() when it arrived. */
  at: number;
  p: mqttPacket.Packet;
}

export interface Conn {
  /** 0 for the first connection. */
  n: number;
  fault?: Fault;
  opened: number;
  packets: BoardPacket[];
  /** The connection ended: by the board (its modem closed the socket) or by the broker (drop(), stop()). */
  closed?: { at: number; by: "board" | "broker" };
  /** A SUBACK granted something (or CONNACK said the session is present): commands can be heard. */
  ready: boolean;
  faultAt?: number;
  /** Bytes from the board that are not MQTT (the broker then ends the connection), with the error. */
  garbage?: string;
  /** Every byte the board sent on this connection. */
  rx: string;
  socket: net.Socket;
}

export interface MisbehavingBroker extends RunningBroker {
  conns: Conn[];
  /** The Fault of the next connection (consumed by it). */
  nextFault?: Fault;
  /** CONNACK says "session present" to a board that connected before, and unacknowledged commands are sent again. */
  keepSession: boolean;
  /** now() of the broker's last write to the board. */
  lastSent: number;
  /** The open connection (the latest), if any. */
  current(): Conn | undefined;
  /** Ends the current connection (the board sees the TCP link close). */
  drop(): void;
  /** Sends the board a PUBLISH on the current connection; returns its packet id (0 at QoS 0). */
  publish(topic: string, payload: string, qos?: 0 | 1 | 2, retain?: boolean): number;
  /** Writes raw bytes on the current connection. */
  write(bytes: string): void;
  /** Every packet the board sent, on every connection. */
  all(): BoardPacket[];
}

/** Hex (spaces allowed) to a byte string. */
export const hex = (h: string): string => Buffer.from(h.replace(/\s+/g, ""), "hex").toString("latin1");

/** MQTT remaining-length bytes of n. */
export function remaining(n: number): string {
  let s = "";
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n) d |= 128;
    s += String.fromCharCode(d);
  } while (n);
  return s;
}

const u16 = (n: number) => String.fromCharCode(n >> 8, n & 255);

/**
 * A PUBLISH assembled by hand: `topic` is taken as BYTES (so invalid UTF-8 can be
 * written), `flags` the low nibble of the first byte (default: qos << 1 | retain),
 * `id` written when qos > 0 (0 allowed: that is the fault).
 */
export function publishBytes(topic: string, payload: string, o: { qos?: number; id?: number; retain?: boolean; dup?: boolean; flags?: number } = {}): string {
  const qos = o.qos ?? 0;
  const flags = o.flags ?? ((o.dup ? 8 : 0) | (qos << 1) | (o.retain ? 1 : 0));
  const body = u16(topic.length) + topic + (qos ? u16(o.id ?? 1) : "") + payload;
  return String.fromCharCode(0x30 | flags) + remaining(body.length) + body;
}

/** The packet id of `bytes` when they start with a PUBLISH at QoS 1 or 2 (else 0). */
export function publishId(bytes: string): number {
  const b0 = bytes.charCodeAt(0);
  if (b0 >> 4 != 3 || !(b0 & 6)) return 0;
  let i = 1;
  while (bytes.charCodeAt(i) & 128) i++;
  i++;
  const t = (bytes.charCodeAt(i) << 8) | bytes.charCodeAt(i + 1);
  return (bytes.charCodeAt(i + 2 + t) << 8) | bytes.charCodeAt(i + 3 + t);
}

export async function startMisbehavingBroker(o: { now?: () => number; port?: number } = {}): Promise<MisbehavingBroker> {
  const now = o.now ?? (() => Date.now());
  const conns: Conn[] = [];
  /** Commands sent and not acknowledged yet: id -> bytes (resent with DUP under keepSession). */
  const unacked = new Map<number, string>();
  let lastId = 0;
  let paused = false;
  let server: net.Server | null = null;
  let port = o.port ?? 0;

  const open = () => conns.filter((c) => !c.closed).at(-1);
  const send = (c: Conn, bytes: string) => {
    if (c.closed || c.socket.destroyed) return;
    b.lastSent = now();
    c.socket.write(Buffer.from(bytes, "latin1"));
  };
  const end = (c: Conn, by: "board" | "broker") => {
    if (!c.closed) c.closed = { at: now(), by };
    c.socket.destroy();
  };
  const misbehaved = (c: Conn) => {
    if (c.faultAt === undefined) c.faultAt = now();
  };
  /** The connection can hear commands: redeliver, then the fault's bytes. */
  const ready = (c: Conn) => {
    if (c.ready) return;
    c.ready = true;
    if (b.keepSession) for (const bytes of unacked.values()) send(c, String.fromCharCode(bytes.charCodeAt(0) | 8) + bytes.slice(1));
    const f = c.fault;
    if (f?.send) {
      misbehaved(c);
      // a PUBLISH at QoS 1/2 is a command like any other: unacknowledged, it comes again
      const id = publishId(f.send);
      if (id) unacked.set(id, f.send);
      if (!f.drip) send(c, f.send);
      else {
        let i = 0;
        const next = () => {
          if (c.closed || i >= f.send!.length) return;
          send(c, f.send![i++]);
          setTimeout(next, f.drip);
        };
        next();
      }
    }
  };
  const onPacket = (c: Conn, p: mqttPacket.Packet) => {
    c.packets.push({ at: now(), p });
    if (paused) return;
    const f = c.fault;
    if (p.cmd == "connect") {
      if (f && f.connack !== undefined) {
        misbehaved(c);
        if (f.connack !== null) send(c, f.connack);
        return;
      }
      const present = b.keepSession && c.n > 0;
      send(c, hex(present ? "20020100" : "20020000"));
      if (present) ready(c);
    } else if (p.cmd == "subscribe") {
      const refuse = (f?.refuseSubscribe ?? 0) > 0;
      if (refuse) {
        f!.refuseSubscribe!--;
        misbehaved(c);
      }
      const codes = p.subscriptions.map((s) => String.fromCharCode(refuse ? 0x80 : s.qos)).join("");
      send(c, "\x90" + remaining(2 + codes.length) + u16(p.messageId!) + codes);
      if (!refuse) ready(c);
    } else if (p.cmd == "pingreq") {
      if (f?.pingresp === false) misbehaved(c);
      else send(c, hex("d000"));
    } else if (p.cmd == "publish") {
      if (p.qos == 1) send(c, hex("4002") + u16(p.messageId!));
      if (p.qos == 2) send(c, hex("5002") + u16(p.messageId!));
    } else if (p.cmd == "pubrel") send(c, hex("7002") + u16(p.messageId!));
    else if (p.cmd == "puback" || p.cmd == "pubcomp") unacked.delete(p.messageId!);
    else if (p.cmd == "pubrec") send(c, hex("6202") + u16(p.messageId!));
  };

  const accept = (sock: net.Socket) => {
    sock.setNoDelay(true);
    const c: Conn = { n: conns.length, fault: b.nextFault, opened: now(), packets: [], ready: false, rx: "", socket: sock };
    b.nextFault = undefined;
    conns.push(c);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on("packet", (p) => onPacket(c, p));
    parser.on("error", (e) => {
      // the board wrote something that is not MQTT
      c.garbage = `${e.message}: ${JSON.stringify(c.rx.slice(-64))}`;
      end(c, "broker");
    });
    sock.on("data", (d) => {
      c.rx += d.toString("latin1");
      parser.parse(d);
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      if (!c.closed) c.closed = { at: now(), by: "board" };
    });
  };
  const listen = async () => {
    const s = net.createServer(accept);
    await new Promise<void>((ok, ko) => s.once("error", ko).listen(port, "127.0.0.1", () => ok()));
    port = (s.address() as net.AddressInfo).port;
    server = s;
  };
  const close = async () => {
    const s = server;
    server = null;
    for (const c of conns) if (!c.closed) end(c, "broker");
    if (s) await new Promise<void>((ok) => s.close(() => ok()));
  };
  await listen();

  const b: MisbehavingBroker = {
    get port() {
      return port;
    },
    conns,
    keepSession: false,
    lastSent: 0,
    current: open,
    drop() {
      const c = open();
      if (c) end(c, "broker");
    },
    publish(topic, payload, qos = 0, retain = false) {
      const c = open();
      if (!c) throw new Error("misbehaving broker: no connection to publish on");
      const id = qos ? (lastId = (lastId % 65535) + 1) : 0;
      const bytes = publishBytes(topic, payload, { qos, id, retain });
      if (qos) unacked.set(id, bytes);
      send(c, bytes);
      return id;
    },
    write(bytes) {
      const c = open();
      if (c) send(c, bytes);
    },
    all: () => conns.flatMap((c) => c.packets),
    stop: close,
    restart: async () => {
      await close();
      await listen();
    },
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
    },
  };
  return b;
}
