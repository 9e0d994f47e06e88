/**
 * The SIM800 driver against the SIM800 dialect of the modem simulator, on the
 * real clock, with a REAL broker behind the simulated socket (Aedes in-process
 * on loopback) and an MQTT.js client as the phone. MQTT goes over the
 * transport as raw bytes (mqtt-packet as the oracle). The simulator's fault
 * knobs are the modem fault table's (test/support/modem-faults.ts, played by
 * test/modem/modem-faults.test.ts); here, the healthy paths.
 */
import { describe, expect, it } from "vitest";
import { until, sleep, trickyPayload } from "../support/modem-rig";
import { cellularSuite } from "../support/cellular-rig";
import { Sim800Rig as Rig } from "../support/sim800-rig";
import { startTlsFront } from "../support/tls";

let rig: Rig | null = null;
const suite = cellularSuite(() => rig, () => (rig = null));
const { phone } = suite;

describe("SIM800 driver over the simulator and a real broker", () => {
  it("brings up, speaks MQTT with tricky binary payloads both ways, and closes once", async () => {
    // The module is still booting (auto-bauding: no RDY) and misses the first AT.
    rig = new Rig(suite.broker, { sim: { bootBanner: true, autobaud: true, deafAt: 1, regPolls: 2 } });
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
    rig = new Rig(suite.broker);
    const r = rig;
    const s = await r.open();
    await r.close(s);
    const before = r.sim.commands.length;
    await r.works("sim800-b");
    expect(r.sim.commands.slice(before)[0]).toBe('AT+CIPSTART="TCP","broker.example","1883"');
  });

  it("ssl: AT+CIPSSL=1 before AT+CIPSTART, then MQTT over a real TLS link (no SNI)", async () => {
    const front = await startTlsFront(suite.broker.port);
    try {
      rig = new Rig(suite.broker, { driver: { ssl: true }, sim: { hostMap: () => ({ host: "127.0.0.1", port: front.port }) } });
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

  it("registers while roaming (+CREG: 0,5)", async () => {
    rig = new Rig(suite.broker, { sim: { regStat: 5 } });
    await rig.works("sim800-n");
  });
});
