/**
 * Test rig for the ESP8266 driver: the real AT engine and driver on a sped-up
 * real clock, wired to the ESP8266 simulator, whose sockets reach an
 * in-process Aedes broker on loopback (the shared parts: ./modem-rig.ts).
 */
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import mqtt from "mqtt";
import { Esp8266, type EspOptions } from "../../src/modem/esp8266";
import type { Clock } from "../../src/transport";
import { fastClock as fastClockBy } from "./fake-clock";
import { Esp8266Sim, type Esp8266SimOptions } from "../../scripts/simulators/modem-sim/esp8266";
import { ModemRig, startAedesBroker, within, type Broker } from "./modem-rig";

export { realClock, within, sleep, until, startAedesBroker, encode, Socket, trickyPayload, type Broker } from "./modem-rig";

/**
 * The real clock with every time-out ten times shorter, for the driver and the
 * engine: a dead module is noticed in a tenth of the time, nothing else changes.
 */
export const fastClock: Clock = fastClockBy(10);

/** The Wi-Fi password of the rig's AP and driver. */
export const PASSWORD = 'p,a"ss\\w0rd';

export interface RigOptions {
  sim?: Esp8266SimOptions;
  driver?: Partial<EspOptions>;
  /** Board wires CH_PD: the driver's hardReset reboots the sim (and un-hangs it). */
  hardReset?: boolean;
}

export class Rig extends ModemRig<Esp8266Sim, Esp8266> {
  constructor(
    public broker: Broker,
    o: RigOptions = {},
  ) {
    super("broker.local", 5);
    this.sim = new Esp8266Sim({
      ssid: "lab",
      password: PASSWORD,
      hosts: ["broker.local"],
      hostMap: () => ({ host: "127.0.0.1", port: broker.port }),
      maxChunk: 16,
      log: (s) => this.log.push("sim: " + s),
      ...o.sim,
    });
    this.wire(fastClock);
    const driver: EspOptions = {
      ssid: "lab",
      password: PASSWORD,
      log: (l) => this.log.push(l),
      ...o.driver,
    };
    if (o.hardReset)
      driver.hardReset = (done) => {
        this.sim.mute(false);
        this.sim.reboot();
        done();
      };
    this.modem = new Esp8266(this.engine, fastClock, driver);
    const st = this.modem.onState;
    this.modem.onState = (s, w) => {
      this.states.push(w ? s + " " + w : s);
      st(s, w);
    };
  }

  passwordLogged(pw: string): string[] {
    return this.log.filter((l) => l.includes(pw));
  }

  close(): void {
    this.sim.close();
  }
}

/**
 * The setup of a file of ESP8266 rig tests: an Aedes broker and an MQTT.js
 * phone subscribed to `phoneTopics` (its messages in `got`) for the whole
 * file; rig() makes a Rig that is checked (no sim violations, no password in
 * the log) and closed after each test, after `alsoAfterEach` runs.
 */
export function esp8266Suite(phoneId: string, phoneTopics: string, alsoAfterEach?: () => void) {
  const rigs: Rig[] = [];
  const suite = {
    broker: undefined as unknown as Broker,
    phone: undefined as unknown as mqtt.MqttClient,
    got: [] as { topic: string; payload: string }[],
    rig(o: RigOptions = {}): Rig {
      const r = new Rig(suite.broker, o);
      rigs.push(r);
      return r;
    },
  };

  beforeAll(async () => {
    suite.broker = await startAedesBroker();
    suite.phone = await within(mqtt.connectAsync(`mqtt://127.0.0.1:${suite.broker.port}`, { clientId: phoneId, reconnectPeriod: 0 }), 5000, "phone");
    await suite.phone.subscribeAsync(phoneTopics);
    suite.phone.on("message", (topic, payload) => suite.got.push({ topic, payload: payload.toString("latin1") }));
  });

  afterEach(() => {
    alsoAfterEach?.();
    for (const r of rigs.splice(0)) {
      expect(r.sim.violations, "sim saw data before the prompt").toEqual([]);
      expect(r.passwordLogged(PASSWORD), "log lines with the password").toEqual([]);
      r.close();
    }
  });

  afterAll(async () => {
    await suite.phone?.endAsync();
    await suite.broker?.close();
  });

  return suite;
}
