/**
 * Test helpers for the codec: a seeded PRNG, random packet generators, a
 * collecting sink, and conversion to and from `mqtt-packet` (the test oracle).
 */
import mqttPacket from "mqtt-packet";
import { Decoder, type Packet, type QoS } from "../../src/codec/index";
import { ServerDecoder } from "../../src/codec/server";

import { prng as mulberry32 } from "../../scripts/simulators/modem-sim/core";

/** mulberry32: the seeded PRNG the modem simulator uses too. */
export { mulberry32 };

export class Rng {
  next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  bool(): boolean {
    return this.next() < 0.5;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  bytes(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.int(256));
    return s;
  }
  /** A valid MQTT string (no U+0000, no lone surrogates), mixing ASCII, BMP and astral chars. */
  str(maxChars: number, opts: { noWild?: boolean; nonEmpty?: boolean } = {}): string {
    const n = this.int(maxChars + 1) || (opts.nonEmpty ? 1 : 0);
    let s = "";
    while (s.length < n) {
      const k = this.int(10);
      let c: number;
      if (k < 5) c = 0x20 + this.int(0x5f);
      else if (k < 6) c = 1 + this.int(0x7f);
      else if (k < 7) c = 0x80 + this.int(0x780);
      else if (k < 9) {
        c = 0x800 + this.int(0xf800 - 0x800);
        if (c >= 0xd800 && c < 0xe000) c = 0x4e2d;
      } else c = 0x10000 + this.int(0x100000);
      if (opts.noWild && (c === 0x2b || c === 0x23)) c = 0x2f;
      s += String.fromCodePoint(c);
    }
    return s;
  }
  qos(): QoS {
    return this.int(3) as QoS;
  }
  id(): number {
    return 1 + this.int(65535);
  }
}

/** A random valid packet of type t (1..14). Sizes stay small unless `big`. */
export function randomPacket(r: Rng, t: number, big = false): Packet {
  const topic = () => r.str(r.pick([1, 5, 30]), { noWild: true, nonEmpty: true });
  const filter = () => r.str(r.pick([1, 5, 30]), { nonEmpty: true });
  const payloadLen = () => (big && r.int(10) === 0 ? r.int(20000) : r.int(r.pick([1, 10, 200])));
  switch (t) {
    case 1: {
      const p: Packet = { type: 1, clientId: r.str(r.pick([0, 8, 23])), clean: r.bool(), keepAlive: r.int(65536) };
      if (!p.clientId) p.clean = true;
      if (r.bool()) p.will = { topic: topic(), payload: r.bytes(payloadLen()), qos: r.qos(), retain: r.bool() };
      if (r.bool()) {
        p.username = r.str(12);
        if (r.bool()) p.password = r.bytes(r.int(40));
      }
      return p;
    }
    case 2:
      return { type: 2, sessionPresent: r.bool(), returnCode: r.int(6) };
    case 3: {
      const qos = r.qos();
      const p: Packet = { type: 3, topic: topic(), payload: r.bytes(payloadLen()), qos, retain: r.bool(), dup: qos > 0 && r.bool() };
      if (qos) p.id = r.id();
      return p;
    }
    case 4: case 5: case 6: case 7: case 11:
      return { type: t, id: r.id() };
    case 8: {
      const subs = [];
      for (let i = 1 + r.int(4); i > 0; i--) subs.push({ topic: filter(), qos: r.qos() });
      return { type: 8, id: r.id(), subs };
    }
    case 9: {
      const granted = [];
      for (let i = 1 + r.int(5); i > 0; i--) granted.push(r.pick([0, 1, 2, 0x80]));
      return { type: 9, id: r.id(), granted };
    }
    case 10: {
      const topics = [];
      for (let i = 1 + r.int(4); i > 0; i--) topics.push(filter());
      return { type: 10, id: r.id(), topics };
    }
    default:
      return { type: t as 12 | 13 | 14 };
  }
}

const CMDS = ["", "connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe", "suback",
  "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect"] as const;

export const toBuf = (s: string) => Buffer.from(s, "latin1");
export const fromBuf = (b: Buffer) => b.toString("latin1");
export const hex = (s: string) => toBuf(s).toString("hex");
export const unhex = (h: string) => fromBuf(Buffer.from(h.replace(/\s+/g, ""), "hex"));

/** Our packet -> mqtt-packet's object form. */
export function toMqttPacket(p: Packet): any {
  const o: any = { cmd: CMDS[p.type] };
  switch (p.type) {
    case 1:
      Object.assign(o, { protocolId: "MQTT", protocolVersion: 4, clean: p.clean, clientId: p.clientId, keepalive: p.keepAlive });
      if (p.username !== undefined) o.username = p.username;
      if (p.password !== undefined) o.password = toBuf(p.password);
      if (p.will) o.will = { topic: p.will.topic, payload: toBuf(p.will.payload), qos: p.will.qos, retain: p.will.retain };
      break;
    case 2:
      Object.assign(o, { sessionPresent: p.sessionPresent, returnCode: p.returnCode });
      break;
    case 3:
      Object.assign(o, { topic: p.topic, payload: toBuf(p.payload), qos: p.qos, retain: p.retain, dup: p.dup });
      if (p.qos) o.messageId = p.id;
      break;
    case 8:
      Object.assign(o, { messageId: p.id, subscriptions: p.subs.map((s) => ({ topic: s.topic, qos: s.qos })) });
      break;
    case 9:
      Object.assign(o, { messageId: p.id, granted: p.granted });
      break;
    case 10:
      Object.assign(o, { messageId: p.id, unsubscriptions: p.topics });
      break;
    case 4: case 5: case 6: case 7: case 11:
      o.messageId = p.id;
      break;
  }
  return o;
}

/** mqtt-packet's parsed object -> our packet form. */
export function fromMqttPacket(o: any): Packet {
  const type = CMDS.indexOf(o.cmd);
  switch (type) {
    case 1: {
      const p: any = { type, clientId: o.clientId, clean: o.clean, keepAlive: o.keepalive };
      if (o.will) p.will = { topic: o.will.topic, payload: fromBuf(o.will.payload), qos: o.will.qos, retain: o.will.retain };
      if (o.username !== undefined) p.username = o.username;
      if (o.password !== undefined) p.password = fromBuf(o.password);
      return p;
    }
    case 2:
      return { type, sessionPresent: o.sessionPresent, returnCode: o.returnCode };
    case 3: {
      const p: any = { type, topic: o.topic, payload: fromBuf(o.payload), qos: o.qos, retain: o.retain, dup: o.dup };
      if (o.qos) p.id = o.messageId;
      return p;
    }
    case 8:
      return { type, id: o.messageId, subs: o.subscriptions.map((s: any) => ({ topic: s.topic, qos: s.qos })) };
    case 9:
      return { type, id: o.messageId, granted: o.granted };
    case 10:
      return { type, id: o.messageId, topics: o.unsubscriptions };
    case 4: case 5: case 6: case 7: case 11:
      return { type, id: o.messageId } as Packet;
    default:
      return { type } as Packet;
  }
}

/** mqtt-packet's encoding of our packet, as a byte string. */
export function oracleEncode(p: Packet): string {
  return fromBuf(mqttPacket.generate(toMqttPacket(p), { protocolVersion: 4 }));
}

/** Parses a byte string with mqtt-packet; returns our packet forms, or throws its error. */
export function oracleParse(s: string): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const out: Packet[] = [];
  let err: Error | undefined;
  parser.on("packet", (o: any) => out.push(fromMqttPacket(o)));
  parser.on("error", (e: Error) => (err ??= e));
  parser.parse(toBuf(s));
  if (err) throw err;
  return out;
}

export interface Collected {
  packets: Packet[];
  /** ack: the acknowledgement a drained PUBLISH at QoS 1/2 needs (only when given). */
  errors: { message: string; fatal: boolean; ack?: Packet }[];
}

/** A sink that records everything. */
export function collector(): Collected & { sink: { packet(p: Packet): void; error(m: string, f: boolean, a?: Packet | 0): void } } {
  const c: Collected = { packets: [], errors: [] };
  return {
    ...c,
    sink: {
      packet: (p) => c.packets.push(p),
      error: (message, fatal, ack) => c.errors.push(ack ? { message, fatal, ack } : { message, fatal }),
    },
  };
}

/**
 * A fresh decoder: the firmware (client-side) Decoder, or with clientSide=false
 * the host-only ServerDecoder, which also decodes client->server packets.
 */
export function newDecoder(maxPacket: number, clientSide: boolean): Decoder {
  return clientSide ? new Decoder(maxPacket, true) : new ServerDecoder(maxPacket);
}

/** Feeds `chunks` into a fresh (or given) decoder and returns what came out. */
export function decodeChunks(chunks: string[], maxPacket = 1024, clientSide = false, d = newDecoder(maxPacket, clientSide)): Collected {
  const c = collector();
  for (const ch of chunks) d.push(ch, c.sink);
  return { packets: c.packets, errors: c.errors };
}

/** Buffered byte count of a decoder (test-only look at a private member). */
export function buffered(d: Decoder): number {
  return (d as unknown as { _b: string })._b.length;
}
