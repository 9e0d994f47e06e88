/**
 * MQTT 3.1.1 client session over a Transport (./transport.ts), timed by an injected Clock.
 *
 *   const c = new MqttClient(transport, clock, { host, port, clientId: "led1", keepAlive: 60, clean: false });
 *   c.onConnect = (sessionPresent) => { if (!sessionPresent) c.subscribe("led/1/set", 1, (err, granted) => …); };
 *   c.onMessage = (topic, payload, packet) => …;   // payload: byte string; route with topicMatches (../codec)
 *   c.onClose = (reason) => …;                     // every end of a connection (then it reconnects by itself)
 *   c.onError = (err) => …;                        // refusals, time-outs, protocol and decoder errors
 *   c.connect(); c.publish("led/1/state", "on", 1, true, (err) => …); c.connected; c.disconnect();
 *
 * Callbacks of publish/subscribe/unsubscribe: (err?: string, granted?: number) —
 * err undefined on success; "full" (table full, at once), "offline" (QoS 0 while not
 * connected), "refused" (SUBACK 0x80 for that filter; granted is then 128, otherwise
 * the granted QoS, which may be lower than asked; the filter is retried all the same,
 * see below). publish completes when written
 * (QoS 0), on PUBACK (1) or on PUBCOMP (2). Arguments that cannot be encoded (bad
 * QoS, topic too long, a lone surrogate in a topic) throw to the caller. Errors
 * and reasons are short strings ("refused: 5", "ping timeout", "connect timeout",
 * "protocol error", "subscription refused: <filter>", decoder messages: "oversize",
 * "flags", "length", "type", "id", "utf8", "topic", "qos") and never contain the
 * password. A refusal is "refused: " + the CONNACK return code [MQTT-3.2.2-3]:
 * 1 protocol version, 2 client id rejected, 3 server unavailable, 4 bad user name
 * or password, 5 not authorized.
 *
 * Options (times in ms unless said):
 *   host, port, clientId, clean, keepAlive (SECONDS; 0 = no keep-alive),
 *   username?, password? (byte string), will? {topic, payload, qos, retain},
 *   maxPacket 2048 — larger incoming packets are dropped and reported (onError),
 *   maxInflight 8 — bound of the outgoing table (QoS 1/2 publishes, subscribes and
 *     unsubscribes awaiting their ack) and of the inbound QoS 2 id table,
 *   connectTimeout 10000 — from the transport's onOpen to CONNACK,
 *   backoffMin 1000, backoffMax 60000, random Math.random (jitter; inject for tests).
 *
 * Behaviour:
 * - Keep-alive [MQTT-3.1.2-23]: a PINGREQ when nothing was SENT for keepAlive, and
 *   also when nothing was RECEIVED for keepAlive (so publishing cannot hide a dead
 *   link). If then no packet at all arrives within min(keepAlive/4, 15 s) the link is
 *   dead: onError + close ("ping timeout") and reconnect. A silent broker is thus
 *   detected at most 1.25 × keepAlive after the last packet received.
 * - Reconnect after every close except disconnect(): wait b × (1 + random()) / 2 with
 *   b doubling from backoffMin to backoffMax; b is reset by CONNACK 0 and set to
 *   backoffMax by a refusal 4 (bad user name or password) or 5 (not authorized).
 * - Outgoing table: publishes at QoS 1/2, subscribes and unsubscribes, in order, with
 *   packet ids 1..65535 (wrapping, never 0, never one in the table). Calls made
 *   while offline wait in it for the next CONNACK. After EVERY CONNACK all entries are
 *   (re)sent in the original order: PUBLISHes already sent with DUP=1 and the same id,
 *   a PUBREL for QoS 2 already PUBREC'd. With sessionPresent=1 that is the spec's
 *   resend. With sessionPresent=0 (always so with clean=true; also a broker that lost
 *   the session) the broker forgot them, so they go again as new messages: nothing is
 *   dropped and every callback still reports (at-least-once; a QoS 2 message the broker
 *   took but had not PUBREC'd yet may arrive twice — only a kept session prevents that).
 *   disconnect() keeps the table for a later connect().
 * - Subscriptions are kept until unsubscribe(): waiting in the outgoing table until
 *   their SUBACK, then in the list of wanted filters, granted or not. After a CONNACK
 *   with sessionPresent=0 every wanted filter is subscribed again, in one SUBSCRIBE;
 *   with sessionPresent=1 they are not. A filter the broker refuses (SUBACK 0x80:
 *   often temporary, an ACL being edited) is reported — to the subscribe callback the
 *   first time, else onError("subscription refused: <filter>") — and retried in one
 *   SUBSCRIBE of all refused filters after b ms, b doubling with each retry from
 *   backoffMin to backoffMax (a retry that finds the outgoing table full is dropped:
 *   the next connect without a session subscribes to every filter anyway).
 *   The inbound QoS 2 table is cleared when sessionPresent=0.
 * - Inbound: QoS 0 delivered; QoS 1 delivered then PUBACK; QoS 2 delivered once,
 *   PUBREC (also for a duplicate with a pending id, not delivered again), PUBCOMP on
 *   PUBREL. Unsolicited acks are ignored, except: a PUBREC for an unknown id is
 *   answered with PUBREL (lets a broker holding the id from an older session free it;
 *   its PUBCOMP is then ignored) and a PUBREL for an unknown id with PUBCOMP (spec).
 * - A fatal decoder error or a protocol error (anything but CONNACK first, a second
 *   CONNACK) closes and reconnects; a non-fatal one (oversize packet) is only reported,
 *   and a drained PUBLISH at QoS 1/2 is acknowledged (PUBACK / PUBREC with the packet
 *   id the decoder read), so that a broker keeping the session stops sending it again.
 *   Exceptions thrown by app callbacks are caught and passed to onError.
 */
import { encode, Decoder } from "../codec";
import type { PublishPacket, QoS, Will, DecoderSink } from "../codec";
import type { Bytes, Clock, Transport, TransportHandler } from "../transport";

export interface MqttOptions {
  host: string;
  port: number;
  clientId: string;
  keepAlive: number;
  clean: boolean;
  username?: string;
  password?: Bytes;
  will?: Will;
  maxPacket?: number;
  maxInflight?: number;
  connectTimeout?: number;
  backoffMin?: number;
  backoffMax?: number;
  random?: () => number;
}

export type Callback = (err?: string, granted?: number) => void;

export interface MqttClient {
  /** True between a successful CONNACK and the end of that connection (read it; the client sets it). */
  connected: boolean;
  onConnect?: (sessionPresent: boolean) => void;
  onMessage?: (topic: string, payload: Bytes, packet: PublishPacket) => void;
  onClose?: (reason: string) => void;
  onError?: (err: string) => void;
  /** Starts connecting now; keeps reconnecting until disconnect(). */
  connect(): void;
  /** Sends DISCONNECT and closes; no reconnect. Table entries stay for a later connect(). */
  disconnect(): void;
  subscribe(topic: string, qos: QoS, cb?: Callback): void;
  unsubscribe(topic: string, cb?: Callback): void;
  /** cb: QoS 0 when written, QoS 1 on PUBACK, QoS 2 on PUBCOMP; or an error. */
  publish(topic: string, payload: Bytes, qos: QoS, retain: boolean, cb?: Callback): void;
}

/*
 * A constructor function (smaller than a class); state lives in its closure
 * rather than in fields: the minifier shortens local names to one letter.
 *
 * An entry of the outgoing table is the packet itself (PUBLISH, PUBREL,
 * SUBSCRIBE or UNSUBSCRIBE; dup is set once sent), with _c its callback and _r
 * set on the internal re-subscribes. The ack that completes it follows from its
 * type: PUBACK/PUBREC for a PUBLISH at QoS 1/2, otherwise the next type
 * (PUBREL -> PUBCOMP, SUBSCRIBE -> SUBACK, UNSUBSCRIBE -> UNSUBACK).
 */
export const MqttClient = function (this: MqttClient, tr: Transport, clock: Clock, opts: MqttOptions) {
  const me = this;
  /** Options with defaults; also the CONNECT packet (type 1). */
  const o: any = Object.assign({ type: 1, maxPacket: 2048, maxInflight: 8, connectTimeout: 1e4, backoffMin: 1e3, backoffMax: 6e4 }, opts);
  /** Keep-alive in ms (0: none) and the time allowed for the answer to a PINGREQ. */
  const ms = o.keepAlive * 1e3, rt = Math.min(ms / 4, 15e3);
  /** The decoder of the current connection. */
  let dec: Decoder;
  /** Current transport handler (none: no transport open). */
  let cur: TransportHandler | null | undefined;
  /** connect() called and disconnect() not. */
  let want: boolean | undefined;
  /** Reason of a close we asked for. */
  let why: string | undefined;
  /** The one pending timer (back-off, connect timeout or keep-alive), or null/undefined. */
  let tm: unknown;
  /** Next back-off. */
  let bo = o.backoffMin;
  /** Last packet id. */
  let lastId = 0;
  /** Outgoing table, in order. */
  let t: any[] = [];
  /** Inbound QoS 2 ids awaiting PUBREL. */
  let rx: number[] = [];
  /** Wanted subscriptions past their first SUBACK; _x: refused by the last one. */
  let subs: { topic: string; qos: QoS; _x?: boolean }[] = [];
  /** Next retry delay of refused subscriptions, and its timer (truthy while pending). */
  let sb = o.backoffMin, st: unknown;
  /** Times of the last send, the last receive, the outstanding PINGREQ (0: none). */
  let ls: number, lr: number, pt: any;
  /** CONNACK 0 received on the current connection (mirrored in .connected). */
  let on = (me.connected = false);

  /** Calls an app callback or handler, if set (as a plain function: handlers get no `this`). */
  const fin = (f?: Function, a?: any, b?: any, c?: any) => f && f(a, b, c);
  const err = (m: string) => fin(me.onError, m);
  /** Runs f; whatever it throws becomes onError (never out of a handler or timer). */
  const safe = (f: (a?: any) => void, a?: any) => {
    try {
      f(a);
    } catch (x) {
      err("" + x);
    }
  };
  /**
   * (Re)arms the one timer; at() just stops it. Only a pending handle is ever
   * cleared: Espruino reuses timer ids (clearing a fired one could cancel another
   * module's timer) and throws "Unknown Timeout" for one that is gone.
   */
  const at = (f?: () => void, ms?: number) => {
    tm != null && clock.clearTimeout(tm);
    tm = f && clock.setTimeout(() => ((tm = null), safe(f)), ms!);
  };
  const send = (p: any): void => {
    ls = clock.now();
    tr.write(encode(p));
  };
  /** Sends a table entry (again): with DUP from then on. */
  const resend = (p: any) => {
    send(p);
    p.dup = true;
  };
  /** Closes the transport for reason r (reported); onClose(r) follows, then a reconnect if wanted. */
  const drop = (r: string) => {
    err((why = r));
    tr.close();
  };
  const unsub = (topic: string) => (subs = subs.filter((s) => s.topic != topic));
  /** Next packet id: 1..65535, wrapping, never one in the table. */
  const nid = (): number => ((lastId = (lastId % 65535) + 1), t.some((e) => e.id == lastId) ? nid() : lastId);
  const queue = (p: any, cb?: Callback) => {
    // a packet that cannot be encoded throws (encode), to the caller, and never enters the table
    t.length < o.maxInflight ? ((p.id = nid()), (p._c = cb), encode(p), t.push(p), on && resend(p)) : fin(cb, "full");
  };
  /**
   * Subscribes again to the refused filters, through the table (sent now or after the
   * next CONNACK; a full table drops the retry: the next connect without a session
   * subscribes to every filter anyway). Never throws: those filters were encoded before.
   */
  const retry = (l?: any) => {
    st = 0;
    l = subs.filter((s) => s._x);
    l.length && queue({ type: 8, subs: l, _r: 1 });
  };
  /** Keep-alive: acts when due, then re-arms itself for the next deadline. */
  const ka = () => {
    let d = (pt ? pt + rt : Math.min(ls, lr) + ms) - clock.now();
    if (ms) {
      // (send() sets ls to now)
      d > 0 || pt || (send({ type: 12 }), (pt = ls), (d = rt));
      d > 0 ? at(ka, d) : drop("ping timeout");
    }
  };
  const onPacket = (p: any) => {
    const T = p.type, id = p.id, q = p.qos, ack = (a: number) => send({ type: a, id });
    let i: number, e: any, m, g;
    lr = clock.now();
    pt = 0;
    // the first packet must be CONNACK, and only the first
    if ((T == 2) == on) return drop("protocol error");
    if (T == 2) {
      // back-off: reset by an acceptance, longest after a refusal 4 or 5
      bo = (i = p.returnCode) > 3 ? o.backoffMax : i ? bo : o.backoffMin;
      if (i) return drop("refused: " + i);
      on = me.connected = true;
      if (!p.sessionPresent) {
        rx = [];
        t = t.filter((e) => !e._r);
        subs.length && t.unshift({ type: 8, id: nid(), subs, _r: 1 });
      }
      t.map(resend);
      at(ka, 0);
      fin(me.onConnect, p.sessionPresent);
    } else if (T == 3) {
      if (q < 2 || rx.indexOf(id) < 0) {
        q > 1 && rx.push(id) > o.maxInflight && rx.shift();
        fin(me.onMessage, p.topic, p.payload, p);
      }
      q && ack(q + 3);
    } else if (T == 6) {
      rx = rx.filter((x) => x != id);
      ack(7);
    } else {
      // acks; a PUBREC is answered with PUBREL even for an unknown id
      T == 5 && ack(6);
      e = t.find((e) => e.id == id && (e.type - 3 ? e.type + 1 : e.qos + 3) == T);
      if (!e) return;
      // PUBREC: the entry becomes its PUBREL, completed by PUBCOMP
      if (T == 5) return void (e.type = 6);
      t = t.filter((x) => x != e);
      T == 9 &&
        e.subs.map((s: { topic: string; qos: QoS; _x?: boolean }, j: number) => {
          unsub(s.topic);
          subs.push(s);
          // a refused filter is reported, and tried again after the back-off
          (s._x = (g = p.granted[j]) > 2) &&
            (st || ((st = clock.setTimeout(retry, sb)), (sb = Math.min(sb * 2, o.backoffMax))),
            e._c ? (m = "refused") : err("subscription refused: " + s.topic));
        });
      fin(e._c, m, g);
    }
  };
  const sink: DecoderSink = {
    packet: (p) => why || safe(onPacket, p),
    // a drained PUBLISH at QoS 1/2 is acknowledged all the same (PUBACK / PUBREC)
    error: (m, f, a) => (f ? drop(m) : (err(m), a && send(a))),
  };
  const open = () => {
    const g = (f: (a: any) => void) => (a?: any) => h == cur && safe(f, a);
    const h: TransportHandler = (cur = {
      onOpen: g(() => {
        // the timer first: a CONNECT that cannot be encoded (a lone surrogate in the
        // client id) is reported by safe(), and the time-out still ends this try
        at(() => drop("connect timeout"), o.connectTimeout);
        send(o);
      }),
      onData: g((d) => dec.push(d, sink)),
      onClose: g((r) => {
        cur = null;
        on = me.connected = false;
        if (want) {
          at(open, (bo * (1 + (o.random || Math.random)())) / 2);
          bo = Math.min(bo * 2, o.backoffMax);
        } else at();
        fin(me.onClose, why || r);
      }),
    });
    why = "";
    dec = new Decoder(o.maxPacket);
    tr.open(o.host, o.port, h);
  };

  me.connect = () => {
    want = true;
    cur || (at(), open());
  };
  me.disconnect = () => {
    want = false;
    at();
    on && send({ type: 14 });
    cur && ((why = "disconnect"), tr.close());
  };
  me.subscribe = (topic, qos, cb) => queue({ type: 8, subs: [{ topic, qos }] }, cb);
  me.unsubscribe = (topic, cb) => {
    unsub(topic);
    queue({ type: 10, topics: [topic] }, cb);
  };
  me.publish = (topic, payload, qos, retain, cb) => {
    const p = { type: 3, topic, payload, qos, retain };
    qos ? queue(p, cb) : fin(cb, on ? send(p) : "offline");
  };
} as unknown as new (tr: Transport, clock: Clock, opts: MqttOptions) => MqttClient;
