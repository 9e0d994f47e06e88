/**
 * A Transport that wraps another one (NodeTransport, a test double, …) and
 * records the MQTT packets crossing it, decoded from the bytes themselves: what
 * the client writes with ServerDecoder (client->server packets, as a broker
 * reads them), what it receives with the firmware Decoder (server->client).
 * Each open() starts a fresh stream in both directions.
 *
 * The records are new objects decoded from the wire, not the client's own
 * (which it may change later), so they can be kept as they are.
 */
import { Decoder, type DecoderSink, type Packet } from "../../src/codec/index";
import { ServerDecoder } from "../../src/codec/server";
import type { Bytes, LinkCloseReason, Transport, TransportHandler } from "../../src/transport";

export type Dir = "in" | "out";

export interface TapRecord {
  dir: Dir;
  packet: Packet;
}

export class TapTransport implements Transport {
  /** Every packet, in the order it crossed: "out" when written, "in" before the client gets it. */
  records: TapRecord[] = [];
  /** Bytes that did not decode (none is expected: either side would be at fault). */
  errors: { dir: Dir; message: string }[] = [];
  private outDec: Decoder = new ServerDecoder(1 << 24);

  constructor(readonly inner: Transport) {}

  /** The packets of one direction, in order. */
  packets(dir: Dir): Packet[] {
    return this.records.filter((r) => r.dir == dir).map((r) => r.packet);
  }

  private sink(dir: Dir): DecoderSink {
    return {
      packet: (packet) => { this.records.push({ dir, packet }); },
      error: (message) => { this.errors.push({ dir, message }); },
    };
  }

  open(host: string, port: number, h: TransportHandler): void {
    this.outDec = new ServerDecoder(1 << 24);
    const inDec = new Decoder(1 << 24);
    const sink = this.sink("in");
    this.inner.open(host, port, {
      onOpen: () => h.onOpen(),
      onData: (bytes: Bytes) => {
        inDec.push(bytes, sink);
        h.onData(bytes);
      },
      onClose: (reason: LinkCloseReason) => h.onClose(reason),
    });
  }

  write(bytes: Bytes): void {
    this.outDec.push(bytes, this.sink("out"));
    this.inner.write(bytes);
  }

  close(): void {
    this.inner.close();
  }
}
