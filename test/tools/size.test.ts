/**
 * Size is a budget (docs/CONTRIBUTING.md). The layers (codec, session, AT engine,
 * drivers) are bundled afresh from the sources (scripts/build/build.ts measureLayers);
 * the board scripts are the firmware/*.js that `npm run build` has just written
 * (`npm test` builds first), measured as the build measures them. Each is held
 * to its budget.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "acorn";
import { ROOT } from "../../scripts/build/bundle";
import {
  BUDGETS, driverLayerName, formatSizes, loadBoards, measureLayers, scriptFile, sizeReport,
  type BoardFile, type BuiltScript, type SizeReport,
} from "../../scripts/build/build";

const FIRMWARE = path.join(ROOT, "firmware");
/** Board ids are the file names (loadBoards enforces it). */
const boardIds = readdirSync(path.join(ROOT, "boards")).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")).map((f) => f.slice(0, -3)).sort();
let boards: BoardFile[];
let report: SizeReport;
/** Layer texts by entry (a driver's without the AT engine). */
const layerCode = new Map<string, string>();
/** Built script texts by file name. */
const scripts = new Map<string, string>();
/** firmware/<board>-<modem>.js files a board and modem call for that are not there. */
let missing: string[] = [];

beforeAll(async () => {
  boards = await loadBoards();
  const layers = await measureLayers(undefined, layerCode);
  const built: BuiltScript[] = [];
  for (const b of boards) {
    for (const modem of b.board.modems) {
      const file = scriptFile(b, modem);
      const full = path.join(FIRMWARE, file);
      if (!existsSync(full)) {
        missing.push("firmware/" + file);
        continue;
      }
      const code = readFileSync(full, "utf8");
      scripts.set(file, code);
      built.push({ board: b, modem, file, code });
    }
  }
  report = sizeReport(layers, built);
  console.log(formatSizes(report));
}, 240_000);

const layer = (name: string) => {
  const l = report.layers.find((x) => x.name === name);
  if (!l) throw new Error("no layer " + name);
  return l;
};

describe("layer budgets", () => {
  it(`codec+session ≤ ${BUDGETS.codecSession} bytes`, () => {
    expect(layer("codec+session").bytes).toBeLessThanOrEqual(BUDGETS.codecSession);
  });
  it(`AT engine ≤ ${BUDGETS.at} bytes`, () => {
    expect(layer("AT engine").bytes).toBeLessThanOrEqual(BUDGETS.at);
  });
  it(`ESP8266 driver (without the AT engine) ≤ ${BUDGETS.esp8266} bytes`, () => {
    expect(layer("ESP8266 driver").bytes).toBeLessThanOrEqual(BUDGETS.esp8266);
  });
  it(`SIM800 driver (without the AT engine) ≤ ${BUDGETS.sim800} bytes`, () => {
    expect(layer("SIM800 driver").bytes).toBeLessThanOrEqual(BUDGETS.sim800);
  });
  it("the codec is part of codec+session; every layer is measured", () => {
    expect(layer("codec").bytes).toBeLessThan(layer("codec+session").bytes);
    for (const l of report.layers) if (l.name !== "app") expect(Number.isNaN(l.bytes), l.name).toBe(false);
  });
});

describe("board scripts", () => {
  it("one script per board and modem, all built (npm test runs npm run build first)", () => {
    expect(missing, "missing firmware scripts: run `npm run build`").toEqual([]);
    const expected = boards.flatMap((b) => b.board.modems.map((m) => scriptFile(b, m))).sort();
    expect(report.scripts.map((s) => s.file).sort()).toEqual(expected);
  });
  for (const id of boardIds) {
    it(`${id}: each modem's script ≤ ${BUDGETS.script} bytes`, () => {
      const b = boards.find((x) => x.board.id === id)!;
      expect(b.board.modems.length).toBeGreaterThan(0);
      for (const modem of b.board.modems) {
        const s = report.scripts.find((x) => x.board === id && x.modem === modem);
        expect(s, `firmware/${scriptFile(b, modem)} is missing: run \`npm run build\``).toBeDefined();
        expect(s!.vars).toBe(b.board.vars);
        // the layers it is made of add up to less than the script: the app is the rest
        const layersBytes = layer("codec+session").bytes + layer("AT engine").bytes + layer(driverLayerName(modem)).bytes;
        expect(layersBytes).toBeLessThan(s!.bytes);
        expect(s!.app).toBe(s!.bytes - layersBytes);
        expect(s!.bytes, s!.file).toBeLessThanOrEqual(BUDGETS.script);
      }
    });
  }
});

/** String literals (6+ chars) of a script. */
function literals(code: string): Set<string> {
  const out = new Set<string>();
  const walk = (n: any) => {
    if (!n || typeof n !== "object") return;
    if (n.type === "Literal" && typeof n.value === "string" && n.value.length >= 6) out.add(n.value);
    for (const k of Object.keys(n)) if (k !== "type") Array.isArray(n[k]) ? n[k].forEach(walk) : walk(n[k]);
  };
  walk(parse(code, { ecmaVersion: "latest", sourceType: "module" }));
  return out;
}

describe("each script holds only its own modem driver", () => {
  it("strings found in only one driver appear only in that driver's scripts", () => {
    // the drivers as the layers measured them: each bundled without the AT engine, which both share
    const esp = literals(layerCode.get("src/modem/esp8266.ts")!);
    const sim = literals(layerCode.get("src/modem/sim800.ts")!);
    const espOnly = [...esp].filter((x) => !sim.has(x));
    const simOnly = [...sim].filter((x) => !esp.has(x));
    expect(espOnly.length).toBeGreaterThan(0);
    expect(simOnly.length).toBeGreaterThan(0);
    expect(missing, "missing firmware scripts: run `npm run build`").toEqual([]);
    for (const s of report.scripts) {
      const lits = literals(scripts.get(s.file)!);
      const [own, other] = s.modem === "esp8266" ? [espOnly, simOnly] : [simOnly, espOnly];
      expect(own.some((x) => lits.has(x)), s.file).toBe(true);
      expect(other.filter((x) => lits.has(x)), s.file).toEqual([]);
    }
  });
});
