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
import { encode, Decoder, CONNECT, CONNACK, PUBLISH, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, PINGREQ, DISCONNECT } from "../codec";
import type { PublishPacket, QoS, Will, DecoderSink, DecoderError, ThrownText } from "../codec";
import type { Bytes, Clock, LinkCloseReason, Transport, TransportHandler } from "../transport";

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

/** A CONNACK refusal: "refused: " + the return code (1..5, or any other code that came). */
export type Refusal = `refused: ${number}`;
/**
 * Why the session itself ends a connection (reported to onError, then as onClose's
 * reason); a decoder error is the codec's word ("length", "type", ...).
 */
export type SessionCloseReason = "connect timeout" | "ping timeout" | "protocol error" | Refusal | DecoderError;
/** onClose's reason: the session's own, "disconnect" (disconnect() was called), else the transport's. */
export type MqttCloseReason = SessionCloseReason | "disconnect" | LinkCloseReason;
/**
 * What onError gets: a reason the session closes for, a refused filter no callback
 * was waiting for, a dropped "oversize" packet, or what an app callback threw.
 */
export type MqttError = SessionCloseReason | `subscription refused: ${string}` | ThrownText;
/** The err of a publish / subscribe / unsubscribe callback (see above); undefined on success. */
export type CallbackError = "full" | "offline" | "refused";

export type Callback = (err?: CallbackError, granted?: number) => void;

export interface MqttClient {
  /** True between a successful CONNACK and the end of that connection (read it; the client sets it). */
  connected: boolean;
  onConnect?: (sessionPresent: boolean) => void;
  onMessage?: (topic: string, payload: Bytes, packet: PublishPacket) => void;
  onClose?: (reason: MqttCloseReason) => void;
  onError?: (err: MqttError) => void;
  /** Starts connecting now; keeps reconnecting until disconnect(). */
  connect(): void;
  /** Sends DISCONNECT and closes; no reconnect. Table entries stay for a later connect(). */
  disconnect(): void;
  subscribe(topic: string, qos: QoS, cb?: Callback): void;
  unsubscribe(topic: string, cb?: Callback): void;
  /** cb: QoS 0 when written, QoS 1 on PUBACK, QoS 2 on PUBCOMP; or an error. */
  publish(topic: string, payload: Bytes, qos: QoS, retain: boolean, cb?: Callback): void;
}

/** Defaults of the options (see above). */
const DEFAULT_MAX_PACKET_BYTES = 2048;
const DEFAULT_MAX_INFLIGHT = 8;
const DEFAULT_CONNECT_TIMEOUT_MS = 10e3;
const DEFAULT_BACKOFF_MIN_MS = 1e3;
const DEFAULT_BACKOFF_MAX_MS = 60e3;
/** The answer to a PINGREQ may take a quarter of the keep-alive, at most this long. */
const PING_TIMEOUT_MAX_MS = 15e3;
/** Packet ids run 1..MAX_PACKET_ID, wrapping. */
const MAX_PACKET_ID = 65535;
/** A SUBACK return code above this is a refusal (0x80). */
const MAX_GRANTED_QOS = 2;
/** CONNACK return code 3, server unavailable; the ones above it (4 bad user name or password, 5 not authorized) back off longest. */
const SERVER_UNAVAILABLE = 3;

/** An entry of the outgoing table: the packet itself (see below). */
type OutboxEntry = any;
interface Subscription { topic: string; qos: QoS; _refused?: boolean }

/*
 * A constructor function (smaller than a class); state lives in its closure
 * rather than in fields: the minifier shortens local names to one letter.
 *
 * An entry of the outgoing table (the outbox) is the packet itself (PUBLISH,
 * PUBREL, SUBSCRIBE or UNSUBSCRIBE; dup is set once sent), with _callback its
 * callback and _resubscribe set on the internal re-subscribes. The ack that
 * completes it follows from its type: PUBACK/PUBREC for a PUBLISH at QoS 1/2,
 * otherwise the next type (PUBREL -> PUBCOMP, SUBSCRIBE -> SUBACK,
 * UNSUBSCRIBE -> UNSUBACK).
 */
export const MqttClient = function (this: MqttClient, transport: Transport, clock: Clock, opts: MqttOptions) {
  const me = this;
  /** Options with defaults; also the CONNECT packet. */
  const options: any = Object.assign({
    type: CONNECT,
    maxPacket: DEFAULT_MAX_PACKET_BYTES,
    maxInflight: DEFAULT_MAX_INFLIGHT,
    connectTimeout: DEFAULT_CONNECT_TIMEOUT_MS,
    backoffMin: DEFAULT_BACKOFF_MIN_MS,
    backoffMax: DEFAULT_BACKOFF_MAX_MS,
  }, opts);
  /** Keep-alive in ms (0: none) and the time allowed for the answer to a PINGREQ. */
  const keepAliveMs = options.keepAlive * 1e3, pingTimeoutMs = Math.min(keepAliveMs / 4, PING_TIMEOUT_MAX_MS);
  /** The decoder of the current connection. */
  let decoder: Decoder;
  /** The handler of the transport open now (none: no transport open). */
  let currentHandler: TransportHandler | null | undefined;
  /** connect() called and disconnect() not. */
  let connectWanted: boolean | undefined;
  /** Reason of a close we asked for. */
  let closeReason: SessionCloseReason | "disconnect" | "" | undefined;
  /** The one pending timer (back-off, connect timeout or keep-alive), or null/undefined. */
  let timer: unknown;
  /** Next reconnect back-off. */
  let backoffMs = options.backoffMin;
  /** Last packet id. */
  let lastPacketId = 0;
  /** Outgoing table, in order. */
  let outbox: OutboxEntry[] = [];
  /** Inbound QoS 2 ids awaiting PUBREL. */
  let inboundQos2Ids: number[] = [];
  /** Wanted subscriptions past their first SUBACK; _refused: refused by the last one. */
  let subscriptions: Subscription[] = [];
  /** Next retry delay of refused subscriptions, and its timer (truthy while pending). */
  let resubscribeBackoffMs = options.backoffMin, resubscribeTimer: unknown;
  /** Times of the last send, the last receive, the outstanding PINGREQ (0: none). */
  let lastSentAt: number, lastReceivedAt: number, pingSentAt: any;
  /** CONNACK 0 received on the current connection (mirrored in .connected). */
  let accepted = (me.connected = false);

  /** Calls an app callback or handler, if set (as a plain function: handlers get no `this`). */
  const callIfSet = (callback?: Function, first?: any, second?: any, third?: any) => callback && callback(first, second, third);
  const reportError = (message: MqttError) => callIfSet(me.onError, message);
  /** Runs f; whatever it throws becomes onError (never out of a handler or timer). */
  const guarded = (f: (arg?: any) => void, arg?: any) => {
    try {
      f(arg);
    } catch (thrown) {
      reportError(("" + thrown) as ThrownText);
    }
  };
  /**
   * (Re)arms the one timer; armTimer() just stops it. Only a pending handle is ever
   * cleared: Espruino reuses timer ids (clearing a fired one could cancel another
   * module's timer) and throws "Unknown Timeout" for one that is gone.
   */
  const armTimer = (f?: () => void, delayMs?: number) => {
    timer != null && clock.clearTimeout(timer);
    timer = f && clock.setTimeout(() => ((timer = null), guarded(f)), delayMs!);
  };
  const send = (packet: any): void => {
    lastSentAt = clock.now();
    transport.write(encode(packet));
  };
  /** Sends an outbox entry (again): with DUP from then on. */
  const resend = (entry: OutboxEntry) => {
    send(entry);
    entry.dup = true;
  };
  /** Closes the transport for `reason` (reported); onClose(reason) follows, then a reconnect if wanted. */
  const closeWith = (reason: SessionCloseReason) => {
    reportError((closeReason = reason));
    transport.close();
  };
  const forgetSubscription = (topic: string) => (subscriptions = subscriptions.filter((s) => s.topic != topic));
  /** Next packet id: 1..65535, wrapping, never one in the outbox. */
  const nextPacketId = (): number => ((lastPacketId = (lastPacketId % MAX_PACKET_ID) + 1), outbox.some((entry) => entry.id == lastPacketId) ? nextPacketId() : lastPacketId);
  const enqueue = (packet: any, callback?: Callback) => {
    // a packet that cannot be encoded throws (encode), to the caller, and never enters the outbox
    outbox.length < options.maxInflight
      ? ((packet.id = nextPacketId()), (packet._callback = callback), encode(packet), outbox.push(packet), accepted && resend(packet))
      : callIfSet(callback, "full" satisfies CallbackError);
  };
  /**
   * Subscribes again to the refused filters, through the outbox (sent now or after the
   * next CONNACK; a full outbox drops the retry: the next connect without a session
   * subscribes to every filter anyway). Never throws: those filters were encoded before.
   * (refused: a scratch parameter)
   */
  const resubscribeRefused = (refused?: any) => {
    resubscribeTimer = 0;
    refused = subscriptions.filter((s) => s._refused);
    refused.length && enqueue({ type: SUBSCRIBE, subs: refused, _resubscribe: 1 });
  };
  /** Keep-alive: acts when due, then re-arms itself for the next deadline. */
  const keepAlive = () => {
    let dueInMs = (pingSentAt ? pingSentAt + pingTimeoutMs : Math.min(lastSentAt, lastReceivedAt) + keepAliveMs) - clock.now();
    if (keepAliveMs) {
      // (send() sets lastSentAt to now)
      dueInMs > 0 || pingSentAt || (send({ type: PINGREQ }), (pingSentAt = lastSentAt), (dueInMs = pingTimeoutMs));
      dueInMs > 0 ? armTimer(keepAlive, dueInMs) : closeWith("ping timeout");
    }
  };
  const onPacket = (packet: any) => {
    const type = packet.type, packetId = packet.id, qos = packet.qos, sendAck = (ackType: number) => send({ type: ackType, id: packetId });
    let returnCode: number, entry: OutboxEntry, callbackError: CallbackError | undefined, grantedQos;
    lastReceivedAt = clock.now();
    pingSentAt = 0;
    // the first packet must be CONNACK, and only the first
    if ((type == CONNACK) == accepted) return closeWith("protocol error");
    if (type == CONNACK) {
      // back-off: reset by an acceptance, longest after a refusal 4 or 5
      backoffMs = (returnCode = packet.returnCode) > SERVER_UNAVAILABLE ? options.backoffMax : returnCode ? backoffMs : options.backoffMin;
      if (returnCode) return closeWith(("refused: " + returnCode) as Refusal);
      accepted = me.connected = true;
      if (!packet.sessionPresent) {
        inboundQos2Ids = [];
        outbox = outbox.filter((entry) => !entry._resubscribe);
        subscriptions.length && outbox.unshift({ type: SUBSCRIBE, id: nextPacketId(), subs: subscriptions, _resubscribe: 1 });
      }
      outbox.map(resend);
      armTimer(keepAlive, 0);
      callIfSet(me.onConnect, packet.sessionPresent);
    } else if (type == PUBLISH) {
      if (qos < 2 || inboundQos2Ids.indexOf(packetId) < 0) {
        qos > 1 && inboundQos2Ids.push(packetId) > options.maxInflight && inboundQos2Ids.shift();
        callIfSet(me.onMessage, packet.topic, packet.payload, packet);
      }
      // PUBACK (QoS 1) or PUBREC (QoS 2): the type after PUBLISH by the QoS
      qos && sendAck(PUBLISH + qos);
    } else if (type == PUBREL) {
      inboundQos2Ids = inboundQos2Ids.filter((id) => id != packetId);
      sendAck(PUBCOMP);
    } else {
      // acks; a PUBREC is answered with PUBREL even for an unknown id
      type == PUBREC && sendAck(PUBREL);
      // the ack an entry waits for: PUBLISH + its QoS (PUBACK, PUBREC), else the type after its own
      entry = outbox.find((entry) => entry.id == packetId && (entry.type - PUBLISH ? entry.type + 1 : entry.qos + PUBLISH) == type);
      if (!entry) return;
      // PUBREC: the entry becomes its PUBREL, completed by PUBCOMP
      if (type == PUBREC) return void (entry.type = PUBREL);
      outbox = outbox.filter((other) => other != entry);
      type == SUBACK &&
        entry.subs.map((subscription: Subscription, index: number) => {
          forgetSubscription(subscription.topic);
          subscriptions.push(subscription);
          // a refused filter is reported, and tried again after the back-off
          (subscription._refused = (grantedQos = packet.granted[index]) > MAX_GRANTED_QOS) &&
            (resubscribeTimer || ((resubscribeTimer = clock.setTimeout(resubscribeRefused, resubscribeBackoffMs)), (resubscribeBackoffMs = Math.min(resubscribeBackoffMs * 2, options.backoffMax))),
            entry._callback ? (callbackError = "refused") : reportError(("subscription refused: " + subscription.topic) as `subscription refused: ${string}`));
        });
      callIfSet(entry._callback, callbackError, grantedQos);
    }
  };
  const sink: DecoderSink = {
    packet: (packet) => closeReason || guarded(onPacket, packet),
    // a drained PUBLISH at QoS 1/2 is acknowledged all the same (PUBACK / PUBREC)
    error: (message, fatal, ack) => (fatal ? closeWith(message) : (reportError(message), ack && send(ack))),
  };
  const open = () => {
    // a handler's callbacks act only while it is the current one
    const ifCurrent = (f: (arg: any) => void) => (arg?: any) => handler == currentHandler && guarded(f, arg);
    const handler: TransportHandler = (currentHandler = {
      onOpen: ifCurrent(() => {
        // the timer first: a CONNECT that cannot be encoded (a lone surrogate in the
        // client id) is reported by guarded(), and the time-out still ends this try
        armTimer(() => closeWith("connect timeout"), options.connectTimeout);
        send(options);
      }),
      onData: ifCurrent((bytes) => decoder.push(bytes, sink)),
      onClose: ifCurrent((reason) => {
        currentHandler = null;
        accepted = me.connected = false;
        if (connectWanted) {
          armTimer(open, (backoffMs * (1 + (options.random || Math.random)())) / 2);
          backoffMs = Math.min(backoffMs * 2, options.backoffMax);
        } else armTimer();
        callIfSet(me.onClose, closeReason || reason);
      }),
    });
    closeReason = "";
    decoder = new Decoder(options.maxPacket);
    transport.open(options.host, options.port, handler);
  };

  me.connect = () => {
    connectWanted = true;
    currentHandler || (armTimer(), open());
  };
  me.disconnect = () => {
    connectWanted = false;
    armTimer();
    accepted && send({ type: DISCONNECT });
    currentHandler && ((closeReason = "disconnect"), transport.close());
  };
  me.subscribe = (topic, qos, callback) => enqueue({ type: SUBSCRIBE, subs: [{ topic, qos }] }, callback);
  me.unsubscribe = (topic, callback) => {
    forgetSubscription(topic);
    enqueue({ type: UNSUBSCRIBE, topics: [topic] }, callback);
  };
  me.publish = (topic, payload, qos, retain, callback) => {
    const packet = { type: PUBLISH, topic, payload, qos, retain };
    qos ? enqueue(packet, callback) : callIfSet(callback, accepted ? send(packet) : ("offline" satisfies CallbackError));
  };
} as unknown as new (transport: Transport, clock: Clock, opts: MqttOptions) => MqttClient;
