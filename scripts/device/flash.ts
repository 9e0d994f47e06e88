/**
 * `npm run flash -- --board <id> [--modem esp8266|sim800|sim7600] --port /dev/ttyACM0 [--baud 9600]
 *                  [--config config.json] [--firmware file.js] [--timeout 60] [--verbose]
 *                  [--dry-run [dir]]`
 *
 * Writes a board's built script (firmware/<board>-<modem>.js) into the board's
 * flash Storage as ".bootcde", so it runs at every power-on from flash (not typed
 * through the REPL), and the device configuration as Storage file "led.json".
 *
 * 1. Before anything is opened: the port exists (else the serial ports there are
 *    are listed), the espruino tool will find it, the firmware and the config are valid.
 * 2. On the board's console (scripts/device/flash-console.ts): which board answers (the
 *    wrong one is refused), reset() stops the old program, the old files are erased.
 *    The port is closed again.
 * 3. The Espruino command-line tool (npm package `espruino`) writes both files
 *    (scripts/device/espruino-tool.ts: its command line, its time limit, what its output means).
 * 4. On the console again: Storage is compacted, each file's length and CRC32 read
 *    back and compared with what was sent (a mismatch erases .bootcde), and load()
 *    starts the new program.
 * Every failure ends with exit code 1 and one line saying what went wrong and what
 * to try; the whole flash is bounded by --timeout seconds.
 *
 * --dry-run [dir] touches no hardware: it writes the console lines of steps 2 and 4,
 * the espruino command line of step 3 and the files it would write into dir
 * (default tmp/flash-dry-run/) and prints where. Secrets never appear in anything
 * printed: the config is shown redacted and the board's and the tool's output is filtered.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BoardDef, ModemKind } from "../../src/board/board";
import type { Clock } from "../../src/transport";
import { ROOT } from "../repo";
import { checkEspruino, formatFinding } from "../build/espruino-check";
import { loadConfig, redact } from "../config";
import { isModemKind, MODEM_KINDS } from "../modems";
import {
  DEFAULT_TIMEOUTS, eraseProgram, finishBoard, prepareBoard, sessionLines,
  type ConsoleOptions, type ConsolePlan, type FinishResult, type PrepareResult, type SessionResult, type Timeouts,
} from "./flash-console";
import {
  boardJson, espruinoArgv, interpretRun, pathProblem, runEspruino, shellLine, toolPortProblem, type RunOptions, type ToolRun,
} from "./espruino-tool";
import { checkPort, formatPorts, listSerialPorts, openSerial, type Link, type PortInfo } from "./serial-port";

export const CONFIG_FILE = "led.json";
export const BOOT_FILE = ".bootcde";
const DEFAULT_DRY_DIR = "tmp/flash-dry-run";
/** Espruino's console speed on a serial (non-USB) console; USB consoles ignore it. */
export const DEFAULT_BAUD = 9600;

/**
 * What each board's Espruino reports as process.env.BOARD, checked before anything
 * is written (a new boards/*.ts without an entry here is flashed unchecked).
 */
export const ESPRUINO_BOARDS: Record<string, { pattern: RegExp; names: string }> = {
  "espruino-wifi": { pattern: /^ESPRUINOWIFI$/, names: "ESPRUINOWIFI" },
  pico: { pattern: /^PICO/, names: "PICO_R1_3" },
  original: { pattern: /^ESPRUINOBOARD/, names: "ESPRUINOBOARD" },
  "discovery-f4": { pattern: /^STM32F4DISCOVERY$/, names: "STM32F4DISCOVERY" },
  "nucleo-f401re": { pattern: /^NUCLEOF401RE$/, names: "NUCLEOF401RE" },
  linux: { pattern: /^(LINUX|RASPBERRYPI)/, names: "LINUX or RASPBERRYPI" },
};

export interface FlashOptions {
  board: string;
  modem?: ModemKind;
  port?: string;
  baud?: number;
  /** Config JSON file (default config.json); LED_* environment variables override it. */
  config?: string;
  /** Script to write instead of firmware/<board>-<modem>.js. */
  firmware?: string;
  /** Directory for a dry run (true: tmp/flash-dry-run). */
  dryRun?: string | true;
  /** Bound on the whole flash, seconds (default 60). */
  timeout?: number;
  /** Also print every line the board prints (filtered like everything else). */
  verbose?: boolean;
  env?: Record<string, string | undefined>;
  /** Where printed lines go (default stdout). Nothing printed ever holds a secret. */
  log?: (line: string) => void;
  /**
   * Tests and recordings: how the console sessions reach the board (default: open the
   * port; n counts the sessions, 1 before the tool, 2 after), the clock, the step
   * time-outs, a tap on the bytes, how the tool runs (default: runEspruino), and the
   * check that the tool will find the port (default: toolPortProblem).
   */
  openLink?: (n: number) => Promise<Link>;
  clock?: Clock;
  timeouts?: Partial<Timeouts>;
  tap?: (dir: "tx" | "rx", data: string) => void;
  runTool?: (argv: string[], o: RunOptions) => Promise<ToolRun>;
  portCheck?: (port: string) => Promise<string | undefined>;
  /** Tests: the device directory ports are listed from (default /dev). */
  devDir?: string;
}

export interface FlashResult {
  ok: boolean;
  /** What went wrong: the first line says it and what to try. */
  errors: string[];
  /** Dry run: the directory written. */
  dir?: string;
  /** The console lines a flash types before and after the tool (dry run). */
  lines?: { before: string[]; after: string[] };
  /** The espruino command line (argv, first element the tool), when it was built. */
  argv?: string[];
  /** The tool's run, when it ran. */
  tool?: ToolRun;
  /** Real run: the board's answers. */
  board?: string;
  readBack?: Record<string, [number, number] | null>;
  started?: string[];
  /** True when the board's Storage was changed (the old files erased). */
  wrote?: boolean;
}

/** Parses `--board x --modem y --port p --baud n --config f --firmware f --timeout s --verbose --dry-run [dir]`. */
export function parseArgs(argv: string[]): FlashOptions | { error: string } {
  const o: Partial<FlashOptions> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a value`);
      return v;
    };
    try {
      if (a === "--board") o.board = next();
      else if (a === "--modem") {
        const m = next();
        if (!isModemKind(m)) return { error: `--modem must be ${MODEM_KINDS.join(", ")}, not ${m}` };
        o.modem = m;
      } else if (a === "--port") o.port = next();
      else if (a === "--baud") {
        o.baud = Number(next());
        if (!Number.isInteger(o.baud) || o.baud <= 0) return { error: "--baud must be a positive whole number" };
      } else if (a === "--timeout") {
        o.timeout = Number(next());
        if (!Number.isFinite(o.timeout) || o.timeout <= 0) return { error: "--timeout must be a positive number of seconds" };
      } else if (a === "--config") o.config = next();
      else if (a === "--firmware") o.firmware = next();
      else if (a === "--verbose") o.verbose = true;
      else if (a === "--dry-run") {
        const v = argv[i + 1];
        if (v !== undefined && !v.startsWith("--")) { o.dryRun = v; i++; } else o.dryRun = true;
      } else return { error: `unknown option ${a}` };
    } catch (e) {
      return { error: (e as Error).message };
    }
  }
  if (!o.board) return { error: "--board <id> is required (one of boards/*.ts)" };
  return o as FlashOptions;
}

/** Every secret value of a config (passwords), with the encodings they may travel in. */
function secretsOf(config: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown, key?: string) => {
    if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, k);
    else if (typeof v === "string" && v && key && /pass|secret|token|key/i.test(key)) out.push(v);
  };
  walk(config);
  const forms = new Set<string>();
  for (const s of out) {
    forms.add(s);
    forms.add(JSON.stringify(s).slice(1, -1));
  }
  return [...forms].filter((s) => s.length >= 1).sort((a, b) => b.length - a.length);
}

/** A filter for anything printed: secret values and base64 upload chunks become ***. */
export function redactor(config: unknown): (text: string) => string {
  const secrets = secretsOf(config);
  return (text: string) => {
    let t = text.replace(/atob\((["'])[A-Za-z0-9+/=]*\1\)/g, "atob(\"***\")");
    for (const s of secrets) t = t.split(s).join("***");
    return t;
  };
}

/** Control characters as \xHH, so a console line can be read in a text file. */
export function visible(line: string): string {
  return line.replace(/[\x00-\x1f\x7f]/g, (c) => (c === "\n" ? "" : "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0")));
}

async function loadBoard(id: string): Promise<BoardDef | undefined> {
  const file = path.join(ROOT, "boards", id + ".ts");
  if (!/^[\w-]+$/.test(id) || !existsSync(file)) return undefined;
  return (await import(pathToFileURL(file).href)).default as BoardDef;
}

/** "no serial port X; serial ports here: …" — the ports present, or where none were found. */
export async function noPortMessage(problem: string, devDir?: string): Promise<string> {
  let ports: PortInfo[] = [];
  try {
    ports = await listSerialPorts({ dev: devDir });
  } catch {
    /* listing is a courtesy */
  }
  return ports.length
    ? `${problem}; serial ports here: ${formatPorts(ports)}. Pick the board's with --port`
    : `${problem}, and no serial port is present (looked for ttyACM*, ttyUSB*, ttyAMA*, serial/by-id/*): plug the board in with a USB data cable`;
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export async function flash(o: FlashOptions): Promise<FlashResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  const errors: string[] = [];
  const board = await loadBoard(o.board);
  if (!board) return { ok: false, errors: [`no board "${o.board}" (boards/${o.board}.ts)`] };
  const modem = o.modem ?? board.modems[0];
  if (!board.modems.includes(modem)) {
    return { ok: false, errors: [`board ${board.id} is built for ${board.modems.join(", ")}, not ${modem}`] };
  }
  const dry = o.dryRun !== undefined;
  const port = o.port ?? "/dev/ttyACM0";
  const baud = o.baud ?? DEFAULT_BAUD;
  // The port first: a missing one is reported before anything else is read or opened.
  if (!dry && !o.openLink) {
    if (!o.port) return { ok: false, errors: [await noPortMessage("--port <device> is required", o.devDir)] };
    const problem = checkPort(port);
    if (problem) return { ok: false, errors: [await noPortMessage(problem, o.devDir)] };
  }

  // The script: exactly the built bytes.
  const firmware = path.resolve(ROOT, o.firmware ?? path.join("firmware", `${board.id}-${modem}.js`));
  if (!existsSync(firmware)) {
    errors.push(`${path.relative(ROOT, firmware)} does not exist: run npm run build`);
    return { ok: false, errors };
  }
  const script = readFileSync(firmware, "latin1");
  const findings = checkEspruino(script);
  if (findings.length) {
    errors.push(`${path.relative(ROOT, firmware)} is outside what Espruino accepts:`, ...findings.slice(0, 10).map((f) => "  " + formatFinding(script, f)));
  }

  // The configuration (never printed unredacted).
  const configFile = path.resolve(ROOT, o.config ?? "config.json");
  const { config, errors: cfgErrors } = loadConfig({ file: configFile, required: !!o.config, env: o.env ?? process.env, modem });
  errors.push(...cfgErrors.map((e) => "config: " + e));
  const clean = redactor(config);
  if (errors.length) return { ok: false, errors: errors.map(clean) };
  const configText = JSON.stringify(config);

  const check = ESPRUINO_BOARDS[board.id];
  const plan: ConsolePlan = {
    files: [{ name: CONFIG_FILE, data: Buffer.from(configText, "utf8").toString("latin1") }, { name: BOOT_FILE, data: script }],
    program: BOOT_FILE,
    board: check && { title: board.title, pattern: check.pattern, names: check.names, hint: boardHint },
  };
  const bootBytes = script.length;
  const configBytes = plan.files[0].data.length;

  const rel = (p: string) => {
    const r = path.relative(ROOT, p);
    return r.startsWith("..") ? p : r;
  };
  if (dry) {
    const dir = path.resolve(ROOT, o.dryRun === true ? DEFAULT_DRY_DIR : (o.dryRun as string));
    const lines = sessionLines(plan);
    const bootFile = path.join(dir, "bootcde.js");
    const cfgFile = path.join(dir, CONFIG_FILE);
    const boardFile = path.join(dir, "board.json");
    const argv = espruinoArgv({ port, baud, boardJson: rel(boardFile), bootFile: rel(bootFile), configFile: rel(cfgFile) });
    const bad = pathProblem(argv);
    if (bad) return { ok: false, errors: [bad] };
    mkdirSync(dir, { recursive: true });
    writeFileSync(bootFile, script, "latin1");
    writeFileSync(cfgFile, configText, { mode: 0o600 });
    chmodSync(cfgFile, 0o600);
    writeFileSync(boardFile, boardJson(check ? check.names.split(" ")[0] : board.id));
    writeFileSync(path.join(dir, "led.redacted.json"), JSON.stringify(redact(config), null, 2) + "\n");
    writeFileSync(path.join(dir, "console-before.txt"), lines.before.map(visible).join("\n") + "\n");
    writeFileSync(path.join(dir, "console-after.txt"), lines.after.map(visible).join("\n") + "\n");
    writeFileSync(path.join(dir, "espruino.txt"), shellLine(argv) + "\n");
    writeFileSync(path.join(dir, "espruino.json"), JSON.stringify(argv) + "\n");
    log(clean(`dry run for ${board.title} (${board.id}, ${modem}): nothing sent, written to ${rel(dir)}/`));
    log(clean(`  console-before.txt  the ${lines.before.length} lines typed on the board's console first: who is there, reset(), erase the old files`));
    log(clean(`  espruino.txt        the espruino tool's command, which writes both files:`));
    log(clean(`                      ${shellLine(argv)}`));
    log(clean(`  console-after.txt   the ${lines.after.length} lines typed after it: compact, read back length and CRC32, load()`));
    log(clean(`  bootcde.js          ${bootBytes} bytes for Storage ${BOOT_FILE} (from ${rel(firmware)})`));
    log(clean(`  led.json            ${configBytes} bytes for Storage ${CONFIG_FILE} (holds the secrets; mode 600)`));
    log(clean(`  board.json          the board description the tool gets instead of looking it up online`));
    log(clean(`  config (redacted): ${JSON.stringify(redact(config))}`));
    return { ok: true, errors: [], dir, lines, argv };
  }

  const began = Date.now();
  const clock = o.clock ?? realClock;
  const limit = (o.timeout ?? DEFAULT_TIMEOUTS.total / 1000) * 1000;
  const deadline = clock.now() + limit;
  log(clean(`flash ${rel(firmware)} onto ${port} (${baud} baud), built for ${board.title}`));
  log(clean(`  config    ${JSON.stringify(redact(config))}`));

  // The tool opens only a port the system lists: find out before the board is touched.
  const toolProblem = await (o.portCheck ?? toolPortProblem)(port);
  if (toolProblem) return { ok: false, errors: [clean(toolProblem)] };

  const consoleOpts = (): ConsoleOptions => ({
    clock,
    timeouts: { ...o.timeouts, total: deadline - clock.now() },
    limitSeconds: limit / 1000,
    log: (l) => log(clean("  " + l)),
    boardLine: o.verbose ? (l) => log(clean("  board │ " + l)) : undefined,
    tap: o.tap,
  });
  const open = async (n: number): Promise<Link> => (o.openLink ? o.openLink(n) : openWithin(port, baud, OPEN_TIMEOUT));
  /** Opens the port, runs a session, and closes the port whatever happens; a port that does not open is a failed session. */
  const session = async <R extends SessionResult>(n: number, body: (link: Link) => Promise<R>): Promise<R | SessionResult> => {
    let link: Link;
    try {
      link = await open(n);
    } catch (e) {
      return { ok: false, stage: "open", error: (e as Error).message };
    }
    try {
      return await body(link);
    } finally {
      await link.close();
    }
  };

  // The config and the board description go through a private temporary directory, removed afterwards.
  const tmp = mkdtempSync(path.join(os.tmpdir(), "led-flash-"));
  try {
    const cfgFile = path.join(tmp, CONFIG_FILE);
    const boardFile = path.join(tmp, "board.json");
    writeFileSync(cfgFile, configText, { mode: 0o600 });
    const argv = espruinoArgv({ port, baud, boardJson: boardFile, bootFile: rel(firmware), configFile: cfgFile });
    const bad = pathProblem(argv);
    if (bad) return { ok: false, errors: [clean(bad)] };

    // 2. Who is there; stop the old program; erase the old files.
    const prep: Partial<PrepareResult> & SessionResult = await session(1, (link) => prepareBoard(link, plan, consoleOpts()));
    for (const w of prep.warnings ?? []) log(clean("  note      " + w));
    if (!prep.ok) {
      const gone = prep.erased ? `; the old ${BOOT_FILE} and ${CONFIG_FILE} were erased, so the board runs nothing at boot` : "";
      return { ok: false, errors: [clean((prep.error ?? "the flash failed") + gone)], board: prep.board, wrote: prep.erased, argv };
    }
    writeFileSync(boardFile, boardJson(prep.board ?? board.id));

    // 3. The espruino tool writes both files.
    if (o.verbose) log(clean(`  espruino  ${shellLine(argv)}`));
    const toolMs = Math.max(1000, deadline - clock.now() - FINISH_RESERVE);
    const tool = await (o.runTool ?? runEspruino)(argv, {
      cwd: ROOT,
      timeoutMs: toolMs,
      onLine: o.verbose ? (l) => log(clean("  espruino │ " + l.replace(/\r/g, ""))) : undefined,
    });
    const verdict = interpretRun(tool, { port, timeoutMs: toolMs });
    const out = { board: prep.board, wrote: true, argv, tool };
    if (!verdict.ok) {
      let after = `; the old ${BOOT_FILE} and ${CONFIG_FILE} were erased before, so the board runs nothing at boot until a flash succeeds`;
      if (verdict.reachedBoard) {
        // The tool may have written part of the program: it must not run at the next boot.
        // Its own short bound (a hello and one statement), even when the flash's time is up: this leaves the board safe.
        const erased = await session(3, (link) => eraseProgram(link, plan, { ...consoleOpts(), timeouts: { ...o.timeouts } }));
        if (!erased.ok) after = `; the board may hold part of ${BOOT_FILE}, which would run at the next boot: flash again`;
        else after = `; ${BOOT_FILE} was erased, so the board runs nothing at boot until a flash succeeds`;
      }
      return { ok: false, errors: [clean(verdict.error + after)], ...out };
    }
    log(clean(`  wrote     ${CONFIG_FILE} ${configBytes} bytes, ${BOOT_FILE} ${bootBytes} bytes (the espruino tool, ${(tool.ms / 1000).toFixed(1)} s)`));

    // 4. Compact, read back, start.
    const fin: Partial<FinishResult> & SessionResult = await session(2, (link) => finishBoard(link, plan, consoleOpts()));
    const res = { ...out, readBack: fin.readBack, started: fin.started };
    if (!fin.ok) {
      const unread = fin.readBack ? "" : "the files were written, but ";
      return { ok: false, errors: [clean(unread + (fin.error ?? "the flash failed"))], ...res };
    }
    if (fin.started && fin.started.length && !o.verbose) {
      log("  started   the new program printed:");
      for (const l of fin.started.slice(0, 6)) log(clean("            " + l));
      if (fin.started.length > 6) log(`            … (${fin.started.length - 6} more lines in ${DEFAULT_TIMEOUTS.watch / 1000} s)`);
    } else if (!o.verbose) log("  started   the new program (it printed nothing yet)");
    log(`flash done in ${((Date.now() - began) / 1000).toFixed(1)} s: ${BOOT_FILE} runs at every power-on`);
    return { ok: true, errors: [], ...res };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Time kept back from the tool for reading back and starting the program afterwards. */
const FINISH_RESERVE = 8_000;
const OPEN_TIMEOUT = 10_000;

/** Opens the port, or fails after ms (a port that hangs on open is closed when it finally opens). */
function openWithin(port: string, baud: number, ms: number): Promise<Link> {
  return new Promise<Link>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new Error(`opening ${port} took more than ${ms / 1000} s: unplug the board, plug it in again and flash again`));
    }, ms);
    openSerial(port, baud).then(
      (link) => {
        clearTimeout(timer);
        if (late) void link.close();
        else resolve(link);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** Which of our boards a process.env.BOARD value is, as advice. */
function boardHint(name: string | undefined): string | undefined {
  const id = Object.keys(ESPRUINO_BOARDS).find((k) => name && ESPRUINO_BOARDS[k].pattern.test(name));
  return id ? `that is --board ${id}` : undefined;
}

const USAGE = "usage: npm run flash -- --board <id> [--modem esp8266|sim800|sim7600] --port /dev/ttyACM0 [--baud 9600] [--config config.json] [--timeout 60] [--verbose] [--dry-run [dir]]";

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  if ("error" in opts) {
    process.stderr.write(`flash: ${opts.error}\n${USAGE}\n`);
    return 2;
  }
  const r = await flash(opts);
  if (!r.ok) {
    const [first, ...rest] = r.errors;
    process.stderr.write([`flash failed: ${first}`, ...rest].join("\n") + "\n");
    return 1;
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write("flash failed: " + String(e && e.message ? e.message : e) + "\n");
      process.exit(1);
    },
  );
}
