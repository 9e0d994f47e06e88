/**
 * The SIM7600 / A7670 driver against the LTE dialect of the modem simulator,
 * on the real clock sped up for the driver, with a REAL broker behind the
 * simulated socket (Aedes in-process on loopback) and an MQTT.js client as the
 * phone. MQTT goes over the transport as raw bytes (mqtt-packet as the
 * oracle). The bring-up, the data path and a re-open are here; the faults (network
 * loss, the peer closing, "+CME ERROR" on open, a refused link, slow registration,
 * a spontaneous reset, a silent module brought back with PWRKEY, TLS refused, ...)
 * are the sim7600 column of the modem fault table (test/support/modem-faults.ts,
 * played by test/modem/modem-faults.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { until, sleep, startAedesBroker, trickyPayload, type Broker } from "../support/modem-rig";
import { Sim7600Rig as Rig } from "../support/sim7600-rig";

let broker: Broker;
let rig: Rig | null = null;

beforeAll(async () => {
  broker = await startAedesBroker();
});
afterAll(async () => {
  await broker.close();
});
afterEach(() => {
  if (rig) {
    // The APN credentials never reach a log line (the engine logs AT+CGAUTH=<hidden>).
    expect(rig.credentialsLogged()).toEqual([]);
    expect(rig.sim.violations).toEqual([]);
    rig.sim.close();
  }
  rig = null;
});

async function phone(): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: "phone-" + Math.random().toString(16).slice(2), reconnectPeriod: 0 });
  await new Promise<void>((res, rej) => {
    c.once("connect", () => res());
    c.once("error", rej);
  });
  return c;
}

describe("SIM7600 / A7670 driver over the simulator and a real broker", () => {
  it("brings up (booting module, slow LTE registration), speaks MQTT with tricky binary payloads both ways, and closes once", async () => {
    rig = new Rig(broker, { sim: { bootBanner: true, regPolls: 3 } });
    const r = rig;
    const s = await r.open();
    expect(r.states).toEqual(["attaching +CSQ: 20,99", "joined", "connecting", "connected"]);
    // SIMCom's order: auth type, password, user
    expect(r.sim.cgauth).toEqual(["1", "1", "s3cret!", "jo"]);
    expect(r.sim.cgdcont).toEqual(["1", "IP", "internet"]);
    expect(r.sim.rxMode).toBe(1);
    expect(r.sim.commands.filter((c) => c == "AT+CEREG?;+CGREG?").length).toBeGreaterThanOrEqual(4);
    await r.mqttConnect(s, "sim7600-a");
    await r.subscribe(s, "dev/in");

    const ph = await phone();
    const got: Buffer[] = [];
    ph.on("message", (_t, p) => got.push(p));
    await new Promise<void>((res) => ph.subscribe("dev/out", { qos: 0 }, () => res()));

    const tricky = trickyPayload() + "\x1a\x1a";
    r.publish("dev/out", tricky);
    await until(() => got.length > 0, 5000, "phone gets the payload");
    expect(got[0].toString("latin1")).toBe(tricky);

    // Big enough to need two AT+CIPSEND (1460 bytes at most each).
    const big = tricky.repeat(8);
    expect(big.length).toBeGreaterThan(1460);
    r.publish("dev/out", big);
    await until(() => got.length > 1, 5000, "phone gets the big payload");
    expect(got[1].toString("latin1")).toBe(big);
    expect(r.sim.commands.filter((c) => c.startsWith("AT+CIPSEND=0,")).every((c) => Number(c.slice(13)) <= 1460)).toBe(true);

    // Received: pulled in reads of at most 128 bytes (hex lines within the engine's 256 characters).
    ph.publish("dev/in", Buffer.from(big, "latin1"));
    await until(() => s.packets.some((p) => p.cmd == "publish"), 10000, "board gets the payload");
    const pub = s.packets.find((p) => p.cmd == "publish") as { payload: Buffer; topic: string };
    expect(pub.topic).toBe("dev/in");
    expect(pub.payload.toString("latin1")).toBe(big);
    expect(s.parseErrors).toBe(0);
    const reads = r.sim.commands.filter((c) => c.startsWith("AT+CIPRXGET=3,0,"));
    expect(reads.length).toBeGreaterThan(big.length / 128);
    expect(reads.every((c) => c == "AT+CIPRXGET=3,0,128")).toBe(true);

    expect(await r.close(s)).toBe("closed");
    await sleep(50);
    expect(s.closes).toEqual(["closed"]);
    ph.end(true);
  });

  it("an A7670 (\"*ATREADY: 1\" at boot) registered on 2G/3G only (AT+CGREG?), roaming", async () => {
    rig = new Rig(broker, { sim: { family: "a7670", bootBanner: true, lte: false, regStat: 5 } });
    await rig.works("a7670");
  });

  it("re-opens over the network service that stays open (straight to AT+CIPOPEN)", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.open();
    await r.close(s);
    const before = r.sim.commands.length;
    await r.works("sim7600-b");
    expect(r.sim.commands.slice(before)[0]).toBe('AT+CIPOPEN=0,"TCP","broker.example",1883');
  });
});
