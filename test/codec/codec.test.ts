import { describe, expect, it } from "vitest";
import {
  Decoder, encode, topicMatches, utf8Decode, utf8Encode,
  type Packet,
} from "../../src/codec/index";
import { ServerDecoder, encodeServer } from "../../src/codec/server";
import {
  Rng, buffered, collector, decodeChunks, fromBuf, hex, newDecoder, oracleEncode, oracleParse, randomPacket, toBuf, unhex,
} from "../support/codec-oracle";

const CLIENT_TO_SERVER = new Set([1, 8, 10, 12, 14]);
/** Server->client packets the firmware encode() leaves to encodeServer(). */
const SERVER_ONLY = new Set([2, 9]);

/** Any packet: the firmware encoder where it applies (checked to agree), encodeServer otherwise. */
function enc(p: Packet): string {
  const s = encodeServer(p);
  if (SERVER_ONLY.has(p.type)) expect(() => encode(p)).toThrow("type");
  else expect(encode(p)).toBe(s);
  return s;
}

/** Decodes one whole byte string; client->server types with the ServerDecoder (clientSide=false). */
function decodeOne(s: string, max = 1024): Packet {
  const p = (s.charCodeAt(0) >> 4);
  const out = decodeChunks([s], max, !CLIENT_TO_SERVER.has(p));
  expect(out.errors).toEqual([]);
  expect(out.packets.length).toBe(1);
  return out.packets[0];
}

const ALL_BYTES = (() => {
  let s = "";
  for (let i = 0; i < 256; i++) s += String.fromCharCode(i);
  return s;
})();
const INTL = "température/é/日本/😀";

describe("golden vectors", () => {
  it("CONNACK accepted is 20 02 00 00", () => {
    expect(hex(enc({ type: 2, sessionPresent: false, returnCode: 0 }))).toBe("20020000");
    expect(decodeOne(unhex("20020000"))).toEqual({ type: 2, sessionPresent: false, returnCode: 0 });
    expect(decodeOne(unhex("20020105"))).toEqual({ type: 2, sessionPresent: true, returnCode: 5 });
  });

  it("CONNECT board-1, keep-alive 60, clean session", () => {
    // 10 13: CONNECT, remaining 19 = 6 (name) + 1 (level) + 1 (flags) + 2 (keep-alive) + 9 (client id)
    const want = "1013" + "00044d515454" + "04" + "02" + "003c" + "0007" + hex("board-1");
    expect(hex(enc({ type: 1, clientId: "board-1", keepAlive: 60, clean: true }))).toBe(want);
  });

  it("CONNECT with every field: flags and payload order", () => {
    const p: Packet = {
      type: 1, clientId: "c", keepAlive: 0x1234, clean: false,
      will: { topic: "w", payload: "\x00\xff", qos: 2, retain: true }, username: "u", password: "p\x80",
    };
    // remaining 27 = 10 + 3 + 3 + 4 + 3 + 4; flags: user 0x80 | password 0x40 | will retain 0x20 | will qos 2 << 3 | will 0x04 = 0xf4
    const want = "101b" + "00044d515454" + "04" + "f4" + "1234" + "000163" + "000177" + "000200ff" + "000175" + "00027080";
    expect(hex(enc(p))).toBe(want);
    expect(decodeOne(unhex(want))).toEqual(p);
  });

  it("PINGREQ C0 00, PINGRESP D0 00, DISCONNECT E0 00", () => {
    expect(hex(enc({ type: 12 }))).toBe("c000");
    expect(hex(enc({ type: 13 }))).toBe("d000");
    expect(hex(enc({ type: 14 }))).toBe("e000");
    expect(decodeOne(unhex("d000"))).toEqual({ type: 13 });
  });

  it("PUBLISH, SUBSCRIBE, PUBREL by hand", () => {
    expect(hex(enc({ type: 3, topic: "a/b", payload: "hi", qos: 1, retain: true, dup: true, id: 10 })))
      .toBe("3b09" + "0003612f62" + "000a" + "6869");
    expect(hex(enc({ type: 8, id: 1, subs: [{ topic: "a/#", qos: 1 }] }))).toBe("8208" + "0001" + "0003612f23" + "01");
    expect(hex(enc({ type: 6, id: 258 }))).toBe("62020102");
  });
});

/** One example of each of the 14 types, plus the interesting cases. */
const TABLE: [string, Packet][] = [
  ["CONNECT minimal", { type: 1, clientId: "board-1", clean: true, keepAlive: 60 }],
  ["CONNECT empty client id", { type: 1, clientId: "", clean: true, keepAlive: 0 }],
  ["CONNECT non-ASCII id + will + auth", {
    type: 1, clientId: "日本-😀", clean: false, keepAlive: 65535,
    will: { topic: INTL, payload: ALL_BYTES, qos: 1, retain: false }, username: "üser", password: ALL_BYTES,
  }],
  ["CONNECT username only", { type: 1, clientId: "x", clean: true, keepAlive: 10, username: "" }],
  ["CONNECT will qos 2 retain, empty payload", {
    type: 1, clientId: "x", clean: true, keepAlive: 10, will: { topic: "t", payload: "", qos: 2, retain: true },
  }],
  ["CONNACK", { type: 2, sessionPresent: true, returnCode: 0 }],
  ["CONNACK refused", { type: 2, sessionPresent: false, returnCode: 4 }],
  ["PUBLISH qos 0", { type: 3, topic: "a", payload: "", qos: 0, retain: false, dup: false }],
  ["PUBLISH qos 1 binary", { type: 3, topic: INTL, payload: ALL_BYTES, qos: 1, retain: true, dup: false, id: 1 }],
  ["PUBLISH qos 2 dup", { type: 3, topic: "x/y/z", payload: "on", qos: 2, retain: false, dup: true, id: 65535 }],
  ["PUBACK", { type: 4, id: 1 }],
  ["PUBREC", { type: 5, id: 300 }],
  ["PUBREL", { type: 6, id: 65535 }],
  ["PUBCOMP", { type: 7, id: 2 }],
  ["SUBSCRIBE", { type: 8, id: 7, subs: [{ topic: "a/+/c", qos: 0 }, { topic: "#", qos: 1 }, { topic: INTL, qos: 2 }] }],
  ["SUBACK", { type: 9, id: 7, granted: [0, 1, 2, 0x80] }],
  ["UNSUBSCRIBE", { type: 10, id: 8, topics: ["a/+/c", INTL] }],
  ["UNSUBACK", { type: 11, id: 8 }],
  ["PINGREQ", { type: 12 }],
  ["PINGRESP", { type: 13 }],
  ["DISCONNECT", { type: 14 }],
];

describe("every packet type round-trips and agrees with mqtt-packet", () => {
  it("covers all 14 types", () => {
    expect(new Set(TABLE.map(([, p]) => p.type)).size).toBe(14);
  });
  for (const [name, p] of TABLE) {
    it(name, () => {
      const s = enc(p);
      expect(decodeOne(s)).toEqual(p);
      expect(hex(s)).toBe(hex(oracleEncode(p)));
      expect(oracleParse(s)).toEqual([p]);
    });
  }

  it("client-side decoder accepts every server->client type", () => {
    const s = TABLE.filter(([, p]) => !CLIENT_TO_SERVER.has(p.type)).map(([, p]) => enc(p)).join("");
    const out = decodeChunks([s], 1024, true);
    expect(out.errors).toEqual([]);
    expect(out.packets).toEqual(TABLE.filter(([, p]) => !CLIENT_TO_SERVER.has(p.type)).map(([, p]) => p));
  });

  it("non-ASCII strings are UTF-8 on the wire", () => {
    const s = enc({ type: 3, topic: INTL, payload: "", qos: 0, retain: false, dup: false });
    const topicBytes = Buffer.from(INTL, "utf8");
    expect(s.slice(4)).toBe(fromBuf(topicBytes));
    expect(s.charCodeAt(2) << 8 | s.charCodeAt(3)).toBe(topicBytes.length);
  });
});

describe("remaining length boundaries", () => {
  const cases: [number, number][] = [[0, 1], [127, 1], [128, 2], [16383, 2], [16384, 3], [2097151, 3], [2097152, 4]];
  for (const [rem, lenBytes] of cases) {
    it(`remaining length ${rem} uses ${lenBytes} byte(s)`, () => {
      // PUBLISH qos 0, topic "t": 3 bytes of topic field, the rest payload
      const p: Packet = rem < 3
        ? { type: 14 }
        : { type: 3, topic: "t", payload: "\xa5".repeat(rem - 3), qos: 0, retain: false, dup: false };
      const s = enc(p);
      expect(s.length).toBe(1 + lenBytes + rem);
      const mp = oracleEncode(p);
      expect(s.slice(0, 1 + lenBytes)).toBe(mp.slice(0, 1 + lenBytes));
      expect(s === mp).toBe(true);
      expect(decodeOne(s, 3_000_000)).toEqual(p);
      // also byte-at-a-time across the header, then the rest
      const out = decodeChunks([...s.slice(0, 6)].concat(s.slice(6)), 3_000_000, false);
      expect(out.errors).toEqual([]);
      expect(out.packets).toEqual([p]);
    });
  }
});

describe("seeded random packets against mqtt-packet", () => {
  it("3,000 random packets: same bytes, both parsers agree, streamed decode matches", () => {
    const r = new Rng(0xc0dec);
    const all: Packet[] = [];
    let stream = "";
    for (let i = 0; i < 3000; i++) {
      const p = randomPacket(r, 1 + r.int(14), true);
      const s = enc(p);
      expect(s).toBe(oracleEncode(p));
      expect(oracleParse(s)).toEqual([p]);
      all.push(p);
      stream += s;
    }
    // the whole stream through one server-side decoder in random chunks
    const chunks: string[] = [];
    for (let i = 0; i < stream.length;) {
      const n = 1 + r.int(r.pick([3, 100, 3000]));
      chunks.push(stream.slice(i, i + n));
      i += n;
    }
    const out = decodeChunks(chunks, 1 << 20, false);
    expect(out.errors).toEqual([]);
    expect(out.packets).toEqual(all);
  });
});

describe("streaming", () => {
  const packets: Packet[] = [
    { type: 2, sessionPresent: false, returnCode: 0 },
    { type: 3, topic: "led/1", payload: "on", qos: 1, retain: false, dup: false, id: 5 },
    { type: 9, id: 5, granted: [1, 0x80] },
    { type: 13 },
    { type: 3, topic: INTL, payload: "x".repeat(200), qos: 0, retain: true, dup: false }, // 2-byte length
    { type: 11, id: 9 },
  ];
  const stream = packets.map(enc).join("");

  it("several packets in one chunk", () => {
    expect(decodeChunks([stream], 1024, true)).toEqual({ packets, errors: [] });
  });

  it("split at every byte boundary (two chunks)", () => {
    for (let k = 0; k <= stream.length; k++) {
      const out = decodeChunks([stream.slice(0, k), stream.slice(k)], 1024, true);
      expect(out, `split at ${k}`).toEqual({ packets, errors: [] });
    }
  });

  it("split at every pair of boundaries (three chunks, same decoder)", () => {
    const d = new Decoder(1024, true);
    for (let a = 0; a <= stream.length; a += 3) {
      for (let b = a; b <= stream.length; b += 5) {
        const c = collector();
        d.push(stream.slice(0, a), c.sink);
        d.push(stream.slice(a, b), c.sink);
        d.push(stream.slice(b), c.sink);
        expect(c.packets).toEqual(packets);
        expect(c.errors).toEqual([]);
        expect(buffered(d)).toBe(0);
      }
    }
  });

  it("one byte at a time", () => {
    expect(decodeChunks([...stream], 1024, true)).toEqual({ packets, errors: [] });
  });

  it("empty chunks are harmless", () => {
    expect(decodeChunks(["", stream.slice(0, 1), "", stream.slice(1), ""], 1024, true)).toEqual({ packets, errors: [] });
  });

  it("keeps a partial packet for the next chunk", () => {
    const d = new Decoder(1024, true);
    const c = collector();
    d.push(stream.slice(0, 7), c.sink);
    expect(c.packets.length).toBe(1);
    expect(buffered(d)).toBe(3);
  });
});

describe("oversize packets", () => {
  const big: Packet = { type: 3, topic: "big", payload: "z".repeat(3000), qos: 1, retain: false, dup: false, id: 3 };
  const after: Packet = { type: 4, id: 77 };
  const before: Packet = { type: 13 };
  const stream = enc(before) + enc(big) + enc(after);

  for (const size of [1, 7, 100, 1000, 5000]) {
    it(`drained without losing sync (chunks of ${size})`, () => {
      const d = new Decoder(1024, true);
      const c = collector();
      let most = 0;
      for (let i = 0; i < stream.length; i += size) {
        d.push(stream.slice(i, i + size), c.sink);
        most = Math.max(most, buffered(d));
      }
      expect(c.packets).toEqual([before, after]);
      expect(c.errors.length).toBe(1);
      expect(c.errors[0].fatal).toBe(false);
      expect(most).toBeLessThanOrEqual(1024);
    });
  }

  it("a packet of exactly maxPacket bytes is accepted, one more is dropped", () => {
    const p = (n: number): Packet => ({ type: 3, topic: "t", payload: "a".repeat(n), qos: 0, retain: false, dup: false });
    const exact = enc(p(1024 - 6)); // 1 + 2 + 3 + payload
    expect(exact.length).toBe(1024);
    expect(decodeChunks([exact], 1024, true)).toEqual({ packets: [p(1018)], errors: [] });
    const over = enc(p(1019));
    const out = decodeChunks([over + exact], 1024, true);
    expect(out.packets).toEqual([p(1018)]);
    expect(out.errors.map((e) => e.fatal)).toEqual([false]);
  });

  it("several oversize packets in a row, one byte at a time", () => {
    const s = enc(big) + enc(big) + enc(after) + enc(big) + enc(before);
    const out = decodeChunks([...s], 100, true);
    expect(out.packets).toEqual([after, before]);
    expect(out.errors.map((e) => e.fatal)).toEqual([false, false, false]);
  });

  it("a drained PUBLISH at QoS 1 or 2 comes with the ack it needs (PUBACK / PUBREC, the packet id read after the topic), in any chunking", () => {
    const q1 = enc({ type: 3, topic: "led", payload: "x".repeat(65536), qos: 1, retain: false, dup: true, id: 0x1234 });
    const q2 = enc({ type: 3, topic: "a/b", payload: "y".repeat(5000), qos: 2, retain: true, dup: false, id: 7 });
    const q0 = enc({ type: 3, topic: "led", payload: "z".repeat(5000), qos: 0, retain: false, dup: false });
    const s = q1 + enc(after) + q2 + q0 + enc(before);
    for (const size of [1, 2, 3, 5, 9, 700, 70000]) {
      const chunks: string[] = [];
      for (let i = 0; i < s.length; i += size) chunks.push(s.slice(i, i + size));
      const d = new Decoder(1024, true);
      const c = collector();
      let most = 0;
      for (const ch of chunks) {
        d.push(ch, c.sink);
        most = Math.max(most, buffered(d));
      }
      expect(c.packets, `chunks of ${size}`).toEqual([after, before]);
      expect(c.errors, `chunks of ${size}`).toEqual([
        { message: "oversize", fatal: false, ack: { type: 4, id: 0x1234 } },
        { message: "oversize", fatal: false, ack: { type: 5, id: 7 } },
        { message: "oversize", fatal: false },
      ]);
      expect(most).toBeLessThanOrEqual(1024);
    }
  });

  it("a drained PUBLISH whose packet id lies beyond maxPacket is dropped without one; packet id 0 there is fatal", () => {
    const longTopic = enc({ type: 3, topic: "t".repeat(200), payload: "p".repeat(300), qos: 1, retain: false, dup: false, id: 9 });
    expect(decodeChunks([longTopic + enc(after)], 100, true)).toEqual({ packets: [after], errors: [{ message: "oversize", fatal: false }] });
    // PUBLISH qos 1, remaining length 2000: topic "a", packet id 0
    const zero = unhex("32d00f" + "000161" + "0000") + "p".repeat(1995);
    expect(decodeChunks([zero + enc(after)], 100, true)).toEqual({ packets: [], errors: [{ message: "id", fatal: true }] });
  });

  it("an oversize PUBACK length is malformed, not oversize", () => {
    const out = decodeChunks([unhex("40ff7f")], 1024, true);
    expect(out.errors.map((e) => e.fatal)).toEqual([true]);
  });
});

describe("malformed input is a fatal error, and reset() recovers", () => {
  const V = (h: string) => unhex(h);
  const cases: [string, string, boolean?][] = [
    ["fifth remaining-length byte", "30ffffffff01"],
    ["fifth remaining-length byte (split)", "30ff ff ff 80"],
    ["non-minimal length 80 00", "d08000"],
    ["non-minimal length ff 80 00", "30ff8000"],
    ["PUBREL flags 0", "60020001"],
    ["SUBSCRIBE flags 0", "80060001000161 00", false],
    ["UNSUBSCRIBE flags 0", "a005000100016 1", false],
    ["PUBACK flags 2", "42020001"],
    ["CONNACK flags set", "21020000"],
    ["PINGRESP flags set", "d100"],
    ["PUBLISH qos 3", "3605000161 0001"],
    ["PUBLISH qos 0 with DUP", "38030001 61"],
    ["PUBLISH qos 0 with DUP and retain", "39030001 61"],
    ["PUBLISH packet id 0", "3205000161 0000"],
    ["PUBACK packet id 0", "40020000"],
    ["SUBACK packet id 0", "9003000000"],
    ["UNSUBACK packet id 0", "b0020000"],
    ["SUBSCRIBE packet id 0", "82060000000161 00", false],
    ["topic longer than the packet", "3003 0005 61"],
    ["topic length cut inside the packet", "3001 00"],
    ["packet id cut", "3204 0001 61 00"],
    ["invalid UTF-8 in topic (bare continuation)", "3003 0001 80"],
    ["invalid UTF-8 in topic (overlong)", "3004 0002 c0af"],
    ["invalid UTF-8 in topic (surrogate)", "3005 0003 eda080"],
    ["invalid UTF-8 in topic (truncated)", "3004 0002 e6 97"],
    ["U+0000 in topic", "3003 0001 00"],
    ["empty topic", "3002 0000"],
    ["wildcard + in PUBLISH topic", "3005 0003 612f2b"],
    ["wildcard # in PUBLISH topic", "3003 0001 23"],
    ["CONNACK remaining length 3", "2003000000"],
    ["CONNACK remaining length 1", "200100"],
    ["PUBACK remaining length 3", "4003000100"],
    ["PUBREC remaining length 1", "500101"],
    ["PUBREL remaining length 0", "6200"],
    ["PUBCOMP remaining length 4", "700400010000"],
    ["UNSUBACK remaining length 3", "b003000100"],
    ["PINGRESP remaining length 1", "d00100"],
    ["PINGREQ remaining length 1", "c00100", false],
    ["DISCONNECT remaining length 2", "e0020000", false],
    ["CONNACK flags byte 2", "20020200"],
    ["CONNACK flags byte 0x80", "20028000"],
    ["SUBACK return code 3", "9003000103"],
    ["SUBACK return code 0x81", "9003000181"],
    ["SUBACK without return codes", "90020001"],
    ["packet type 0", "0000"],
    ["packet type 15", "f000"],
    ["client side: CONNECT", "1013 00044d515454 04 02 003c 0007" + hex("board-1")],
    ["client side: SUBSCRIBE", "8206 0001 000161 00"],
    ["client side: UNSUBSCRIBE", "a205 0001 000161"],
    ["client side: PINGREQ", "c000"],
    ["client side: DISCONNECT", "e000"],
    ["SUBSCRIBE requested qos 3", "8206 0001 000161 03", false],
    ["SUBSCRIBE without filters", "8202 0001", false],
    ["SUBSCRIBE filter without qos", "8205 0001 000161", false],
    ["UNSUBSCRIBE without filters", "a202 0001", false],
    ["CONNECT wrong protocol name", "1013 00044d515458 04 02 003c 0007" + hex("board-1"), false],
    ["CONNECT protocol level 3", "1013 00044d515454 03 02 003c 0007" + hex("board-1"), false],
    ["CONNECT reserved flag", "1013 00044d515454 04 03 003c 0007" + hex("board-1"), false],
    ["CONNECT will qos without will", "1013 00044d515454 04 0a 003c 0007" + hex("board-1"), false],
    ["CONNECT password without user", "1013 00044d515454 04 42 003c 0007" + hex("board-1"), false],
    ["CONNECT trailing byte", "1014 00044d515454 04 02 003c 0007" + hex("board-1") + "00", false],
    ["CONNECT cut client id", "1012 00044d515454 04 02 003c 0007" + hex("board-"), false],
  ];
  const good: Packet = { type: 4, id: 42 };

  for (const [name, h, clientSide = true] of cases) {
    it(name, () => {
      const d = newDecoder(1024, clientSide);
      const c = collector();
      // a valid packet first, then the bad one, then a valid one in the same chunk (dropped)
      d.push(enc(good) + V(h) + enc(good), c.sink);
      expect(c.packets).toEqual([good]);
      expect(c.errors.length).toBe(1);
      expect(c.errors[0].fatal).toBe(true);
      expect(typeof c.errors[0].message).toBe("string");
      // dead until reset
      d.push(enc(good), c.sink);
      expect(c.packets).toEqual([good]);
      expect(c.errors.length).toBe(1);
      d.reset();
      d.push(enc(good), c.sink);
      expect(c.packets).toEqual([good, good]);
      expect(c.errors.length).toBe(1);
      expect(buffered(d)).toBe(0);
      // the same bad bytes one at a time also end in exactly one fatal error
      const d2 = newDecoder(1024, clientSide);
      const c2 = collector();
      for (const ch of V(h) + enc(good)) d2.push(ch, c2.sink);
      expect(c2.errors.length).toBe(1);
      expect(c2.errors[0].fatal).toBe(true);
      expect(c2.packets).toEqual([]);
    });
  }

  it("the firmware Decoder rejects every client->server type as \"type\", whatever clientSide says", () => {
    for (const clientSide of [true, false, undefined]) {
      for (const [, p] of TABLE.filter(([, q]) => CLIENT_TO_SERVER.has(q.type))) {
        const c = collector();
        new Decoder(1024, clientSide).push(enc(p), c.sink);
        expect(c.packets).toEqual([]);
        expect(c.errors).toEqual([{ message: "type", fatal: true }]);
      }
    }
  });

  it("a ServerDecoder with clientSide=true decodes like the firmware Decoder", () => {
    const s = TABLE.map(([, p]) => enc(p)).join("");
    for (let k = 0; k < s.length; k += 7) {
      const a = decodeChunks([s.slice(k)], 1024, true, new Decoder(1024, true));
      const b = decodeChunks([s.slice(k)], 1024, true, new ServerDecoder(1024, true));
      expect(b).toEqual(a);
    }
  });

  it("mqtt-packet also rejects the byte-level malformed cases it checks", () => {
    // sanity for a few vectors: the oracle agrees they are broken
    for (const h of ["30ffffffff01", "60020001", "3605000161 0001", "0000"]) {
      expect(() => oracleParse(V(h)), h).toThrow();
    }
  });

  it("reset() drops a partial packet and a pending skip", () => {
    const d = new Decoder(16, true);
    const c = collector();
    d.push(enc(good).slice(0, 3), c.sink);
    expect(buffered(d)).toBe(3);
    d.reset();
    expect(buffered(d)).toBe(0);
    d.push(enc({ type: 3, topic: "t", payload: "x".repeat(50), qos: 0, retain: false, dup: false }).slice(0, 10), c.sink);
    expect(c.errors).toEqual([{ message: expect.any(String), fatal: false }]);
    d.reset();
    d.push(enc(good), c.sink);
    expect(c.packets).toEqual([good]);
  });

  it("reset() from inside the sink drops the rest of that chunk", () => {
    const d = new Decoder(1024, true);
    const got: Packet[] = [];
    d.push(enc(good) + enc(good), { packet: (p) => { got.push(p); d.reset(); }, error: () => {} });
    expect(got).toEqual([good]);
  });
});

describe("encode rejects what a caller must never produce", () => {
  it("throws on oversize fields, bad qos, bad packet id", () => {
    const long = "a".repeat(65536);
    expect(() => encode({ type: 3, topic: long, payload: "", qos: 0, retain: false, dup: false })).toThrow();
    expect(() => encode({ type: 3, topic: "é".repeat(32768), payload: "", qos: 0, retain: false, dup: false })).toThrow();
    expect(() => encode({ type: 1, clientId: "c", clean: true, keepAlive: 1, password: long })).toThrow();
    expect(() => encode({ type: 1, clientId: "c", clean: true, keepAlive: 65536 })).toThrow();
    expect(() => encode({ type: 3, topic: "t", payload: "", qos: 3 as 0, retain: false, dup: false, id: 1 })).toThrow();
    expect(() => encode({ type: 8, id: 1, subs: [{ topic: "t", qos: -1 as 0 }] })).toThrow();
    expect(() => encode({ type: 3, topic: "t", payload: "", qos: 1, retain: false, dup: false })).toThrow();
    expect(() => encode({ type: 4, id: 0 })).toThrow();
    expect(() => encode({ type: 4, id: 65536 })).toThrow();
    // SUBACK and CONNACK are left to encodeServer(), which checks the same things
    expect(() => encode({ type: 9, id: 1, granted: [0] })).toThrow("type");
    expect(() => encode({ type: 2, sessionPresent: false, returnCode: 0 })).toThrow("type");
    expect(() => encodeServer({ type: 9, id: 0, granted: [0] })).toThrow();
    expect(() => encodeServer({ type: 8, id: 1, subs: [{ topic: "t", qos: 3 as 0 }] })).toThrow();
    // the longest legal topic is fine
    expect(encode({ type: 3, topic: long.slice(1), payload: "", qos: 0, retain: false, dup: false }).length).toBe(1 + 3 + 2 + 65535);
  });
});

describe("UTF-8", () => {
  it("matches Node for BMP, astral and mixed strings", () => {
    const r = new Rng(7);
    for (let i = 0; i < 500; i++) {
      const s = r.str(40);
      const b = fromBuf(Buffer.from(s, "utf8"));
      expect(utf8Encode(s)).toBe(b);
      expect(utf8Decode(b)).toBe(s);
    }
    expect(hex(utf8Encode("😀"))).toBe("f09f9880");
    expect(hex(utf8Encode("\u07ff\u0800\uffff"))).toBe("dfbf" + "e0a080" + "efbfbf");
    expect(utf8Decode(unhex("f48fbfbf"))).toBe("\u{10ffff}");
    expect(utf8Decode(unhex("c280" + "e282ac" + "f0908080" + "7f"))).toBe("\u0080\u20ac\u{10000}\x7f");
    expect(utf8Decode("")).toBe("");
  });

  it("a lone surrogate is not text: encode throws; surrogate pairs round-trip", () => {
    for (const s of ["a\ud800b", "\udc00", "\ud83d", "x\ude00\ud83d", "\udbff/"]) {
      expect(() => utf8Encode(s), JSON.stringify(s)).toThrow(Error);
      expect(() => encode({ type: 3, topic: s, payload: "", qos: 0, retain: false, dup: false }), "topic " + JSON.stringify(s)).toThrow(Error);
      expect(() => encode({ type: 1, clientId: s, clean: true, keepAlive: 0 }), "client id " + JSON.stringify(s)).toThrow(Error);
      expect(() => encode({ type: 8, id: 1, subs: [{ topic: s, qos: 0 }] }), "filter " + JSON.stringify(s)).toThrow(Error);
    }
    for (const s of ["😀", "a/😀/\u{10ffff}", "\u{10000}"]) {
      const b = utf8Encode(s);
      expect(b).toBe(fromBuf(Buffer.from(s, "utf8")));
      expect(utf8Decode(b)).toBe(s);
      const p = { type: 3, topic: s, payload: "x", qos: 0, retain: false, dup: false } as const;
      expect(decodeOne(encode(p))).toEqual(p);
    }
  });

  it("rejects invalid sequences", () => {
    for (const h of ["80", "c0af", "c1bf", "e080af", "eda080", "edbfbf", "f08fbfbf", "f4908080", "f880808080", "ff", "c3", "e697", "f09f98", "c328", "00", "6100",
      "f5808080", "f7bfbfbf", "edb080", "eda080edb080", "fe", "e0", "e0a0", "c0", "80bf", "e282ac80"]) {
      expect(() => utf8Decode(unhex(h)), h).toThrow();
    }
  });
});

describe("topicMatches", () => {
  const table: [string, string, boolean][] = [
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["a/b", "a/b/c", false],
    ["a/b/c", "a/b", false],
    ["+", "a", true],
    ["+", "a/b", false],
    ["+", "/a", false],
    ["+/+", "/a", true],
    ["/+", "/a", true],
    ["a/+", "a/", true],
    ["a/+/c", "a/b/c", true],
    ["a/+/c", "a/b/d", false],
    ["+/+/+", "a/b/c", true],
    ["#", "a", true],
    ["#", "a/b/c", true],
    ["#", "/", true],
    ["sport/#", "sport", true],
    ["sport/#", "sport/", true],
    ["sport/#", "sport/tennis/player1", true],
    ["sport/#", "sports", false],
    ["sport/tennis/#", "sport/tennis", true],
    ["sport/+/player1", "sport/tennis/player1", true],
    ["sport/+", "sport", false],
    ["+/#", "a", true],
    ["a/#", "b/a", false],
    ["#", "$SYS/x", false],
    ["+/x", "$SYS/x", false],
    ["+", "$SYS", false],
    ["$SYS/#", "$SYS/x", true],
    ["$SYS/+", "$SYS/x", true],
    ["a/$b", "a/$b", true],
    ["+/$b", "a/$b", true],
    ["x/#", "x/$y", true],
    ["température/+/日本/😀", INTL, true],
    ["Case", "case", false],
    ["a/b/#", "a", false],
    ["a/+/#", "a", false],
    ["a/+/#", "a/b", true],
    ["a/+/#", "a/b/c/d", true],
    ["+/+", "a", false],
    ["a", "a/", false],
    ["", "", true],
    ["", "/", false],
    ["#/a", "x/a", false], // '#' not last: an invalid filter matches nothing
    ["a/#/b", "a/x/b", false],
  ];
  for (const [f, t, want] of table) {
    it(`${f} ${want ? "matches" : "does not match"} ${t}`, () => {
      expect(topicMatches(f, t)).toBe(want);
    });
  }
});

// keep the import used in type position for tsc's noUnusedLocals
void toBuf;
