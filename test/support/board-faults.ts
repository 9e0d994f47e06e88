/**
 * The board fault table (issue 7), end to end: faults the board must notice BY ITSELF,
 * one row each: how the fault is injected (a knob of the modem simulator, the broker,
 * the board's own console), what the board must do about it while it lasts (awaited
 * within its bound, then checked), how the fault ends, and the checks once the board is
 * back online; every row ends with the phone's toggle obeyed and no problem in the rig
 * (no secret in a log, no data before a prompt...). test/e2e/faults.test.ts plays every
 * row on every target of BOARD_FAULT_TARGETS (built scripts in the virtual board, the
 * modem simulator, Aedes, an MQTT.js phone: ./e2e-rig.ts). The rows use only what every
 * modem has (the simulator's shared knobs, the control pin the registry names), so
 * adding a modem is adding its target.
 *
 * runBoardFaultRow(row, rig), on a board that is online:
 * 1. the LED is switched on, and the rig's state noted (`Before`);
 * 2. `inject`; the board must do `notices.done` within `notices.timeoutMs` board ms,
 *    then `notices.check` holds;
 * 3. `heal` ends the fault; the board is online again (a fresh "online" since the fault,
 *    or since it was noticed: `onlineSince`) within `onlineWithinMs`, runs `settleMs`
 *    more, and `back` holds;
 * 4. the phone's toggle is obeyed; the rig saw no problem.
 */
import { expect } from "vitest";
import type { ModemKind } from "../../scripts/modems";
import { pingTimes, type Rig } from "./e2e-rig";

/** The boards and modems every row runs on. */
export const BOARD_FAULT_TARGETS: readonly (readonly [board: string, modem: ModemKind])[] = [
  ["pico", "esp8266"],
  ["pico", "sim800"],
  ["pico", "sim7600"],
];

/** The rig just before the fault: board time, the phone's message mark, control-pin pulses, connections opened (the modem's open command, Rig.opens()). */
export interface Before {
  t0: number;
  mark: number;
  resetPulses: number;
  connects: number;
}

export interface BoardFaultRow {
  /** The fault (a describe block). */
  fault: string;
  /** What the board must do (the test's name, after "<board>-<modem>: "). */
  expect: string;
  inject(r: Rig): void;
  /** What the board does about it by itself while the fault lasts (timeoutMs: board ms; absent: the rig's default). */
  notices: { what: string; done(r: Rig, before: Before): boolean; timeoutMs?: number; check?(r: Rig, before: Before): void };
  /** Ends the fault once the board noticed it (absent: it ends by itself). */
  heal?(r: Rig): void;
  /** Where the fresh "online" is counted from. */
  onlineSince: "the fault" | "noticed";
  onlineWithinMs: number;
  /** Board ms run once online, before `back` (a flapping link would show). */
  settleMs?: number;
  /** Checks once the board is back. */
  back?(r: Rig, before: Before): void | Promise<void>;
  /** The last check's label: the phone's toggle obeyed "after ...". */
  toggleAfter: string;
}

export const BOARD_FAULT_ROWS: BoardFaultRow[] = [
  {
    fault: "a modem gone silent",
    expect: "the board notices by itself (time-outs), resets the module with its control pin, and is back once it answers",
    inject: (r) => r.sim.mute(true), // no answer, no "CLOSED": only the board's own time-outs can tell
    notices: { what: "the board to reset the silent module", done: (r, before) => r.resetPulses > before.resetPulses, timeoutMs: 600_000 },
    heal: (r) => r.sim.mute(false),
    onlineSince: "the fault",
    onlineWithinMs: 600_000,
    back: (r, before) => {
      expect(r.received("led/state", before.mark).map((m) => m.payload)[0]).toBe("on");
      expect(r.lit()).toBe(true);
    },
    toggleAfter: "after the silent modem came back",
  },
  {
    fault: "a half-dead broker (TCP up, nothing answered)",
    expect: "the unanswered PINGREQ ends the link within 1.25 × keep-alive; the board is back once the broker answers",
    inject: (r) => r.broker.pause(),
    notices: {
      what: "the board to give up the silent link",
      done: (r, before) => r.opens() > before.connects,
      timeoutMs: 200_000,
      check: (r, before) => {
        // last packet in ≤ t0; PINGREQ 60 s later; no answer for 15 s: closed; back-off 1-2 s
        expect(r.vb.now() - before.t0, "silent broker noticed within 1.25 × keep-alive (+ back-off)").toBeLessThanOrEqual(80_000);
        expect(pingTimes(r.wire).at(-1)! - before.t0).toBeGreaterThanOrEqual(59_000);
      },
    },
    heal: (r) => r.broker.resume(),
    onlineSince: "noticed",
    onlineWithinMs: 300_000,
    settleMs: 10_000,
    toggleAfter: "after the broker answered again",
  },
  {
    fault: "save() typed on a running board",
    expect: `"kill" then "init" leave ONE session (no second client fighting the first), and it obeys`,
    inject: (r) => r.vb.eval("save()"), // Espruino: "kill", the RAM image is saved, timers kept, then "init"
    notices: { what: "save()", done: (r) => r.vb.saves === 1 },
    onlineSince: "the fault",
    onlineWithinMs: 120_000,
    // let it run: a second session would keep resetting the modem and flapping the link
    settleMs: 150_000,
    back: async (r, before) => {
      const onlines = r.received("led/status", before.mark).filter((m) => m.payload === "online").length;
      expect(onlines, `one reconnect after save(), not a flapping link: ${r.received("led/status", before.mark).map((m) => m.payload).join(" ")}`).toBe(1);
      expect(r.opens() - before.connects, "connections after save()").toBe(1);
      // the LED and led/state agree, and the phone still switches it
      expect(await r.retained("led/state")).toBe(r.lit() ? "on" : "off");
    },
    toggleAfter: "after save()",
  },
];

/** Plays one row on a board that is online (see the file comment). */
export async function runBoardFaultRow(row: BoardFaultRow, r: Rig): Promise<void> {
  await r.command("on");
  const before: Before = { t0: r.vb.now(), mark: r.mark(), resetPulses: r.resetPulses, connects: r.opens() };
  row.inject(r);
  await r.waitFor(() => row.notices.done(r, before), row.notices.what, { timeoutMs: row.notices.timeoutMs });
  row.notices.check?.(r, before);
  const since = row.onlineSince == "noticed" ? r.mark() : before.mark;
  row.heal?.(r);
  await r.waitOnline(since, { timeoutMs: row.onlineWithinMs });
  if (row.settleMs) await r.idle(row.settleMs);
  await row.back?.(r, before);
  await r.toggleObeyed(row.toggleAfter);
  expect(r.problems(), r.diagnostics()).toEqual([]);
}
