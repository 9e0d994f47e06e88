/**
 * The ESP8266 driver over the real AT engine against the ESP8266 simulator,
 * whose TCP links reach a real Aedes broker; an MQTT.js client plays the phone.
 */
import { describe, expect, it } from "vitest";
import { Socket, trickyPayload, until, esp8266Suite, PASSWORD as PW } from "../support/esp8266-rig";
import { startTlsFront } from "../support/tls";


const suite = esp8266Suite("phone", "dev/+/out");
const { rig, got } = suite;

/** Waits for the phone to receive a message on topic; returns its payload. */
async function phoneGets(topic: string): Promise<string> {
  await until(() => got.some((m) => m.topic == topic), 5000, "phone message on " + topic);
  const i = got.findIndex((m) => m.topic == topic);
  return got.splice(i, 1)[0].payload;
}

/** The socket receives a PUBLISH on topic (from the phone); returns its payload. */
async function deviceGets(s: Socket, topic: string): Promise<string> {
  await until(() => s.packets.some((p) => p.cmd == "publish" && p.topic == topic), 5000, "device message on " + topic);
  const p = s.packets.find((p) => p.cmd == "publish" && p.topic == topic) as { payload: Buffer };
  s.packets = s.packets.filter((x) => x !== (p as unknown));
  return p.payload.toString("latin1");
}

describe("ESP8266 driver + simulator + Aedes", () => {
  it("brings the module up with AT+RST, speaks MQTT both ways with AT-looking bytes, closes", async () => {
    const r = rig();
    const s = await r.open();
    expect(r.states).toEqual(["resetting", "joining", "joined", "connecting", "connected"]);
    // what went over the UART: ATE0 first, CWJAP escaped, single connection
    expect(r.sim.commands.slice(0, 6)).toEqual(["AT+RST", "ATE0", "AT+CWMODE=1", "AT+CIPMUX=0", 'AT+CWJAP="lab","***"', 'AT+CIPSTART="TCP","broker.local",1883']);
    expect(r.sim.joins).toEqual([["lab", PW]]);
    await r.mqttConnect(s, "dev-a");
    await r.subscribe(s, "dev/a/in");
    const tricky = trickyPayload();
    r.publish("dev/a/out", tricky);
    expect(await phoneGets("dev/a/out")).toBe(tricky);
    await suite.phone.publishAsync("dev/a/in", Buffer.from(tricky, "latin1"));
    expect(await deviceGets(s, "dev/a/in")).toBe(tricky);
    expect(s.parseErrors).toBe(0);
    r.modem.close();
    expect(s.closed).toBe("closed");
    await until(() => r.sim.links().length == 0, 2000, "link closed at the sim");
    // a second open reuses the joined module: straight to CIPSTART
    const n = r.sim.commands.length;
    const s2 = await r.open();
    expect(r.sim.commands.slice(n)).toEqual(['AT+CIPSTART="TCP","broker.local",1883']);
    await r.mqttConnect(s2, "dev-a");
    r.modem.close();
  });

  it("uses hardReset instead of AT+RST when the board wires CH_PD", async () => {
    const r = rig({ hardReset: true });
    const s = await r.open();
    expect(r.sim.commands[0]).toBe("ATE0");
    expect(r.sim.commands).not.toContain("AT+RST");
    await r.mqttConnect(s, "dev-b");
    r.modem.close();
  });

  it("splits a write over 2,048 bytes into several CIPSENDs and keeps order", async () => {
    const r = rig();
    const s = await r.open();
    await r.mqttConnect(s, "dev-c");
    let big = "";
    for (let i = 0; i < 3000; i++) big += String.fromCharCode((i * 7) & 255);
    r.publish("dev/c/out", big);
    r.publish("dev/c/out", "second");
    expect(await phoneGets("dev/c/out")).toBe(big);
    expect(await phoneGets("dev/c/out")).toBe("second");
    const sends = r.sim.commands.filter((c) => c.startsWith("AT+CIPSEND="));
    expect(sends.every((c) => Number(c.slice(11)) <= 2048)).toBe(true);
    expect(sends.length).toBeGreaterThanOrEqual(3);
    r.modem.close();
  });

  it("reports a wrong password clearly and joins once the AP takes it", async () => {
    const r = rig({ sim: { password: "other" } });
    await expect(r.open()).rejects.toThrow("open failed: wifi wrong password");
    expect(r.states).toContain("failed wifi wrong password");
    r.sim.ap.password = PW; // the AP's password changes to the configured one
    const s = await r.open();
    await r.mqttConnect(s, "dev-d");
    r.modem.close();
  });

  it("reports an unknown SSID and a DNS failure, then connects", async () => {
    const r = rig({ sim: { ssid: "elsewhere" } });
    await expect(r.open()).rejects.toThrow("wifi no AP");
    const r2 = rig();
    const s0 = new Socket();
    r2.modem.open("no.such.host", 1883, s0);
    await until(() => s0.closed !== null, 5000, "dns close");
    expect(s0.closed).toBe("connect DNS Fail");
    const s = await r2.open();
    await r2.mqttConnect(s, "dev-e");
    r2.modem.close();
  });

  for (const firmware of [1, 2] as const) {
    it(`connects with ssl over a real TLS link, AT firmware ${firmware}.x (${firmware == 1 ? "AT+CIPSSLSIZE, no SNI" : "AT+CIPSSLCSNI: SNI"})`, async () => {
      const front = await startTlsFront(suite.broker.port);
      try {
        const r = rig({ driver: { ssl: true }, sim: { firmware, hostMap: () => ({ host: "127.0.0.1", port: front.port }) } });
        const s = await r.open();
        const c = r.sim.commands;
        expect(c.slice(-3)).toEqual(["AT+CIPSSLSIZE=4096", 'AT+CIPSSLCSNI="broker.local"', 'AT+CIPSTART="SSL","broker.local",1883']);
        // each firmware takes its own command and refuses the other's: no failure
        expect(r.sim.sslSize).toBe(firmware == 1 ? 4096 : undefined);
        expect(r.sim.sni).toBe(firmware == 1 ? undefined : "broker.local");
        await r.mqttConnect(s, "dev-f" + firmware);
        expect(front.handshakes).toEqual([{ sni: firmware == 1 ? false : "broker.local" }]);
        r.modem.close();
      } finally {
        await front.close();
      }
    });
  }

  it("runs the real MqttClient over the driver", async () => {
    const { MqttClient } = await import("../../src/session/index");
    const r = rig();
    const { realClock } = await import("../support/esp8266-rig");
    const client = new MqttClient(r.modem, realClock, { host: "broker.local", port: 1883, clientId: "dev-g", keepAlive: 30, clean: true });
    const msgs: string[] = [];
    let connected = false;
    client.onConnect = () => (connected = true);
    client.onMessage = (_t, p) => void msgs.push(p);
    client.subscribe("dev/g/in", 1);
    client.connect();
    await until(() => connected, 10000, "MqttClient connected");
    await sleep(100); // the SUBSCRIBE goes out after CONNACK
    client.publish("dev/g/out", "\r\nOK\r\n+IPD,5:hello", 1, false);
    expect(await phoneGets("dev/g/out")).toBe("\r\nOK\r\n+IPD,5:hello");
    await suite.phone.publishAsync("dev/g/in", "to device\r\nSEND OK\r\n", { qos: 1 });
    await until(() => msgs.length > 0, 5000, "MqttClient message");
    expect(msgs[0]).toBe("to device\r\nSEND OK\r\n");
    client.disconnect();
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
