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
import {
  CONNACK, CONNECT, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
  type AckPacket, type Packet,
} from "./packets";

export * from "./packets";

const chr = String.fromCharCode;

/**
 * The firmware build defines FIRMWARE (terser `global_defs`, scripts/build/bundle.ts), so
 * HOST_SIDE is the constant false there and the minifier drops every branch it
 * guards: the server-side decoding that ./server.ts plugs into Decoder costs the
 * board no byte. On the host (tests, tools) nothing defines it and HOST_SIDE is true.
 */
declare const FIRMWARE: boolean;
const HOST_SIDE = typeof FIRMWARE == "undefined";

/**
 * Why the codec refused bytes or a packet: the message of the Error that no()
 * throws ("protocol" only host-side, ./server.ts), or "oversize" (reported to the
 * sink, not fatal: a packet over maxPacket, skipped).
 */
export type CodecError = "utf8" | "range" | "qos" | "type" | "id" | "length" | "flags" | "topic" | "protocol" | "oversize";
/**
 * The text of an exception the project did not throw by name (a sink's, an app
 * callback's): any string, marked, so that a misspelt literal reason is no
 * ThrownText and still fails the type check. Made only by a cast where it is caught.
 */
export type ThrownText = string & { readonly _thrownText: true };
/** What a DecoderSink's error() gets: the codec's own word, or what a sink threw. */
export type DecoderError = CodecError | ThrownText;

/** Throws Error(m): every codec failure goes through here. */
export const no = (m: CodecError): never => {
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
const bytesField = (bytes: Bytes) => w16(bytes.length) + bytes;
/** Length-prefixed UTF-8 string. */
const utf8Field = (text: string) => bytesField(utf8Encode(text));
/** A qos: Error("qos") unless 0, 1 or 2. */
const checkedQos = (qos: number) => qos !== (qos & 3) || qos > 2 ? no("qos") : qos;
/** The types whose fixed-header flags are 0b0010, as bit type + 1: PUBREL, SUBSCRIBE, UNSUBSCRIBE. */
const FLAGS_0010_TYPES = 1 << PUBREL + 1 | 1 << SUBSCRIBE + 1 | 1 << UNSUBSCRIBE + 1;

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
  const type = p.type;
  // PUBREL, SUBSCRIBE, UNSUBSCRIBE have flags 0b0010 (bits 7, 9, 11 of FLAGS_0010_TYPES)
  let flags = FLAGS_0010_TYPES >> type & 2, body = "", field: any;
  if (type == CONNECT) {
    field = p.will;
    body = utf8Field(p.clientId);
    // (booleans as bits: true | 0 is 1)
    flags = p.clean << 1;
    if (field) {
      flags |= 4 | checkedQos(field.qos) << 3 | field.retain << 5;
      body += utf8Field(field.topic) + bytesField(field.payload);
    }
    if ((field = p.username) != null) {
      flags |= 128;
      body += utf8Field(field);
    }
    if ((field = p.password) != null) {
      flags |= 64;
      body += bytesField(field);
    }
    // protocol name "MQTT", level 4, connect flags, keep-alive, then the payload
    body = chr(0, 4, 77, 81, 84, 84, 4, flags) + w16(p.keepAlive) + body;
    flags = 0;
  } else if (type == PUBLISH) {
    field = checkedQos(p.qos);
    flags = (p.dup && field && 8) | field << 1 | p.retain;
    body = utf8Field(p.topic) + (field ? w16(p.id || -1) : "") + p.payload;
  } else if (type < PINGREQ) {
    // PUBACK..PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, UNSUBACK: a non-zero packet id first
    // CONNACK and SUBACK are server packets: ./server.ts
    body = w16((1 << CONNACK | 1 << SUBACK) >> type & 1 ? no("type") : p.id || -1);
    // SUBSCRIBE: filters and qos; UNSUBSCRIBE: filters
    for (field of p.subs || p.topics || "") body += type - SUBSCRIBE ? utf8Field(field) : utf8Field(field.topic) + chr(checkedQos(field.qos));
  }
  // fixed header, remaining length (7 bits a byte, low first), body
  let remaining = body.length, header = chr(type << 4 | flags);
  do header += chr(remaining & 127 | (remaining >> 7 && 128)); while (remaining >>= 7);
  return header + body;
}

export interface DecoderSink {
  packet(p: Packet): void;
  /**
   * fatal: the stream is unusable (protocol error); otherwise one packet was dropped
   * ("oversize"). For a dropped PUBLISH at QoS 1 or 2, `ack` is the acknowledgement
   * it needs (PUBACK or PUBREC with its packet id): unacknowledged, a broker would
   * send it again forever.
   */
  error(message: DecoderError, fatal: boolean, ack?: AckPacket | 0): void;
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
  push(bytes: Bytes, sink: DecoderSink): void;
  /**
   * Host only (./server.ts): decodes the body of a client->server packet (CONNECT,
   * SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT); unset, those types are fatal.
   */
  _clientBody?: (type: number, body: Bytes) => Packet;
  /** Forgets everything buffered and revives a dead decoder; from inside a sink it also drops the rest of the chunk. */
  reset(): void;
}

/** The types a server sends (CONNACK..PUBCOMP, SUBACK, UNSUBACK, PINGRESP), as bits. */
const SERVER_TYPES = 1 << CONNACK | 1 << PUBLISH | 1 << PUBACK | 1 << PUBREC | 1 << PUBREL | 1 << PUBCOMP | 1 << SUBACK | 1 << UNSUBACK | 1 << PINGRESP;
/** The types a client sends that no server sends (host-side decoding only). */
const CLIENT_TYPES = 1 << CONNECT | 1 << SUBSCRIBE | 1 << UNSUBSCRIBE | 1 << PINGREQ | 1 << DISCONNECT;
/** The types whose remaining length is exactly 2: CONNACK, PUBACK..PUBCOMP, UNSUBACK. */
const TWO_BYTE_TYPES = 1 << CONNACK | 1 << PUBACK | 1 << PUBREC | 1 << PUBREL | 1 << PUBCOMP | 1 << UNSUBACK;
/** PUBLISH flags that are invalid: QoS 3, or DUP with QoS 0 (flags 6, 7, 8, 9, 14, 15, as bits). */
const BAD_PUBLISH_FLAGS = 0xc3c0;
/** A remaining length takes at most this many bytes. */
const MAX_LENGTH_BYTES = 4;

/** (A constructor function, not a class: a few bytes smaller; `new Decoder(…)` works the same.) */
export const Decoder = function (this: Decoder, maxPacket: number) {
  // skipBytes: bytes of an oversize packet still to skip (none when <= 0); liveToken: replaced
  // by reset(), 0 when dead; buffered: the bytes at hand
  let skipBytes: number, liveToken: any, buffered: Bytes;
  const lengthError = () => no("length");
  const byteAt = (index: number) => buffered.charCodeAt(index);
  (this.reset = () => {
    this._b = "";
    skipBytes = 0;
    liveToken = {};
  })();
  this.push = (bytes, sink): any => {
    const token = liveToken;
    // type, flags; packetEnd: the remaining length, then the packet's end; at: the read position;
    // byte: the byte just read; packet: the packet decoded; field: a topic, the granted list or the drained ack
    let type, flags, packetEnd, at: number, byte: number, packet: any, field: any;
    const readU16 = () => byteAt(at++) << 8 | byteAt(at++), readPacketId = () => readU16() || no("id");
    buffered = this._b + bytes;
    this._b = "";
    try {
      while (token && buffered && token == liveToken) {
        // skipping an oversize packet (skipBytes goes negative once it is done)
        if ((packetEnd = skipBytes) > 0) {
          skipBytes = packetEnd - buffered.length;
          buffered = buffered.slice(packetEnd);
          continue;
        }
        type = (flags = byteAt(0)) >> 4;
        flags &= 15;
        at = 1;
        // types 0 and 15 and the client->server types
        // (on the host a _clientBody hook takes the client->server types)
        SERVER_TYPES >> type & 1 || HOST_SIDE && this._clientBody && type % 15 || no("type");
        // PUBLISH: BAD_PUBLISH_FLAGS; PUBREL: 0b0010; others 0 (false: the types left are
        // server->client ones); on the host also SUBSCRIBE, UNSUBSCRIBE: 0b0010
        if (type == PUBLISH ? BAD_PUBLISH_FLAGS >> flags & 1 : flags != (HOST_SIDE ? FLAGS_0010_TYPES >> type & 2 : type == PUBREL && 2)) no("flags");
        // remaining length: 1..4 bytes, minimal encoding
        packetEnd = 0;
        do {
          if (at > MAX_LENGTH_BYTES) lengthError();
          if (at >= buffered.length) return this._b = buffered;
          byte = byteAt(at++);
          packetEnd += (byte & 127) << 7 * at - 14;
        } while (byte & 128);
        // non-minimal; TWO_BYTE_TYPES are 2; PINGREQ..DISCONNECT 0
        if (!byte && at > 2 || (TWO_BYTE_TYPES >> type & 1 ? packetEnd != 2 : type > UNSUBACK && packetEnd)) lengthError();
        if ((packetEnd += at) > maxPacket) {
          // A PUBLISH at QoS 1 or 2: its packet id (right after the topic, before the
          // payload) is read, when it lies within the first maxPacket bytes, so that
          // the session can acknowledge what is dropped
          field = 0;
          if (type == PUBLISH && flags & 6) {
            if (buffered.length < maxPacket) return this._b = buffered;
            // (at: past the topic; the id's two bytes must lie below maxPacket)
            if ((at = readU16() + at) < maxPacket - 1) field = { type: (flags >> 1 & 3) + PUBLISH, id: readPacketId() };
          }
          skipBytes = packetEnd;
          sink.error("oversize", false, field);
          continue;
        }
        if (buffered.length < packetEnd) return this._b = buffered;
        // the body; reads past the end of the packet give NaN or later bytes, and end in an error
        packet = { type: type };
        if (type == CONNACK) {
          if ((byte = byteAt(at++)) > 1) no("flags");
          packet.sessionPresent = !!byte;
          packet.returnCode = byteAt(at++);
        } else if (type == PUBLISH) {
          byte = readU16() + at;
          field = packet.topic = utf8Decode(buffered.slice(at, at = byte));
          if (!field || /[+#]/.test(field)) no("topic");
          packet.qos = byte = flags >> 1 & 3;
          packet.retain = !!(flags & 1);
          packet.dup = !!(flags & 8);
          if (byte) packet.id = readPacketId();
          packet.payload = buffered.slice(at, at = at > packetEnd ? 0 : packetEnd);
        } else if (HOST_SIDE && CLIENT_TYPES >> type & 1) {
          // CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT: host only
          packet = this._clientBody!(type, buffered.slice(at, at = packetEnd));
        } else if (type < PINGREQ) {
          packet.id = readPacketId();
          // SUBACK: a non-empty list of return codes 0, 1, 2 or 0x80
          if (type == SUBACK) {
            field = packet.granted = [];
            do {
              if ((byte = byteAt(at++)) > 2 && byte != 128) no("qos");
              field.push(byte);
            } while (at < packetEnd);
          }
        }
        if (at != packetEnd) lengthError();
        buffered = buffered.slice(packetEnd);
        sink.packet(packet);
      }
    } catch (thrown) {
      liveToken = 0;
      sink.error((thrown as Error).message as DecoderError, true);
    }
  };
} as unknown as new (maxPacket: number, clientSide?: boolean) => Decoder;
