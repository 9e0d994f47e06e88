/**
 * Pure MQTT 3.1.1 codec: packet objects <-> byte strings.
 *
 * encode() turns a Packet into one whole packet; Decoder takes bytes in chunks
 * of any size and hands whole packets (or errors) to a sink. Strings on the wire
 * are UTF-8; payloads and passwords are byte strings passed through unchanged.
 */
import type { Bytes } from "../session/transport";
import type { AckPacket, Packet, SubackPacket, SubscribePacket, UnsubscribePacket } from "./packets";

export * from "./packets";

const chr = String.fromCharCode;

/** Throws Error(m): every codec failure goes through here. */
function no(m: string): never {
  throw Error(m);
}

/** JS string -> UTF-8 byte string. A lone surrogate becomes U+FFFD (as Node does). */
export function utf8Encode(s: string): Bytes {
  let r = "", c: number, d: number, k: number;
  for (let i = 0; i < s.length; i++) {
    c = s.charCodeAt(i);
    if (c >> 10 == 54 && (d = s.charCodeAt(i + 1)) >> 10 == 55) {
      c = 0x10000 + ((c & 1023) << 10) + (d & 1023);
      i++;
    } else if (c >> 11 == 27) c = 0xfffd;
    // k continuation bytes; lead byte 0xC0 / 0xE0 / 0xF0 is 0xFF80 >> k
    k = c < 128 ? 0 : c < 2048 ? 1 : c < 65536 ? 2 : 3;
    r += chr(k ? 0xff80 >> k & 255 | c >> 6 * k : c);
    while (k--) r += chr(128 | c >> 6 * k & 63);
  }
  return r;
}

/**
 * UTF-8 byte string -> JS string. Throws Error("utf8") on anything MQTT forbids
 * [MQTT-1.5.3-1/2]: bad, truncated or overlong sequences, surrogates, code points
 * above U+10FFFF and U+0000. Decodes loosely, then checks that encoding the result
 * gives back exactly the input: only well-formed UTF-8 survives that round trip.
 */
export function utf8Decode(b: Bytes): string {
  let r = "", i = 0, c: number, n: number;
  while (i < b.length) {
    c = b.charCodeAt(i++);
    n = c < 192 ? 0 : c < 224 ? 1 : c < 240 ? 2 : 3;
    if (n) c &= 63 >> n;
    while (n--) c = c << 6 | b.charCodeAt(i++) & 63;
    r += c < 65536 ? chr(c) : chr(0xd7c0 + (c >> 10), 0xdc00 | c & 1023);
  }
  if (utf8Encode(r) !== b || b.indexOf("\0") >= 0) no("utf8");
  return r;
}

/** MQTT 3.1.1 section 4.7 matching of a topic filter against a topic name. */
export function topicMatches(filter: string, topic: string): boolean {
  // Wildcards at the first level never match topics starting with '$' [MQTT-4.7.2-1].
  if (topic[0] == "$" && (filter[0] == "+" || filter[0] == "#")) return false;
  const f = filter.split("/"), t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] == "#") return i == f.length - 1;
    if (i >= t.length || f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.length == t.length;
}

function w16(n: number): Bytes {
  if (n !== (n & 65535)) no("range");
  return chr(n >> 8, n & 255);
}
/** Length-prefixed bytes. */
function lstr(b: Bytes): Bytes {
  return w16(b.length) + b;
}
/** Length-prefixed UTF-8 string. */
function ustr(s: string): Bytes {
  return lstr(utf8Encode(s));
}
function qv(q: number): number {
  if (q !== (q & 3) || q > 2) no("qos");
  return q;
}

/**
 * The whole packet as a byte string. Throws Error only on inputs a caller must
 * never produce: a string or byte field over 65535 bytes, a packet over 256 MB,
 * qos not 0/1/2, a packet id not 1..65535, keep-alive not 0..65535. It does not
 * check topic syntax (the session does). DUP is sent only with qos > 0 [MQTT-3.3.1-2].
 */
export function encode(p: Packet): Bytes {
  const t = p.type;
  // PUBREL, SUBSCRIBE, UNSUBSCRIBE have flags 0b0010 (bits 7, 9, 11 of 0xA80)
  let f = 0xa80 >> t & 2, v = "";
  if (t == 1) {
    const w = p.will, u = p.username, pw = p.password;
    let c = p.clean ? 2 : 0;
    v = ustr(p.clientId);
    if (w) {
      c |= 4 | qv(w.qos) << 3 | (w.retain ? 32 : 0);
      v += ustr(w.topic) + lstr(w.payload);
    }
    if (u != null) {
      c |= 128;
      v += ustr(u);
    }
    if (pw != null) {
      c |= 64;
      v += lstr(pw);
    }
    // protocol name "MQTT", level 4, connect flags, keep-alive, then the payload
    v = "\0\x04MQTT\x04" + chr(c) + w16(p.keepAlive) + v;
  } else if (t == 2) v = chr(p.sessionPresent ? 1 : 0, p.returnCode);
  else if (t == 3) {
    const q = qv(p.qos);
    f = (p.dup && q ? 8 : 0) | q << 1 | (p.retain ? 1 : 0);
    v = ustr(p.topic) + (q ? w16(p.id || -1) : "") + p.payload;
  } else if (t < 12) {
    // every remaining type up to UNSUBACK starts with a non-zero packet id
    const a = p as AckPacket | SubscribePacket | SubackPacket | UnsubscribePacket;
    v = w16(a.id || -1);
    if (a.type == 8) for (const s of a.subs) v += ustr(s.topic) + chr(qv(s.qos));
    if (a.type == 9) for (const g of a.granted) v += chr(g);
    if (a.type == 10) for (const s of a.topics) v += ustr(s);
  }
  let n = v.length, h = chr(t << 4 | f);
  if (n > 268435455) no("range");
  do {
    h += chr(n & 127 | (n > 127 ? 128 : 0));
    n >>= 7;
  } while (n);
  return h + v;
}

export interface DecoderSink {
  packet(p: Packet): void;
  /** fatal: the stream is unusable (protocol error); otherwise one packet was dropped. */
  error(message: string, fatal: boolean): void;
}

/**
 * Streaming decoder. Never holds more than maxPacket bytes; an oversize packet is
 * skipped byte-exactly and reported (non-fatal). After a fatal error it ignores
 * all input until reset().
 */
export class Decoder {
  /** Bytes of the packet in progress: fewer than maxPacket (or a partial fixed header, at most 4 bytes). */
  _b = "";
  /** Bytes of an oversize packet still to skip. */
  _s = 0;
  /** Whole size of the packet last parsed by _r (set before every use). */
  _t!: number;
  /** Dead after a fatal error, until reset(). */
  _x?: boolean;
  /** Bumped by reset(), so a reset from inside a sink callback drops the rest of the chunk. */
  _g = 0;

  constructor(private _m: number, private _c: boolean) {}

  reset(): void {
    this._b = "";
    this._s = 0;
    this._x = false;
    this._g++;
  }

  push(chunk: Bytes, sink: DecoderSink): void {
    let b = this._b + chunk, p: Packet | 0 | undefined, n: number;
    const g = this._g;
    this._b = "";
    while (b && !this._x && g == this._g) {
      if (this._s) {
        n = Math.min(this._s, b.length);
        this._s -= n;
        b = b.slice(n);
        continue;
      }
      try {
        p = this._r(b);
      } catch (e) {
        this._x = true;
        sink.error((e as Error).message, true);
        return;
      }
      if (p == null) {
        this._b = b;
        return;
      }
      if (p) {
        b = b.slice(this._t);
        sink.packet(p);
      } else {
        this._s = this._t;
        sink.error("oversize", false);
      }
    }
  }

  /**
   * Parses the packet at the start of b: the packet, 0 when it is larger than
   * maxPacket (this._t = its size), undefined when more bytes are needed.
   * Throws Error(message) when the input is malformed.
   */
  _r(b: Bytes): Packet | 0 | undefined {
    const L = b.length, h = b.charCodeAt(0), t = h >> 4, f = h & 15;
    // types 0 and 15; in client mode CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT (bits 1, 8, 10, 12, 14)
    if (!t || t > 14 || this._c && 0x5502 >> t & 1) no("type");
    // PUBLISH: qos 3, or DUP with qos 0; PUBREL, SUBSCRIBE, UNSUBSCRIBE: 0b0010 (bits 7, 9, 11 of 0xA80); others 0
    if (t == 3 ? (f & 6) == 6 || (f & 14) == 8 : f != (0xa80 >> t & 2)) no("flags");
    // remaining length: 1..4 bytes, minimal encoding
    let n = 0, m = 1, i = 1, d = 128;
    while (d & 128 && i < L) {
      d = b.charCodeAt(i++);
      n += (d & 127) * m;
      m *= 128;
      if (i > 4 && d & 128) no("length");
    }
    if (d & 128) return;
    // non-minimal; CONNACK, PUBACK..PUBCOMP, UNSUBACK (bits 2, 4-7, 11 of 0x8F4) are 2; PINGREQ..DISCONNECT 0
    if (!d && i > 2 || (0x8f4 >> t & 1 ? n != 2 : t > 11 && n)) no("length");
    this._t = n += i;
    if (n > this._m) return 0;
    if (L < n) return;

    const u8 = () => (i < n || no("short"), b.charCodeAt(i++));
    const u16 = () => u8() << 8 | u8();
    const id = () => u16() || no("id");
    const raw = () => {
      const l = u16();
      if (i + l > n) no("short");
      return b.slice(i, i += l);
    };
    const str = () => utf8Decode(raw());
    /** A topic name (w) or filter: non-empty; a name has no wildcards. */
    const name = (w?: boolean) => {
      const s = str();
      if (!s || w && /[+#]/.test(s)) no("topic");
      return s;
    };
    /** A qos byte: 0..2, or also x (SUBACK's 0x80 failure code). */
    const qos = (x: number) => {
      const q = u8();
      if (q > 2 && q != x) no("qos");
      return q;
    };
    let p: any, c: number;
    if (t == 1) {
      if (raw() != "MQTT" || u8() != 4) no("protocol");
      c = u8();
      // reserved bit; will qos/retain without will; will qos 3; password without user name
      if (c & 1 || (c & 4 ? (c & 24) == 24 : c & 56) || (c & 192) == 64) no("flags");
      p = { type: 1, keepAlive: u16(), clientId: str(), clean: !!(c & 2) };
      if (c & 4) p.will = { topic: name(true), payload: raw(), qos: c >> 3 & 3, retain: !!(c & 32) };
      if (c & 128) p.username = str();
      if (c & 64) p.password = raw();
    } else if (t == 2) {
      if ((c = u8()) > 1) no("flags");
      p = { type: 2, sessionPresent: !!c, returnCode: u8() };
    } else if (t == 3) {
      c = f >> 1 & 3;
      p = { type: 3, topic: name(true), qos: c, retain: !!(f & 1), dup: !!(f & 8) };
      if (c) p.id = id();
      p.payload = b.slice(i, i = n);
    } else if (t > 11) p = { type: t };
    else {
      p = { type: t, id: id() };
      // SUBSCRIBE, SUBACK, UNSUBSCRIBE: a non-empty list up to the end of the packet
      if (t > 7 && t < 11) {
        const a: any[] = [];
        do a.push(t == 10 ? name() : t == 8 ? { topic: name(), qos: qos(2) } : qos(128)); while (i < n);
        p[t == 8 ? "subs" : t == 9 ? "granted" : "topics"] = a;
      }
    }
    if (i != n) no("length");
    return p;
  }
}
