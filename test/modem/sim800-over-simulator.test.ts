/**
 * The SIM800 driver against the SIM800 dialect of the modem simulator, on the
 * real clock, with a REAL broker behind the simulated socket (Aedes in-process
 * on loopback) and an MQTT.js client as the phone. MQTT goes over the
 * transport as raw bytes (mqtt-packet as the oracle). Every fault knob of the
 * simulator is exercised, each test ending with a working link.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { Sim800, type Sim800Options } from "../../src/modem/sim800";
import { Sim800Sim, type Sim800Options as SimOptions } from "../../scripts/simulators/modem-sim/sim800";
import type { Clock } from "../../src/transport";
import { fastClock } from "../support/fake-clock";
import { ModemRig, until, sleep, startAedesBroker, Socket, trickyPayload, type Broker } from "../support/modem-rig";
import { startTlsFront } from "../support/tls";

/**
 * The real clock, sped up k times for the driver and the engine (their
 * time-outs are SIMCom's: 1 s, 5 s, 85 s); the simulator and the broker run
 * in real time.
 */

interface RigOptions {
  sim?: SimOptions;
  driver?: Partial<Sim800Options>;
  /** The board wires PWRKEY: the driver's powerOn presses the sim's power key. */
  powerOn?: boolean;
  /** How much faster than real time the driver's and the engine's clock runs (default 20). */
  speed?: number;
}

class Rig extends ModemRig<Sim800Sim, Sim800> {
  powerOns = 0;
  clock: Clock;
  constructor(broker: Broker, o: RigOptions = {}) {
    super("broker.example", 4);
    this.sim = new Sim800Sim({
      apn: "internet",
      hostMap: () => ({ host: "127.0.0.1", port: broker.port }),
      maxChunk: 16,
      regPolls: 1,
      log: (s) => this.log.push("sim: " + s),
      ...o.sim,
    });
    this.clock = fastClock(o.speed ?? 20);
    this.wire(this.clock);
    const driver: Sim800Options = {
      apn: "internet",
      user: "jo",
      password: "s3cret!",
      log: (l) => this.log.push(l),
      ...o.driver,
    };
    if (o.powerOn)
      driver.powerOn = (done) => {
        this.powerOns++;
        this.sim.powerKey();
        done();
      };
    this.modem = new Sim800(this.engine, this.clock, driver);
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
    // The APN credentials never reach a log line (the engine logs AT+CSTT=<hidden>).
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

describe("SIM800 driver over the simulator and a real broker", () => {
  it("brings up, speaks MQTT with tricky binary payloads both ways, and closes once", async () => {
    // The module is still booting (auto-bauding: no RDY) and misses the first AT.
    rig = new Rig(broker, { sim: { bootBanner: true, autobaud: true, deafAt: 1, regPolls: 2 } });
    const r = rig;
    const s = await r.open();
    expect(r.states).toEqual(["attaching +CSQ: 18,0", "joined", "connecting", "connected"]);
    expect(r.sim.cstt).toEqual(["internet", "jo", "s3cret!"]);
    await r.mqttConnect(s, "sim800-a");
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
    expect(r.sim.commands.filter((c) => c.startsWith("AT+CIPSEND=")).every((c) => Number(c.slice(11)) <= 1460)).toBe(true);

    ph.publish("dev/in", Buffer.from(big, "latin1"));
    await until(() => s.packets.some((p) => p.cmd == "publish"), 5000, "board gets the payload");
    const pub = s.packets.find((p) => p.cmd == "publish") as { payload: Buffer; topic: string };
    expect(pub.topic).toBe("dev/in");
    expect(pub.payload.toString("latin1")).toBe(big);
    expect(s.parseErrors).toBe(0);

    expect(await r.close(s)).toBe("closed");
    await sleep(50);
    expect(s.closed).toBe("closed");
    ph.end(true);
  });

  it("re-opens over the bearer that stays up (no second bring-up)", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.open();
    await r.close(s);
    const before = r.sim.commands.length;
    await r.works("sim800-b");
    expect(r.sim.commands.slice(before)[0]).toBe('AT+CIPSTART="TCP","broker.example","1883"');
  });

  it("ssl: AT+CIPSSL=1 before AT+CIPSTART, then MQTT over a real TLS link (no SNI)", async () => {
    const front = await startTlsFront(broker.port);
    try {
      rig = new Rig(broker, { driver: { ssl: true }, sim: { hostMap: () => ({ host: "127.0.0.1", port: front.port }) } });
      const r = rig;
      const s = await r.works("sim800-tls");
      const c = r.sim.commands;
      const i = c.indexOf('AT+CIPSTART="TCP","broker.example","1883"');
      expect(c[i - 1]).toBe("AT+CIPSSL=1");
      expect(r.sim.ssl).toBe(true);
      expect(front.handshakes).toEqual([{ sni: false }]);
      expect(await r.close(s)).toBe("closed");
    } finally {
      await front.close();
    }
  });

  it("ssl on a firmware without SSL: AT+CIPSSL=1 answers ERROR, the open fails with it, no AT+CIPSTART", async () => {
    rig = new Rig(broker, { driver: { ssl: true }, sim: { sslSupport: false } });
    const r = rig;
    await expect(r.open()).rejects.toThrow("+CIPSSL ERROR");
    expect(r.sim.commands.filter((c) => c.startsWith("AT+CIPSTART"))).toEqual([]);
    expect(r.states.at(-1)).toBe("joined +CIPSSL ERROR");
  });

  it("recovers from a refused link (CONNECT FAIL)", async () => {
    rig = new Rig(broker);
    const r = rig;
    r.sim.fault.refuseLink = true;
    await expect(r.open()).rejects.toThrow("CONNECT FAIL");
    r.sim.fault.refuseLink = false;
    await r.works("sim800-c");
  });

  it("recovers from a dropped link (CLOSED)", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.works("sim800-d");
    r.sim.dropLink();
    await until(() => s.closed !== null, 3000, "CLOSED");
    expect(s.closed).toBe("CLOSED");
    await r.works("sim800-d");
  });

  it("recovers from ERROR answers to AT+CIPSEND and to AT+CIPSTART", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.works("sim800-e");
    r.sim.fault.error = 1;
    r.modem.write("\xc0\x00");
    await until(() => s.closed !== null, 3000, "close after ERROR");
    expect(s.closed).toBe("ERROR");
    r.sim.fault.error = 1;
    await expect(r.open()).rejects.toThrow("ERROR");
    await r.works("sim800-e");
  });

  it("recovers from ERROR answers during the bring-up", async () => {
    rig = new Rig(broker);
    const r = rig;
    // The AT probe rides over ERROR (noise at auto-baud); the steps after it do not.
    r.sim.fault.error = 2;
    const s = new Socket();
    r.modem.open("broker.example", 1883, s);
    await until(() => s.closed !== null || s.opened, 3000, "probe");
    expect(s.opened).toBe(true);
    await r.close(s);
    r.sim.close();
    rig = new Rig(broker);
    const s2 = new Socket();
    rig.modem.open("broker.example", 1883, s2);
    rig.sim.fault.error = 1; // the AT probe already went out: ATE0 gets ERROR
    await until(() => s2.closed !== null, 3000, "failed bring-up");
    expect(s2.closed).toBe("E0 ERROR");
    await rig.works("sim800-e2");
  });

  it("recovers from SEND FAIL", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.works("sim800-f");
    r.sim.fault.sendFail = 1;
    r.modem.write("\xc0\x00");
    await until(() => s.closed !== null, 3000, "close after SEND FAIL");
    expect(s.closed).toBe("SEND FAIL");
    await r.works("sim800-f");
  });

  it("recovers from a spontaneous reboot (noise, RDY, echo back on)", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.works("sim800-g");
    r.sim.reboot();
    await until(() => s.closed !== null, 3000, "close after reboot");
    expect(s.closed).toBe("RDY");
    await r.works("sim800-g");
  });

  it("recovers from a lost PDP context (+PDP: DEACT) with AT+CIPSHUT and a fresh attach", async () => {
    rig = new Rig(broker);
    const r = rig;
    const s = await r.works("sim800-h");
    r.sim.netDown();
    await until(() => s.closed !== null, 3000, "close after +PDP: DEACT");
    expect(s.closed).toBe("+PDP: DEACT");
    const before = r.sim.commands.length;
    await r.works("sim800-h");
    const again = r.sim.commands.slice(before);
    expect(again).toContain("AT+CIPSHUT");
    expect(again).toContain("AT+CIICR");
  });

  it("recovers from a mute modem: TIMEOUT after the prompt's 3 s, then AT probes until it answers and a fresh bring-up", async () => {
    rig = new Rig(broker, { speed: 30 });
    const r = rig;
    const s = await r.works("sim800-i");
    r.sim.mute(true);
    r.modem.write("\xc0\x00");
    await until(() => s.closed !== null, 6000, "close after TIMEOUT");
    expect(s.closed).toBe("TIMEOUT");
    r.sim.mute(false);
    const before = r.sim.commands.length;
    await r.works("sim800-i");
    // The module was owed the 2 bytes of the CIPSEND it prompted for while muted: the
    // "AT" of the first probe went there (what a real SIM800 would do too); a later
    // probe was answered, and the bring-up shut the old IP stack down. No restart.
    const again = r.sim.commands.slice(before);
    expect(again.filter((c) => c == "AT").length).toBeGreaterThanOrEqual(1);
    expect(again).toContain("AT+CIPSHUT");
    expect(again.some((c) => c.includes("CFUN"))).toBe(false);
    expect(r.states).not.toContain("resetting");
  });

  it("recovers from a mute modem with the board's power key (powerOn)", async () => {
    rig = new Rig(broker, { powerOn: true, speed: 30 });
    const r = rig;
    const s = await r.works("sim800-j");
    r.sim.mute(true);
    r.modem.write("\xc0\x00");
    await until(() => s.closed !== null, 6000, "close after TIMEOUT");
    await r.works("sim800-j");
    expect(r.powerOns).toBe(1);
  });

  it("recovers from an under-voltage power down (powerOn on the next open)", async () => {
    rig = new Rig(broker, { powerOn: true });
    const r = rig;
    const s = await r.works("sim800-k");
    r.sim.powerDown(true);
    await until(() => s.closed !== null, 3000, "close after power down");
    expect(s.closed).toBe("UNDER-VOLTAGE POWER DOWN");
    await r.works("sim800-k");
    expect(r.powerOns).toBe(1);
  });

  it("ignores garbage lines and keeps the link", async () => {
    rig = new Rig(broker, { sim: { seed: 7 } });
    const r = rig;
    const s = await r.works("sim800-l");
    r.sim.garbage(5);
    await sleep(50);
    await r.ping(s);

    r.sim.garbage(5);
    await sleep(50);
    await r.ping(s);
    expect(s.parseErrors).toBe(0);
  });

  it("recovers from lost +IPD bytes (the stream is closed and opened afresh)", async () => {
    rig = new Rig(broker, { speed: 40 });
    const r = rig;
    const s = await r.works("sim800-m");
    await r.subscribe(s, "dev/lossy");
    const ph = await phone();
    r.sim.loseIpdBytes(3);
    ph.publish("dev/lossy", "0123456789");
    ph.publish("dev/lossy", "abcdefghij");
    await sleep(200);
    // The bytes the transport delivered are not the broker's: a session would see a bad packet and close.
    const n = s.packets.filter((p) => p.cmd == "publish").length;
    expect(n).toBeLessThan(2);
    r.modem.close();
    await until(() => s.closed !== null, 6000, "close");
    await r.works("sim800-m");
    // The engine ate "\r\nC" of CLOSE OK as the owed bytes: AT+CIPCLOSE timed out (5 s), the
    // bearer counts as down; the module answers the next open's probe: a fresh bring-up, no restart.
    expect(r.states).toEqual([
      ...["attaching +CSQ: 18,0", "joined", "connecting", "connected", "failed TIMEOUT"],
      ...["attaching +CSQ: 18,0", "joined", "connecting", "connected"],
    ]);
    ph.end(true);
  });

  it("fails clearly without a SIM, and when the network never registers", async () => {
    rig = new Rig(broker, { sim: { sim: "none" } });
    await expect(rig.open()).rejects.toThrow("+CME ERROR: 10");
    rig.sim.close();
    rig = new Rig(broker, { sim: { regStat: 0 }, driver: { regDeadline: 6000 } });
    await expect(rig.open()).rejects.toThrow("no network");
    expect(rig.states[rig.states.length - 1]).toBe("failed no network");
  });

  it("registers while roaming and fails on a wrong APN", async () => {
    rig = new Rig(broker, { sim: { regStat: 5 } });
    await rig.works("sim800-n");
    rig.sim.close();
    rig = new Rig(broker, { driver: { apn: "wrong" } });
    await expect(rig.open()).rejects.toThrow("+CIICR ERROR");
    rig.modem = new Sim800(rig.engine, rig.clock, { apn: "internet" });
    await rig.works("sim800-n");
  });
});
