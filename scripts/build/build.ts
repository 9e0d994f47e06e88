/**
 * `npm run build`: type-checks, then bundles src/app/main.ts once per board
 * (boards/*.ts) and modem (board.modems) into firmware/<board>-<modem>.js,
 * checks every script against the Espruino contract (scripts/build/espruino-check.ts)
 * and prints the size table against the budgets.
 *
 * Type checks: `tsc --noEmit` on tsconfig.firmware.json (plus the entry) and on
 * tsconfig.json, in child processes while this one bundles; bundles go through
 * rollup with @rollup/plugin-typescript (noEmitOnError) and @rollup/plugin-terser
 * (scripts/build/bundle.ts), up to BUNDLE_CONCURRENCY at a time.
 *
 * Virtual modules: "virtual:board" is the board's default export (boards/<id>.ts),
 * "virtual:modem" is `export * from "src/modem/<modem>.ts"`, so a script holds only
 * the driver it runs.
 *
 * Options (CLI): --entry <file.ts> (a stand-in for src/app/main.ts), --no-typecheck (skips
 * the tsc runs; a type error still fails the bundles),
 * --out <dir> (default firmware/), --board <id> (only that board).
 *
 * The output directory changes only when the whole build has succeeded: the scripts
 * are written to a temporary directory first and then moved in, each replacing the
 * old one at once. A failed or interrupted (Ctrl-C) build leaves the previous
 * scripts as they were.
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { Plugin, RollupCache } from "rollup";
import type { BoardDef } from "../../src/board/board";
import { driverPath, isModemKind, MODEM_KINDS, MODEMS, modemEntry, type ModemKind } from "../modems";
import { bundle, firmwareTsconfig, ROOT, terserPlugin } from "./bundle";
import { checkEspruino, formatFinding, type Finding } from "./espruino-check";
import { isMain, parseArgs } from "../repo";

/**
 * Byte budgets, the one table the build and the tests share: the layers (minified,
 * each bundled on its own), the codec as the session uses it (test/codec/bundle.test.ts),
 * each built script, and each driver's (from the modem registry).
 */
export const BUDGETS = {
  codecSession: 4200,
  /** Measured 2,213 when set (2,150 before the packet id of a drained QoS 1/2 PUBLISH was read); lower it as the codec shrinks. */
  codecForSession: 2240,
  at: 1500,
  script: 9216,
  // each driver's, from the modem registry (scripts/modems.ts)
  ...(Object.fromEntries(MODEM_KINDS.map((kind) => [kind, MODEMS[kind].driverBudget])) as Record<ModemKind, number>),
};

export const DEFAULT_ENTRY = "src/app/main.ts";

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
    const unknown = board.modems.filter((m) => !isModemKind(m));
    if (unknown.length) throw new Error(`${path.relative(ROOT, file)}: modem ${unknown.join(", ")} is not in the registry (scripts/modems.ts: ${MODEM_KINDS.join(", ")})`);
    if (board.id + ".ts" !== name) throw new Error(`${path.relative(ROOT, file)}: board id "${board.id}" does not match the file name`);
    out.push({ board, file });
  }
  return out;
}

export const modemFile = (modem: ModemKind) => path.join(ROOT, driverPath(modem));

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

/**
 * State shared by the bundles of one build: rollup's module cache, and a private
 * directory where @rollup/plugin-typescript keeps TypeScript's incremental state
 * (so only the first bundle type-checks and emits the whole program). Remove it
 * with closeContext().
 */
export interface BuildContext { cache: { value?: RollupCache }; incrementalDir: string; terser: Plugin }
export function newContext(): BuildContext {
  return { cache: {}, incrementalDir: buildTmpDir("ts"), terser: terserPlugin() };
}

/**
 * Where builds keep their temporary directories: tmp/build/<pid>-<what>-XXXXXX (tmp/ is
 * git-ignored). A build removes its own when it ends; one that was killed mid-way
 * (Ctrl-C under tsx can end a busy build with SIGKILL) leaves them for the next
 * build to sweep (sweepBuildDirs).
 */
export const BUILD_TMP = path.join(ROOT, "tmp", "build");
function buildTmpDir(what: string): string {
  mkdirSync(BUILD_TMP, { recursive: true });
  return mkdtempSync(path.join(BUILD_TMP, `${process.pid}-${what}-`));
}
function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
/** Removes the temporary directories of builds whose process is gone. */
export function sweepBuildDirs(): void {
  if (!existsSync(BUILD_TMP)) return;
  for (const name of readdirSync(BUILD_TMP)) {
    if (!alive(Number(name.split("-")[0]))) rmSync(path.join(BUILD_TMP, name), { recursive: true, force: true });
  }
}
export function closeContext(ctx: BuildContext): void {
  rmSync(ctx.incrementalDir, { recursive: true, force: true });
}

/**
 * Bundles in flight at a time: TypeScript runs on this thread while terser minifies
 * earlier bundles in its workers. Overlapping bundles also keep the shared terser
 * plugin's worker pool alive from one bundle to the next.
 */
export const BUNDLE_CONCURRENCY = 3;

/**
 * Runs `tasks` and resolves to their results in order. The first runs alone: it
 * type-checks and emits the whole program, which the later ones then reuse. The
 * rest run at most `n` at a time (a new one starts as one ends), stopping at the
 * first failure.
 */
async function runBundles<T>(tasks: (() => Promise<T>)[], n = BUNDLE_CONCURRENCY): Promise<T[]> {
  if (!tasks.length) return [];
  const out: T[] = new Array(tasks.length);
  out[0] = await tasks[0]();
  let next = 1;
  let failed = false;
  const lane = async () => {
    while (!failed && next < tasks.length) {
      const i = next++;
      try {
        out[i] = await tasks[i]();
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  // Every lane settles before a failure is thrown (the caller then removes the context).
  const lanes = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(n, tasks.length - 1)) }, lane));
  const failure = lanes.find((l): l is PromiseRejectedResult => l.status === "rejected");
  if (failure) throw failure.reason;
  return out;
}

/** The minified firmware script of one board + modem. */
export function bundleFirmware(b: BoardFile, modem: ModemKind, ctx: BuildContext, entry = DEFAULT_ENTRY): Promise<string> {
  if (!existsSync(modemFile(modem))) throw new Error(`board ${b.board.id}: modem driver ${path.relative(ROOT, modemFile(modem))} does not exist`);
  return bundle(entry, { cache: ctx.cache, incrementalDir: ctx.incrementalDir, terser: ctx.terser, plugins: [virtualModules(b.file, modem)] });
}

export interface ScriptSize {
  board: string;
  modem: string;
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
/** A driver's row in the layer table: "ESP8266 driver". */
export const driverLayerName = (kind: string) => `${modemEntry(kind as ModemKind).title} driver`;

/** The bundles of the layers, and how their texts become the layer sizes. */
function layerJobs(ctx: BuildContext): { entries: string[]; tasks: (() => Promise<string>)[]; finish: (codes: string[]) => LayerSize[] } {
  const opts = { cache: ctx.cache, incrementalDir: ctx.incrementalDir, terser: ctx.terser };
  // A driver alone: its bundle with the AT engine left out (external), minus the import line that leaves.
  // (Its own rollup cache: a cached module keeps its resolved imports, and the engine is external only here.)
  const engineFile = path.join(ROOT, "src/at/engine.ts");
  const driverOpts = { incrementalDir: ctx.incrementalDir, terser: ctx.terser, plugins: [externalFiles([engineFile])] };
  const modems = MODEM_KINDS.filter((m) => existsSync(modemFile(m)));
  const entries = ["src/codec/index.ts", "src/session/index.ts", "src/at/engine.ts", ...modems.map(driverPath)];
  const tasks = entries.map((e, i) => () => bundle(e, i < 3 ? opts : driverOpts));
  const finish = ([codec, codecSession, at, ...drivers]: string[]): LayerSize[] => {
    const driver: Partial<Record<ModemKind, number>> = {};
    modems.forEach((m, i) => {
      driver[m] = bytesOf(drivers[i].replace(/import\s*(?:\{[^}]*\}|\*\s*as\s*\w+|\w+)?\s*(?:from\s*)?["'][^"']*["'];?/g, ""));
    });
    const layers: LayerSize[] = [
      { name: "codec", entry: "src/codec/index.ts", bytes: bytesOf(codec) },
      { name: "codec+session", entry: "src/session/index.ts", bytes: bytesOf(codecSession), budget: BUDGETS.codecSession },
      { name: "AT engine", entry: "src/at/engine.ts", bytes: bytesOf(at), budget: BUDGETS.at },
    ];
    for (const m of MODEM_KINDS) {
      const name = driverLayerName(m);
      if (driver[m] === undefined) layers.push({ name, entry: driverPath(m), bytes: NaN, budget: BUDGETS[m], note: "missing" });
      else layers.push({ name, entry: driverPath(m), bytes: driver[m]!, budget: BUDGETS[m], note: "bundle without the AT engine" });
    }
    return layers;
  };
  return { entries, tasks, finish };
}

/**
 * Bundles every layer afresh and returns their sizes (the "app" layer comes with the
 * scripts, see sizeReport). `codes` receives each layer's text by entry when given
 * (a driver's is its bundle without the AT engine).
 */
export async function measureLayers(ctx?: BuildContext, codes?: Map<string, string>): Promise<LayerSize[]> {
  const c = ctx ?? newContext();
  try {
    const j = layerJobs(c);
    const texts = await runBundles(j.tasks);
    j.entries.forEach((e, i) => codes?.set(e, texts[i]));
    return j.finish(texts);
  } finally {
    if (!ctx) closeContext(c);
  }
}

/** One board script: its board, modem, file name (<board>-<modem>.js) and text. */
export interface BuiltScript { board: BoardFile; modem: string; file: string; code: string }
export const scriptFile = (b: BoardFile, modem: string) => `${b.board.id}-${modem}.js`;

/** The size report of `layers` (from measureLayers) and the board scripts; adds the "app" layer. */
export function sizeReport(layers: LayerSize[], built: BuiltScript[], entry = DEFAULT_ENTRY): SizeReport {
  const bytesOfLayer = (name: string) => {
    const l = layers.find((x) => x.name === name);
    return l && !Number.isNaN(l.bytes) ? l.bytes : 0;
  };
  const codecSession = bytesOfLayer("codec+session");
  const at = bytesOfLayer("AT engine");
  const driver = (m: string) => bytesOfLayer(driverLayerName(m));
  const scripts: ScriptSize[] = built.map((s) => {
    const bytes = bytesOf(s.code);
    return {
      board: s.board.board.id, modem: s.modem, file: s.file, bytes, vars: s.board.board.vars, budget: BUDGETS.script,
      app: bytes - codecSession - at - driver(s.modem),
    };
  });
  const all = [...layers];
  if (scripts.length) {
    const apps = scripts.map((s) => s.app);
    all.push({ name: "app", entry, bytes: Math.max(...apps), note: `script − the rest (${Math.min(...apps)}..${Math.max(...apps)})` });
  }
  return { scripts, layers: all };
}

/**
 * Bundles every layer and every board script afresh and returns their sizes.
 * `scripts` receives the script texts (file name → code) when given.
 */
export async function measureSizes(opts: { ctx?: BuildContext; entry?: string; boards?: BoardFile[]; scripts?: Map<string, string> } = {}): Promise<SizeReport> {
  const ctx = opts.ctx ?? newContext();
  try {
    const entry = opts.entry ?? DEFAULT_ENTRY;
    const boards = opts.boards ?? await loadBoards();
    // A script first: the first bundle type-checks the whole program, entry included.
    // (loadBoards refused any kind the registry does not name)
    const jobs = boards.flatMap((b) => (b.board.modems as ModemKind[]).map((modem) => ({ b, modem })));
    const layers = layerJobs(ctx);
    const codes = await runBundles([...jobs.map(({ b, modem }) => () => bundleFirmware(b, modem, ctx, entry)), ...layers.tasks]);
    const built = jobs.map(({ b, modem }, i) => ({ board: b, modem, file: scriptFile(b, modem), code: codes[i] }));
    for (const s of built) opts.scripts?.set(s.file, s.code);
    return sizeReport(layers.finish(codes.slice(jobs.length)), built, entry);
  } finally {
    if (!opts.ctx) closeContext(ctx);
  }
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

  if (!existsSync(path.resolve(ROOT, entry))) {
    return { ok: false, errors: [`entry ${entry} does not exist`], files, findings };
  }

  // Temporary directories (the scripts before they are moved in, TypeScript's
  // incremental state) go when the build ends, and when the process exits mid-build;
  // those of builds killed before they could clean up go now.
  sweepBuildDirs();
  const staging = buildTmpDir("out");
  const ctx = newContext();
  const cleanUp = () => {
    rmSync(staging, { recursive: true, force: true });
    closeContext(ctx);
  };
  process.on("exit", cleanUp);
  try {
    return await buildInto(opts, { entry, outDir, staging, ctx, log, errors, findings, files });
  } finally {
    process.off("exit", cleanUp);
    cleanUp();
  }
}

interface BuildState {
  entry: string;
  outDir: string;
  staging: string;
  ctx: BuildContext;
  log: (line: string) => void;
  errors: string[];
  findings: Record<string, Finding[]>;
  files: string[];
}

async function buildInto(opts: BuildOptions, st: BuildState): Promise<BuildResult> {
  const { entry, outDir, staging, ctx, log, errors, findings, files } = st;
  // Both type checks run as `tsc --noEmit` in child processes while this one bundles.
  // The firmware program is tsconfig.firmware.json plus the entry (when it lies outside src/).
  // (Bundling type-checks the firmware program too, with noEmitOnError; tsc lists every error.)
  const fwConfig = firmwareTsconfig(path.resolve(ROOT, entry));
  const checks = opts.typecheck === false ? [] : [
    tscCheck(fwConfig.path).then((r) => ({ r, name: "tsc -p tsconfig.firmware.json" })),
    tscCheck("tsconfig.json").then((r) => ({ r, name: "tsc -p tsconfig.json" })),
  ];

  let sizes: SizeReport | undefined;
  const scripts = new Map<string, string>();
  try {
    let boards = await loadBoards();
    if (opts.only?.length) boards = boards.filter((b) => opts.only!.includes(b.board.id));
    if (!boards.length) errors.push("no boards to build");
    const n = boards.reduce((k, b) => k + b.board.modems.length, 0);
    log(`building ${n} script(s) for ${boards.map((b) => b.board.id).join(", ")}: ${path.relative(ROOT, outDir) || outDir}/ changes only if all of them succeed`);
    sizes = await measureSizes({ ctx, entry, boards, scripts });
  } catch (e: any) {
    errors.push(String(e && e.message ? e.message : e));
  }

  for (const { r, name } of await Promise.all(checks)) {
    if (!r.ok) errors.push(name + ":", ...r.output.trim().split("\n"));
  }
  fwConfig.dispose();

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
    // Everything is written aside first; then stale scripts (a board or modem no longer
    // built) go, and each new file replaces the old one with a rename.
    for (const [file, code] of scripts) writeFileSync(path.join(staging, file), code);
    if (sizes) writeFileSync(path.join(staging, "sizes.json"), JSON.stringify(sizes, null, 2) + "\n");
    mkdirSync(outDir, { recursive: true });
    for (const f of readdirSync(outDir)) if (f.endsWith(".js") && !scripts.has(f)) rmSync(path.join(outDir, f));
    for (const f of readdirSync(staging)) {
      const part = path.join(outDir, `.${f}.${process.pid}.part`);
      copyFileSync(path.join(staging, f), part);
      renameSync(part, path.join(outDir, f));
      if (f.endsWith(".js")) files.push(path.join(outDir, f));
    }
  }
  if (sizes) log(formatSizes(sizes));
  return { ok: errors.length === 0, errors, files, sizes, findings };
}

async function main(): Promise<void> {
  // Ctrl-C: exit handlers remove the temporary directories; the output directory is untouched.
  process.on("SIGINT", () => process.exit(130));
  process.on("SIGTERM", () => process.exit(143));
  const { values: args } = parseArgs({
    options: { entry: { type: "string" }, out: { type: "string" }, board: { type: "string" }, "no-typecheck": { type: "boolean" } },
  });
  const t0 = Date.now();
  const r = await build({
    entry: args.entry,
    outDir: args.out,
    typecheck: !args["no-typecheck"],
    only: args.board ? [args.board] : undefined,
  });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (!r.ok) {
    process.stderr.write(["", "BUILD FAILED:", ...r.errors, ""].join("\n"));
    process.exit(1);
  }
  console.log(`\nbuilt ${r.files.length} script(s) in ${secs} s: ${r.files.map((f) => path.relative(ROOT, f)).join(", ")}`);
}

if (isMain(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
    process.exit(1);
  });
}
