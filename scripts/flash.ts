/**
 * `npm run flash -- --board <id> [--modem esp8266|sim800] --port /dev/ttyACM0 [--baud 9600]
 *                  [--config config.json] [--firmware file.js] [--timeout 60] [--verbose]
 *                  [--dry-run [dir]]`
 *
 * Writes a board's built script (firmware/<board>-<modem>.js) into the board's
 * flash Storage as ".bootcde", so it runs at every power-on from flash (not typed
 * through the REPL), and the device configuration as Storage file "led.json".
 *
 * It talks to the board's JavaScript console itself (scripts/flash-console.ts says
 * why not through the `espruino` tool): it checks the port exists before opening
 * it, asks which board answers, stops the old program with reset(), writes both
 * files, compacts Storage, reads back each file's length and CRC32 and compares
 * them with what was sent, then starts the new program with load(). Every failure
 * ends with exit code 1 and one line saying what went wrong and what to try; the
 * whole flash is bounded by --timeout seconds.
 *
 * --dry-run [dir] touches no hardware: it writes the console lines the flash would
 * send, the .bootcde bytes and the config file into dir (default
 * tmp/flash-dry-run/) and prints where. Secrets never appear in anything printed:
 * the config is shown redacted and the board's output is filtered.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BoardDef, ModemKind } from "../src/board/board";
import type { Clock } from "../src/session/transport";
import { ROOT } from "./bundle";
import { checkEspruino, formatFinding } from "./espruino-check";
import { loadConfig, redact } from "./config";
import { DEFAULT_TIMEOUTS, flashOverConsole, sessionLines, type ConsolePlan, type Timeouts } from "./flash-console";
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
  /** Tests: the link to use instead of opening the port, the clock, the step time-outs, a tap on the bytes. */
  link?: Link;
  clock?: Clock;
  timeouts?: Partial<Timeouts>;
  tap?: (dir: "tx" | "rx", data: string) => void;
  /** Tests: the device directory ports are listed from (default /dev). */
  devDir?: string;
}

export interface FlashResult {
  ok: boolean;
  /** What went wrong: the first line says it and what to try. */
  errors: string[];
  /** Dry run: the directory written. */
  dir?: string;
  /** The console lines a flash sends (dry run), or sent (real run: through tap). */
  lines?: string[];
  /** Real run: the board's answers. */
  board?: string;
  readBack?: Record<string, [number, number] | null>;
  started?: string[];
  /** True when the board's Storage was changed (a write began). */
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
        if (m !== "esp8266" && m !== "sim800") return { error: `--modem must be esp8266 or sim800, not ${m}` };
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
  if (!dry && !o.link) {
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
  if (o.config && !existsSync(configFile)) errors.push(`config: ${o.config} does not exist (copy config.example.json)`);
  const { config, errors: cfgErrors } = loadConfig({ file: configFile, env: o.env ?? process.env, modem });
  errors.push(...cfgErrors.map((e) => "config: " + e));
  const clean = redactor(config);
  if (errors.length) return { ok: false, errors: errors.map(clean) };
  const configText = JSON.stringify(config);

  // led.json first, the program last: a flash cut short leaves no half program behind.
  const check = ESPRUINO_BOARDS[board.id];
  const plan: ConsolePlan = {
    files: [{ name: CONFIG_FILE, data: Buffer.from(configText, "utf8").toString("latin1") }, { name: BOOT_FILE, data: script }],
    program: BOOT_FILE,
    board: check && { title: board.title, pattern: check.pattern, names: check.names, hint: boardHint },
  };
  const lines = sessionLines(plan);

  const rel = (p: string) => {
    const r = path.relative(ROOT, p);
    return r.startsWith("..") ? p : r;
  };
  if (dry) {
    const dir = path.resolve(ROOT, o.dryRun === true ? DEFAULT_DRY_DIR : (o.dryRun as string));
    mkdirSync(dir, { recursive: true });
    const bootFile = path.join(dir, "bootcde.js");
    const cfgFile = path.join(dir, CONFIG_FILE);
    const consoleFile = path.join(dir, "console.txt");
    writeFileSync(bootFile, script, "latin1");
    writeFileSync(cfgFile, configText, { mode: 0o600 });
    chmodSync(cfgFile, 0o600);
    writeFileSync(path.join(dir, "led.redacted.json"), JSON.stringify(redact(config), null, 2) + "\n");
    writeFileSync(consoleFile, lines.map(visible).join("\n") + "\n", { mode: 0o600 });
    chmodSync(consoleFile, 0o600);
    log(clean(`dry run for ${board.title} (${board.id}, ${modem}): nothing sent, written to ${rel(dir)}/`));
    log(clean(`  console.txt   the ${lines.length} lines a flash types on the board's console (holds led.json; mode 600)`));
    log(clean(`  bootcde.js    ${script.length} bytes for Storage ${BOOT_FILE} (from ${rel(firmware)})`));
    log(clean(`  led.json      ${plan.files[0].data.length} bytes for Storage ${CONFIG_FILE} (holds the secrets; mode 600)`));
    log(clean(`  config (redacted): ${JSON.stringify(redact(config))}`));
    return { ok: true, errors: [], dir, lines };
  }

  const began = Date.now();
  log(clean(`flash ${rel(firmware)} onto ${port} (${baud} baud), built for ${board.title}`));
  log(clean(`  config    ${JSON.stringify(redact(config))}`));
  let link = o.link;
  if (!link) {
    try {
      link = await openWithin(port, baud, OPEN_TIMEOUT);
    } catch (e) {
      return { ok: false, errors: [clean((e as Error).message)] };
    }
  }
  try {
    const r = await flashOverConsole(link, plan, {
      clock: o.clock ?? realClock,
      timeouts: { ...o.timeouts, ...(o.timeout ? { total: o.timeout * 1000 } : {}) },
      log: (l) => log(clean("  " + l)),
      boardLine: o.verbose ? (l) => log(clean("  board │ " + l)) : undefined,
      tap: o.tap,
    });
    const out = { board: r.board, readBack: r.readBack, started: r.started, wrote: r.wrote };
    for (const w of r.warnings) log(clean("  note      " + w));
    if (!r.ok) return { ok: false, errors: [clean(r.error ?? "the flash failed")], ...out };
    if (r.started && r.started.length && !o.verbose) {
      log("  started   the new program printed:");
      for (const l of r.started.slice(0, 6)) log(clean("            " + l));
      if (r.started.length > 6) log(`            … (${r.started.length - 6} more lines in ${DEFAULT_TIMEOUTS.watch / 1000} s)`);
    } else if (!o.verbose) log("  started   the new program (it printed nothing yet)");
    log(`flash done in ${((Date.now() - began) / 1000).toFixed(1)} s: ${BOOT_FILE} runs at every power-on`);
    return { ok: true, errors: [], ...out };
  } finally {
    // The session ends here, whatever the board keeps printing.
    await link.close();
  }
}

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

const USAGE = "usage: npm run flash -- --board <id> [--modem esp8266|sim800] --port /dev/ttyACM0 [--baud 9600] [--config config.json] [--timeout 60] [--verbose] [--dry-run [dir]]";

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
