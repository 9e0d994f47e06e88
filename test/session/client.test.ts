/**
 * MqttClient on a fake clock against a scripted in-memory transport (a test
 * double: it records the packets the client writes and lets the test play the
 * broker). Real brokers are exercised in broker.test.ts.
 */
import { describe, it, expect, beforeEach } from "vitest";
import { MqttClient, type MqttOptions } from "../../src/session/index";
import { type Packet } from "../../src/codec/index";
import { encodeServer as encode, ServerDecoder } from "../../src/codec/server";
import type { LinkCloseReason, Transport, TransportHandler } from "../../src/transport";
import { FakeClock } from "../support/fake-clock";

/** The scripted transport's own close reasons (the contract's list grows by one entry per transport). */
declare module "../../src/transport" {
  interface LinkCloseReasons {
    scriptTransport: "refused" | "reset" | "late";
  }
}

class ScriptTransport implements Transport {
  h: TransportHandler | null = null;
  opens: number[] = [];
  closes = 0;
  /** Packets written by the client, decoded. */
  sent: Packet[] = [];
  /** When false, open() fails at once (connection refused). */
  reachable = true;
  private dec = new ServerDecoder(1 << 20);
  constructor(private clock: FakeClock) {}

  open(host: string, port: number, h: TransportHandler): void {
    if (this.h) throw new Error("open() while a connection is open");
    this.opens.push(this.clock.now());
    this.dec.reset();
    if (!this.reachable) return h.onClose("refused");
    this.h = h;
    h.onOpen();
  }
  write(bytes: string): void {
    if (!this.h) throw new Error("write() without a connection");
    this.dec.push(bytes, {
      packet: (p) => this.sent.push(p),
      error: (m) => { throw new Error("client wrote a bad packet: " + m); },
    });
  }
  close(): void {
    this.closes++;
    this.drop("closed");
  }
  /** The link is gone (or closed). */
  drop(reason: LinkCloseReason = "reset"): void {
    const h = this.h;
    this.h = null;
    h && h.onClose(reason);
  }
  /** Plays one broker packet (or raw bytes). */
  inject(p: Packet | string): void {
    this.h!.onData(typeof p == "string" ? p : encode(p));
  }
  connack(sessionPresent = false, returnCode = 0): void {
    this.inject({ type: 2, sessionPresent, returnCode });
  }
  /** Takes the packets written since the last take(). */
  take(): Packet[] {
    const s = this.sent;
    this.sent = [];
    return s;
  }
  types(): number[] {
    return this.take().map((p) => p.type);
  }
}

let clock: FakeClock, tr: ScriptTransport, c: MqttClient;
let events: string[];

function make(opts: Partial<MqttOptions> = {}): MqttClient {
  c = new MqttClient(tr, clock, {
    host: "broker", port: 1883, clientId: "dev1", keepAlive: 10, clean: false,
    random: () => 1, ...opts,
  });
  c.onConnect = (sp) => events.push("connect " + sp);
  c.onClose = (r) => events.push("close " + r);
  c.onError = (e) => events.push("error " + e);
  return c;
}

/** A connected client; the CONNECT was taken. */
function up(opts: Partial<MqttOptions> = {}, sp = false): MqttClient {
  make(opts);
  c.connect();
  tr.take();
  tr.connack(sp);
  return c;
}

/** Probes the outgoing table: drops the link, reconnects with a session and returns what is resent. */
function resentAfterReconnect(): Packet[] {
  tr.drop();
  clock.step();
  tr.take();
  tr.connack(true);
  return tr.take();
}

/** Publishes at QoS 1 and acknowledges n times (moves the packet id counter on). */
function burnIds(n: number): void {
  for (let i = 0; i < n; i++) {
    c.publish("t", "", 1, false);
    const [p] = tr.take() as any[];
    tr.inject({ type: 4, id: p.id });
  }
}

beforeEach(() => {
  // Espruino timer semantics: clearing a fired handle throws (and ids are reused)
  clock = new FakeClock(1000, { espruino: true });
  tr = new ScriptTransport(clock);
  events = [];
});

describe("CONNECT / CONNACK", () => {
  it("sends client id, clean flag, keep-alive, credentials and will; the password is on the wire only, never in an error or close reason", () => {
    make({ clean: true, keepAlive: 60, username: "u", password: "s3cret\xff", will: { topic: "w/t", payload: "gone\x00", qos: 1, retain: true } });
    c.connect();
    const [p] = tr.take() as any[];
    expect(p).toMatchObject({ type: 1, clientId: "dev1", clean: true, keepAlive: 60, username: "u", password: "s3cret\xff", will: { topic: "w/t", payload: "gone\x00", qos: 1, retain: true } });
    tr.connack(false);
    expect(c.connected).toBe(true);
    expect(events).toEqual(["connect false"]);
    // the ways a connection with this password can end: a protocol error, a refusal 4, a decoder error, a time-out
    tr.connack(false);
    clock.step(); // the reconnect
    tr.connack(false, 4);
    clock.step();
    tr.inject("\x20\x03\x00\x00\x00");
    clock.step();
    clock.step(); // no CONNACK
    expect(tr.take().filter((x) => x.type == 1).map((x: any) => x.password)).toEqual(["s3cret\xff", "s3cret\xff", "s3cret\xff"]);
    expect(events.filter((e) => e.startsWith("close "))).toEqual(["close protocol error", "close refused: 4", "close length", "close connect timeout"]);
    expect(events.filter((e) => e.startsWith("error "))).toEqual(["error protocol error", "error refused: 4", "error length", "error connect timeout"]);
    expect(JSON.stringify(events)).not.toContain("s3cret");
  });

  it("reports CONNACK codes 1-5 as distinct errors, backs off long for 4 and 5", () => {
    const msgs: string[] = [];
    for (let rc = 1; rc <= 5; rc++) {
      clock = new FakeClock(1000, { espruino: true });
      tr = new ScriptTransport(clock);
      events = [];
      make({ backoffMin: 1000, backoffMax: 30000, connectTimeout: 1e6 });
      c.connect();
      tr.connack(false, rc);
      expect(c.connected).toBe(false);
      expect(tr.h).toBeNull();
      const err = events.find((e) => e.startsWith("error "))!;
      expect(events).toContain("close " + err.slice(6));
      msgs.push(err);
      clock.advance(1000);
      const early = tr.opens.length;
      clock.advance(28999);
      expect(tr.opens.length).toBe(early);
      clock.advance(1);
      // 1-3: the next try comes after backoffMin; 4-5: only after backoffMax
      expect(early).toBe(rc > 3 ? 1 : 2);
      expect(tr.opens.length).toBe(2);
    }
    expect(msgs).toEqual([
      "error refused: 1",
      "error refused: 2",
      "error refused: 3",
      "error refused: 4",
      "error refused: 5",
    ]);
  });

  it("times out when no CONNACK arrives and tries again", () => {
    make({ connectTimeout: 5000 });
    c.connect();
    clock.advance(4999);
    expect(tr.h).not.toBeNull();
    clock.advance(1);
    expect(tr.h).toBeNull();
    expect(events).toEqual(["error connect timeout", "close connect timeout"]);
    clock.advance(1000);
    expect(tr.opens).toEqual([1000, 7000]);
  });

  it("treats a packet before CONNACK or a second CONNACK as a protocol error", () => {
    make();
    c.connect();
    tr.inject({ type: 13 });
    expect(events).toEqual(["error protocol error", "close protocol error"]);
    clock.advance(1000);
    tr.connack();
    tr.connack();
    expect(events.slice(2)).toEqual(["connect false", "error protocol error", "close protocol error"]);
  });
});

describe("keep-alive", () => {
  it("sends PINGREQ exactly keepAlive after the last send on an idle client", () => {
    up({ keepAlive: 10 });
    clock.advance(9999);
    expect(tr.take()).toEqual([]);
    clock.advance(1);
    expect(tr.types()).toEqual([12]);
    clock.advance(100);
    tr.inject({ type: 13 });
    clock.advance(9899);
    expect(tr.take()).toEqual([]);
    clock.advance(1);
    expect(tr.types()).toEqual([12]);
  });

  it("pings on a listen-only client that keeps receiving messages", () => {
    up({ keepAlive: 10 });
    c.onMessage = () => {};
    for (let i = 0; i < 4; i++) {
      clock.advance(2000);
      tr.inject({ type: 3, topic: "t", payload: "x", qos: 0, retain: false, dup: false });
    }
    clock.advance(1999); // 9999 ms since CONNECT
    expect(tr.take()).toEqual([]);
    clock.advance(1);
    expect(tr.types()).toEqual([12]);
    tr.inject({ type: 13 });
    expect(c.connected).toBe(true);
  });

  it("declares a silent link dead before 1.5 x keepAlive and reconnects", () => {
    up({ keepAlive: 10 });
    const lastRx = clock.now();
    let closedAt = 0;
    c.onClose = (r) => { closedAt = clock.now(); events.push("close " + r); };
    clock.advance(15000);
    expect(events).toEqual(["connect false", "error ping timeout", "close ping timeout"]);
    expect(closedAt - lastRx).toBeLessThan(15000);
    expect(closedAt - lastRx).toBe(12500); // ping at 10 s + min(keepAlive/4, 15 s)
    clock.advance(1000);
    expect(tr.opens.length).toBe(2);
    expect(tr.types()).toEqual([12, 1]);
  });

  it("publishing at QoS 0 does not hide a dead link", () => {
    up({ keepAlive: 10 });
    const lastRx = clock.now();
    for (let i = 0; i < 6 && c.connected; i++) {
      clock.advance(2500);
      c.publish("t", "v", 0, false);
    }
    const types = tr.types();
    expect(types.filter((t) => t == 12).length).toBe(1);
    expect(events).toContain("close ping timeout");
    expect(tr.opens.length).toBe(1);
    // the link died at most 12.5 s after the last received packet
    expect(clock.now() - lastRx).toBeLessThanOrEqual(15000);
    expect(c.connected).toBe(false);
  });

  it("any received packet answers the ping", () => {
    up({ keepAlive: 10 });
    clock.advance(10000);
    expect(tr.types()).toEqual([12]);
    clock.advance(2000);
    tr.inject({ type: 3, topic: "t", payload: "", qos: 0, retain: false, dup: false });
    clock.advance(3000);
    expect(c.connected).toBe(true);
  });

  it("keepAlive 0 never pings and never times out", () => {
    up({ keepAlive: 0 });
    clock.advance(1e6);
    expect(tr.take()).toEqual([]);
    expect(c.connected).toBe(true);
  });
});

describe("reconnect back-off", () => {
  it("doubles with jitter up to the cap", () => {
    tr.reachable = false;
    make({ backoffMin: 1000, backoffMax: 8000, random: () => 0.5 });
    c.connect();
    for (let i = 0; i < 6; i++) clock.step();
    const gaps = tr.opens.slice(1).map((t, i) => t - tr.opens[i]);
    // wait = b/2 + random*b/2 with random 0.5 -> 0.75 b
    expect(gaps).toEqual([750, 1500, 3000, 6000, 6000, 6000]);
    expect(events.filter((e) => e == "close refused").length).toBe(7);
  });

  it("uses the random function for jitter", () => {
    tr.reachable = false;
    const r = [0, 1, 0.25];
    make({ backoffMin: 1000, backoffMax: 60000, random: () => r.shift() ?? 1 });
    c.connect();
    for (let i = 0; i < 3; i++) clock.step();
    expect(tr.opens.slice(1).map((t, i) => t - tr.opens[i])).toEqual([500, 2000, 2500]);
  });

  it("resets after a successful CONNACK", () => {
    tr.reachable = false;
    make({ backoffMin: 1000, backoffMax: 60000 });
    c.connect();
    clock.step(); clock.step(); clock.step(); // waited 1, 2, 4 s; next would be 8 s
    tr.reachable = true;
    clock.step();
    tr.connack();
    tr.drop();
    const t0 = clock.now();
    clock.step();
    expect(clock.now() - t0).toBe(1000);
  });

  it("does not reconnect after disconnect()", () => {
    up();
    tr.take();
    c.disconnect();
    expect(tr.types()).toEqual([14]);
    expect(tr.h).toBeNull();
    expect(c.connected).toBe(false);
    clock.advance(600000);
    expect(tr.opens.length).toBe(1);
    expect(events).toEqual(["connect false", "close disconnect"]);
    expect(clock.pending).toBe(0);
  });

  it("disconnect() during back-off stops it", () => {
    tr.reachable = false;
    make();
    c.connect();
    c.disconnect();
    clock.advance(600000);
    expect(tr.opens.length).toBe(1);
  });
});

describe("outgoing", () => {
  it("publishes at QoS 0/1/2 and reports completion", () => {
    up();
    const done: string[] = [];
    c.publish("a", "\x00\xff", 0, true, (e) => done.push("q0 " + e));
    c.publish("b", "1", 1, false, (e) => done.push("q1 " + e));
    c.publish("c", "2", 2, false, (e) => done.push("q2 " + e));
    const s = tr.take() as any[];
    expect(s).toMatchObject([
      { type: 3, topic: "a", payload: "\x00\xff", qos: 0, retain: true },
      { type: 3, topic: "b", qos: 1, id: 1, dup: false },
      { type: 3, topic: "c", qos: 2, id: 2, dup: false },
    ]);
    expect(done).toEqual(["q0 undefined"]);
    tr.inject({ type: 4, id: 1 });
    tr.inject({ type: 5, id: 2 });
    expect(tr.take()).toEqual([{ type: 6, id: 2 }]);
    expect(done).toEqual(["q0 undefined", "q1 undefined"]);
    tr.inject({ type: 7, id: 2 });
    expect(done).toEqual(["q0 undefined", "q1 undefined", "q2 undefined"]);
    expect(resentAfterReconnect()).toEqual([]);
  });

  it("QoS 0 offline fails with an error; QoS 1 offline waits for the connection", () => {
    make();
    const done: string[] = [];
    c.publish("a", "x", 0, false, (e) => done.push("" + e));
    c.publish("b", "y", 1, false, (e) => done.push("q1 " + e));
    expect(done).toEqual(["offline"]);
    c.connect();
    expect(tr.types()).toEqual([1]);
    tr.connack();
    expect(tr.take()).toMatchObject([{ type: 3, topic: "b", qos: 1, id: 1, dup: false }]);
    tr.inject({ type: 4, id: 1 });
    expect(done).toEqual(["offline", "q1 undefined"]);
  });

  it("bounds the in-flight table: full -> error at once", () => {
    up({ maxInflight: 3 });
    const errs: any[] = [];
    for (let i = 0; i < 5; i++) c.publish("t", "" + i, 1, false, (e) => errs.push(e));
    expect(errs).toEqual(["full", "full"]);
    expect(tr.take().length).toBe(3);
    c.subscribe("s", 1, (e) => errs.push(e));
    expect(errs).toEqual(["full", "full", "full"]);
    tr.inject({ type: 4, id: 2 });
    c.publish("t", "again", 1, false, (e) => errs.push(e));
    c.publish("t", "over", 1, false, (e) => errs.push(e));
    expect(errs).toEqual(["full", "full", "full", undefined, "full"]);
    expect((resentAfterReconnect() as any[]).map((p) => p.payload)).toEqual(["0", "2", "again"]);
  });

  it("packet ids run 1..65535, wrap to 1 and skip ids in flight", () => {
    up({ maxInflight: 8 });
    c.publish("t", "a", 1, false); // id 1 stays in flight
    c.publish("t", "b", 1, false); // id 2 stays in flight
    tr.take();
    burnIds(65533 - 2);
    c.publish("t", "c", 1, false);
    c.publish("t", "d", 1, false);
    c.publish("t", "e", 1, false);
    c.publish("t", "f", 1, false);
    expect((tr.take() as any[]).map((p) => p.id)).toEqual([65534, 65535, 3, 4]);
    for (const id of [1, 2, 65534, 65535, 3, 4]) tr.inject({ type: 4, id });
    burnIds(65535 - 4); // ids 5..65535
    expect(resentAfterReconnect()).toEqual([]);
    c.publish("t", "g", 1, false);
    expect((tr.take() as any[])[0].id).toBe(1);
  });

  it("after reconnect with a session, resends unacknowledged PUBLISHes with DUP and the same ids in order, and the pending PUBREL", () => {
    up({ clean: false }, false);
    c.subscribe("s/#", 1);
    tr.inject({ type: 9, id: 1, granted: [1] });
    const done: string[] = [];
    c.publish("a", "1", 1, false, (e) => done.push("a " + e));
    c.publish("b", "2", 2, false, (e) => done.push("b " + e));
    c.publish("c", "3", 2, false, (e) => done.push("c " + e));
    c.publish("d", "4", 1, false, (e) => done.push("d " + e));
    tr.inject({ type: 5, id: 4 }); // c reached PUBREL
    tr.inject({ type: 4, id: 5 }); // d done
    tr.take();
    tr.drop();
    expect(events).toContain("close reset");
    c.publish("e", "5", 1, false, (e) => done.push("e " + e)); // while offline
    clock.advance(1000);
    expect(tr.types()).toEqual([1]);
    tr.connack(true);
    expect(tr.take()).toEqual([
      { type: 3, topic: "a", payload: "1", qos: 1, retain: false, dup: true, id: 2 },
      { type: 3, topic: "b", payload: "2", qos: 2, retain: false, dup: true, id: 3 },
      { type: 6, id: 4 },
      { type: 3, topic: "e", payload: "5", qos: 1, retain: false, dup: false, id: 6 },
    ]);
    expect(done).toEqual(["d undefined"]);
  });

  it("resend order and ids, step by step", () => {
    up({ clean: false });
    c.publish("a", "1", 1, false);
    c.publish("b", "2", 2, false);
    c.publish("c", "3", 2, false);
    tr.inject({ type: 5, id: 3 });
    tr.take();
    tr.drop();
    clock.advance(1000);
    tr.take();
    tr.connack(true);
    expect(tr.take()).toEqual([
      { type: 3, topic: "a", payload: "1", qos: 1, retain: false, dup: true, id: 1 },
      { type: 3, topic: "b", payload: "2", qos: 2, retain: false, dup: true, id: 2 },
      { type: 6, id: 3 },
    ]);
    tr.inject({ type: 4, id: 1 });
    tr.inject({ type: 5, id: 2 });
    tr.inject({ type: 7, id: 3 });
    expect(tr.take()).toEqual([{ type: 6, id: 2 }]);
    tr.inject({ type: 7, id: 2 });
    expect(resentAfterReconnect()).toEqual([]);
  });

  it("clean=true: in-flight messages are resent as new messages after reconnect and complete", () => {
    up({ clean: true });
    const done: string[] = [];
    c.publish("a", "1", 1, false, (e) => done.push("a " + e));
    c.publish("b", "2", 2, false, (e) => done.push("b " + e));
    c.publish("c", "3", 2, false, (e) => done.push("c " + e));
    tr.inject({ type: 5, id: 3 });
    tr.drop();
    clock.advance(1000);
    tr.take();
    tr.connack(false);
    const s = tr.take() as any[];
    expect(s.map((p) => [p.type, p.id, p.topic])).toEqual([[3, 1, "a"], [3, 2, "b"], [6, 3, undefined]]);
    tr.inject({ type: 4, id: 1 });
    tr.inject({ type: 5, id: 2 });
    tr.inject({ type: 7, id: 2 });
    tr.inject({ type: 7, id: 3 });
    expect(done.sort()).toEqual(["a undefined", "b undefined", "c undefined"]);
  });
});

describe("subscriptions", () => {
  it("SUBACK 0x80 fails only that filter; lower granted QoS is reported", () => {
    up();
    const r: any[] = [];
    c.subscribe("ok/#", 2, (e, g) => r.push(["ok", e, g]));
    c.subscribe("no/#", 1, (e, g) => r.push(["no", e, g]));
    expect(tr.take()).toEqual([
      { type: 8, id: 1, subs: [{ topic: "ok/#", qos: 2 }] },
      { type: 8, id: 2, subs: [{ topic: "no/#", qos: 1 }] },
    ]);
    tr.inject({ type: 9, id: 1, granted: [1] });
    tr.inject({ type: 9, id: 2, granted: [0x80] });
    expect(r).toEqual([["ok", undefined, 1], ["no", "refused", 128]]);
    // the callback reported the refusal: onError does not repeat it
    expect(events.filter((e) => e.startsWith("error"))).toEqual([]);
    // both filters are kept (with the QoS asked for): a connect without a session subscribes to both
    tr.drop();
    tr.take();
    clock.advance(1000);
    tr.take();
    tr.connack(false);
    // (the retry of "no/#", due while offline, is replaced by that SUBSCRIBE)
    expect(tr.take()).toMatchObject([{ type: 8, subs: [{ topic: "ok/#", qos: 2 }, { topic: "no/#", qos: 1 }] }]);
  });

  it("a refused filter is retried with back-off (1, 2, 4 … 60 s) until granted, then no more", () => {
    up({ keepAlive: 0 });
    clock.advance(0); // (the keep-alive timer, which finds nothing to do)
    c.subscribe("led", 1);
    tr.take();
    const retries: number[] = [];
    const refuse = () => {
      const [p] = tr.take() as any[];
      expect(p).toMatchObject({ type: 8, subs: [{ topic: "led", qos: 1 }] });
      retries.push(clock.now());
      tr.inject({ type: 9, id: p.id, granted: [0x80] });
    };
    tr.inject({ type: 9, id: 1, granted: [0x80] });
    const t0 = clock.now();
    expect(events).toEqual(["connect false", "error subscription refused: led"]);
    for (let i = 0; i < 8; i++) {
      expect(clock.step()).toBe(true);
      refuse();
    }
    expect(retries.map((t, i) => t - (i ? retries[i - 1] : t0))).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
    // every refusal reported (the app logs a repeated reason once)
    expect(events.filter((e) => e == "error subscription refused: led").length).toBe(9);
    // granted at last: no more SUBSCRIBEs, no timer left
    clock.step();
    const [p] = tr.take() as any[];
    tr.inject({ type: 9, id: p.id, granted: [1] });
    expect(clock.pending).toBe(0);
    clock.advance(600_000);
    expect(tr.take()).toEqual([]);
    // refused again later (a new connection without a session): retried again
    tr.drop();
    clock.step();
    tr.take();
    tr.connack(false);
    clock.advance(0);
    const [q] = tr.take() as any[];
    expect(q).toMatchObject({ type: 8, subs: [{ topic: "led", qos: 1 }] });
    tr.inject({ type: 9, id: q.id, granted: [0x80] });
    clock.step();
    expect(tr.take()).toMatchObject([{ type: 8, subs: [{ topic: "led", qos: 1 }] }]);
  });

  it("a retry due while offline waits in the table; a connect with a session sends it, one without sends one SUBSCRIBE of every filter", () => {
    up({ keepAlive: 0 });
    c.subscribe("a", 1);
    c.subscribe("b", 0);
    tr.inject({ type: 9, id: 1, granted: [1] });
    tr.inject({ type: 9, id: 2, granted: [0x80] });
    tr.take();
    tr.drop();
    // the retry timer (1 s) and the reconnect (1 s) fall due; the retry goes into the table
    clock.advance(1000);
    tr.take();
    tr.connack(true);
    expect(tr.take()).toEqual([{ type: 8, id: 3, subs: [{ topic: "b", qos: 0 }] }]);
    tr.inject({ type: 9, id: 3, granted: [0x80] });
    tr.drop();
    clock.advance(1000);
    tr.take();
    tr.connack(false);
    // no session: the pending retry is replaced by one SUBSCRIBE of everything wanted
    expect(tr.take()).toEqual([{ type: 8, id: 4, subs: [{ topic: "a", qos: 1 }, { topic: "b", qos: 0 }] }]);
    tr.inject({ type: 9, id: 4, granted: [1, 0] });
    clock.advance(120_000);
    expect(tr.take()).toEqual([]);
  });

  it("unsubscribe() ends the retries of a refused filter", () => {
    up({ keepAlive: 0 });
    c.subscribe("no", 1);
    tr.inject({ type: 9, id: 1, granted: [0x80] });
    c.unsubscribe("no");
    tr.take();
    tr.inject({ type: 11, id: 2 });
    clock.advance(120_000);
    expect(tr.take()).toEqual([]);
  });

  it("re-subscribes exactly once when the broker has no session, in one SUBSCRIBE; a failed filter alone is reported", () => {
    up({ clean: false });
    c.subscribe("a", 1);
    c.subscribe("b", 2);
    c.subscribe("c", 0);
    tr.inject({ type: 9, id: 1, granted: [1] });
    tr.inject({ type: 9, id: 2, granted: [2] });
    tr.inject({ type: 9, id: 3, granted: [0] });
    tr.take();
    tr.drop();
    clock.advance(1000);
    tr.take();
    tr.connack(false);
    const s = tr.take();
    expect(s).toEqual([{ type: 8, id: 4, subs: [{ topic: "a", qos: 1 }, { topic: "b", qos: 2 }, { topic: "c", qos: 0 }] }]);
    tr.inject({ type: 9, id: 4, granted: [1, 0x80, 0] });
    expect(events).toContain("error subscription refused: b");
    // connection lost again: the broker kept the session now -> no SUBSCRIBE
    // (but the retry of the refused filter, due after 1 s, which the broker grants)
    tr.drop();
    clock.advance(1000);
    tr.take();
    tr.connack(true);
    expect(tr.take()).toEqual([{ type: 8, id: 5, subs: [{ topic: "b", qos: 2 }] }]);
    tr.inject({ type: 9, id: 5, granted: [2] });
    // and lost again, session gone: exactly one SUBSCRIBE again, of every filter
    tr.drop();
    clock.advance(1000);
    tr.take();
    tr.connack(false);
    expect(tr.take()).toEqual([{ type: 8, id: 6, subs: [{ topic: "a", qos: 1 }, { topic: "c", qos: 0 }, { topic: "b", qos: 2 }] }]);
  });

  it("does not re-subscribe twice when the link drops before the re-subscribe SUBACK", () => {
    up({ clean: false });
    c.subscribe("a", 1);
    tr.inject({ type: 9, id: 1, granted: [1] });
    tr.drop();
    clock.advance(1000);
    tr.connack(false);
    tr.drop();
    clock.advance(2000);
    tr.take();
    tr.connack(false);
    expect(tr.types()).toEqual([8]);
  });

  it("unsubscribe sends UNSUBSCRIBE, calls back on UNSUBACK and forgets the filter", () => {
    up();
    c.subscribe("a", 1);
    tr.inject({ type: 9, id: 1, granted: [1] });
    const r: any[] = [];
    c.unsubscribe("a", (e) => r.push(e));
    expect(tr.take().slice(1)).toEqual([{ type: 10, id: 2, topics: ["a"] }]);
    tr.inject({ type: 11, id: 2 });
    expect(r).toEqual([undefined]);
    // not re-subscribed when the session is gone
    tr.drop();
    clock.step();
    tr.take();
    tr.connack(false);
    expect(tr.take()).toEqual([]);
  });
});

describe("incoming", () => {
  const pub = (qos: 0 | 1 | 2, id?: number, dup = false) => ({ type: 3 as const, topic: "in/t", payload: "p" + id, qos, retain: false, dup, id });

  it("delivers QoS 0 and 1 (PUBACK) messages", () => {
    up();
    const got: any[] = [];
    c.onMessage = (t, p, pk) => got.push([t, p, pk.qos]);
    tr.inject(pub(0));
    tr.inject(pub(1, 7));
    expect(got).toEqual([["in/t", "pundefined", 0], ["in/t", "p7", 1]]);
    expect(tr.take()).toEqual([{ type: 4, id: 7 }]);
  });

  it("QoS 2: PUBREC, delivered exactly once despite a duplicate, PUBCOMP on PUBREL", () => {
    up();
    const got: string[] = [];
    c.onMessage = (t, p) => got.push(p);
    tr.inject(pub(2, 9));
    expect(tr.take()).toEqual([{ type: 5, id: 9 }]);
    tr.inject(pub(2, 9, true));
    expect(tr.take()).toEqual([{ type: 5, id: 9 }]);
    expect(got).toEqual(["p9"]);
    tr.inject({ type: 6, id: 9 });
    expect(tr.take()).toEqual([{ type: 7, id: 9 }]);
    // the id is free again: a new message with it is delivered
    tr.inject(pub(2, 9));
    expect(got).toEqual(["p9", "p9"]);
  });

  it("keeps the QoS 2 id across a reconnect with a session", () => {
    up({ clean: false });
    const got: string[] = [];
    c.onMessage = (t, p) => got.push(p);
    tr.inject(pub(2, 4));
    tr.drop();
    clock.advance(1000);
    tr.connack(true);
    tr.inject(pub(2, 4, true));
    expect(got).toEqual(["p4"]);
  });

  it("bounds the inbound QoS 2 table (the oldest id is forgotten)", () => {
    up({ maxInflight: 4 });
    const got: string[] = [];
    c.onMessage = (t, p) => got.push(p);
    for (let i = 1; i <= 10; i++) tr.inject(pub(2, i));
    for (let i = 7; i <= 10; i++) tr.inject(pub(2, i, true));
    expect(got.length).toBe(10); // 7..10 still known: not delivered again
    tr.inject(pub(2, 6, true));
    expect(got.length).toBe(11); // 6 was forgotten to keep the table bounded
  });

  it("tolerates unsolicited acks; PUBREC unknown -> PUBREL, PUBREL unknown -> PUBCOMP", () => {
    up();
    tr.take();
    tr.inject({ type: 4, id: 100 });
    tr.inject({ type: 7, id: 101 });
    tr.inject({ type: 9, id: 102, granted: [0] });
    tr.inject({ type: 11, id: 103 });
    expect(tr.take()).toEqual([]);
    tr.inject({ type: 5, id: 104 });
    tr.inject({ type: 6, id: 105 });
    expect(tr.take()).toEqual([{ type: 6, id: 104 }, { type: 7, id: 105 }]);
    expect(c.connected).toBe(true);
    expect(events).toEqual(["connect false"]);
  });

  it("an ack of the wrong kind does not complete an entry", () => {
    up();
    const done: any[] = [];
    c.publish("t", "x", 1, false, (e) => done.push(e));
    tr.inject({ type: 7, id: 1 });
    tr.inject({ type: 9, id: 1, granted: [0] });
    expect(done).toEqual([]);
    tr.inject({ type: 4, id: 1 });
    expect(done).toEqual([undefined]);
  });

  it("a fatal decoder error closes and reconnects with back-off; an oversize packet is only reported", () => {
    up({ maxPacket: 64 });
    c.onMessage = () => {};
    tr.inject(encode({ type: 3, topic: "t", payload: "x".repeat(100), qos: 0, retain: false, dup: false }));
    expect(c.connected).toBe(true);
    expect(events.length).toBe(2);
    expect(events[1]).toMatch(/^error /);
    tr.inject("\x00\x00"); // packet type 0: protocol error
    expect(c.connected).toBe(false);
    expect(events.slice(2, 4)).toEqual([events[2], "close " + events[2].slice(6)]);
    clock.advance(999);
    expect(tr.opens.length).toBe(1);
    clock.advance(1);
    expect(tr.opens.length).toBe(2);
  });

  it("a drained oversize PUBLISH is acknowledged once with its packet id (QoS 1: PUBACK, QoS 2: PUBREC … PUBCOMP), not delivered, and reported", () => {
    up({ maxPacket: 64 });
    const got: string[] = [];
    c.onMessage = (t) => got.push(t);
    tr.take();
    const big = (qos: 0 | 1 | 2, id?: number, dup = false) => encode({ type: 3, topic: "led", payload: "on" + " ".repeat(100), qos, retain: false, dup, id });
    tr.inject(big(1, 0x4242));
    expect(tr.take()).toEqual([{ type: 4, id: 0x4242 }]);
    // the broker sends it again (DUP): one PUBACK each time it arrives
    tr.inject(big(1, 0x4242, true).slice(0, 10));
    tr.inject(big(1, 0x4242, true).slice(10));
    expect(tr.take()).toEqual([{ type: 4, id: 0x4242 }]);
    tr.inject(big(2, 9));
    expect(tr.take()).toEqual([{ type: 5, id: 9 }]);
    tr.inject({ type: 6, id: 9 });
    expect(tr.take()).toEqual([{ type: 7, id: 9 }]);
    tr.inject(big(0));
    expect(tr.take()).toEqual([]);
    expect(got).toEqual([]);
    expect(events).toEqual(["connect false", "error oversize", "error oversize", "error oversize", "error oversize"]);
    expect(c.connected).toBe(true);
  });

  it("stops reading the chunk after a fatal error", () => {
    up();
    const got: string[] = [];
    c.onMessage = (t, p) => got.push(p);
    tr.inject(encode(pub(0)) + "\xf0\x00" + encode(pub(0)));
    expect(got.length).toBe(1);
  });

  it("an app callback that throws does not escape the transport handler", () => {
    up();
    c.onMessage = () => { throw new Error("app bug"); };
    expect(() => tr.inject(pub(1, 3))).not.toThrow();
    expect(events).toContain("error Error: app bug");
    c.onClose = () => { throw new Error("close bug"); };
    expect(() => tr.drop()).not.toThrow();
    // reconnect still scheduled
    clock.advance(1000);
    expect(tr.opens.length).toBe(2);
  });

  it("ignores events from an old connection", () => {
    up();
    const old = tr.h!;
    tr.drop();
    clock.advance(1000);
    tr.connack(true);
    old.onClose("late");
    old.onData(encode({ type: 2, sessionPresent: false, returnCode: 0 }));
    expect(c.connected).toBe(true);
    expect(events).toEqual(["connect false", "close reset", "connect true"]);
  });
});

describe("misuse", () => {
  it("an unencodable publish throws to the caller and does not poison the table", () => {
    up();
    expect(() => c.publish("t", "x", 3 as any, false)).toThrow();
    tr = new ScriptTransport(clock);
    make();
    c.connect();
    tr.take();
    expect(() => c.publish("t", "x", 1, false, () => {})).not.toThrow();
    expect(() => c.subscribe("t", 5 as any)).toThrow();
    tr.connack();
    expect(tr.types()).toEqual([3]);
    expect(c.connected).toBe(true);
  });

  it("a lone surrogate in a topic throws to the caller at once; in the client id it is reported and the try times out", () => {
    up();
    const cbs: any[] = [];
    for (const q of [0, 1, 2] as const) expect(() => c.publish("t/\ud800", "x", q, false, (e) => cbs.push(e)), "qos " + q).toThrow();
    expect(() => c.subscribe("t/\udc00", 1, (e) => cbs.push(e))).toThrow();
    expect(() => c.unsubscribe("\ud83d", (e) => cbs.push(e))).toThrow();
    c.publish("t/\ud83d\ude00", "x", 1, false, (e) => cbs.push(e ?? "ok")); // a pair is fine
    const [p] = tr.take() as any[];
    expect(p).toMatchObject({ type: 3, topic: "t/😀" });
    tr.inject({ type: 4, id: p.id });
    expect(cbs).toEqual(["ok"]);
    expect(events).toEqual(["connect false"]);

    // the CONNECT is encoded inside the transport's onOpen: nothing escapes it
    tr = new ScriptTransport(clock);
    events = [];
    make({ clientId: "dev\udbff", connectTimeout: 5000 });
    expect(() => c.connect()).not.toThrow();
    expect(tr.take()).toEqual([]);
    expect(events).toEqual([expect.stringMatching(/^error URIError/)]);
    expect(() => clock.advance(5000)).not.toThrow();
    expect(tr.h).toBeNull();
    expect(events.slice(1)).toEqual(["error connect timeout", "close connect timeout"]);
    expect(() => clock.step()).not.toThrow(); // the next try: the same
    expect(tr.opens.length).toBe(2);
    expect(events.length).toBe(4);
    expect(events[3]).toMatch(/^error URIError/);
  });
});

describe("FakeClock", () => {
  it("runs due timers in order, including ones scheduled while advancing", () => {
    const k = new FakeClock(0);
    const log: string[] = [];
    k.setTimeout(() => log.push("b@" + k.now()), 20);
    k.setTimeout(() => {
      log.push("a@" + k.now());
      k.setTimeout(() => log.push("c@" + k.now()), 5); // due at 15, inside the window
      k.setTimeout(() => log.push("late@" + k.now()), 100);
    }, 10);
    const gone = k.setTimeout(() => log.push("cleared"), 15);
    k.clearTimeout(gone);
    k.clearTimeout(gone); // twice is fine
    k.advance(30);
    expect(log).toEqual(["a@10", "c@15", "b@20"]);
    expect(k.now()).toBe(30);
    expect(k.pending).toBe(1);
    expect(k.step()).toBe(true);
    expect(log.pop()).toBe("late@110");
  });

  it("espruino mode: integer ids reused, clearing a fired or unknown handle throws", () => {
    const k = new FakeClock(0, { espruino: true });
    const a = k.setTimeout(() => {}, 10);
    const b = k.setTimeout(() => {}, 20);
    expect([a, b]).toEqual([1, 2]);
    k.advance(25);
    expect(() => k.clearTimeout(b)).toThrow("Unknown Timeout");
    expect(() => k.clearTimeout(undefined)).toThrow();
    expect(k.setTimeout(() => {}, 5)).toBe(1); // reused
  });
});
