/**
 * The misbehaving-broker table (FAULT_ROWS, test/support/broker-faults.ts) on the real
 * Espruino interpreter: the built firmware/linux-<modem>.js for both modems, booted
 * from Storage in ESPRUINO_BIN, its modem UART a pty to the modem simulator, against
 * the scripted broker of test/support/misbehaving-broker.ts. The same rows as the
 * virtual board's test/e2e-misbehaving-broker.test.ts, through the same runFaultRow:
 * each ends with the LED obeying a command on the next connection within its bound of
 * board time, and the board's one log line for the reason. One board per modem lives
 * through every row in turn.
 *
 * The rows' bounds are board time; the interpreter's clock runs faster than real time
 * (libfaketime: ×5 by default, BROKER_FAULTS_SPEED overrides it), and board time maps to
 * real time as described in test/support/real-fault-board.ts: board ms = real ms × the
 * speed; the simulator, socat and the broker keep real time, so their latency, and the
 * interpreter's own work, count that many times over on the board's clock. At ×10 the
 * SIM800's recovery after a modem stall came to 9.7-11.4 s of board time against its
 * 10 s bound (4.1 s at ×1, 6.9 s at ×5): ×5 leaves the rig's share small. The rows
 * bounded by the interpreter's own work (the burst, the oversize drains) run at ×1 on a
 * board of their own (see OWN_SPEED).
 *
 * The LED is what the firmware writes to its pin, seen through a `.boot0` tap on
 * digitalWrite (this interpreter has no GPIO to read back; see the same file).
 *
 * Time: 240 s on a 2-core machine (about 100 s per modem at ×5, 11 s for each burst at
 * ×1); each row is bounded (200 s of board time, + 30 s real). Local tier only: skipped
 * with the reason when ESPRUINO_BIN is unset.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FAULT_ROWS, runFaultRow, type FaultRow } from "../support/broker-faults";
import { ESPRUINO_BIN, faketimeLibFor, realBoardUnavailable } from "../support/real-board";
import { startRealFaultRig, type RealFaultRig } from "../support/real-fault-board";
import type { ModemKind } from "../../src/board/board";

const why = realBoardUnavailable() || (faketimeLibFor(ESPRUINO_BIN) ? "" : "libfaketime for this interpreter's word size is not installed (faketime, libfaketime:i386)");
if (why) console.log(`test/espruino/broker-faults.test.ts skipped: ${why}`);

const SPEED = Number(process.env.BROKER_FAULTS_SPEED) || 5;
/** Real ms a row may take at `speed`: the longest row's board time (under 200 s: a keep-alive row and the waits after it), with room for the rig. */
const rowRealMs = (speed: number) => 200_000 / speed + 30_000;

/**
 * Rows run at the interpreter's own speed (clock ×1) on a board of their own. The clock
 * speed-up stretches the interpreter's own work too, as its clock sees it: the burst row
 * is bounded by how long the interpreter takes over 500 commands, and at ×10 that came to
 * more than the AT engine's 3 s bound on the send prompt queued behind them (the board
 * then resets its modem, and the module, still waiting for the data of that send,
 * swallows the resets as data). At ×1 it is what this PC's interpreter takes (about
 * 0.5 s); an STM32 is slower still.
 */
const OWN_SPEED = (r: FaultRow) => !!(r.expect?.finalState || r.expect?.ackOnce);

/**
 * Rows not run, with the reason (none now). The oversize rows used to fail here, and only
 * here: this interpreter works through a 64 KB +IPD message at about 9 KB/s, and the
 * AT+CIPSEND of the board's next output (its PUBACK) waited for its "> " behind those
 * bytes; the AT engine's 3 s prompt bound fired first and the late prompt then swallowed
 * the next command. The engine now restarts the prompt's wait while received data is
 * still arriving, and gives a late prompt the bytes it is owed.
 */
const SKIP: Record<string, string> = {};
for (const [name, reason] of Object.entries(SKIP)) if (!why) console.log(`test/espruino/broker-faults.test.ts: row skipped: ${name}: ${reason}`);

/** Console lines that mean the interpreter itself went wrong. */
const BROKEN = /Uncaught|Out of Memory|ASSERT|interpreter error|FIFO_FULL/i;

/** One board (one interpreter) per modem and speed, living through its rows in turn. */
function table(modem: ModemKind, speed: number, rows: FaultRow[]): void {
  describe(`real interpreter (clock ×${speed}), linux-${modem} against a misbehaving broker, one fault after another`, () => {
    let rig: RealFaultRig | undefined;
    let from = 0;
    const live = rows.filter((r) => !SKIP[r.name]);
    beforeAll(async () => {
      if (!live.length) return;
      rig = await startRealFaultRig({ bin: ESPRUINO_BIN, modem, speed, echo: process.env.E2E_ECHO === "1" });
      const b = rig.broker;
      await rig.board.waitFor(() => !!b.current()?.ready, "the first connection", { timeoutMs: 60_000 * speed });
    }, 90_000);
    afterAll(async () => {
      await rig?.stop();
    });
    // every row starts on a board that is connected and subscribed (after a failed row too)
    beforeEach(async () => {
      const b = rig!.broker;
      await rig!.board.waitFor(() => !!b.current()?.ready, "a connected and subscribed board before the row", { timeoutMs: 120_000 });
    }, 30_000);
    afterEach(() => {
      const r = rig!;
      const lines = r.rb.lines.slice(from);
      from = r.rb.lines.length;
      expect(r.rb.alive, "the interpreter is still running").toBe(true);
      expect(lines.filter((l) => BROKEN.test(l)), r.board.diagnostics()).toEqual([]);
      expect(r.rb.sim.violations, "the modem simulator's violations").toEqual([]);
    });

    for (const row of rows) {
      it.skipIf(!!SKIP[row.name])(row.name, async () => {
        const took = await runFaultRow(row, rig!.board, rig!.broker);
        if (process.env.E2E_ECHO_TIMES) console.log(`linux-${modem} (real interpreter, clock ×${speed}): ${Math.round(took)} board ms to recover from: ${row.name}`);
      }, rowRealMs(speed));
    }
  });
}

describe.skipIf(!!why)("the misbehaving-broker table on the real interpreter", () => {
  for (const modem of ["esp8266", "sim800"] as ModemKind[]) {
    table(modem, SPEED, FAULT_ROWS.filter((r) => !OWN_SPEED(r)));
    table(modem, 1, FAULT_ROWS.filter(OWN_SPEED));
  }
});
