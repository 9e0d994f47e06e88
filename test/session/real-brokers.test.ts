/**
 * MqttClient over NodeTransport and the real clock against real brokers on
 * loopback — Aedes in-process and Mosquitto, same test bodies — with an MQTT.js
 * client playing the phone on the other side.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from "vitest";
import mqtt, { type MqttClient as PhoneClient } from "mqtt";
import { MqttClient, type MqttOptions, type Clock } from "../../src/session/index";
import type { PublishPacket, QoS } from "../../src/codec/index";
import { NodeTransport, realClock } from "../../scripts/simulators/node-transport";
import { startAedes, startMosquitto, type RunningBroker } from "../support/brokers";
import { TapTransport } from "../support/tap-transport";
import { until } from "../support/wait";

const HOST = "127.0.0.1";
const ALL = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const ALL_STR = ALL.toString("latin1");
const USERS = { alice: "s3cret-pw", phone: "phone-pw" };


interface Ours {
  c: MqttClient;
  tr: NodeTransport;
  msgs: PublishPacket[];
  errors: string[];
  connects: boolean[];
  closes: string[];
  /** The wire between the client and the broker, decoded. */
  tap: TapTransport;
}

let seq = 0;
const ourClients: MqttClient[] = [];
const phones: PhoneClient[] = [];

function ours(port: number, o: Partial<MqttOptions> = {}, clock: Clock = realClock): Ours {
  const tr = new NodeTransport();
  const tap = new TapTransport(tr);
  const c = new MqttClient(tap, clock, {
    host: HOST, port, clientId: "dev-" + process.pid + "-" + seq++, keepAlive: 5, clean: true,
    backoffMin: 100, backoffMax: 400, connectTimeout: 3000, ...o,
  });
  const s: Ours = { c, tr, msgs: [], errors: [], connects: [], closes: [], tap };
  c.onMessage = (t, p, pk) => s.msgs.push(pk);
  c.onError = (e) => s.errors.push(e);
  c.onConnect = (sp) => s.connects.push(sp);
  c.onClose = (r) => s.closes.push(r);
  ourClients.push(c);
  return s;
}

async function up(s: Ours): Promise<Ours> {
  s.c.connect();
  await until(() => s.c.connected, 5000, "CONNACK");
  return s;
}

const sub = (c: MqttClient, f: string, q: QoS) => new Promise<[string | undefined, number | undefined]>((ok) => c.subscribe(f, q, (e, g) => ok([e, g])));
const pub = (c: MqttClient, t: string, p: string, q: QoS, r = false) => new Promise<string | undefined>((ok) => c.publish(t, p, q, r, (e) => ok(e)));

async function phone(port: number, o: mqtt.IClientOptions = {}): Promise<PhoneClient> {
  const p = await mqtt.connectAsync(`mqtt://${HOST}:${port}`, {
    protocolVersion: 4, clientId: "phone-" + process.pid + "-" + seq++, reconnectPeriod: 0, connectTimeout: 5000, ...o,
  });
  phones.push(p);
  return p;
}

interface Kind {
  name: string;
  /** A broker for the general tests (sessions survive restart()). */
  start(): Promise<RunningBroker>;
  /** A broker with users alice/phone and ACL: alice may use ok/# only. */
  startAuth(): Promise<RunningBroker>;
  /** What a wrong password gets. */
  badPassword: string;
}

const kinds: Kind[] = [
  {
    name: "aedes",
    start: () => startAedes(),
    startAuth: () =>
      startAedes({
        aedes: {
          authenticate: (client, user, pw, done) => {
            if (user && (USERS as Record<string, string>)[user] === pw?.toString("latin1")) return done(null, true);
            const e = new Error("bad credentials") as Error & { returnCode: number };
            e.returnCode = 4;
            done(e as any, false);
          },
          authorizeSubscribe: (client, s, done) => done(null, client?.id.startsWith("phone") || s.topic.startsWith("ok/") ? s : (null as any)),
        },
      }),
    badPassword: "refused: 4",
  },
  {
    name: "mosquitto",
    start: () => startMosquitto({ persistence: true }),
    // acl_file never refuses a SUBSCRIBE; the dynamic-security plugin does (0x80)
    startAuth: () => startMosquitto({ users: USERS, dynsec: { alice: ["ok/#"] } }),
    // mosquitto 2 answers a wrong password on MQTT 3.1.1 with code 5
    badPassword: "refused: 5",
  },
];

afterEach(async () => {
  for (const c of ourClients.splice(0)) c.disconnect();
  await Promise.all(phones.splice(0).map((p) => p.endAsync(true).catch(() => {})));
});

describe.each(kinds)("against $name", (kind) => {
  let b: RunningBroker;
  beforeAll(async () => { b = await kind.start(); });
  afterAll(async () => { await b?.stop(); });

  it("QoS 0/1/2 both ways with every byte value in the payload", async () => {
    const o = await up(ours(b.port));
    expect(await sub(o.c, "in/+", 2)).toEqual([undefined, 2]);
    const p = await phone(b.port);
    await p.subscribeAsync("out/+", { qos: 2 });
    const got: [string, Buffer, number][] = [];
    p.on("message", (t, m, pk) => got.push([t, m, pk.qos]));

    for (const q of [0, 1, 2] as const) await p.publishAsync("in/" + q, ALL, { qos: q });
    await until(() => o.msgs.length == 3, 5000, "3 messages in");
    const inn = o.msgs.map((m) => [m.topic, m.payload == ALL_STR, m.qos]).sort();
    expect(inn).toEqual([["in/0", true, 0], ["in/1", true, 1], ["in/2", true, 2]]);

    expect(await Promise.all(([0, 1, 2] as const).map((q) => pub(o.c, "out/" + q, ALL_STR, q)))).toEqual([undefined, undefined, undefined]);
    await until(() => got.length == 3, 5000, "3 messages out");
    expect(got.map(([t, m, q]) => [t, m.equals(ALL), q]).sort()).toEqual([["out/0", true, 0], ["out/1", true, 1], ["out/2", true, 2]]);
    expect(o.errors).toEqual([]);
    expect(o.tap.errors).toEqual([]); // the wire decodes cleanly both ways
  });

  it("retained messages both ways", async () => {
    const o = await up(ours(b.port));
    expect(await pub(o.c, "ret/dev", "on", 1, true)).toBeUndefined();
    const p = await phone(b.port);
    await p.publishAsync("ret/phone", "set\x00", { qos: 1, retain: true });
    const got: [string, string, boolean][] = [];
    p.on("message", (t, m, pk) => got.push([t, m.toString("latin1"), pk.retain]));
    await p.subscribeAsync("ret/dev", { qos: 1 });
    await until(() => got.length == 1, 5000, "retained at the phone");
    expect(got).toEqual([["ret/dev", "on", true]]);

    expect(await sub(o.c, "ret/phone", 1)).toEqual([undefined, 1]);
    await until(() => o.msgs.length == 1, 5000, "retained at the device");
    expect(o.msgs[0]).toMatchObject({ topic: "ret/phone", payload: "set\x00", retain: true });
  });

  it("the last will is published when the link is cut, not after disconnect()", async () => {
    const p = await phone(b.port);
    const got: [string, Buffer][] = [];
    p.on("message", (t, m) => got.push([t, m]));
    await p.subscribeAsync("will/+", { qos: 1 });

    const polite = await up(ours(b.port, { will: { topic: "will/polite", payload: "x", qos: 1, retain: false } }));
    const o = await up(ours(b.port, { will: { topic: "will/cut", payload: "bye\x00\xff", qos: 1, retain: false } }));
    polite.c.disconnect();
    o.tr.socket!.destroy(); // the link dies under the client
    await until(() => got.length >= 1, 5000, "will");
    expect(got[0][0]).toBe("will/cut");
    expect(got[0][1].equals(Buffer.from("bye\x00\xff", "latin1"))).toBe(true);
    // the client notices and comes back by itself
    await until(() => o.connects.length == 2, 5000, "reconnect");
    await new Promise((r) => setTimeout(r, 100));
    expect(got.map((g) => g[0])).toEqual(["will/cut"]);
  });

  it("messages queued by the broker for the persistent session arrive after a reconnect (no re-subscribe)", async () => {
    const id = "persist-" + kind.name + "-" + process.pid;
    const o = await up(ours(b.port, { clientId: id, clean: false, backoffMin: 400, backoffMax: 800 }));
    expect(await sub(o.c, "q/+", 1)).toEqual([undefined, 1]);
    const p = await phone(b.port);
    o.tr.socket!.destroy();
    await until(() => !o.c.connected, 2000, "link down");
    for (let i = 0; i < 5; i++) await p.publishAsync("q/" + i, "m" + i, { qos: 1 });
    await until(() => o.msgs.length >= 5, 5000, "queued messages");
    expect(o.connects).toEqual([false, true]);
    expect(new Set(o.msgs.map((m) => m.payload))).toEqual(new Set(["m0", "m1", "m2", "m3", "m4"]));
    expect(o.tap.packets("out").filter((x) => x.type == 8).length).toBe(1); // only the first SUBSCRIBE
    // clean up the session
    o.c.disconnect();
    const z = await up(ours(b.port, { clientId: id, clean: true }));
    z.c.disconnect();
  });

  it("reconnects after a broker restart; QoS 1 messages published around the outage all arrive", async () => {
    const p = await phone(b.port, { clean: false, clientId: "rs-phone-" + kind.name + process.pid, reconnectPeriod: 50 });
    const got = new Set<string>();
    p.on("message", (t, m) => got.add(m.toString()));
    await p.subscribeAsync("rs/t", { qos: 1 });
    const o = await up(ours(b.port, { clientId: "rs-dev-" + kind.name + process.pid, clean: false, maxInflight: 64, keepAlive: 2 }));
    const results: (string | undefined)[] = [];
    const N = 40;
    let restart: Promise<void> | undefined;
    let offline = 0;
    for (let i = 0; i < N; i++) {
      if (!o.c.connected) offline++;
      o.c.publish("rs/t", "n" + i, 1, false, (e) => results.push(e));
      if (i == 12) restart = b.restart();
      await new Promise((r) => setTimeout(r, 15));
    }
    await restart;
    await until(() => results.length == N, 15000, "all PUBACKs");
    expect(results.filter((e) => e !== undefined)).toEqual([]);
    await until(() => got.size == N, 10000, "all messages at the phone");
    expect(o.connects.length).toBeGreaterThanOrEqual(2);
    expect(o.closes.length).toBeGreaterThanOrEqual(1);
    expect(offline).toBeGreaterThan(0); // some were published during the outage
    await p.endAsync(true);
  }, 40000);

  it("a broker that goes silent is detected by the keep-alive and the client reconnects once it answers", async () => {
    const o = await up(ours(b.port, { keepAlive: 1, connectTimeout: 500 }));
    let t0 = 0;
    b.pause();
    try {
      t0 = Date.now();
      o.c.publish("silent/t", "x", 0, false); // sending does not hide the dead link
      await until(() => o.closes.length > 0, 5000, "ping timeout");
      expect(o.closes[0]).toBe("ping timeout");
      expect(o.tap.packets("out").some((p) => p.type == 12)).toBe(true);
    } finally {
      b.resume();
    }
    await until(() => o.connects.length == 2, 8000, "reconnect");
    expect(Date.now() - t0).toBeLessThan(8000);
  });

  describe("with users and an ACL", () => {
    let a: RunningBroker;
    beforeAll(async () => { a = await kind.startAuth(); });
    afterAll(async () => { await a?.stop(); });

    it("a wrong password is refused with its own error, backs off long, and the password is never in an error or close reason", async () => {
      // the real clock, recording the delays of the timers the client sets
      const delays: number[] = [];
      const rec: Clock = { ...realClock, setTimeout: (f, ms) => (delays.push(ms), realClock.setTimeout(f, ms)) };
      const o = ours(a.port, { username: "alice", password: "wrong-pw-123", backoffMax: 5000, random: () => 1 }, rec);
      o.c.connect();
      await until(() => o.errors.length > 0, 5000, "refusal");
      expect(o.errors[0]).toBe(kind.badPassword);
      await until(() => o.closes.length > 0, 5000, "close");
      expect(o.closes[0]).toBe(kind.badPassword);
      expect(o.c.connected).toBe(false);
      expect(delays[delays.length - 1]).toBe(5000); // the retry waits the long end of the back-off
      // on the wire in the CONNECT (that is MQTT), in nothing the client reports
      expect(o.tap.packets("out")[0]).toMatchObject({ type: 1, username: "alice", password: "wrong-pw-123" });
      expect(JSON.stringify([o.errors, o.closes])).not.toContain("wrong-pw-123");
      o.c.disconnect();

      const ok = await up(ours(a.port, { username: "alice", password: USERS.alice }));
      expect(ok.errors).toEqual([]);
    });

    it("SUBACK 0x80 from the ACL fails that filter only", async () => {
      const o = await up(ours(a.port, { username: "alice", password: USERS.alice }));
      const [r1, r2, r3] = await Promise.all([sub(o.c, "ok/a", 1), sub(o.c, "secret/a", 1), sub(o.c, "ok/b", 2)]);
      expect(r1).toEqual([undefined, 1]);
      expect(r2).toEqual(["refused", 0x80]);
      expect(r3).toEqual([undefined, 2]);
      // the granted ones work
      const p = await phone(a.port, { username: "phone", password: USERS.phone });
      await p.publishAsync("ok/a", "hi", { qos: 1 });
      await until(() => o.msgs.length == 1, 5000, "message on ok/a");
      expect(o.msgs[0].payload).toBe("hi");
    });
  });
});

describe("mosquitto with a password file", () => {
  let m: RunningBroker;
  beforeAll(async () => { m = await startMosquitto({ users: USERS }); });
  afterAll(async () => { await m?.stop(); });

  it("refuses a wrong password with code 5 (not authorized) and an unknown user too; the right one connects", async () => {
    const o = ours(m.port, { username: "alice", password: "nope-pw-456" });
    o.c.connect();
    await until(() => o.errors.length > 0, 5000, "refusal");
    expect(o.tap.packets("in")[0]).toEqual({ type: 2, sessionPresent: false, returnCode: 5 });
    expect(o.errors[0]).toBe("refused: 5");
    o.c.disconnect();
    const u = ours(m.port, { username: "mallory", password: "x" });
    u.c.connect();
    await until(() => u.errors.length > 0, 5000, "refusal");
    expect(u.errors[0]).toBe("refused: 5");
    u.c.disconnect();
    const ok = await up(ours(m.port, { username: "alice", password: USERS.alice }));
    expect(ok.errors).toEqual([]);
  });
});
