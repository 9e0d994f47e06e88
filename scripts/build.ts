/**
 * `npm run build`: type-checks, then bundles src/app/main.ts once per board
 * (boards/*.ts) and modem (board.modems) into firmware/<board>-<modem>.js,
 * checks every script against the Espruino contract (scripts/espruino-check.ts)
 * and prints the size table against the budgets.
 *
 * Virtual modules: "virtual:board" is the board's default export (boards/<id>.ts),
 * "virtual:modem" is `export * from "src/modem/<modem>.ts"`, so a script holds only
 * the driver it runs.
 *
 * Options (CLI): --entry <file.ts> (a stand-in for src/app/main.ts), --no-typecheck,
 * --out <dir> (default firmware/), --board <id> (only that board).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Plugin, RollupCache } from "rollup";
import type { BoardDef, ModemKind } from "../src/board/board";
import { bundle, pruneMinifyCache, ROOT, TsEmitter } from "./bundle";
import { checkEspruino, formatFinding, type Finding } from "./espruino-check";

export const BUDGETS = {
  codecSession: 4000,
  at: 1600,
  esp8266: 1600,
  sim800: 1800,
  script: 8192,
} as const;

export const DEFAULT_ENTRY = "src/app/main.ts";
const MODEM_KINDS: ModemKind[] = ["esp8266", "sim800"];

export interface BoardFile { board: BoardDef; file: string }

/** Every boards/*.ts with its default-exported BoardDef, sorted by id. */
export async function loadBoards(dir = path.join(ROOT, "boards")): Promise<BoardFile[]> {
  const out: BoardFile[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".ts") && !n.endsWith(".d.ts")).sort()) {
    const file = path.join(dir, name);
    const mod = await import(pathToFileURL(file).href);
    const board: BoardDef | undefined = mod.default;
    if (!board || typeof board.id !== "string" || !Array.isArray(board.modems)) {
      throw new Error(`${path.relative(ROOT, file)}: no default-exported BoardDef`);
    }
    if (board.id + ".ts" !== name) throw new Error(`${path.relative(ROOT, file)}: board id "${board.id}" does not match the file name`);
    out.push({ board, file });
  }
  return out;
}

export const modemFile = (modem: ModemKind) => path.join(ROOT, "src/modem", modem + ".ts");

/** Rollup plugin serving "virtual:board" and "virtual:modem" for one build. */
export function virtualModules(boardFile: string, modem: ModemKind): Plugin {
  // Stable ids: rollup's cache reuses a cached importer's resolved ids, and compares
  // these modules' code (which differs per build) before reusing them.
  const boardId = "\0virtual:board";
  const modemId = "\0virtual:modem";
  return {
    name: "virtual-board-modem",
    resolveId(source) {
      if (source === "virtual:board") return boardId;
      if (source === "virtual:modem") return modemId;
      return null;
    },
    load(id) {
      if (id === boardId) return `export { default } from ${JSON.stringify(boardFile)};\n`;
      if (id === modemId) return `export * from ${JSON.stringify(modemFile(modem))};\n`;
      return null;
    },
  };
}

/** Rollup plugin: relative imports that resolve to one of `files` stay external (left out of the bundle). */
export function externalFiles(files: string[]): Plugin {
  const set = new Set(files.map((f) => path.resolve(f)));
  return {
    name: "external-files",
    resolveId(source, importer) {
      if (!importer || importer.startsWith("\0") || !source.startsWith(".")) return null;
      const base = path.resolve(path.dirname(importer), source);
      for (const c of [base, base + ".ts", path.join(base, "index.ts")]) if (set.has(c)) return { id: c, external: true };
      return null;
    },
  };
}

/** Shared compiler state so a whole build compiles each source once. */
export interface BuildContext { ts: TsEmitter; cache: { value?: RollupCache } }
export function newContext(): BuildContext {
  return { ts: new TsEmitter(), cache: {} };
}

/** The minified firmware script of one board + modem. */
export function bundleFirmware(b: BoardFile, modem: ModemKind, ctx: BuildContext, entry = DEFAULT_ENTRY): Promise<string> {
  if (!existsSync(modemFile(modem))) throw new Error(`board ${b.board.id}: modem driver ${path.relative(ROOT, modemFile(modem))} does not exist`);
  return bundle(entry, { ts: ctx.ts, cache: ctx.cache, plugins: [virtualModules(b.file, modem)] });
}

export interface ScriptSize {
  board: string;
  modem: ModemKind;
  file: string;
  bytes: number;
  /** Memory blocks of the board's interpreter. */
  vars: number;
  budget: number;
  /** script − codec+session − AT engine − driver. */
  app: number;
}
export interface LayerSize {
  name: string;
  entry: string;
  bytes: number;
  budget?: number;
  note?: string;
}
export interface SizeReport {
  scripts: ScriptSize[];
  layers: LayerSize[];
}

const bytesOf = (s: string) => Buffer.byteLength(s, "utf8");

/**
 * Bundles every layer and every board script afresh and returns their sizes.
 * `scripts` receives the script texts (file name → code) when given.
 */
export async function measureSizes(opts: { ctx?: BuildContext; entry?: string; boards?: BoardFile[]; scripts?: Map<string, string> } = {}): Promise<SizeReport> {
  const ctx = opts.ctx ?? newContext();
  const entry = opts.entry ?? DEFAULT_ENTRY;
  const boards = opts.boards ?? await loadBoards();
  const layer = async (e: string) => bytesOf(await bundle(e, { ts: ctx.ts, cache: ctx.cache }));

  const codec = await layer("src/codec/index.ts");
  const codecSession = await layer("src/session/index.ts");
  const at = await layer("src/at/engine.ts");
  // A driver alone: its bundle with the AT engine left out (external), minus the import line that leaves.
  const engineFile = path.join(ROOT, "src/at/engine.ts");
  const driver: Partial<Record<ModemKind, number>> = {};
  for (const m of MODEM_KINDS) {
    if (!existsSync(modemFile(m))) continue;
    const code = await bundle(`src/modem/${m}.ts`, { ts: ctx.ts, cache: ctx.cache, plugins: [externalFiles([engineFile])] });
    driver[m] = bytesOf(code.replace(/import\s*(?:\{[^}]*\}|\*\s*as\s*\w+|\w+)?\s*(?:from\s*)?["'][^"']*["'];?/g, ""));
  }

  const layers: LayerSize[] = [
    { name: "codec", entry: "src/codec/index.ts", bytes: codec },
    { name: "codec+session", entry: "src/session/index.ts", bytes: codecSession, budget: BUDGETS.codecSession },
    { name: "AT engine", entry: "src/at/engine.ts", bytes: at, budget: BUDGETS.at },
  ];
  for (const m of MODEM_KINDS) {
    const name = m === "esp8266" ? "ESP8266 driver" : "SIM800 driver";
    if (driver[m] === undefined) layers.push({ name, entry: `src/modem/${m}.ts`, bytes: NaN, budget: BUDGETS[m], note: "missing" });
    else layers.push({ name, entry: `src/modem/${m}.ts`, bytes: driver[m]!, budget: BUDGETS[m], note: "bundle without the AT engine" });
  }

  const scripts: ScriptSize[] = [];
  for (const b of boards) {
    for (const modem of b.board.modems) {
      const code = await bundleFirmware(b, modem, ctx, entry);
      const file = `${b.board.id}-${modem}.js`;
      opts.scripts?.set(file, code);
      const bytes = bytesOf(code);
      scripts.push({
        board: b.board.id, modem, file, bytes, vars: b.board.vars, budget: BUDGETS.script,
        app: bytes - codecSession - at - (driver[modem] ?? 0),
      });
    }
  }
  if (scripts.length) {
    const apps = scripts.map((s) => s.app);
    layers.push({ name: "app", entry, bytes: Math.max(...apps), note: `script − the rest (${Math.min(...apps)}..${Math.max(...apps)})` });
  }
  return { scripts, layers };
}

/** The size table as text. */
export function formatSizes(r: SizeReport): string {
  const pad = (s: string | number, n: number) => String(s).padStart(n);
  const mark = (bytes: number, budget?: number) => (budget === undefined || Number.isNaN(bytes) ? "" : bytes <= budget ? "ok" : "OVER");
  const lines = ["", "script                          modem     bytes   budget  vars(blocks)  app", "-".repeat(78)];
  for (const s of r.scripts) {
    lines.push(`${s.file.padEnd(32)}${s.modem.padEnd(8)}${pad(s.bytes, 7)}  ${pad(s.budget, 7)}  ${pad(s.vars, 12)}  ${pad(s.app, 5)}  ${mark(s.bytes, s.budget)}`);
  }
  lines.push("", "layer             bytes   budget", "-".repeat(50));
  for (const l of r.layers) {
    lines.push(`${l.name.padEnd(16)}${pad(Number.isNaN(l.bytes) ? "-" : l.bytes, 7)}  ${pad(l.budget ?? "", 7)}  ${mark(l.bytes, l.budget)}${l.note ? "  " + l.note : ""}`);
  }
  return lines.join("\n");
}

/** `tsc -p <config> --noEmit` in a child process; resolves to its output ("" when clean). */
function tscCheck(config: string): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const tsc = path.join(ROOT, "node_modules/typescript/bin/tsc");
    const child = spawn(process.execPath, [tsc, "-p", config, "--noEmit", "--pretty", "false"], { cwd: ROOT });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => resolve({ ok: code === 0, output }));
    child.on("error", (e) => resolve({ ok: false, output: String(e) }));
  });
}

export interface BuildOptions {
  entry?: string;
  outDir?: string;
  typecheck?: boolean;
  /** Only these board ids. */
  only?: string[];
  log?: (line: string) => void;
}
export interface BuildResult {
  ok: boolean;
  errors: string[];
  files: string[];
  sizes?: SizeReport;
  findings: Record<string, Finding[]>;
}

export async function build(opts: BuildOptions = {}): Promise<BuildResult> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const entry = opts.entry ?? DEFAULT_ENTRY;
  const outDir = path.resolve(ROOT, opts.outDir ?? "firmware");
  const errors: string[] = [];
  const findings: Record<string, Finding[]> = {};
  const files: string[] = [];

  // Stale scripts never survive a build, failed or not.
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(outDir)) if (f.endsWith(".js")) rmSync(path.join(outDir, f));

  if (!existsSync(path.resolve(ROOT, entry))) {
    return { ok: false, errors: [`entry ${entry} does not exist`], files, findings };
  }

  // The host-side check runs in a child process while this one type-checks the firmware and bundles.
  const hostCheck = opts.typecheck === false ? undefined : tscCheck("tsconfig.json");
  const ctx = newContext();
  ctx.ts.addRoot(path.resolve(ROOT, entry));
  if (opts.typecheck !== false) {
    const diags = ctx.ts.diagnostics();
    if (diags.length) errors.push("tsc -p tsconfig.firmware.json:", ...diags);
  }

  let sizes: SizeReport | undefined;
  const scripts = new Map<string, string>();
  {
    // Bundled even after type errors, for the size table; nothing is written then.
    try {
      let boards = await loadBoards();
      if (opts.only?.length) boards = boards.filter((b) => opts.only!.includes(b.board.id));
      if (!boards.length) errors.push("no boards to build");
      sizes = await measureSizes({ ctx, entry, boards, scripts });
    } catch (e: any) {
      errors.push(String(e && e.message ? e.message : e));
    }
  }

  if (hostCheck) {
    const r = await hostCheck;
    if (!r.ok) errors.push("tsc -p tsconfig.json:", ...r.output.trim().split("\n"));
  }

  for (const [file, code] of scripts) {
    const fs = checkEspruino(code);
    if (fs.length) {
      findings[file] = fs;
      errors.push(`${file}: ${fs.length} Espruino finding(s):`, ...fs.slice(0, 20).map((f) => "  " + formatFinding(code, f)));
      const rejected = path.join(ROOT, "tmp/firmware-rejected");
      mkdirSync(rejected, { recursive: true });
      writeFileSync(path.join(rejected, file), code);
    }
  }

  if (!errors.length) {
    for (const [file, code] of scripts) {
      writeFileSync(path.join(outDir, file), code);
      files.push(path.join(outDir, file));
    }
    if (sizes) writeFileSync(path.join(outDir, "sizes.json"), JSON.stringify(sizes, null, 2) + "\n");
  }
  if (sizes) log(formatSizes(sizes));
  pruneMinifyCache();
  return { ok: errors.length === 0, errors, files, sizes, findings };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const val = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const t0 = Date.now();
  const r = await build({
    entry: val("--entry"),
    outDir: val("--out"),
    typecheck: !args.includes("--no-typecheck"),
    only: val("--board") ? [val("--board")!] : undefined,
  });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (!r.ok) {
    process.stderr.write(["", "BUILD FAILED:", ...r.errors, ""].join("\n"));
    process.exit(1);
  }
  console.log(`\nbuilt ${r.files.length} script(s) in ${secs} s: ${r.files.map((f) => path.relative(ROOT, f)).join(", ")}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
    process.exit(1);
  });
}
