import { describe, expect, it } from "vitest";
import { LED_IGNORE, LED_OFF, LED_ON, LED_TOGGLE, nextLevel, parseCommand } from "../../src/app/led";

describe("LED commands (src/app/led.ts)", () => {
  it.each([
    ["on", LED_ON], ["ON", LED_ON], [" On \r\n", LED_ON], ["1", LED_ON], ["true", LED_ON], ["TRUE", LED_ON],
    ["off", LED_OFF], ["Off", LED_OFF], ["\toff ", LED_OFF], ["0", LED_OFF], ["false", LED_OFF],
    ["toggle", LED_TOGGLE], ["TOGGLE", LED_TOGGLE],
    ["", LED_IGNORE], ["  ", LED_IGNORE], ["onn", LED_IGNORE], ["o n", LED_IGNORE], ["2", LED_IGNORE],
    ["on off", LED_IGNORE], ["\u0000on", LED_IGNORE], ["\xff\xfe", LED_IGNORE], ["yes", LED_IGNORE],
  ])("%j → %i", (payload, want) => {
    expect(parseCommand(payload)).toBe(want);
  });

  it("toggles, and on/off set the level whatever it was", () => {
    expect(nextLevel(LED_TOGGLE, false)).toBe(true);
    expect(nextLevel(LED_TOGGLE, true)).toBe(false);
    expect(nextLevel(LED_ON, false)).toBe(true);
    expect(nextLevel(LED_ON, true)).toBe(true);
    expect(nextLevel(LED_OFF, true)).toBe(false);
    expect(nextLevel(LED_OFF, false)).toBe(false);
  });
});
