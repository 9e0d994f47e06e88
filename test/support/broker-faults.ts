/**
 * The misbehaving-broker table (issue 9): each row is one fault — the broker's (via
 * the scripted broker in ./misbehaving-broker.ts) or the modem's (a stall) — and what
 * the board must do about it. Rows are plain data, so the same table runs on the
 * virtual board (test/e2e/misbehaving-broker.test.ts) and on a real interpreter.
 *
 * runFaultRow(row, board, broker) plays one row on a board that is connected and
 * subscribed (the broker's current connection is ready):
 * 1. `before`: a command applied first (LED and state report awaited);
 * 2. the fault: the broker ends the good connection and misbehaves on the next one
 *    (or the modem stalls while a PINGREQ falls due); the row's checks on that
 *    connection (`expect`); then it ends — by the board when `boardCloses`, which
 *    must then notice by itself, else by the broker once the checks passed;
 * 3. recovery: on the next connection the broker sends "toggle" (QoS 1) as soon as
 *    the board can hear it; the LED must flip and the board report the new state,
 *    within `recoverMs` of the fault (board time: the misbehaviour, or the stall's end);
 * 4. the board's console holds "mqtt " + `log` exactly once since the row began.
 * Times are board ms (keepAlive 60 s, the app's settings, as the rig's led.json).
 */
import { expect } from "vitest";
import { hex, publishBytes, publishId, type Conn, type Fault, type MisbehavingBroker } from "./misbehaving-broker";

export interface FaultRow {
  name: string;
  /** What the broker does on the faulty connection. */
  fault?: Fault;
  /** Instead: the modem stalls (input ignored, output held) `afterMs` after the last packet either way, for `ms`. */
  stall?: { afterMs: number; ms: number };
  /** A command applied before the fault. */
  before?: string;
  /** The broker keeps the session: CONNACK says so on reconnects, unacknowledged commands come again. */
  keepSession?: boolean;
  /** The reason the board logs, once ("mqtt " + log). */
  log?: string;
  /** The board ends the faulty connection itself; else the broker ends it after the checks. */
  boardCloses: boolean;
  expect?: {
    /** The board acknowledges the fault's PUBLISH (dropped as oversize) exactly once, over every connection. */
    ackOnce?: "puback" | "pubrec";
    /** After the refusal the board subscribes again within this many ms, and obeys a command on that connection. */
    resubscribeMs?: number;
    /** The LED ends in this state with exactly ONE state report after the fault, and the link stays up. */
    finalState?: "on" | "off";
  };
  /** Bound (board ms) from the fault to the LED obeying a command on the next connection. */
  recoverMs: number;
}

/** What runFaultRow needs of a board running the built firmware. */
export interface FaultBoard {
  /** Board time, ms. */
  now(): number;
  /** Runs the board until pred holds; throws `what` after timeoutMs of board time. */
  waitFor(pred: () => boolean, what: string, o?: { timeoutMs?: number }): Promise<void>;
  /** Runs the board for ms of board time. */
  idle(ms: number): Promise<void>;
  /** The LED, as its pin shows it. */
  lit(): boolean | undefined;
  /** The board's console lines so far. */
  readonly console: string[];
  /** Stalls the modem (input ignored, output held) or ends the stall. */
  stall(on: boolean): void;
  /** Extra context for failure messages. */
  diagnostics(): string;
}

const TOPIC = "led";
/** The board's PUBLISHes on led/state over a connection. */
const reports = (c: Conn) => c.packets.filter((x) => x.p.cmd == "publish" && x.p.topic == TOPIC + "/state").map((x) => String((x.p as { payload: Buffer }).payload));
const subscribes = (c: Conn) => c.packets.filter((x) => x.p.cmd == "subscribe");

/** 500 QoS 0 commands in one write: "on", "off", … ending with "off". */
const BURST = Array.from({ length: 500 }, (_, i) => publishBytes(TOPIC, i % 2 ? "off" : "on")).join("");
/** A 64 KB command (above the board's 2,048-byte packet limit). */
const BIG = "on" + " ".repeat(65534);
/** Reconnect bounds: the board closes at once (the SIM800 within its 5 s CIPCLOSE), backs off 1-2 s, reconnects. */
const QUICK = 15_000;
/** After a refusal 4 or 5 the board backs off the longest: 30-60 s. */
const LONG = 75_000;
/** A broker gone silent is noticed by the keep-alive: PINGREQ 60 s after the last packet, 15 s for its answer. */
const KEEPALIVE = 95_000;

export const FAULT_ROWS: FaultRow[] = [
  // the four faults of issue 9
  {
    name: "SUBACK 0x80 (a refused subscription): retried with back-off, heard once granted, subscribed again on the next connection",
    fault: { refuseSubscribe: 1 },
    log: "subscription refused: led",
    boardCloses: false,
    expect: { resubscribeMs: 5_000 },
    recoverMs: QUICK,
  },
  {
    name: "modem stalled 25 s (a PINGREQ falls due): the LED obeys within 10 s of the modem answering again",
    stall: { afterMs: 55_000, ms: 25_000 },
    boardCloses: true,
    recoverMs: 10_000,
  },
  {
    name: "an oversize QoS 1 PUBLISH (64 KB) on led: drained, acknowledged once, logged; not redelivered by a broker keeping the session",
    fault: { send: publishBytes(TOPIC, BIG, { qos: 1, id: 0x4242 }) },
    keepSession: true,
    log: "oversize",
    boardCloses: false,
    expect: { ackOnce: "puback" },
    recoverMs: QUICK,
  },
  {
    name: "an oversize QoS 2 PUBLISH (64 KB): drained, PUBREC once",
    fault: { send: publishBytes(TOPIC, BIG, { qos: 2, id: 0x4343 }) },
    keepSession: true,
    log: "oversize",
    boardCloses: false,
    expect: { ackOnce: "pubrec" },
    recoverMs: QUICK,
  },
  {
    name: "a burst of 500 QoS 0 commands in one write: the link stays up, the LED ends as last commanded, one state report",
    before: "on",
    fault: { send: BURST },
    boardCloses: false,
    expect: { finalState: "off" },
    recoverMs: QUICK,
  },
  // CONNACK
  ...[1, 2, 3, 4, 5].map((code): FaultRow => ({
    name: `CONNACK return code ${code}`,
    fault: { connack: hex("200200" + "0" + code) },
    log: "refused: " + code,
    boardCloses: true,
    recoverMs: code > 3 ? LONG : QUICK,
  })),
  { name: "CONNACK with reserved ack flags (20 02 02 00)", fault: { connack: hex("20020200") }, log: "flags", boardCloses: true, recoverMs: QUICK },
  { name: "CONNACK with reserved header flags (21 02 00 00)", fault: { connack: hex("21020000") }, log: "flags", boardCloses: true, recoverMs: QUICK },
  { name: "a second CONNACK", fault: { send: hex("20020000") }, log: "protocol error", boardCloses: true, recoverMs: QUICK },
  // 10 s for the CONNACK, then the usual reconnect
  { name: "no CONNACK at all", fault: { connack: null }, log: "connect timeout", boardCloses: true, recoverMs: 10_000 + QUICK },
  // malformed PUBLISHes and packets
  { name: "a remaining length of five bytes", fault: { send: hex("30 ff ff ff ff 7f") }, log: "length", boardCloses: true, recoverMs: QUICK },
  { name: "a PUBLISH whose topic is invalid UTF-8", fault: { send: publishBytes("\xc3\x28", "on") }, log: "utf8", boardCloses: true, recoverMs: QUICK },
  { name: "a PUBLISH to a wildcard topic (led/#)", fault: { send: publishBytes("led/#", "on") }, log: "topic", boardCloses: true, recoverMs: QUICK },
  { name: "a PUBLISH at QoS 3", fault: { send: publishBytes(TOPIC, "on", { flags: 6 }) }, log: "flags", boardCloses: true, recoverMs: QUICK },
  { name: "a PUBLISH at QoS 1 with packet id 0", fault: { send: publishBytes(TOPIC, "on", { qos: 1, id: 0 }) }, log: "id", boardCloses: true, recoverMs: QUICK },
  { name: "reserved packet type 0", fault: { send: hex("00 00") }, log: "type", boardCloses: true, recoverMs: QUICK },
  { name: "reserved packet type 15", fault: { send: hex("f0 00") }, log: "type", boardCloses: true, recoverMs: QUICK },
  // silence
  {
    name: "a truncated PUBLISH, then silence",
    fault: { send: publishBytes(TOPIC, "on" + " ".repeat(40)).slice(0, 9), pingresp: false },
    log: "ping timeout",
    boardCloses: true,
    recoverMs: KEEPALIVE,
  },
  { name: "PINGREQ never answered", fault: { pingresp: false }, log: "ping timeout", boardCloses: true, recoverMs: KEEPALIVE - 60_000 },
  {
    name: "a slow drip: a command trickling in a byte a second (real time), PINGREQ unanswered meanwhile",
    fault: { send: publishBytes(TOPIC, "off" + " ".repeat(30)), drip: 1000, pingresp: false },
    log: "ping timeout",
    boardCloses: true,
    recoverMs: KEEPALIVE,
  },
];

/** Waits until the broker's current connection, opened after `after`, can hear commands. */
async function nextReady(board: FaultBoard, broker: MisbehavingBroker, after: number, what: string, timeoutMs: number): Promise<Conn> {
  await board.waitFor(() => {
    const c = broker.current();
    return !!c && c.n > after && c.ready;
  }, what, { timeoutMs });
  return broker.current()!;
}

/** The broker sends `payload` to led (QoS 1) on c; waits for the LED to be `lit` and a report of it. */
async function obeyed(board: FaultBoard, broker: MisbehavingBroker, c: Conn, payload: string, lit: boolean, what: string): Promise<void> {
  // the board reports its state on every connect, 500 ms after it: counted before the
  // command, or it would pass for the command's report when the command arrives later
  // than that (a real interpreter on a sped-up clock)
  await board.waitFor(() => reports(c).length > 0, `${what}: the state report on connecting`, { timeoutMs: 10_000 });
  const n = reports(c).length;
  broker.publish(TOPIC, payload, 1);
  await board.waitFor(() => board.lit() === lit && reports(c).length > n, what, { timeoutMs: 10_000 });
  expect(reports(c).slice(n), `${what}: the state report`).toEqual([lit ? "on" : "off"]);
}

/** Plays one row (see the file comment); returns the recovery time in board ms. */
export async function runFaultRow(row: FaultRow, board: FaultBoard, broker: MisbehavingBroker): Promise<number> {
  const logs = board.console.length;
  const good = broker.current();
  if (!good?.ready) throw new Error("runFaultRow: the board must be connected and subscribed first");
  if (row.before) await obeyed(board, broker, good, row.before, row.before == "on", `"${row.before}" before the fault`);
  broker.keepSession = !!row.keepSession;
  let t0: number;
  let faulty: Conn;
  if (row.stall) {
    // keep-alive deadline: 60 s after the older of the last packet in and the last packet out
    const last = Math.min(good.packets.at(-1)!.at, broker.lastSent);
    await board.idle(Math.max(0, last + row.stall.afterMs - board.now()));
    faulty = good;
    board.stall(true);
    await board.idle(row.stall.ms);
    board.stall(false);
    t0 = board.now();
  } else {
    // a copy: the broker counts refusals down
    broker.nextFault = { ...row.fault };
    const k = broker.conns.length;
    broker.drop();
    await board.waitFor(() => broker.conns[k]?.faultAt !== undefined, `the broker to misbehave (${row.name})`, { timeoutMs: 180_000 });
    faulty = broker.conns[k];
    t0 = faulty.faultAt!;
    const e = row.expect ?? {};
    if (e.resubscribeMs) {
      await board.waitFor(() => faulty.ready, "the refused subscription to be retried", { timeoutMs: e.resubscribeMs });
      expect(subscribes(faulty).length, "SUBSCRIBEs on the refusing connection").toBe(2);
      await obeyed(board, broker, faulty, "toggle", !board.lit(), "a command once the subscription is granted");
    }
    if (e.ackOnce) {
      const type = e.ackOnce;
      const id = publishId(row.fault!.send!);
      const acks = () => broker.all().filter((x) => x.p.cmd == type && x.p.messageId == id).length;
      const lit = board.lit();
      await board.waitFor(() => acks() > 0, `the ${type.toUpperCase()} of the drained message`, { timeoutMs: 10_000 });
      await board.idle(3_000);
      expect(board.lit(), "the drained command is not applied").toBe(lit);
    }
    if (e.finalState) {
      const want = e.finalState == "on";
      const n = reports(faulty).length;
      await board.waitFor(() => board.lit() === want && reports(faulty).length > n, "the burst to be applied and reported", { timeoutMs: 30_000 });
      await board.idle(5_000);
      expect(reports(faulty).slice(n), "state reports after the burst").toEqual([e.finalState]);
      expect(board.lit()).toBe(want);
    }
    if (row.boardCloses) {
      await board.waitFor(() => !!faulty.closed, "the board to end the faulty connection", { timeoutMs: 180_000 });
      expect(faulty.closed!.by, `who ended the faulty connection (${faulty.garbage ?? ""})\n${board.diagnostics()}`).toBe("board");
    } else {
      expect(faulty.closed, "the link was kept").toBeUndefined();
      broker.drop();
    }
  }
  const next = await nextReady(board, broker, faulty.n, `a connection after the fault that can hear commands (${row.name})`, row.recoverMs + 60_000);
  if (!row.keepSession) expect(subscribes(next).map((x) => (x.p as { subscriptions: { topic: string }[] }).subscriptions.map((s) => s.topic)), "subscribed again").toEqual([[TOPIC]]);
  await obeyed(board, broker, next, "toggle", !board.lit(), `a command on the next connection (${row.name})`);
  const took = board.now() - t0;
  expect(took, `board ms from the fault to the LED obeying (${row.name})\n${board.diagnostics()}`).toBeLessThanOrEqual(row.recoverMs);
  if (row.expect?.ackOnce) {
    const id = publishId(row.fault!.send!);
    expect(broker.all().filter((x) => x.p.cmd == row.expect!.ackOnce && x.p.messageId == id).length, "acknowledged once, over every connection").toBe(1);
  }
  const said = board.console.slice(logs).filter((l) => l.startsWith("mqtt "));
  if (row.log) expect(said.filter((l) => l == "mqtt " + row.log), `logged once: ${JSON.stringify(said)}`).toHaveLength(1);
  return took;
}
