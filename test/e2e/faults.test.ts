/**
 * End to end, faults the board must notice by itself: a modem gone silent, a broker
 * that keeps TCP up but answers nothing, and save() typed on a running board ("kill"
 * then "init" in the same interpreter). The table is BOARD_FAULT_ROWS in
 * test/support/board-faults.ts; each row runs on every board and modem of
 * BOARD_FAULT_TARGETS: built scripts in the virtual board, the modem simulator, Aedes,
 * a phone on MQTT.js (test/support/e2e-rig.ts).
 */
import { afterEach, describe, it } from "vitest";
import { startRig, type Rig } from "../support/e2e-rig";
import { BOARD_FAULT_ROWS, BOARD_FAULT_TARGETS, runBoardFaultRow } from "../support/board-faults";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

for (const row of BOARD_FAULT_ROWS) {
  describe(row.fault, () => {
    for (const [board, modem] of BOARD_FAULT_TARGETS) {
      it(`${board}-${modem}: ${row.expect}`, async () => {
        rig = await startRig({ board, modem });
        await runBoardFaultRow(row, rig);
      });
    }
  });
}
