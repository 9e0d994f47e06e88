/**
 * `npm run flash -- --board <id> [--modem esp8266|sim800] --port /dev/ttyACM0 [--baud 115200]
 *                  [--config config.json] [--firmware file.js] [--dry-run [dir]]`
 *
 * Writes a board's built script (firmware/<board>-<modem>.js) into the board's
 * flash Storage as ".bootcde", so it runs at every power-on from flash (not typed
 * through the REPL), and the device configuration as Storage file "led.json",
 * with the Espruino command-line tool (npm package `espruino`):
 *
 *   espruino --port P -b BAUD --storage .bootcde:SCRIPT --storage led.json:CONFIG -e "load()"
 *
 * ("load()" restarts the interpreter from the new .bootcde right away.)
 * --dry-run [dir] touches no hardware: it writes the exact command line, the
 * .bootcde bytes and the config file that would be sent into dir (default
 * tmp/flash-dry-run/) and prints where. Secrets never appear in anything printed:
 * the config is shown redacted and the tool's output is filtered.
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BoardDef, ModemKind } from "../src/board/board";
import { ROOT } from "./bundle";
import { checkEspruino, formatFinding } from "./espruino-check";
import { loadConfig, redact } from "./config";

export const CONFIG_FILE = "led.json";
export const BOOT_FILE = ".bootcde";
export const ESPRUINO_BIN = "node_modules/.bin/espruino";
const DEFAULT_DRY_DIR = "tmp/flash-dry-run";

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
  env?: Record<string, string | undefined>;
  /** Where printed lines go (default stdout). Nothing printed ever holds a secret. */
  log?: (line: string) => void;
}

export interface FlashResult {
  ok: boolean;
  errors: string[];
  /** The espruino command line (argv, first element the tool). */
  argv?: string[];
  /** Dry run: the directory written. */
  dir?: string;
  exitCode?: number;
}

/** Parses `--board x --modem y --port p --baud n --config f --firmware f --dry-run [dir]`. */
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
      } else if (a === "--config") o.config = next();
      else if (a === "--firmware") o.firmware = next();
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

/** The espruino tool's argv (paths as given: they must not contain ':', the tool splits on it). */
export function espruinoArgs(o: { port: string; baud: number; bootFile: string; configFile: string }): string[] {
  return [
    ESPRUINO_BIN,
    "--port", o.port,
    "-b", String(o.baud),
    "--storage", `${BOOT_FILE}:${o.bootFile}`,
    "--storage", `${CONFIG_FILE}:${o.configFile}`,
    "-e", "load()",
  ];
}

/** argv as one shell command line. */
export function shellLine(argv: string[]): string {
  return argv.map((a) => (/^[\w./:@%+=,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
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

async function loadBoard(id: string): Promise<BoardDef | undefined> {
  const file = path.join(ROOT, "boards", id + ".ts");
  if (!/^[\w-]+$/.test(id) || !existsSync(file)) return undefined;
  return (await import(pathToFileURL(file).href)).default as BoardDef;
}

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
  if (!o.port && !dry) errors.push("--port <device> is required (e.g. /dev/ttyACM0)");
  const port = o.port ?? "/dev/ttyACM0";
  const baud = o.baud ?? 115200;

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

  const rel = (p: string) => {
    const r = path.relative(ROOT, p);
    return r.startsWith("..") ? p : r;
  };
  if (dry) {
    const dir = path.resolve(ROOT, o.dryRun === true ? DEFAULT_DRY_DIR : (o.dryRun as string));
    mkdirSync(dir, { recursive: true });
    const bootFile = path.join(dir, "bootcde.js");
    const cfgFile = path.join(dir, CONFIG_FILE);
    const argv = espruinoArgs({ port, baud, bootFile: rel(bootFile), configFile: rel(cfgFile) });
    if (argv.some((a, i) => argv[i - 1] === "--storage" && a.split(":").length !== 2)) {
      return { ok: false, errors: ["the dry-run directory's path contains ':', which the espruino tool cannot take"] };
    }
    writeFileSync(bootFile, script, "latin1");
    writeFileSync(cfgFile, configText, { mode: 0o600 });
    chmodSync(cfgFile, 0o600);
    writeFileSync(path.join(dir, "led.redacted.json"), JSON.stringify(redact(config), null, 2) + "\n");
    writeFileSync(path.join(dir, "command.txt"), shellLine(argv) + "\n");
    writeFileSync(path.join(dir, "command.json"), JSON.stringify(argv) + "\n");
    log(clean(`dry run for ${board.title} (${board.id}, ${modem}): nothing sent, written to ${rel(dir)}/`));
    log(clean(`  command.txt   the command:  ${shellLine(argv)}`));
    log(clean(`  bootcde.js    ${Buffer.byteLength(script, "latin1")} bytes for Storage ${BOOT_FILE} (from ${rel(firmware)})`));
    log(clean(`  led.json      ${configText.length} bytes for Storage ${CONFIG_FILE} (holds the secrets; mode 600)`));
    log(clean(`  config (redacted): ${JSON.stringify(redact(config))}`));
    return { ok: true, errors: [], argv, dir };
  }

  // Real run: the config goes through a private temporary file, removed afterwards.
  const tmp = mkdtempSync(path.join(os.tmpdir(), "led-flash-"));
  const cfgFile = path.join(tmp, CONFIG_FILE);
  writeFileSync(cfgFile, configText, { mode: 0o600 });
  const argv = espruinoArgs({ port, baud, bootFile: rel(firmware), configFile: cfgFile });
  if (argv.some((a, i) => argv[i - 1] === "--storage" && a.split(":").length !== 2)) {
    rmSync(tmp, { recursive: true, force: true });
    return { ok: false, errors: ["a file path contains ':', which the espruino tool cannot take"] };
  }
  log(clean(`flashing ${board.title} (${board.id}, ${modem}) on ${port}: ${Buffer.byteLength(script, "latin1")} bytes to ${BOOT_FILE}, config to ${CONFIG_FILE}`));
  log(clean(`  ${shellLine(argv)}`));
  log(clean(`  config (redacted): ${JSON.stringify(redact(config))}`));
  try {
    const code = await new Promise<number>((resolve) => {
      const child = spawn(path.join(ROOT, argv[0]), argv.slice(1), { cwd: ROOT, stdio: ["inherit", "pipe", "pipe"] });
      const pipe = (src: NodeJS.ReadableStream, dst: NodeJS.WritableStream) => {
        let buf = "";
        src.setEncoding("latin1");
        src.on("data", (d: string) => {
          buf += d;
          const lines = buf.split("\n");
          buf = lines.pop()!;
          for (const l of lines) dst.write(clean(l) + "\n");
        });
        src.on("end", () => { if (buf) dst.write(clean(buf) + "\n"); });
      };
      pipe(child.stdout!, process.stdout);
      pipe(child.stderr!, process.stderr);
      child.on("error", (e) => { process.stderr.write(clean(String(e)) + "\n"); resolve(127); });
      child.on("close", (c) => resolve(c ?? 1));
    });
    return code === 0 ? { ok: true, errors: [], argv, exitCode: code } : { ok: false, errors: [`espruino exited with ${code}`], argv, exitCode: code };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if ("error" in opts) {
    process.stderr.write(`flash: ${opts.error}\nusage: npm run flash -- --board <id> [--modem esp8266|sim800] --port /dev/ttyACM0 [--baud 115200] [--config config.json] [--dry-run [dir]]\n`);
    process.exit(2);
  }
  const r = await flash(opts);
  if (!r.ok) {
    process.stderr.write(["flash failed:", ...r.errors].join("\n") + "\n");
    process.exit(1);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e) => {
    process.stderr.write("flash: " + String(e && e.message ? e.message : e) + "\n");
    process.exit(1);
  });
}
