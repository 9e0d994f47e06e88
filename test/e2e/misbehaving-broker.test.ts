/**
 * End to end, a misbehaving broker and a stalled modem (issue 9): the built firmware in
 * the virtual board (fake clock), the modem simulator, and the scripted broker of
 * test/support/misbehaving-broker.ts. The table is FAULT_ROWS in
 * test/support/broker-faults.ts (plain data: the real-interpreter tier runs the same
 * rows); each row ends with the LED obeying a command on the next connection within
 * its bound of board time, and the board's one log line for the reason. One board per
 * modem lives through every row in turn, as a device on a wall would.
 * Then the refused subscription against a real Mosquitto whose ACL is edited while the
 * board runs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { SECRETS, bounded, realWait, startRig, type Rig } from "../support/e2e-rig";
import { startMisbehavingBroker, type MisbehavingBroker } from "../support/misbehaving-broker";
import { FAULT_ROWS, runFaultRow, type FaultBoard } from "../support/broker-faults";

/** The board's side of runFaultRow, over the rig. */
function faultBoard(r: Rig): FaultBoard {
  return {
    now: () => r.vb.now(),
    waitFor: (pred, what, o) => r.waitFor(pred, what, { timeoutMs: o?.timeoutMs }),
    idle: (ms) => r.idle(ms),
    lit: () => r.lit(),
    get console() {
      return r.vb.console;
    },
    stall: (on) => r.sim.stall(on),
    diagnostics: () => r.diagnostics(),
  };
}

for (const modem of ["esp8266", "sim800"] as const) {
  describe(`pico-${modem} against a misbehaving broker, one fault after another`, () => {
    let rig: Rig | undefined;
    let broker: MisbehavingBroker | undefined;
    let board: FaultBoard;
    beforeAll(async () => {
      broker = await startMisbehavingBroker({ now: () => (rig ? rig.vb.now() : 0) });
      rig = await startRig({ board: "pico", modem, broker, phone: false, boot: false });
      board = faultBoard(rig);
      rig.boot();
      const b = broker;
      await board.waitFor(() => !!b.current()?.ready, "the first connection", { timeoutMs: 60_000 });
    });
    afterAll(async () => {
      await rig?.close();
      await broker?.stop();
    });
    afterEach(() => {
      expect(rig!.problems(), rig!.diagnostics()).toEqual([]);
    });

    for (const row of FAULT_ROWS) {
      it(row.name, async () => {
        const took = await runFaultRow(row, board, broker!);
        if (process.env.E2E_ECHO_TIMES) console.log(`pico-${modem}: ${Math.round(took)} ms to recover from: ${row.name}`);
      });
    }
  });
}

describe("a refused subscription on a real Mosquitto whose ACL is edited while the board runs", () => {
  let rig: Rig | undefined;
  afterAll(async () => {
    await rig?.close();
  });

  it("pico-sim800: SUBACK 0x80 for led (dynamic-security ACL); the board retries by itself, logs it once, and obeys once the ACL allows it", async () => {
    const users = { board: SECRETS.brokerPassword, phone: "phone-pw-9", admin: "admin-pw-9" };
    const r = (rig = await startRig({
      board: "pico",
      modem: "sim800",
      broker: "mosquitto",
      // the board may publish its state and presence, not hear led; the phone may do anything
      mosquitto: { users, dynsec: { board: ["led/state", "led/status"], admin: ["$CONTROL/dynamic-security/#"] } },
      config: { broker: { host: "broker.example", port: 1883, username: "board", password: SECRETS.brokerPassword } },
      phoneAuth: { username: "phone", password: users.phone },
    }));
    const subscribes = () => r.boardBytes().split("\x82\x08\x00").length - 1; // SUBSCRIBE of "led" (remaining length 8)
    const refused = () => r.vb.console.filter((l) => l == "mqtt subscription refused: led").length;
    await r.waitFor(() => subscribes() >= 3, "the board to retry the refused subscription", { timeoutMs: 30_000 });
    expect(refused(), "a repeated refusal is logged once").toBe(1);
    // deaf meanwhile
    await r.publish("led", "on");
    await r.idle(2_000);
    expect(r.lit()).toBe(false);

    // the administrator lets the board hear led
    const admin = mqtt.connect(`mqtt://127.0.0.1:${r.broker.port}`, { username: "admin", password: users.admin, reconnectPeriod: 0, clientId: "admin-9" });
    admin.on("error", () => {});
    try {
      await realWait(() => admin.connected, 5000, "the admin to connect");
      const answers: string[] = [];
      admin.on("message", (_t, p) => answers.push(p.toString()));
      await bounded(admin.subscribeAsync("$CONTROL/dynamic-security/v1/response"), 5000, "admin subscribe");
      const acl = (acltype: string) => ({ command: "addRoleACL", rolename: "r-board", acltype, topic: "led", allow: true });
      await bounded(admin.publishAsync("$CONTROL/dynamic-security/v1", JSON.stringify({ commands: [acl("subscribePattern"), acl("publishClientReceive")] })), 5000, "admin publish");
      await realWait(() => answers.length > 0, 5000, "the ACL change to be answered");
      expect(answers[0]).not.toContain("error");
    } finally {
      admin.end(true);
    }
    const granted = r.mark();
    const t0 = r.vb.now();
    const before = subscribes();
    // Mosquitto's dynamic-security plugin disconnects the clients of a role it changed: the
    // board reconnects, and its next SUBSCRIBE of led is granted — the retry of the refused
    // filter (back-off doubling from 1 s, at most 60 s) when the broker kept the session,
    // else the re-subscribe of a connect without one
    await r.waitFor(() => subscribes() > before, "the next retry", { timeoutMs: 61_000 });
    await r.idle(1_000);
    const state = await r.command("toggle");
    expect(state).toBe("on");
    expect(r.lit()).toBe(true);
    expect(r.vb.now() - t0, "heard within the back-off").toBeLessThanOrEqual(65_000);
    expect(r.received("led/state", granted).map((m) => m.payload).at(-1)).toBe("on");
    expect(refused()).toBe(1);
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });
});
