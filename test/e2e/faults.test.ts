/**
 * End to end, faults the board must notice by itself: a modem gone silent, a broker
 * that keeps TCP up but answers nothing, and save() typed on a running board ("kill"
 * then "init" in the same interpreter). Built scripts in the virtual board, the modem
 * simulator, Aedes, a phone on MQTT.js (test/support/e2e-rig.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { pingTimes, startRig, type Rig } from "../support/e2e-rig";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const BOTH = [["pico", "esp8266"], ["pico", "sim800"]] as const;

describe("a modem gone silent", () => {
  for (const [board, modem] of BOTH) {
    it(`${board}-${modem}: the board notices by itself (time-outs), resets the module with its control pin, and is back once it answers`, async () => {
      rig = await startRig({ board, modem });
      const r = rig;
      await r.command("on");
      const mark = r.mark();
      const pulses = r.resetPulses;
      r.sim.mute(true); // no answer, no "CLOSED": only the board's own time-outs can tell
      await r.waitFor(() => r.resetPulses > pulses, "the board to reset the silent module", { timeoutMs: 600_000 });
      r.sim.mute(false);
      await r.waitOnline(mark, { timeoutMs: 600_000 });
      expect(r.received("led/state", mark).map((m) => m.payload)[0]).toBe("on");
      expect(r.lit()).toBe(true);
      await r.toggleObeyed("after the silent modem came back");
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});

describe("a half-dead broker (TCP up, nothing answered)", () => {
  for (const [board, modem] of BOTH) {
    it(`${board}-${modem}: the unanswered PINGREQ ends the link within 1.25 × keep-alive; the board is back once the broker answers`, async () => {
      rig = await startRig({ board, modem });
      const r = rig;
      await r.command("on");
      const connects = r.commands("AT+CIPSTART").length;
      const t0 = r.vb.now();
      r.broker.pause();
      await r.waitFor(() => r.commands("AT+CIPSTART").length > connects, "the board to give up the silent link", { timeoutMs: 200_000 });
      // last packet in ≤ t0; PINGREQ 60 s later; no answer for 15 s: closed; back-off 1-2 s
      expect(r.vb.now() - t0, "silent broker noticed within 1.25 × keep-alive (+ back-off)").toBeLessThanOrEqual(80_000);
      expect(pingTimes(r.wire).at(-1)! - t0).toBeGreaterThanOrEqual(59_000);
      const mark = r.mark();
      r.broker.resume();
      await r.waitOnline(mark, { timeoutMs: 300_000 });
      await r.idle(10_000);
      await r.toggleObeyed("after the broker answered again");
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});

describe("save() typed on a running board", () => {
  for (const [board, modem] of BOTH) {
    it(`${board}-${modem}: "kill" then "init" leave ONE session (no second client fighting the first), and it obeys`, async () => {
      rig = await startRig({ board, modem });
      const r = rig;
      await r.command("on");
      const mark = r.mark();
      const connects = r.commands("AT+CIPSTART").length;
      r.vb.eval("save()"); // Espruino: "kill", the RAM image is saved, timers kept, then "init"
      await r.waitFor(() => r.vb.saves === 1, "save()");
      await r.waitOnline(mark, { timeoutMs: 120_000 });
      // let it run: a second session would keep resetting the modem and flapping the link
      await r.idle(150_000);
      const onlines = r.received("led/status", mark).filter((m) => m.payload === "online").length;
      expect(onlines, `one reconnect after save(), not a flapping link: ${r.received("led/status", mark).map((m) => m.payload).join(" ")}`).toBe(1);
      expect(r.commands("AT+CIPSTART").length - connects, "connections after save()").toBe(1);
      // the LED and led/state agree, and the phone still switches it
      expect(await r.retained("led/state")).toBe(r.lit() ? "on" : "off");
      await r.toggleObeyed("after save()");
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});
