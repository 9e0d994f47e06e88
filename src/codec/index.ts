/**
 * Firmware-side MQTT 3.1.1 codec: what a CLIENT needs, kept small (it lives in RAM).
 *
 * encode() turns a client->server packet (CONNECT, PUBLISH, PUBACK..PUBCOMP,
 * SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT; also UNSUBACK and PINGRESP) into
 * one whole packet. Decoder takes bytes in chunks of any size and hands the
 * server->client packets (CONNACK, PUBLISH, PUBACK..PUBCOMP, SUBACK, UNSUBACK,
 * PINGRESP), or errors, to a sink. Strings on the wire are UTF-8; payloads and
 * passwords are byte strings passed through unchanged.
 *
 * The server side (encoding CONNACK/SUBACK, decoding CONNECT, SUBSCRIBE,
 * UNSUBSCRIBE, PINGREQ, DISCONNECT) is in ./server.ts, for tests and host tools;
 * firmware never imports it, so the bundle leaves it out.
 *
 * UTF-8 goes through the built-in encodeURIComponent / decodeURIComponent (both
 * exist on Espruino). On the host (V8) decodeURIComponent rejects every malformed
 * sequence, which the tests check; whether Espruino's does as strictly has not
 * been measured, so on the board invalid UTF-8 may get through as bytes.
 */
import type { Bytes } from "../transport";
import type { AckPacket, Packet } from "./packets";

export * from "./packets";

const chr = String.fromCharCode;

/**
 * The firmware build defines FIRMWARE (terser `global_defs`, scripts/bundle.ts), so
 * HOST_SIDE is the constant false there and the minifier drops every branch it
 * guards: the server-side decoding that ./server.ts plugs into Decoder costs the
 * board no byte. On the host (tests, tools) nothing defines it and HOST_SIDE is true.
 */
declare const FIRMWARE: boolean;
const HOST_SIDE = typeof FIRMWARE == "undefined";

/** Throws Error(m): every codec failure goes through here. */
export const no = (m: string): never => {
  throw Error(m);
};

/**
 * JS string -> UTF-8 byte string (via encodeURIComponent). A lone surrogate is
 * not text: encodeURIComponent throws (URIError) for it, and so does encode().
 */
export const utf8Encode = (s: string): Bytes =>
  // %XX escapes become bytes; "" before the first, an unreserved ASCII run after each is kept
  encodeURIComponent(s).split("%").map((h, j) => j ? chr(parseInt(h.slice(0, 2), 16)) + h.slice(2) : h).join("");

/**
 * UTF-8 byte string -> JS string. Throws Error("utf8") on anything MQTT forbids
 * [MQTT-1.5.3-1/2]: bad, truncated or overlong sequences, surrogates, code points
 * above U+10FFFF (decodeURIComponent rejects these) and U+0000.
 */
export const utf8Decode = (b: Bytes): string => {
  let r = "";
  for (const c of b) r += "%" + (c.charCodeAt(0) | 256).toString(16).slice(1);
  try {
    r = decodeURIComponent(r);
  } catch (e) {
    r = "\0";
  }
  if (r.includes("\0")) no("utf8");
  return r;
};

/** MQTT 3.1.1 section 4.7 matching of a topic filter against a topic name. */
export const topicMatches = (filter: string, topic: string): boolean => {
  const f = filter.split("/"), t = topic.split("/");
  let i = 0;
  // the levels that match exactly or by '+'
  while (i < f.length && (f[i] == t[i] || f[i] == "+" && i < t.length)) i++;
  // then either both ended, or a last '#' takes the rest (also none: "a/#" matches "a");
  // wildcards at the first level never match topics starting with '$' [MQTT-4.7.2-1]
  return (f[i] == "#" ? i + 1 : i == t.length ? i : -1) == f.length && !(topic[0] == "$" && /^[+#]/.test(filter));
};

/** Two bytes, big-endian; Error("range") unless n is 0..65535. */
export const w16 = (n: number): Bytes => n !== (n & 65535) ? no("range") : chr(n >> 8, n & 255);
/** Length-prefixed bytes. */
const lstr = (b: Bytes) => w16(b.length) + b;
/** Length-prefixed UTF-8 string. */
const ustr = (s: string) => lstr(utf8Encode(s));
/** A qos: Error("qos") unless 0, 1 or 2. */
const qv = (q: number) => q !== (q & 3) || q > 2 ? no("qos") : q;

/**
 * The whole packet as a byte string. Throws Error only on inputs a caller must
 * never produce: a string with a lone surrogate (URIError), a string or byte
 * field over 65535 bytes, qos not 0/1/2, a packet id not 1..65535, keep-alive
 * not 0..65535, or a CONNACK / SUBACK (server packets: ./server.ts encodes
 * those). It does not check topic syntax (the session does) nor the 256 MB
 * packet limit (no such string fits on a board).
 * DUP is sent only with qos > 0 [MQTT-3.3.1-2].
 */
export function encode(p: Packet): Bytes;
export function encode(p: any): Bytes {
  const t = p.type;
  // PUBREL, SUBSCRIBE, UNSUBSCRIBE have flags 0b0010 (bits 7, 9, 11 of 0xA80)
  let f = 0xa80 >> t & 2, v = "", c: any;
  if (t == 1) {
    c = p.will;
    v = ustr(p.clientId);
    // (booleans as bits: true | 0 is 1)
    f = p.clean << 1;
    if (c) {
      f |= 4 | qv(c.qos) << 3 | c.retain << 5;
      v += ustr(c.topic) + lstr(c.payload);
    }
    if ((c = p.username) != null) {
      f |= 128;
      v += ustr(c);
    }
    if ((c = p.password) != null) {
      f |= 64;
      v += lstr(c);
    }
    // protocol name "MQTT", level 4, connect flags, keep-alive, then the payload
    v = chr(0, 4, 77, 81, 84, 84, 4, f) + w16(p.keepAlive) + v;
    f = 0;
  } else if (t == 3) {
    c = qv(p.qos);
    f = (p.dup && c && 8) | c << 1 | p.retain;
    v = ustr(p.topic) + (c ? w16(p.id || -1) : "") + p.payload;
  } else if (t < 12) {
    // PUBACK..PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, UNSUBACK: a non-zero packet id first
    // CONNACK and SUBACK (bits 2, 9) are server packets: ./server.ts
    v = w16(0x204 >> t & 1 ? no("type") : p.id || -1);
    // SUBSCRIBE: filters and qos; UNSUBSCRIBE: filters
    for (c of p.subs || p.topics || "") v += t - 8 ? ustr(c) : ustr(c.topic) + chr(qv(c.qos));
  }
  // fixed header, remaining length (7 bits a byte, low first), body
  let n = v.length, r = chr(t << 4 | f);
  do r += chr(n & 127 | (n >> 7 && 128)); while (n >>= 7);
  return r + v;
}

export interface DecoderSink {
  packet(p: Packet): void;
  /**
   * fatal: the stream is unusable (protocol error); otherwise one packet was dropped
   * ("oversize"). For a dropped PUBLISH at QoS 1 or 2, `ack` is the acknowledgement
   * it needs (PUBACK or PUBREC with its packet id): unacknowledged, a broker would
   * send it again forever.
   */
  error(message: string, fatal: boolean, ack?: AckPacket | 0): void;
}

/**
 * Streaming decoder of the packets a server sends (a client->server type is the
 * fatal error "type", unless a host-side hook decodes those bodies: ./server.ts's
 * ServerDecoder sets one; the firmware build strips that path). Never holds
 * more than maxPacket bytes; an oversize packet is skipped byte-exactly and
 * reported (non-fatal; for a PUBLISH at QoS 1/2 with the ack it needs, its packet
 * id read from the header when it lies within maxPacket bytes; a packet id 0 there
 * is the fatal error "id"). After a fatal error it ignores all input until reset().
 * clientSide is accepted for compatibility: this decoder is always client-side.
 * (push and reset are closures: smaller than methods sharing state through this.)
 */
export interface Decoder {
  /** Bytes of the packet in progress: fewer than maxPacket (or a partial fixed header). */
  _b: Bytes;
  /**
   * Takes the next bytes of the stream; hands whole packets and errors to sink.
   * An exception thrown by the sink is a fatal error too (the stream position
   * would be lost), reported to sink.error with its message.
   */
  push(chunk: Bytes, sink: DecoderSink): void;
  /**
   * Host only (./server.ts): decodes the body of a client->server packet (CONNECT,
   * SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT); unset, those types are fatal.
   */
  _clientBody?: (type: number, body: Bytes) => Packet;
  /** Forgets everything buffered and revives a dead decoder; from inside a sink it also drops the rest of the chunk. */
  reset(): void;
}

/** (A constructor function, not a class: a few bytes smaller; `new Decoder(…)` works the same.) */
export const Decoder = function (this: Decoder, maxPacket: number) {
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
    const u16 = () => C(i++) << 8 | C(i++), id = () => u16() || no("id");
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
        t = (f = C(0)) >> 4;
        f &= 15;
        i = 1;
        // types 0 and 15 and the client->server types: all but bits 2-7, 9, 11, 13
        // (on the host a _clientBody hook takes the client->server types)
        0x2afc >> t & 1 || HOST_SIDE && this._clientBody && t % 15 || no("type");
        // PUBLISH: qos 3 or DUP with qos 0 (f = 6, 7, 8, 9, 14, 15: bits of 0xC3C0);
        // PUBREL: 0b0010; others 0 (false: the types left are server->client ones);
        // on the host also SUBSCRIBE, UNSUBSCRIBE: 0b0010 (bits 7, 9, 11 of 0xA80)
        if (t == 3 ? 0xc3c0 >> f & 1 : f != (HOST_SIDE ? 0xa80 >> t & 2 : t == 6 && 2)) no("flags");
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
          // A PUBLISH at QoS 1 or 2: its packet id (right after the topic, before the
          // payload) is read, when it lies within the first maxPacket bytes, so that
          // the session can acknowledge what is dropped
          x = 0;
          if (t == 3 && f & 6) {
            if (b.length < maxPacket) return this._b = b;
            // (i: past the topic; the id's two bytes must lie below maxPacket)
            if ((i = u16() + i) < maxPacket - 1) x = { type: (f >> 1 & 3) + 3, id: id() };
          }
          s = n;
          sink.error("oversize", false, x);
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
          d = u16() + i;
          x = r.topic = utf8Decode(b.slice(i, i = d));
          if (!x || /[+#]/.test(x)) no("topic");
          r.qos = d = f >> 1 & 3;
          r.retain = !!(f & 1);
          r.dup = !!(f & 8);
          if (d) r.id = id();
          r.payload = b.slice(i, i = i > n ? 0 : n);
        } else if (HOST_SIDE && 0x5502 >> t & 1) {
          // CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT (bits 1, 8, 10, 12, 14): host only
          r = this._clientBody!(t, b.slice(i, i = n));
        } else if (t < 12) {
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
} as unknown as new (maxPacket: number, clientSide?: boolean) => Decoder;
