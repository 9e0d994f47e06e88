/**
 * The SIM7600 / A7670 driver against the LTE dialect of the modem simulator,
 * on the real clock sped up for the driver, with a REAL broker behind the
 * simulated socket (Aedes in-process on loopback) and an MQTT.js client as the
 * phone. MQTT goes over the transport as raw bytes (mqtt-packet as the
 * oracle). Each fault knob of the dialect is exercised (network loss, the peer
 * closing, "+CME ERROR" on open, slow registration, a spontaneous reset, a
 * silent module brought back with PWRKEY), each test ending with a working link.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { Sim7600, type Sim7600Options } from "../../src/modem/sim7600";
import { Sim7600Sim, type Sim7600SimOptions } from "../../scripts/simulators/modem-sim/sim7600";
import type { Clock } from "../../src/transport";
import { fastClock } from "../support/fake-clock";
import { ModemRig, until, sleep, startAedesBroker, Socket, trickyPayload, type Broker } from "../support/modem-rig";

interface RigOptions {
  sim?: Sim7600SimOptions;
  driver?: Partial<Sim7600Options>;
  /** The board wires PWRKEY: the driver's powerOn presses the sim's power key. */
  powerOn?: boolean;
  /** How much faster than real time the driver's and the engine's clock runs (default 20). */
  speed?: number;
}

class Rig extends ModemRig<Sim7600Sim, Sim7600> {
  powerOns = 0;
  clock: Clock;
  constructor(broker: Broker, o: RigOptions = {}) {
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
    const driver: Sim7600Options = { apn: "internet", user: "jo", password: "s3cret!", log: (l) => this.log.push(l), ...o.driver };
    if (o.powerOn)
      driver.powerOn = (done) => {
        this.powerOns++;
        this.sim.powerKey();
        done();
      };
    this.modem = new Sim7600(this.engine, this.clock, driver);
    this.modem.onState = (s, w) => this.states.push(w ? s + " " + w : s);
  }

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
}

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
    expect(rig.log.filter((l) => l.includes("s3cret!") || l.includes('"jo"'))).toEqual([]);
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

  it("the peer closes the link (+IPCLOSE: 0,1): one close, then it works again over the same network service", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.works("sim7600-peer");
    r.sim.dropLink();
    await until(() => s.closed !== null, 5000, "close");
    expect(s.closed).toBe("+IPCLOSE: 0,1");
    expect(r.states.at(-1)).toBe("joined +IPCLOSE: 0,1");
    const before = r.sim.commands.length;
    await r.works("sim7600-peer2");
    expect(r.sim.commands.slice(before)[0]).toMatch(/^AT\+CIPOPEN=0,/);
    await sleep(50);
    expect(s.closes).toHaveLength(1);
  });

  it("network loss (+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY): one close, a full bring-up with AT+NETCLOSE first, and it works again", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.works("sim7600-net");
    r.sim.netDown();
    await until(() => s.closed !== null, 5000, "close");
    expect(s.closed).toBe("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY");
    expect(r.sim.netBroken).toBe(true);
    const before = r.sim.commands.length;
    await r.works("sim7600-net2");
    const after = r.sim.commands.slice(before);
    expect(after[0]).toBe("AT");
    expect(after.indexOf("AT+NETCLOSE")).toBeLessThan(after.indexOf("AT+NETOPEN"));
    expect(r.sim.netBroken).toBe(false);
  });

  it("+CME ERROR on AT+CIPOPEN: the open fails with it, and the next one works", async () => {
    rig = new Rig(broker);
    const r = rig;
    r.sim.openErrors = 1;
    await expect(r.open()).rejects.toThrow("+CME ERROR: 4");
    await r.works("sim7600-cme");
  });

  it("a refused connection (+CIPOPEN: 0,1) fails the open; the next one works", async () => {
    rig = new Rig(broker);
    const r = rig;
    r.sim.fault.refuseLink = true;
    await expect(r.open()).rejects.toThrow("+CIPOPEN: 0,1");
    r.sim.fault.refuseLink = false;
    await r.works("sim7600-refused");
  });

  it("slow registration past regDeadline fails with \"no network\"; once registered it works", async () => {
    rig = new Rig(broker, { sim: { regPolls: 6 }, driver: { regDeadline: 2000 } });
    const r = rig;
    await expect(r.open(20000)).rejects.toThrow("no network");
    await r.works("sim7600-slow");
  });

  it("the module resets by itself while connected (RDY): one close, then a full bring-up works", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.works("sim7600-rdy");
    r.sim.reboot();
    await until(() => s.closed !== null, 5000, "close");
    expect(s.closed).toBe("RDY");
    await r.works("sim7600-rdy2");
  });

  it("a silent module: the probe goes unanswered, PWRKEY is pulsed after 30 s (driver time), and it works again", async () => {
    rig = new Rig(broker, { powerOn: true, speed: 60, driver: { regDeadline: 120000 } });
    const r = rig;
    await r.works("sim7600-pk0");
    r.sim.powerDown();
    await sleep(50);
    const { sock } = await r.openEventually(3).catch(async () => r.openEventually(3));
    expect(r.powerOns).toBeGreaterThanOrEqual(1);
    expect(r.states).toContain("resetting");
    await r.mqttConnect(sock, "sim7600-pk");
    await r.ping(sock);
  });

  it("TLS is refused: the open fails with \"no TLS\" and no AT+CIPOPEN goes out", async () => {
    rig = new Rig(broker, { driver: { ssl: true } });
    const r = rig;
    await expect(r.open()).rejects.toThrow("no TLS");
    expect(r.sim.commands.filter((c) => c.startsWith("AT+CIPOPEN"))).toEqual([]);
  });
});
