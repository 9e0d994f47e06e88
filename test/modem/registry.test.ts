/**
 * The modem registry (scripts/modems.ts) is complete: every kind it names has a
 * driver of the shape the app expects, registers its URC patterns with the AT
 * engine, has transcript fixtures and a simulator dialect; every board's modem
 * is a registry kind; the build, the configuration and the app take their
 * modem knowledge from it.
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { AtEngine } from "../../src/at/engine";
import type { ModemDriverModule } from "../../src/modem/driver";
import { BUDGETS, driverLayerName, loadBoards } from "../../scripts/build/build";
import { CONFIG_KEYS, ENV_KEYS, loadConfig } from "../../scripts/config";
import { controlPinOf, driverPath, fixturesPath, MODEM_KINDS, MODEMS, modemEntry } from "../../scripts/modems";
import { ROOT } from "../../scripts/build/bundle";
import { FakeClock } from "../support/fake-clock";
import type { BoardDef } from "../../src/board/board";

describe.each(MODEM_KINDS)("registry row %s", (kind) => {
  const entry = modemEntry(kind);

  it("has a driver of the app's shape that registers its URC patterns with the engine", async () => {
    expect(existsSync(path.join(ROOT, driverPath(kind)))).toBe(true);
    const driver = (await import(path.join(ROOT, driverPath(kind)))) as ModemDriverModule;
    const engine = new AtEngine({ write: () => {} }, new FakeClock(0));
    expect(engine.urcs).toEqual([]);
    const modem = new driver.Modem(engine, new FakeClock(0), {});
    expect(typeof modem.open).toBe("function");
    expect(engine.urcs.length).toBeGreaterThan(0);
    // each pattern within Espruino's limit of six top-level alternatives (docs/espruino.md)
    for (const urc of engine.urcs) expect(urc.source.split("|").length).toBeLessThanOrEqual(6);
  });

  it("wires its credentials (the registry's led.json section) and its control pin through modemOptions", async () => {
    const driver = (await import(path.join(ROOT, driverPath(kind)))) as ModemDriverModule;
    const pulsed: [string | undefined, number][] = [];
    const board = { enable: "A1", pwrkey: "B2" } as BoardDef;
    const credentials = Object.fromEntries(entry.configFields.map((field) => [field, `${field}-value`]));
    const options = driver.modemOptions(board, { [entry.configKey]: credentials }, (pin, ms) => (pulsed.push([pin, ms]), () => {}));
    expect(options).toMatchObject(credentials);
    expect(pulsed.map(([pin]) => pin)).toEqual([controlPinOf(board, kind)]);
  });

  it("has transcript fixtures and a simulator dialect that answers AT", { timeout: 15_000 }, async () => {
    const dir = path.join(ROOT, fixturesPath(kind));
    expect(readdirSync(dir).filter((f) => f.endsWith(".txt")).length).toBeGreaterThan(0);
    const sim = entry.simulator({}, { seed: 1 });
    let out = "";
    sim.on("tx", (chunk: string) => (out += chunk));
    entry.onControlPulse(sim);
    // probed as the drivers do until the booting module answers (at most 10 s)
    for (let probe = 0; probe < 100 && !/\r\nOK\r\n/.test(out); probe++) {
      sim.receive("AT\r\n");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    sim.close();
    expect(out).toMatch(/\r\nOK\r\n/);
  });

  it("gives the build its layer budget and the configuration its section and variables", () => {
    expect(BUDGETS[kind]).toBe(entry.driverBudget);
    expect(driverLayerName(kind)).toBe(`${entry.title} driver`);
    expect(CONFIG_KEYS[entry.configKey]).toEqual(entry.configFields);
    for (const [variable, key] of Object.entries(entry.env)) {
      expect(ENV_KEYS[variable]).toBe(key);
      expect(key.startsWith(entry.configKey + ".")).toBe(true);
    }
    // a configuration for this modem keeps this modem's section only
    const others = Object.values(MODEMS).filter((m) => m.configKey !== entry.configKey);
    const env = Object.fromEntries([...Object.values(MODEMS)].flatMap((m) => Object.keys(m.env).map((v) => [v, "x-12345678"])));
    const { config } = loadConfig({ env: { ...env, LED_BROKER_HOST: "h", LED_BROKER_PORT: "1883" }, modem: kind });
    expect(Object.keys(config)).toContain(entry.configKey);
    for (const other of others) expect(Object.keys(config)).not.toContain(other.configKey);
  });
});

describe("boards and the registry", () => {
  it("every board's modems are registry kinds", async () => {
    for (const { board } of await loadBoards()) for (const modem of board.modems) expect(MODEM_KINDS).toContain(modem);
  });

  it("an unknown kind is refused by the configuration", () => {
    expect(loadConfig({ env: {}, modem: "lte9000" }).errors).toEqual([`unknown modem "lte9000" (${MODEM_KINDS.join(", ")})`]);
  });
});
