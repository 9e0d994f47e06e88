/**
 * End to end, every built script (firmware/<board>-<modem>.js for each board in boards/
 * and each of its modems): the exact bytes in the virtual board, the modem simulator,
 * Aedes, and a phone on MQTT.js. The phone's commands switch the LED pin (polarity
 * honoured), the board reports led/state (retained) and led/status "online".
 * The build is not run here: `npm test` builds first (see test/support/e2e-rig.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { expectedScripts, startRig, type Rig } from "../support/e2e-rig";

const scripts = await expectedScripts();

/** payload → LED lit afterwards (null: ignored, nothing changes). Starts dark. */
const COMMANDS: Array<[string, boolean | null]> = [
  ["on", true],
  ["off", false],
  ["toggle", true],
  ["0", false],
  ["1", true],
  ["turn on please", null], // junk while lit: nothing changes
  [" Off ", false],
  ["TRUE", true],
  ["false", false],
  ["\xff\x00junk", null], // junk while dark
];

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** Runs COMMANDS through the phone and checks the pin, led/state and the log after each. */
async function runCommands(r: Rig): Promise<void> {
  const ledPin = r.ledPin;
  expect(r.vb.pin(ledPin), "LED driven dark at boot").toBe(r.level(false));
  expect(r.received("led/status").map((m) => m.payload)).toEqual(["online"]);
  expect(r.received("led/state").map((m) => m.payload)).toEqual(["off"]);
  const start = r.mark();
  const expectedStates: string[] = [];
  let lit = false;
  for (const [payload, next] of COMMANDS) {
    const logs = r.vb.console.length;
    const state = await r.command(payload);
    if (next === null) {
      expect(state, `${JSON.stringify(payload)} must not change led/state`).toBeUndefined();
      const line = r.vb.console.slice(logs).find((l) => l.startsWith("led: ignored"));
      expect(line, `a log line for the ignored ${JSON.stringify(payload)}`).toBe("led: ignored " + JSON.stringify(payload.slice(0, 16)));
    } else {
      lit = next;
      expectedStates.push(lit ? "on" : "off");
      expect(state, `led/state after ${JSON.stringify(payload)}`).toBe(lit ? "on" : "off");
    }
    expect(r.vb.pin(ledPin), `pin ${ledPin} after ${JSON.stringify(payload)}`).toBe(r.level(lit));
  }
  // one led/state per accepted command, none for the junk
  expect(r.received("led/state", start).map((m) => m.payload)).toEqual(expectedStates);
  expect(await r.retained("led/state")).toBe(lit ? "on" : "off");
  expect(await r.retained("led/status")).toBe("online");
  expect(r.opens(), "one connection for the whole run").toBe(1);
  expect(r.problems(), r.diagnostics()).toEqual([]);
}

describe("every built script obeys the phone (Aedes)", () => {
  it("the build made a script for each board × modem", () => {
    const missing = scripts.filter((s) => !existsSync(s.file)).map((s) => `firmware/${s.name}.js`);
    expect(missing, "missing scripts: run `npm run build` first").toEqual([]);
    expect(scripts.length).toBeGreaterThanOrEqual(11);
  });

  for (const s of scripts) {
    it(`${s.name}: on/off/toggle/1/0/TRUE/" Off "/false and junk; led/state and led/status retained`, async () => {
      rig = await startRig({ board: s.board.id, modem: s.modem });
      await runCommands(rig);
    });
  }

  it("ledActiveLow in led.json inverts the pin (pico-esp8266)", async () => {
    rig = await startRig({ board: "pico", modem: "esp8266", config: { ledActiveLow: true } });
    expect(rig.activeLow).toBe(true);
    expect(rig.vb.pin("B2"), "dark = high").toBe(1);
    await runCommands(rig);
  });

  it("ledActiveLow and ledPin from led.json (linux-sim800, LED on D5)", async () => {
    rig = await startRig({ board: "linux", modem: "sim800", config: { ledActiveLow: true, ledPin: "D5" } });
    expect(rig.vb.pin("D5")).toBe(1);
    await rig.command("on");
    expect(rig.vb.pin("D5")).toBe(0);
    expect(rig.vb.pin("D17"), "the board's default LED is left alone").toBeUndefined();
    await rig.command("toggle");
    expect(rig.vb.pin("D5")).toBe(1);
    expect(rig.problems(), rig.diagnostics()).toEqual([]);
  });
});
