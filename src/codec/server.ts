/**
 * The server side of the MQTT 3.1.1 codec, for tests and host tools only (never
 * imported by firmware, so the board build leaves it out): encoding of the
 * server->client packets the firmware encoder leaves out (CONNACK, SUBACK), and
 * decoding of the client->server packets (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
 * PINGREQ, DISCONNECT) on top of the firmware Decoder.
 */
import type { Bytes } from "../transport";
import { Decoder, encode, no, utf8Decode, w16, type Decoder as DecoderState } from "./index";
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
 * The firmware Decoder with a hook for the bodies of the client->server packets,
 * as a server decodes them. The hook's path in Decoder is host-only: the firmware
 * build strips it (see HOST_SIDE in ./index.ts). With clientSide it is the firmware
 * Decoder exactly (those types are the fatal error "type").
 */
export class ServerDecoder extends (Decoder as new (maxPacket: number) => DecoderState) {
  constructor(maxPacket: number, clientSide?: boolean) {
    super(maxPacket);
    if (!clientSide) this._clientBody = decodeClientPacket;
  }
}
