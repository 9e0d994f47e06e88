/**
 * The SIM7600 / A7670 driver against the LTE dialect of the modem simulator,
 * on the real clock sped up for the driver, with a REAL broker behind the
 * simulated socket (Aedes in-process on loopback) and an MQTT.js client as the
 * phone. MQTT goes over the transport as raw bytes (mqtt-packet as the
 * oracle). The bring-up, the data path and a re-open are here, for the TCP/IP
 * service and for TLS through the SSL service (AT+CCH*, a real TLS server on
 * loopback in front of the broker); the faults (network
 * loss, the peer closing, "+CME ERROR" on open, a refused link, slow registration,
 * a spontaneous reset, a silent module brought back with PWRKEY, a TLS handshake refused, ...)
 * are the sim7600 column of the modem fault table (test/support/modem-faults.ts,
 * played by test/modem/modem-faults.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until, sleep, trickyPayload } from "../support/modem-rig";
import { cellularSuite } from "../support/cellular-rig";
import { Sim7600Rig as Rig } from "../support/sim7600-rig";
import { startTlsFront, type TlsFront } from "../support/tls";

let rig: Rig | null = null;
const suite = cellularSuite(() => rig, () => (rig = null));
const { phone } = suite;

describe("SIM7600 / A7670 driver over the simulator and a real broker", () => {
  it("brings up (booting module, slow LTE registration), speaks MQTT with tricky binary payloads both ways, and closes once", async () => {
    rig = new Rig(suite.broker, { sim: { bootBanner: true, regPolls: 3, transcript: true } });
    const r = rig;
    const s = await r.open();
    expect(r.states).toEqual(["attaching +CPIN: READY,+CSQ: 20,99", "joined", "connecting", "connected"]);
    // SIMCom's order: auth type, password, user
    expect(r.sim.cgauth).toEqual(["1", "1", "s3cret!", "jo"]);
    expect(r.sim.cgdcont).toEqual(["1", "IP", "internet"]);
    // received data pushed (AT+CIPRXGET left at 0), without the "RECV FROM:" line (AT+CIPSRIP=0)
    expect([r.sim.rxMode, r.sim.srip]).toEqual([0, 0]);
    expect(r.sim.commands).toContain("AT+CPIN?;+CSQ");
    expect(r.sim.commands).toContain('AT+CGDCONT=1,"IP","internet";+CGAUTH=1,1,"s3cret!","jo"');
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

    // Received: pushed as "+IPD<len>" frames of raw bytes, framed by the engine.
    ph.publish("dev/in", Buffer.from(big, "latin1"));
    await until(() => s.packets.some((p) => p.cmd == "publish"), 10000, "board gets the payload");
    const pub = s.packets.find((p) => p.cmd == "publish") as { payload: Buffer; topic: string };
    expect(pub.topic).toBe("dev/in");
    expect(pub.payload.toString("latin1")).toBe(big);
    expect(s.parseErrors).toBe(0);
    expect(r.sim.commands.filter((c) => c.startsWith("AT+CIPRXGET"))).toEqual([]);
    const fromModem = r.sim.transcript.filter((e) => e.dir == "modem>").map((e) => e.bytes).join("");
    expect(fromModem).toMatch(/\r\n\+IPD\d+\r\n/);
    expect(fromModem).not.toContain("RECV FROM:");

    expect(await r.close(s)).toBe("closed");
    await sleep(50);
    expect(s.closes).toEqual(["closed"]);
    ph.end(true);
  });

  it("an A7670 (\"*ATREADY: 1\" at boot) registered on 2G/3G only (AT+CGREG?), roaming", async () => {
    rig = new Rig(suite.broker, { sim: { family: "a7670", bootBanner: true, lte: false, regStat: 5 } });
    await rig.works("a7670");
  });

  it("re-opens over the network service that stays open (straight to AT+CIPOPEN)", async () => {
    rig = new Rig(suite.broker);
    const r = rig;
    const s = await r.open();
    await r.close(s);
    const before = r.sim.commands.length;
    await r.works("sim7600-b");
    expect(r.sim.commands.slice(before)[0]).toBe('AT+CIPOPEN=0,"TCP","broker.example",1883');
  });
});

describe("SIM7600 / A7670 driver with TLS (the module's SSL service) over the simulator and a real TLS server", () => {
  let front: TlsFront;
  beforeAll(async () => {
    front = await startTlsFront(suite.broker.port);
  });
  afterAll(async () => {
    await front.close();
  });
  /** A rig whose module reaches the TLS front; the driver asks for TLS. */
  const tlsRig = (o: ConstructorParameters<typeof Rig>[1] = {}) =>
    new Rig(suite.broker, { ...o, driver: { ssl: true, ...o.driver }, sim: { hostMap: () => ({ host: "127.0.0.1", port: front.port }), ...o.sim } });

  it("opens through AT+CCHSTART and AT+CCHOPEN (no AT+NETOPEN), MQTT with tricky bytes both ways over a real TLS link (no SNI), closes with AT+CCHCLOSE", async () => {
    const handshakes = front.handshakes.length;
    rig = tlsRig({ sim: { transcript: true } });
    const r = rig;
    const s = await r.open();
    expect(r.sim.commands).toEqual([
      "AT",
      "ATE0",
      "AT+CPIN?;+CSQ",
      "AT+CEREG?;+CGREG?",
      ...r.sim.commands.slice(4).filter((c) => c == "AT+CEREG?;+CGREG?"), // polled until registered
      "AT+CCHSTOP",
      'AT+CGDCONT=1,"IP","internet";+CGAUTH=1,1,"s3cret!","jo"',
      "AT+CCHSTART",
      "AT+CCHSSLCFG=0,0",
      'AT+CCHOPEN=0,"broker.example",1883,2',
    ]);
    expect(r.states).toEqual(["attaching +CPIN: READY,+CSQ: 20,99", "joined", "connecting", "connected"]);
    expect(r.sim.links().map((l) => l.tls)).toEqual([true]);
    expect(front.handshakes.slice(handshakes)).toEqual([{ sni: false }]);
    await r.mqttConnect(s, "sim7600-tls");
    await r.subscribe(s, "tls/in");

    const ph = await phone();
    const got: Buffer[] = [];
    ph.on("message", (_t, p) => got.push(p));
    await new Promise<void>((res) => ph.subscribe("tls/out", { qos: 0 }, () => res()));
    // two AT+CCHSENDs (1460 bytes at most each)
    const big = (trickyPayload() + "\x1a").repeat(8);
    expect(big.length).toBeGreaterThan(1460);
    r.publish("tls/out", big);
    await until(() => got.length > 0, 5000, "phone gets the payload");
    expect(got[0].toString("latin1")).toBe(big);
    const sends = r.sim.commands.filter((c) => c.startsWith("AT+CCHSEND=0,"));
    expect(sends.length).toBeGreaterThan(2);
    expect(sends.every((c) => Number(c.slice(13)) <= 1460)).toBe(true);

    // received: pushed "+CCHRECV: DATA,0,<len>" frames of raw (decrypted) bytes
    ph.publish("tls/in", Buffer.from(big, "latin1"));
    await until(() => s.packets.some((p) => p.cmd == "publish"), 10000, "board gets the payload");
    const pub = s.packets.find((p) => p.cmd == "publish") as { payload: Buffer; topic: string };
    expect(pub.payload.toString("latin1")).toBe(big);
    expect(s.parseErrors).toBe(0);
    const fromModem = r.sim.transcript.filter((e) => e.dir == "modem>").map((e) => e.bytes).join("");
    expect(fromModem).toMatch(/\r\n\+CCHRECV: DATA,0,\d+\r\n/);
    expect(r.sim.commands.some((c) => /CIP|NETOPEN/.test(c))).toBe(false);

    expect(await r.close(s)).toBe("closed");
    expect(r.sim.commands.at(-1)).toBe("AT+CCHCLOSE=0");
    expect(r.sim.openSessions()).toEqual([]);
    await sleep(50);
    expect(s.closes).toEqual(["closed"]);
    // the service stays started: the next open is AT+CCHOPEN at once
    const before = r.sim.commands.length;
    await r.works("sim7600-tls-2");
    expect(r.sim.commands.slice(before)[0]).toBe('AT+CCHOPEN=0,"broker.example",1883,2');
    ph.end(true);
  });

  it('the peer closes (+CCH_PEER_CLOSED: 0): the socket ends once, the service stays, the next open is AT+CCHOPEN and works', async () => {
    rig = tlsRig();
    const r = rig;
    const s = await r.works("sim7600-tls-peer");
    r.sim.dropLink("ssl0");
    await until(() => s.closed !== null, 5000, "the socket to close");
    expect(s.closed).toBe("+CCH_PEER_CLOSED: 0");
    expect(r.states.at(-1)).toBe("joined +CCH_PEER_CLOSED: 0");
    const before = r.sim.commands.length;
    await r.works("sim7600-tls-peer-2");
    expect(r.sim.commands.slice(before)[0]).toBe('AT+CCHOPEN=0,"broker.example",1883,2');
    await sleep(50);
    expect(s.closes).toEqual(["+CCH_PEER_CLOSED: 0"]);
  });

  it('a handshake the server refuses ends the open with "+CCHOPEN: 0,15"; the next open starts the service again and works', async () => {
    rig = tlsRig();
    const r = rig;
    // the module offers only TLS 1.0 / 1.1, which the server (Node's default: 1.2 at least) refuses
    r.sim.tls = { minVersion: "TLSv1", maxVersion: "TLSv1.1" };
    const failed = await r.open().then(
      () => "opened",
      (e: Error) => e.message,
    );
    expect(failed).toBe("open failed: +CCHOPEN: 0,15");
    expect(r.states.at(-1)).toBe("failed +CCHOPEN: 0,15");
    expect(r.sim.openSessions()).toEqual([]);
    r.sim.tls = {};
    const before = r.sim.commands.length;
    await r.works("sim7600-tls-again");
    // a fresh bring-up: the service stopped and started again
    const again = r.sim.commands.slice(before);
    expect(again[0]).toBe("AT");
    expect(again.indexOf("AT+CCHSTOP")).toBeLessThan(again.indexOf("AT+CCHSTART"));
  });

  it('the manual\'s other order ("+CCHSTART: 0" / "+CCHSTOP: 0" before OK): the open works, and again after a refused handshake', async () => {
    rig = tlsRig({ sim: { sslResultFirst: true } });
    const r = rig;
    await r.works("sim7600-tls-order");
    r.modem.close();
    await sleep(100);
    r.sim.tls = { minVersion: "TLSv1", maxVersion: "TLSv1.1" };
    await expect(r.open()).rejects.toThrow("open failed: +CCHOPEN: 0,15");
    r.sim.tls = {};
    const before = r.sim.commands.length;
    await r.works("sim7600-tls-order-2");
    // the service was started: AT+CCHSTOP answered "+CCHSTOP: 0" and OK this time
    expect(r.sim.commands.slice(before)).toContain("AT+CCHSTOP");
    expect(r.sim.sslStarted).toBe(true);
  });

  it("the network lost under a TLS link: the socket ends, and a later open starts the service again and works", async () => {
    rig = tlsRig();
    const r = rig;
    const s = await r.works("sim7600-tls-net");
    r.sim.netDown();
    await until(() => s.closed !== null, 5000, "the socket to close");
    expect(s.closed).toBe("+CCH_PEER_CLOSED: 0");
    expect(r.sim.sslStarted).toBe(false);
    const before = r.sim.commands.length;
    const { failures } = await r.openEventually();
    // "+CCH: CCH STOP" told the driver the service is gone: the next open starts it again at once
    expect(failures).toEqual([]);
    expect(r.sim.commands.slice(before)).toContain("AT+CCHSTART");
    expect(r.sim.sslStarted).toBe(true);
  });
});
