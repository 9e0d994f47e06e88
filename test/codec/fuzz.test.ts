/**
 * Seeded fuzzing of the streaming decoder: random bytes and mutated valid packets
 * (bit flips, truncation, insertion, deletion, length and header corruption), fed
 * in random chunk sizes. The decoder must never throw, report only its own
 * messages, stay within maxPacket bytes, go quiet after a fatal error, and decode
 * a valid packet after reset(). Half the decoders are the firmware (client-side)
 * Decoder, half the host-only ServerDecoder; encodeServer encodes all 14 types.
 */
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { Decoder, type Packet } from "../../src/codec/index";
import { encodeServer as encode } from "../../src/codec/server";
import { Rng, buffered, hex, newDecoder, randomPacket } from "../support/codec-oracle";

/** Every message the decoder may report. */
const MESSAGES = new Set(["type", "flags", "length", "id", "utf8", "topic", "qos", "protocol", "oversize"]);

const INPUTS = 100_000;
const MAX_INPUT = 512;

function mutate(r: Rng, s: string): string {
  for (let k = 1 + r.int(4); k > 0; k--) {
    const i = r.int(s.length + 1);
    switch (r.int(7)) {
      case 0: // bit flip
        if (s.length) {
          const j = Math.min(i, s.length - 1);
          s = s.slice(0, j) + String.fromCharCode(s.charCodeAt(j) ^ (1 << r.int(8))) + s.slice(j + 1);
        }
        break;
      case 1: // truncate
        s = s.slice(0, i);
        break;
      case 2: // insert random bytes
        s = s.slice(0, i) + r.bytes(1 + r.int(8)) + s.slice(i);
        break;
      case 3: // delete bytes
        s = s.slice(0, i) + s.slice(i + 1 + r.int(8));
        break;
      case 4: // corrupt the remaining length (byte 1, sometimes with continuation bits)
        s = s.slice(0, 1) + r.bytes(1 + r.int(5)) + s.slice(2 + r.int(3));
        break;
      case 5: // corrupt the fixed header byte
        s = r.bytes(1) + s.slice(1);
        break;
      default: // corrupt a 16-bit length/id field somewhere
        if (s.length > 3) {
          const j = 2 + r.int(s.length - 3);
          s = s.slice(0, j) + r.pick(["\x00\x00", "\xff\xff", "\x00\x01", r.bytes(2)]) + s.slice(j + 2);
        }
    }
  }
  return s.slice(0, MAX_INPUT);
}

describe("decoder fuzz", () => {
  it(`${INPUTS} random and mutated inputs`, () => {
    const r = new Rng(20261126);
    const failures: string[] = [];
    const fail = (m: string, input: string) => {
      if (failures.length < 5) failures.push(`${m} (input ${hex(input).slice(0, 120)})`);
    };
    const stats = { packets: 0, fatal: 0, oversize: 0, clean: 0 };
    const probe: Packet = { type: 3, topic: "led/é", payload: "\x00on\xff", qos: 1, retain: false, dup: false, id: 513 };
    const probeBytes = encode(probe);

    // a corpus of valid encoded packets of every type to mutate
    const corpus: string[] = [];
    for (let i = 0; i < 4000; i++) corpus.push(encode(randomPacket(r, 1 + (i % 14))));

    let d: Decoder = newDecoder(64, true);
    let max = 64;
    for (let n = 0; n < INPUTS; n++) {
      if (n % 1000 === 0) {
        max = r.pick([16, 64, 128, 1024]);
        d = newDecoder(max, r.bool());
      }
      let input: string;
      const kind = r.int(10);
      if (kind < 2) input = r.bytes(r.int(MAX_INPUT + 1));
      else {
        let s = "";
        for (let k = 1 + r.int(3); k > 0; k--) s += r.pick(corpus);
        input = kind < 3 ? s.slice(0, MAX_INPUT) : mutate(r, s);
      }

      const packets: Packet[] = [];
      let errors = 0, fatal = false, afterFatal = 0;
      const sink = {
        packet(p: Packet) {
          if (fatal) afterFatal++;
          packets.push(p);
        },
        error(message: string, isFatal: boolean) {
          if (fatal) afterFatal++;
          errors++;
          if (!MESSAGES.has(message)) fail(`unknown message ${JSON.stringify(message)}`, input);
          if (!isFatal && message !== "oversize") fail(`non-fatal ${message}`, input);
          if (isFatal) fatal = true;
        },
      };
      for (let i = 0; i < input.length;) {
        const size = 1 + r.int(r.pick([1, 4, 32, MAX_INPUT]));
        try {
          d.push(input.slice(i, i + size), sink);
        } catch (e) {
          fail(`push threw ${(e as Error).message}`, input);
        }
        if (buffered(d) > max) fail(`buffer ${buffered(d)} > ${max}`, input);
        i += size;
      }
      if (afterFatal) fail("output after a fatal error", input);
      stats.packets += packets.length;
      if (fatal) stats.fatal++;
      if (errors && !fatal) stats.oversize++;

      // whatever was accepted is a real packet that encodes back to the same bytes
      let again = "";
      for (const p of packets) {
        try {
          again += encode(p);
        } catch (e) {
          fail(`decoded packet does not encode: ${JSON.stringify(p)}`, input);
        }
      }
      if (!errors) {
        stats.clean++;
        const rest = (d as unknown as { _b: string })._b;
        if (again + rest !== input) fail("accepted bytes do not re-encode to the input", input);
      }

      // reset() always brings the decoder back
      d.reset();
      const got: Packet[] = [];
      d.push(probeBytes, { packet: (p) => got.push(p), error: (m) => fail(`after reset: ${m}`, input) });
      if (max >= probeBytes.length && (got.length !== 1 || !isDeepStrictEqual(got[0], probe))) {
        fail("probe packet not decoded after reset", input);
      }
      if (buffered(d) !== 0) fail("buffer not empty after probe", input);
    }
    expect(failures).toEqual([]);
    // the fuzzer really reached all outcomes
    expect(stats.packets).toBeGreaterThan(10_000);
    expect(stats.fatal).toBeGreaterThan(10_000);
    expect(stats.oversize).toBeGreaterThan(1_000);
    expect(stats.clean).toBeGreaterThan(10_000);
  });
});
