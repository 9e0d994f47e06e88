/**
 * The server side of the MQTT 3.1.1 codec, for tests and host tools only (never
 * imported by firmware, so the board build leaves it out): encoding of the
 * server->client packets the firmware encoder leaves out (CONNACK, SUBACK), and
 * decoding of the client->server packets (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
 * PINGREQ, DISCONNECT) on top of the firmware Decoder.
 */
import type { Bytes } from "../transport";
import { encode, no, utf8Decode, w16, type Decoder } from "./index";
import type { Packet } from "./packets";

const chr = String.fromCharCode;

/**
 * Any of the 14 packets as a byte string: CONNACK and SUBACK here, the rest by
 * encode(). Throws where encode() does.
 */
export function encodeServer(p: Packet): Bytes {
  let v: Bytes;
  if (p.type == 2) v = chr(p.sessionPresent ? 1 : 0, p.returnCode);
  else if (p.type == 9) v = w16(p.id || -1) + p.granted.map((g) => chr(g)).join("");
  else return encode(p);
  let n = v.length, h = chr(p.type << 4);
  do {
    h += chr(n & 127 | (n > 127 ? 128 : 0));
    n >>= 7;
  } while (n);
  return h + v;
}

/**
 * The body (everything after the fixed header, whose type, flags and length the
 * Decoder has checked) of CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ or DISCONNECT.
 */
function decodeClientPacket(t: number, b: Bytes): Packet {
  let i = 0, c: number;
  const u8 = () => (i < b.length || no("length"), b.charCodeAt(i++));
  const u16 = () => u8() << 8 | u8();
  const raw = () => {
    const l = u16();
    if (i + l > b.length) no("length");
    return b.slice(i, i += l);
  };
  const str = () => utf8Decode(raw());
  /** A topic name (w) or filter: non-empty; a name has no wildcards. */
  const name = (w?: boolean) => {
    const s = str();
    if (!s || w && /[+#]/.test(s)) no("topic");
    return s;
  };
  let p: any;
  if (t == 1) {
    if (raw() != "MQTT" || u8() != 4) no("protocol");
    c = u8();
    // reserved bit; will qos/retain without will; will qos 3; password without user name
    if (c & 1 || (c & 4 ? (c & 24) == 24 : c & 56) || (c & 192) == 64) no("flags");
    p = { type: 1, keepAlive: u16(), clientId: str(), clean: !!(c & 2) };
    if (c & 4) p.will = { topic: name(true), payload: raw(), qos: c >> 3 & 3, retain: !!(c & 32) };
    if (c & 128) p.username = str();
    if (c & 64) p.password = raw();
  } else if (t == 8 || t == 10) {
    p = { type: t, id: u16() || no("id") };
    // a non-empty list up to the end of the packet
    const a: any[] = [];
    do {
      const s = name();
      if (t == 10) a.push(s);
      else {
        if ((c = u8()) > 2) no("qos");
        a.push({ topic: s, qos: c });
      }
    } while (i < b.length);
    p[t == 8 ? "subs" : "topics"] = a;
  } else p = { type: t };
  if (i != b.length) no("length");
  return p;
}

/**
 * The firmware Decoder's framing and checks, plus a hook (_v) for the bodies of
 * the client->server packets. A copy kept here, on the host only, so that the
 * board's Decoder carries no server-side code; test/codec*.test.ts hold both to
 * the same behaviour.
 */
const BaseDecoder = function (this: Decoder & { _v?: (t: number, body: Bytes) => Packet }, maxPacket: number) {
  // s: bytes of an oversize packet still to skip (none when <= 0); k: token replaced by reset(), 0 when dead;
  // b: the bytes at hand
  let s: number, k: any, b: Bytes;
  const len = () => no("length");
  const C = (j: number) => b.charCodeAt(j);
  (this.reset = () => {
    this._b = "";
    s = 0;
    k = {};
  })();
  this.push = (chunk, sink): any => {
    const g = k;
    let t, f, n, i: number, d: number, r: any, x: any;
    const id = () => (C(i++) << 8 | C(i++)) || no("id");
    b = this._b + chunk;
    this._b = "";
    try {
      while (g && b && g == k) {
        // skipping an oversize packet (s goes negative once it is done)
        if ((n = s) > 0) {
          s = n - b.length;
          b = b.slice(n);
          continue;
        }
        t = C(0) >> 4;
        f = C(0) & 15;
        i = 1;
        // types 0 and 15; client->server types (all but bits 2-7, 9, 11, 13) unless decoding those
        if (!(0x2afc >> t & 1 || this._v && t % 15)) no("type");
        // PUBLISH: qos 3 or DUP with qos 0 (f = 6, 7, 8, 9, 14, 15: bits of 0xC3C0);
        // PUBREL, SUBSCRIBE, UNSUBSCRIBE: 0b0010 (bits 7, 9, 11 of 0xA80); others 0
        if (t == 3 ? 0xc3c0 >> f & 1 : f != (0xa80 >> t & 2)) no("flags");
        // remaining length: 1..4 bytes, minimal encoding
        n = 0;
        do {
          if (i > 4) len();
          if (i >= b.length) return this._b = b;
          d = C(i++);
          n += (d & 127) << 7 * i - 14;
        } while (d & 128);
        // non-minimal; CONNACK, PUBACK..PUBCOMP, UNSUBACK (bits 2, 4-7, 11 of 0x8F4) are 2; PINGREQ..DISCONNECT 0
        if (!d && i > 2 || (0x8f4 >> t & 1 ? n != 2 : t > 11 && n)) len();
        if ((n += i) > maxPacket) {
          s = n;
          sink.error("oversize", false);
          continue;
        }
        if (b.length < n) return this._b = b;
        // the body; reads past the end of the packet give NaN or later bytes, and end in an error
        r = { type: t };
        if (t == 2) {
          if ((d = C(i++)) > 1) no("flags");
          r.sessionPresent = !!d;
          r.returnCode = C(i++);
        } else if (t == 3) {
          d = (C(i++) << 8 | C(i++)) + i;
          x = r.topic = utf8Decode(b.slice(i, i = d));
          if (!x || /[+#]/.test(x)) no("topic");
          r.qos = d = f >> 1 & 3;
          r.retain = !!(f & 1);
          r.dup = !!(f & 8);
          if (d) r.id = id();
          r.payload = b.slice(i, i = i > n ? 0 : n);
        } else if (0x5502 >> t & 1) r = this._v!(t, b.slice(i, i = n));
        else if (t < 12) {
          r.id = id();
          // SUBACK: a non-empty list of return codes 0, 1, 2 or 0x80
          if (t == 9) {
            x = r.granted = [];
            do {
              if ((d = C(i++)) > 2 && d != 128) no("qos");
              x.push(d);
            } while (i < n);
          }
        }
        if (i != n) len();
        b = b.slice(n);
        sink.packet(r);
      }
    } catch (e) {
      k = 0;
      sink.error((e as Error).message, true);
    }
  };
} as unknown as new (maxPacket: number) => Decoder;

/**
 * A Decoder that also decodes the client->server packets, as a server does.
 * With clientSide it behaves like the firmware Decoder (those types are fatal).
 */
export class ServerDecoder extends BaseDecoder {
  /** Body decoder for the client->server types (unset: they are the fatal error "type"). */
  _v?: (t: number, body: Bytes) => Packet;
  constructor(maxPacket: number, clientSide?: boolean) {
    super(maxPacket);
    if (!clientSide) this._v = decodeClientPacket;
  }
}
