/**
 * The session fault table (issue 7): the real MQTT session (src/session) over a modem
 * driver, the real AT engine and that modem's simulator dialect, with a real broker
 * (Aedes in-process) and an MQTT.js phone — the LED app's path end to end. One row per
 * fault the session must ride over by itself: how it is injected (a knob every
 * simulator dialect shares) and, per modem kind, what must show besides the reconnect
 * (the module's own recovery). runSessionFaultRow checks, for every cell: messages both
 * ways before the fault; after it, the session connects again by itself and a command
 * reaches the board (nothing lost to a stale link); no secret in any log line; no data
 * before a prompt. test/modem/session-faults.test.ts plays every row for every modem with a
 * cell; every row names every modem (`notApplicable(why)` where the fault does not apply to
 * it, as in ./modem-faults.ts); adding a modem is adding its kit to SESSION_KITS and its cells.
 */
import { expect } from "vitest";
import mqtt from "mqtt";
import { AtEngine } from "../../src/at/engine";
import { Modem as Esp8266Modem } from "../../src/modem/esp8266";
import { Modem as Sim800Modem } from "../../src/modem/sim800";
import { Modem as Sim7600Modem } from "../../src/modem/sim7600";
import type { ModemDriver } from "../../src/modem/driver";
import { MqttClient } from "../../src/session/index";
import type { ModemSimCore } from "../../scripts/simulators/modem-sim/core";
import { Esp8266Sim } from "../../scripts/simulators/modem-sim/esp8266";
import { Sim800Sim } from "../../scripts/simulators/modem-sim/sim800";
import { Sim7600Sim } from "../../scripts/simulators/modem-sim/sim7600";
import { realClock, until, type Broker } from "./modem-rig";
import type { NotApplicable } from "./modem-faults";

/** A modem's driver and simulator for the session, built the way the app builds the driver. */
export interface SessionKit<Sim extends ModemSimCore = ModemSimCore> {
  kind: string;
  /** The host name the session opens (the simulator maps it to the broker). */
  host: string;
  /** The secret of its credentials: never in a log line. */
  secret: string;
  build(broker: Broker, log: (line: string) => void): { sim: Sim; modem: ModemDriver };
}

export const SESSION_KITS = {
  esp8266: {
    kind: "esp8266",
    host: "broker.local",
    secret: "wifi-secret",
    build(broker, log) {
      const sim = new Esp8266Sim({ ssid: "lab", password: "wifi-secret", hosts: ["broker.local"], hostMap: () => ({ host: "127.0.0.1", port: broker.port }), maxChunk: 24 });
      const engine = new AtEngine({ write: (d) => sim.receive(d) }, realClock);
      sim.on("tx", (c: string) => engine.feed(c));
      // The app's call: new Modem(engine, clock, Object.assign({ log, ssl }, modemOptions(board, config, pulse))).
      return { sim, modem: new Esp8266Modem(engine, realClock, Object.assign({ log }, { ssid: "lab", password: "wifi-secret" })) };
    },
  } satisfies SessionKit<Esp8266Sim>,
  sim800: {
    kind: "sim800",
    host: "broker.example",
    secret: "pw-secret",
    build(broker, log) {
      const sim = new Sim800Sim({ apn: "internet", hostMap: () => ({ host: "127.0.0.1", port: broker.port }), maxChunk: 24, bootBanner: true });
      const engine = new AtEngine({ write: (d) => sim.receive(d) }, realClock);
      sim.on("tx", (c: string) => engine.feed(c));
      return { sim, modem: new Sim800Modem(engine, realClock, Object.assign({ log }, { apn: "internet", user: "u", password: "pw-secret" })) };
    },
  } satisfies SessionKit<Sim800Sim>,
  sim7600: {
    kind: "sim7600",
    host: "broker.example",
    secret: "pw-secret",
    build(broker, log) {
      const sim = new Sim7600Sim({ apn: "internet", hostMap: () => ({ host: "127.0.0.1", port: broker.port }), maxChunk: 24, bootBanner: true });
      const engine = new AtEngine({ write: (d) => sim.receive(d) }, realClock);
      sim.on("tx", (c: string) => engine.feed(c));
      return { sim, modem: new Sim7600Modem(engine, realClock, Object.assign({ log }, { apn: "internet", user: "u", password: "pw-secret" })) };
    },
  } satisfies SessionKit<Sim7600Sim>,
};
export type SessionModem = keyof typeof SESSION_KITS;
type SimOf<K extends SessionModem> = ReturnType<(typeof SESSION_KITS)[K]["build"]>["sim"];

export interface SessionFaultRow {
  /** The fault, as the test names it. */
  name: string;
  inject(sim: ModemSimCore): void;
  /** Per modem: what its module's recovery must show once the session is back (or why the row does not apply). */
  cells: { [K in SessionModem]: { check?(sim: SimOf<K>): void } | NotApplicable };
}

export const SESSION_FAULT_ROWS: SessionFaultRow[] = [
  {
    name: "the network drops (WIFI DISCONNECT, +PDP: DEACT, +CIPEVENT: NETWORK CLOSED UNEXPECTEDLY)",
    inject: (sim) => sim.netDown(),
    cells: {
      // the next open joins the access point again
      esp8266: { check: (sim) => expect(sim.commands.filter((c) => c.startsWith("AT+CWJAP")).length).toBe(2) },
      // the next open shuts the old IP stack down and attaches afresh
      sim800: { check: (sim) => expect(sim.commands.filter((c) => c == "AT+CIPSHUT").length).toBe(2) },
      // the next open closes the broken network service and opens it afresh
      sim7600: {
        check: (sim) => {
          expect(sim.commands.filter((c) => c == "AT+NETCLOSE").length).toBe(2);
          expect(sim.commands.filter((c) => c == "AT+NETOPEN").length).toBe(2);
          expect(sim.netBroken).toBe(false);
        },
      },
    },
  },
  {
    name: "the link drops (CLOSED, +IPCLOSE)",
    inject: (sim) => sim.dropLink(),
    cells: {
      // the module stays joined: the next open connects at once
      esp8266: { check: (sim) => expect(sim.commands.filter((c) => c.startsWith("AT+CWJAP")).length).toBe(1) },
      // the bearer stays up: no second bring-up
      sim800: { check: (sim) => expect(sim.commands.filter((c) => c == "AT+CIICR").length).toBe(1) },
      // the network service stays open: no second AT+NETOPEN, the next open is AT+CIPOPEN at once
      sim7600: {
        check: (sim) => {
          expect(sim.commands.filter((c) => c == "AT+NETOPEN").length).toBe(1);
          expect(sim.commands.filter((c) => c.startsWith("AT+CIPOPEN")).length).toBe(2);
        },
      },
    },
  },
];

let ids = 0;

/** Plays one cell (see the file comment). */
export async function runSessionFaultRow<K extends SessionModem>(row: SessionFaultRow, kind: K, broker: Broker): Promise<void> {
  const kit: SessionKit = SESSION_KITS[kind];
  const cell = row.cells[kind] as { check?(sim: ModemSimCore): void };
  if ("notApplicable" in cell) throw new Error(`${row.name} does not apply to ${kind}: ${cell.notApplicable}`);
  const log: string[] = [];
  const { sim, modem } = kit.build(broker, (l) => log.push(l));
  const id = `${kind}-${++ids}`;
  const topic = `led/${id}`;
  const client = new MqttClient(modem, realClock, {
    host: kit.host,
    port: 1883,
    clientId: "led-" + id,
    keepAlive: 30,
    clean: true,
    backoffMin: 50,
    backoffMax: 500,
    random: () => 0.5,
  });
  const got: string[] = [];
  let connects = 0;
  client.onConnect = () => connects++;
  client.onMessage = (t, payload) => got.push(t + "=" + payload);
  client.subscribe(topic, 1);
  client.connect();
  const phone = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: "phone-" + id, reconnectPeriod: 0 });
  const seen: string[] = [];
  phone.on("message", (t, p) => seen.push(t + "=" + p.toString("latin1")));
  try {
    await new Promise<void>((res) => phone.on("connect", () => phone.subscribe(topic + "/state", { qos: 1 }, () => res())));
    await until(() => connects == 1, 10000, `MQTT connect over ${kind}`);
    // The subscription is in place once the broker routes a retained-free publish to us.
    await until(() => {
      phone.publish(topic, "on", { qos: 1 });
      return got.length > 0;
    }, 5000, "message to the board");
    expect(got[0]).toBe(topic + "=on");
    client.publish(topic + "/state", "on\r\nOK\r\n\x1a", 1, true);
    await until(() => seen.includes(topic + "/state=on\r\nOK\r\n\x1a"), 5000, "message to the phone");

    row.inject(sim);
    await until(() => connects == 2, 15000, `reconnect after ${row.name}`);
    cell.check?.(sim);
    got.length = 0;
    await until(() => {
      phone.publish(topic, "off", { qos: 1 });
      return got.includes(topic + "=off");
    }, 5000, "message after the reconnect");
    expect(log.some((l) => l.includes(kit.secret))).toBe(false);
    expect(sim.violations).toEqual([]);
  } finally {
    client.disconnect();
    phone.end(true);
    await until(() => sim.links().length == 0, 5000, "socket closed").catch(() => {});
    sim.close();
  }
}
