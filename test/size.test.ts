/**
 * Size is a budget (docs/CONTRIBUTING.md): each layer and each board script is
 * bundled afresh from the sources (scripts/build.ts measureSizes) and held to
 * its budget. Minified output is memoised by content, so after `npm run build`
 * this costs only the bundling.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import path from "node:path";
import { parse } from "acorn";
import { bundle, ROOT } from "../scripts/bundle";
import { BUDGETS, formatSizes, loadBoards, measureSizes, type BoardFile, type SizeReport } from "../scripts/build";

/** Board ids are the file names (loadBoards enforces it). */
const boardIds = readdirSync(path.join(ROOT, "boards")).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")).map((f) => f.slice(0, -3)).sort();
let boards: BoardFile[];
let report: SizeReport;
const scripts = new Map<string, string>();

beforeAll(async () => {
  boards = await loadBoards();
  report = await measureSizes({ boards, scripts });
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
    expect(layer("codec").bytes).toBeGreaterThan(0);
    expect(layer("codec").bytes).toBeLessThan(layer("codec+session").bytes);
    expect(layer("ESP8266 driver").bytes).toBeGreaterThan(0);
    expect(layer("SIM800 driver").bytes).toBeGreaterThan(0);
  });
});

describe("board scripts", () => {
  it("one script per board and modem", () => {
    const expected = boards.flatMap((b) => b.board.modems.map((m) => `${b.board.id}-${m}.js`)).sort();
    expect(report.scripts.map((s) => s.file).sort()).toEqual(expected);
  });
  for (const id of boardIds) {
    it(`${id}: each modem's script ≤ ${BUDGETS.script} bytes`, () => {
      const b = boards.find((x) => x.board.id === id)!;
      expect(b.board.modems.length).toBeGreaterThan(0);
      for (const modem of b.board.modems) {
        const s = report.scripts.find((x) => x.board === id && x.modem === modem)!;
        expect(s.vars).toBe(b.board.vars);
        expect(s.app).toBeGreaterThan(0);
        expect(s.bytes, s.file).toBeLessThanOrEqual(BUDGETS.script);
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
  it("strings found in only one driver appear only in that driver's scripts", async () => {
    const esp = literals(await bundle("src/modem/esp8266.ts"));
    const sim = literals(await bundle("src/modem/sim800.ts"));
    const espOnly = [...esp].filter((x) => !sim.has(x));
    const simOnly = [...sim].filter((x) => !esp.has(x));
    expect(espOnly.length).toBeGreaterThan(0);
    expect(simOnly.length).toBeGreaterThan(0);
    for (const s of report.scripts) {
      const lits = literals(scripts.get(s.file)!);
      const [own, other] = s.modem === "esp8266" ? [espOnly, simOnly] : [simOnly, espOnly];
      expect(own.some((x) => lits.has(x)), s.file).toBe(true);
      expect(other.filter((x) => lits.has(x)), s.file).toEqual([]);
    }
  }, 60_000);
});
