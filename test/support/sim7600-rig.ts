/**
 * Test rig for the SIM7600 / A7670 driver: the real AT engine and driver on a
 * sped-up real clock, wired to the LTE dialect of the modem simulator, whose
 * sockets reach an in-process broker on loopback (the shared parts:
 * ./modem-rig.ts). MQTT goes over the transport as raw bytes (mqtt-packet as
 * the oracle).
 */
import { expect } from "vitest";
import { Sim7600, type Sim7600Options } from "../../src/modem/sim7600";
import { Sim7600Sim, type Sim7600SimOptions } from "../../scripts/simulators/modem-sim/sim7600";
import type { Clock } from "../../src/transport";
import { fastClock } from "./fake-clock";
import { ModemRig, until, Socket, type Broker } from "./modem-rig";

/** The APN credentials of the rig's driver: never in a log line (the engine logs AT+CGAUTH=<hidden>). */
export const APN_USER = "jo";
export const APN_PASSWORD = "s3cret!";

export interface Sim7600RigOptions {
  sim?: Sim7600SimOptions;
  driver?: Partial<Sim7600Options>;
  /** The board wires PWRKEY: the driver's powerOn presses the sim's power key. */
  powerOn?: boolean;
  /** How much faster than real time the driver's and the engine's clock runs (default 20). */
  speed?: number;
}

export class Sim7600Rig extends ModemRig<Sim7600Sim, Sim7600> {
  powerOns = 0;
  clock: Clock;
  constructor(broker: Broker, o: Sim7600RigOptions = {}) {
    super("broker.example", 4);
    this.sim = new Sim7600Sim({
      apn: "internet",
      hostMap: () => ({ host: "127.0.0.1", port: broker.port }),
      maxChunk: 16,
      regPolls: 1,
      log: (s) => this.log.push("sim: " + s),
      ...o.sim,
    });
    this.clock = fastClock(o.speed ?? 20);
    this.wire(this.clock);
    const driver: Sim7600Options = { apn: "internet", user: APN_USER, password: APN_PASSWORD, log: (l) => this.log.push(l), ...o.driver };
    if (o.powerOn)
      driver.powerOn = (done) => {
        this.powerOns++;
        this.sim.powerKey();
        done();
      };
    this.modem = new Sim7600(this.engine, this.clock, driver);
    this.modem.onState = (s, w) => this.states.push(w ? s + " " + w : s);
  }

  /** CONNACK 20 02 00 00, as an assertion. */
  protected checkConnack(s: Socket): void {
    expect(JSON.stringify(s.rx.slice(0, 4))).toBe(JSON.stringify("\x20\x02\x00\x00"));
  }

  /** A PINGREQ answered by PINGRESP: the link works end to end. */
  async ping(s: Socket): Promise<void> {
    const n = s.packets.length;
    this.modem.write("\xc0\x00");
    await until(() => s.packets.slice(n).some((p) => p.cmd == "pingresp") || s.closed !== null, 5000, "PINGRESP");
    expect(s.closed).toBe(null);
  }

  /** close(); resolves with the one close reason. */
  async close(s: Socket): Promise<string> {
    this.modem.close();
    await until(() => s.closed !== null, 5000, "close");
    return s.closed!;
  }

  /** A fresh open, MQTT CONNECT and PING: proves the link works again. */
  async works(id: string, n = 4): Promise<Socket> {
    const { sock } = await this.openEventually(n);
    await this.mqttConnect(sock, id);
    await this.ping(sock);
    return sock;
  }

  /** The log lines that hold the APN credentials (none, or the test fails). */
  credentialsLogged(): string[] {
    return this.log.filter((l) => l.includes(APN_PASSWORD) || l.includes(`"${APN_USER}"`));
  }
}
