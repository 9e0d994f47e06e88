/**
 * A capture file of the MQTT bytes between the board and the broker, for
 * Wireshark or tshark: classic pcap (libpcap 2.4, microsecond timestamps,
 * Ethernet link type) with well-formed Ethernet II, IPv4 and TCP headers
 * around the real bytes, so the capture reads like one taken on the wire:
 * the three-way handshake (SYN with an MSS option, SYN-ACK, ACK), data
 * segments of at most 1460 bytes with PSH/ACK, sequence and acknowledgement
 * numbers that add up, IPv4 and TCP checksums, and FIN/ACK on each side at
 * the end. The addresses are made up (the board 10.0.0.2, the broker
 * 10.0.0.1, locally administered MACs); ports are the real broker port and
 * one client port per connection (49152 and up).
 *
 *   const cap = new PcapWriter("demo.pcap");
 *   const flow = cap.flow(1883);        // SYN, SYN-ACK, ACK now
 *   flow.toBroker(bytes); flow.toBoard(bytes);
 *   flow.close("board");                // FIN from the board, FIN back, last ACK
 *   cap.close();
 *
 * Every packet is written at once (synchronously), so a capture is complete
 * up to the moment the program stops, however it stops.
 */
import fs from "node:fs";

const LINKTYPE_ETHERNET = 1;
const MSS = 1460;
const BOARD_IP = [10, 0, 0, 2];
const BROKER_IP = [10, 0, 0, 1];
const BOARD_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const BROKER_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

const SYN = 0x02, ACK = 0x10, PSH = 0x08, FIN = 0x01;

/** The Internet checksum (RFC 1071) of the given buffers, as if concatenated. */
export function inetChecksum(...parts: Buffer[]): number {
  let sum = 0;
  let odd: number | null = null;
  for (const b of parts) {
    for (let i = 0; i < b.length; i++) {
      if (odd === null) odd = b[i];
      else {
        sum += (odd << 8) | b[i];
        odd = null;
      }
    }
  }
  if (odd !== null) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

interface End {
  ip: number[];
  mac: number[];
  port: number;
  /** Next sequence number this end sends. */
  seq: number;
  /** IPv4 identification of its next packet. */
  id: number;
}

export class TcpFlow {
  private closed = false;
  constructor(
    private readonly cap: PcapWriter,
    private readonly board: End,
    private readonly broker: End,
  ) {
    // the three-way handshake, with an MSS option on the SYNs
    const mss = Buffer.from([2, 4, MSS >> 8, MSS & 0xff]);
    this.send(board, broker, SYN, Buffer.alloc(0), mss, false);
    board.seq++;
    this.send(broker, board, SYN | ACK, Buffer.alloc(0), mss);
    broker.seq++;
    this.send(board, broker, ACK, Buffer.alloc(0));
  }

  /** Bytes the board sent to the broker. */
  toBroker(bytes: Buffer): void {
    this.data(this.board, this.broker, bytes);
  }

  /** Bytes the broker sent to the board. */
  toBoard(bytes: Buffer): void {
    this.data(this.broker, this.board, bytes);
  }

  /** The connection ends: FIN from `who` first, FIN back, the last ACK. Once. */
  close(who: "board" | "broker"): void {
    if (this.closed) return;
    this.closed = true;
    const [a, b] = who === "board" ? [this.board, this.broker] : [this.broker, this.board];
    this.send(a, b, FIN | ACK, Buffer.alloc(0));
    a.seq++;
    this.send(b, a, FIN | ACK, Buffer.alloc(0));
    b.seq++;
    this.send(a, b, ACK, Buffer.alloc(0));
  }

  private data(from: End, to: End, bytes: Buffer): void {
    if (this.closed) return;
    for (let i = 0; i < bytes.length; i += MSS) {
      const seg = bytes.subarray(i, i + MSS);
      this.send(from, to, PSH | ACK, seg);
      from.seq = (from.seq + seg.length) >>> 0;
    }
  }

  private send(from: End, to: End, flags: number, payload: Buffer, options = Buffer.alloc(0), ack = true): void {
    const tcpLen = 20 + options.length;
    const tcp = Buffer.alloc(tcpLen);
    tcp.writeUInt16BE(from.port, 0);
    tcp.writeUInt16BE(to.port, 2);
    tcp.writeUInt32BE(from.seq >>> 0, 4);
    tcp.writeUInt32BE(ack ? to.seq >>> 0 : 0, 8);
    tcp[12] = (tcpLen / 4) << 4;
    tcp[13] = flags;
    tcp.writeUInt16BE(65535, 14); // window
    options.copy(tcp, 20);
    const pseudo = Buffer.alloc(12);
    Buffer.from(from.ip).copy(pseudo, 0);
    Buffer.from(to.ip).copy(pseudo, 4);
    pseudo[9] = 6;
    pseudo.writeUInt16BE(tcpLen + payload.length, 10);
    tcp.writeUInt16BE(inetChecksum(pseudo, tcp, payload), 16);

    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + tcpLen + payload.length, 2);
    ip.writeUInt16BE(from.id, 4);
    from.id = (from.id + 1) & 0xffff;
    ip.writeUInt16BE(0x4000, 6); // don't fragment
    ip[8] = 64; // TTL
    ip[9] = 6; // TCP
    Buffer.from(from.ip).copy(ip, 12);
    Buffer.from(to.ip).copy(ip, 16);
    ip.writeUInt16BE(inetChecksum(ip), 10);

    const eth = Buffer.alloc(14);
    Buffer.from(to.mac).copy(eth, 0);
    Buffer.from(from.mac).copy(eth, 6);
    eth.writeUInt16BE(0x0800, 12);
    this.cap.packet(Buffer.concat([eth, ip, tcp, payload]));
  }
}

export class PcapWriter {
  private fd: number | null;
  private nextPort = 49152;
  private isn = 0x1000;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, "w");
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0); // magic: microsecond timestamps
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8); // GMT
    h.writeUInt32LE(0, 12); // sigfigs
    h.writeUInt32LE(65535, 16); // snaplen
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    fs.writeSync(this.fd, h);
  }

  /** A new TCP connection from the board to the broker's port (its handshake is written now). */
  flow(brokerPort: number): TcpFlow {
    const port = this.nextPort;
    this.nextPort = this.nextPort >= 65535 ? 49152 : this.nextPort + 1;
    // initial sequence numbers: made up, distinct per connection
    this.isn = (this.isn * 69069 + 1) >>> 0;
    const board: End = { ip: BOARD_IP, mac: BOARD_MAC, port, seq: this.isn, id: 1 };
    const broker: End = { ip: BROKER_IP, mac: BROKER_MAC, port: brokerPort, seq: (this.isn ^ 0x5a5a5a5a) >>> 0, id: 1 };
    return new TcpFlow(this, board, broker);
  }

  /** One frame with the current time. Ignored once closed. */
  packet(frame: Buffer): void {
    if (this.fd === null) return;
    const now = Date.now();
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Math.floor(now / 1000), 0);
    h.writeUInt32LE((now % 1000) * 1000, 4);
    h.writeUInt32LE(frame.length, 8);
    h.writeUInt32LE(frame.length, 12);
    fs.writeSync(this.fd, Buffer.concat([h, frame]));
  }

  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
