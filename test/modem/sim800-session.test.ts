/**
 * The real MQTT session (src/session) over the SIM800 driver, the SIM800
 * simulator and a real broker (Aedes in-process), with an MQTT.js phone:
 * the LED app's path end to end, including a reconnect after the network drops
 * the PDP context.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { AtEngine } from "../../src/at/engine";
import { Modem } from "../../src/modem/sim800";
import { MqttClient } from "../../src/session/index";
import { Sim800Sim } from "../../scripts/simulators/modem-sim/sim800";
import { realClock, until, startAedesBroker, type Broker } from "../support/modem-rig";

let broker: Broker;
beforeAll(async () => {
  broker = await startAedesBroker();
});
afterAll(async () => {
  await broker.close();
});

describe("MqttClient over the SIM800 driver", () => {
  it("connects, subscribes, exchanges messages with a phone and reconnects after +PDP: DEACT", async () => {
    const sim = new Sim800Sim({ apn: "internet", hostMap: () => ({ host: "127.0.0.1", port: broker.port }), maxChunk: 24, bootBanner: true });
    const engine = new AtEngine({ write: (d) => sim.receive(d) }, realClock);
    sim.on("tx", (c: string) => engine.feed(c));
    const log: string[] = [];
    // The app's call: new Modem(engine, clock, Object.assign({ log, hardReset, powerOn }, cfg.wifi, cfg.gprs)).
    const modem = new Modem(engine, realClock, Object.assign({ log: (l: string) => log.push(l) }, { apn: "internet", user: "u", password: "pw-secret" }));
    const client = new MqttClient(modem, realClock, {
      host: "broker.example",
      port: 1883,
      clientId: "led-sim800",
      keepAlive: 30,
      clean: true,
      backoffMin: 50,
      backoffMax: 500,
      random: () => 0.5,
    });
    const got: string[] = [];
    let connects = 0;
    client.onConnect = () => connects++;
    client.onMessage = (topic, payload) => got.push(topic + "=" + payload);
    client.subscribe("led", 1);
    client.connect();
    const phone = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: "phone-sim800", reconnectPeriod: 0 });
    const seen: string[] = [];
    phone.on("message", (t, p) => seen.push(t + "=" + p.toString("latin1")));
    try {
      await new Promise<void>((res) => phone.on("connect", () => phone.subscribe("led/state", { qos: 1 }, () => res())));
      await until(() => connects == 1, 10000, "MQTT connect over SIM800");
      // The subscription is in place once the broker routes a retained-free publish to us.
      await until(() => {
        phone.publish("led", "on", { qos: 1 });
        return got.length > 0;
      }, 5000, "message to the board");
      expect(got[0]).toBe("led=on");
      client.publish("led/state", "on\r\nOK\r\n\x1a", 1, true);
      await until(() => seen.includes("led/state=on\r\nOK\r\n\x1a"), 5000, "message to the phone");

      sim.netDown();
      await until(() => connects == 2, 15000, "reconnect after +PDP: DEACT");
      expect(sim.commands.filter((c) => c == "AT+CIPSHUT").length).toBe(2);
      got.length = 0;
      await until(() => {
        phone.publish("led", "off", { qos: 1 });
        return got.includes("led=off");
      }, 5000, "message after the reconnect");
      expect(log.some((l) => l.includes("pw-secret"))).toBe(false);
      expect(sim.violations).toEqual([]);
    } finally {
      client.disconnect();
      phone.end(true);
      await until(() => sim.links().length == 0, 5000, "socket closed").catch(() => {});
      sim.close();
    }
  });
});
