/**
 * What the modem rigs share (test/support/esp8266-rig.ts, test/support/sim800-rig.ts):
 * a driver on the real AT engine, wired to a modem
 * simulator whose sockets reach an in-process Aedes broker on loopback. MQTT
 * is spoken as raw bytes (mqtt-packet as the oracle), so these rigs need
 * nothing from src/session/.
 */
import mqttPacket from "mqtt-packet";
import { AtEngine } from "../../src/at/engine";
import type { Clock, Transport, TransportHandler } from "../../src/transport";
import type { ModemState, ModemStateDetail } from "../../src/modem/driver";
import { startAedes } from "./brokers";
import type { ModemSimCore } from "../../scripts/simulators/modem-sim/core";

import { realClock } from "./fake-clock";
import { sleep, until, within } from "./wait";

export { realClock, sleep, until, within };

export interface Broker {
  port: number;
  close(): Promise<void>;
}

/** An Aedes broker on a free loopback port (./brokers.ts). */
export async function startAedesBroker(): Promise<Broker> {
  const broker = await startAedes();
  return { port: broker.port, close: () => broker.stop() };
}

/** MQTT packet bytes (byte string) from an mqtt-packet object. */
export function encode(p: object): string {
  return mqttPacket.generate(p as mqttPacket.Packet).toString("latin1");
}

/** One open() of the driver, recorded: events, received bytes and MQTT packets. */
export class Socket implements TransportHandler {
  opened = false;
  closed: string | null = null;
  rx = "";
  packets: mqttPacket.Packet[] = [];
  parseErrors = 0;
  private parser = mqttPacket.parser({ protocolVersion: 4 });
  constructor() {
    this.parser.on("packet", (p) => this.packets.push(p));
    this.parser.on("error", () => this.parseErrors++);
  }
  onOpen() {
    this.opened = true;
  }
  onData(b: string) {
    this.rx += b;
    this.parser.parse(Buffer.from(b, "latin1"));
  }
  /** Every onClose reason: the contract is exactly one. */
  closes: string[] = [];
  onClose(r: string) {
    this.closes.push(r);
    if (this.closed === null) this.closed = r;
  }
}

/** Payload bytes that look like AT framing, plus every byte value. */
export function trickyPayload(): string {
  let all = "";
  for (let i = 0; i < 256; i++) all += String.fromCharCode(i);
  return "\r\nOK\r\n+IPD,5:\r\nSEND OK\r\n> busy p...\r\nCLOSED\r\nready\r\n" + all;
}

/**
 * A driver (M) on the real AT engine, wired to a simulator (S). A subclass
 * builds the simulator, calls wire() and builds the driver on this.engine.
 */
export abstract class ModemRig<S extends ModemSimCore, M extends Transport & { onState: (state: ModemState, why?: ModemStateDetail) => void }> {
  sim!: S;
  engine!: AtEngine;
  modem!: M;
  log: string[] = [];
  states: string[] = [];
  constructor(
    /** The host name open() asks the driver for. */
    readonly host: string,
    /** How many open()s openEventually() tries by default. */
    readonly tries: number,
  ) {}

  /** The engine on `clock`, between this.sim and the driver; its log lines go to this.log. */
  protected wire(clock: Clock): void {
    this.engine = new AtEngine({ write: (d) => this.sim.receive(d) }, clock, (l) => this.log.push("at: " + l));
    this.sim.on("tx", (c: string) => this.engine.feed(c));
  }

  /** open(); resolves with the socket once open, rejects with the close reason. */
  async open(ms = 8000): Promise<Socket> {
    const s = new Socket();
    this.modem.open(this.host, 1883, s);
    await until(() => s.opened || s.closed !== null, ms, "open");
    if (!s.opened) throw new Error("open failed: " + s.closed);
    return s;
  }

  /** open() until it succeeds (at most n tries); returns the socket and the failure reasons. */
  async openEventually(n = this.tries): Promise<{ sock: Socket; failures: string[] }> {
    const failures: string[] = [];
    for (let i = 0; i < n; i++) {
      try {
        return { sock: await this.open(), failures };
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    throw new Error("no open after " + n + " tries: " + failures.join("; "));
  }

  /** MQTT CONNECT over the socket; resolves on CONNACK 20 02 00 00 (checked by checkConnack). */
  async mqttConnect(s: Socket, clientId: string): Promise<void> {
    this.modem.write(encode({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, clientId, keepalive: 60 }));
    await until(() => s.rx.length >= 4 || s.closed !== null, 5000, "CONNACK");
    this.checkConnack(s);
  }

  /** Throws unless the socket's first bytes are CONNACK 20 02 00 00. */
  protected checkConnack(s: Socket): void {
    if (s.rx.slice(0, 4) != "\x20\x02\x00\x00") throw new Error("no CONNACK: " + JSON.stringify(s.rx.slice(0, 8)) + " " + s.closed);
  }

  async subscribe(s: Socket, topic: string): Promise<void> {
    const n = s.packets.length;
    this.modem.write(encode({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos: 0 }] }));
    await until(() => s.packets.slice(n).some((p) => p.cmd == "suback") || s.closed !== null, 5000, "SUBACK");
  }

  publish(topic: string, payload: string): void {
    this.modem.write(encode({ cmd: "publish", topic, payload: Buffer.from(payload, "latin1"), qos: 0, retain: false, dup: false }));
  }
}
