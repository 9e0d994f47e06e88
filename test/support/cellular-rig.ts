/**
 * Test rig for a SIMCom cellular driver (SIM800, SIM7600 / A7670): the real AT
 * engine and driver on a sped-up real clock, wired to that module's dialect of
 * the modem simulator, whose sockets reach an in-process broker on loopback
 * (the shared parts: ./modem-rig.ts). MQTT goes over the transport as raw
 * bytes (mqtt-packet as the oracle). ./sim800-rig.ts and ./sim7600-rig.ts
 * name the two modules' simulator and driver.
 */
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import mqtt from "mqtt";
import type { AtEngine } from "../../src/at/engine";
import type { Clock, Transport } from "../../src/transport";
import type { ModemState, ModemStateDetail } from "../../src/modem/driver";
import type { ModemSimCore } from "../../scripts/simulators/modem-sim/core";
import { fastClock } from "./fake-clock";
import { ModemRig, startAedesBroker, until, Socket, type Broker } from "./modem-rig";

/** The APN credentials of the rig's driver: never in a log line (the engine logs the command as <hidden>). */
export const APN_USER = "jo";
export const APN_PASSWORD = "s3cret!";

/** What both SIMCom drivers take (src/modem/sim800.ts, src/modem/sim7600.ts). */
export interface CellularDriverOptions {
  apn: string;
  user?: string;
  password?: string;
  powerOn?: (done: () => void) => void;
  log?: (line: string) => void;
}

export interface CellularRigOptions<SimOpts, DriverOpts> {
  sim?: SimOpts;
  driver?: Partial<DriverOpts>;
  /** The board wires PWRKEY: the driver's powerOn presses the sim's power key. */
  powerOn?: boolean;
  /**
   * How much faster than real time the driver's and the engine's clock runs (default 20;
   * their time-outs are the module's); the simulator and the broker run in real time.
   */
  speed?: number;
}

/** The simulator options the rig sets (a test's own `sim` options come on top). */
export interface CellularSimBase {
  apn: string;
  hostMap: () => { host: string; port: number };
  maxChunk: number;
  regPolls: number;
  log: (s: string) => void;
}

type Driver = Transport & { onState: (state: ModemState, why?: ModemStateDetail) => void };

export class CellularRig<S extends ModemSimCore & { powerKey(): void }, M extends Driver, SimOpts, DriverOpts extends CellularDriverOptions> extends ModemRig<S, M> {
  powerOns = 0;
  clock: Clock;
  constructor(
    broker: Broker,
    o: CellularRigOptions<SimOpts, DriverOpts>,
    makeSim: (opts: CellularSimBase & SimOpts) => S,
    makeDriver: (engine: AtEngine, clock: Clock, opts: DriverOpts) => M,
  ) {
    super("broker.example", 4);
    this.sim = makeSim({
      apn: "internet",
      hostMap: () => ({ host: "127.0.0.1", port: broker.port }),
      maxChunk: 16,
      regPolls: 1,
      log: (s) => this.log.push("sim: " + s),
      ...(o.sim as SimOpts),
    });
    this.clock = fastClock(o.speed ?? 20);
    this.wire(this.clock);
    const driver = { apn: "internet", user: APN_USER, password: APN_PASSWORD, log: (l: string) => this.log.push(l), ...o.driver } as DriverOpts;
    if (o.powerOn)
      driver.powerOn = (done) => {
        this.powerOns++;
        this.sim.powerKey();
        done();
      };
    this.modem = makeDriver(this.engine, this.clock, driver);
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

/**
 * The setup of a file of cellular rig tests: an Aedes broker for the whole file;
 * after each test the rig `current()` returns (if any) must have logged no APN
 * credential and seen no data before its prompt, and is closed, then `clear()`
 * forgets it. phone() connects an MQTT.js client to the broker.
 */
export function cellularSuite(current: () => { credentialsLogged(): string[]; sim: ModemSimCore } | null, clear: () => void) {
  const suite = {
    broker: undefined as unknown as Broker,
    async phone(): Promise<mqtt.MqttClient> {
      return mqtt.connectAsync(`mqtt://127.0.0.1:${suite.broker.port}`, { clientId: "phone-" + Math.random().toString(16).slice(2), reconnectPeriod: 0 });
    },
  };
  beforeAll(async () => {
    suite.broker = await startAedesBroker();
  });
  afterAll(async () => {
    await suite.broker.close();
  });
  afterEach(() => {
    const rig = current();
    if (rig) {
      // the engine logs the command that carries them as <hidden>
      expect(rig.credentialsLogged()).toEqual([]);
      expect(rig.sim.violations).toEqual([]);
      rig.sim.close();
    }
    clear();
  });
  return suite;
}
