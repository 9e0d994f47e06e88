/**
 * Host side: the Espruino command-line tool (npm package `espruino`, binary
 * `espruino`) as `npm run flash` uses it: it writes the two Storage files, and
 * nothing else. Around it, flash.ts talks to the board's console itself (stops the
 * old program before, reads back and starts the new one after).
 *
 * The command line (espruinoArgv) and why each option is there:
 *
 *   --no-ble       no Bluetooth scan: with it the tool asks the system D-Bus for
 *                  Bluetooth adapters before it opens a serial port, and crashes
 *                  (exit 7, "connect ENOENT /var/run/dbus/system_bus_socket") where
 *                  there is no system D-Bus
 *   -q             no banner ("Espruino Command-line Tool 0.1.67", "Connecting to …")
 *   -p PORT -b N   the serial port (symlinks resolved: the tool opens only a path that
 *                  its port list holds, and that list names /dev/ttyACM0, not the
 *                  /dev/serial/by-id/… link to it) and the baud rate
 *   --board FILE   a board description from a local file: the tool then neither asks
 *                  the board for process.env nor fetches the board's JSON from
 *                  www.espruino.com (its BOARD_JSON_URL); the file lists Storage as a
 *                  built-in module, which also keeps the tool's "No list of built-in
 *                  modules found" box off the output
 *   --storage .bootcde:FILE --storage led.json:FILE
 *                  the files, written with require("Storage").write in chunks (led.json
 *                  first: the tool puts the last one named first)
 *   -e EXPR        without a file or an expression the tool opens an interactive
 *                  terminal instead of uploading; this expression prints a marker after
 *                  the last chunk, which proves the board took every line before it
 *
 * The tool trusts nothing it hears: it exits 0 after "Unable to connect!", after
 * "Disconnected." and after the board printed "Uncaught Error" for every chunk, and
 * it exits only after 500 ms without output from the board. So runEspruino bounds it
 * in time (SIGTERM, then SIGKILL after a grace period) and interpretRun reads its
 * output: only the marker and a clean exit make a successful write.
 */
import { spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import path from "node:path";
import { explainOpenError } from "./serial-port";

/** The tool, as npm installs it (relative to the project root). */
export const ESPRUINO_TOOL = "node_modules/.bin/espruino";
/** What the -e expression prints once the board has run every line before it. */
export const STORED_MARK = "@@flash stored";
/** Split in two inside the expression, so an echo of the line never looks like the marker. */
export const STORED_EXPR = `print("@@"+"flash stored")`;

export interface ToolFiles {
  /** The port as the user gave it; resolved to the device it links to. */
  port: string;
  baud: number;
  /** The board description file (boardJson()). */
  boardJson: string;
  bootFile: string;
  configFile: string;
}

/** The device a port path names (symlinks resolved); the path itself when it cannot be resolved or on Windows. */
export function devicePath(port: string): string {
  if (process.platform === "win32") return port;
  try {
    return realpathSync(port);
  } catch {
    return port;
  }
}

/** The tool's argv, first element the tool. File paths must not contain ':' (the tool splits --storage on it). */
export function espruinoArgv(f: ToolFiles): string[] {
  return [
    ESPRUINO_TOOL,
    "--no-ble",
    "-q",
    "-p", devicePath(f.port),
    "-b", String(f.baud),
    "--board", f.boardJson,
    "--storage", `.bootcde:${f.bootFile}`,
    "--storage", `led.json:${f.configFile}`,
    "-e", STORED_EXPR,
  ];
}

/** Why the tool cannot take these paths (it splits "--storage name:file" at every ':'), or undefined. */
export function pathProblem(argv: string[]): string | undefined {
  const bad = argv.filter((a, i) => argv[i - 1] === "--storage" && a.split(":").length !== 2);
  return bad.length ? `the path ${bad[0].slice(bad[0].indexOf(":") + 1)} contains ':', which the espruino tool cannot take in --storage: move it` : undefined;
}

/** The board description the tool gets with --board: the board's name, and Storage as a built-in module. */
export function boardJson(board: string): string {
  return JSON.stringify({ BOARD: board, info: { builtin_modules: ["Storage"] } }) + "\n";
}

/** argv as one shell command line. */
export function shellLine(argv: string[]): string {
  return argv.map((a) => (/^[\w./:@%+=,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

/** One run of the tool, as it ended. */
export interface ToolRun {
  /** Exit code, or null when it ended by a signal. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** It outlived its time limit and was stopped. */
  timedOut: boolean;
  /** The tool could not be started at all (spawn error message). */
  spawnError?: string;
  ms: number;
}

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Time limit; then SIGTERM, and SIGKILL graceMs later. */
  timeoutMs: number;
  graceMs?: number;
  /** Every complete line the tool prints (stdout and stderr), as it comes. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
}

/** Runs the tool (argv[0] relative to cwd, or absolute), bounded in time. Never rejects. */
export function runEspruino(argv: string[], o: RunOptions): Promise<ToolRun> {
  const began = Date.now();
  const grace = o.graceMs ?? 2000;
  return new Promise<ToolRun>((resolve) => {
    const run: ToolRun = { code: null, signal: null, stdout: "", stderr: "", timedOut: false, ms: 0 };
    const child = spawn(path.resolve(o.cwd, argv[0]), argv.slice(1), {
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let killTimer: NodeJS.Timeout | undefined;
    const limit = setTimeout(() => {
      run.timedOut = true;
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), grace);
    }, o.timeoutMs);
    const collect = (stream: "stdout" | "stderr") => {
      let pending = "";
      child[stream]!.setEncoding("latin1");
      child[stream]!.on("data", (d: string) => {
        run[stream] += d;
        pending += d;
        const lines = pending.split("\n");
        pending = lines.pop()!;
        for (const l of lines) o.onLine?.(l, stream);
      });
      child[stream]!.on("end", () => {
        if (pending) o.onLine?.(pending, stream);
      });
    };
    collect("stdout");
    collect("stderr");
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(limit);
      if (killTimer) clearTimeout(killTimer);
      run.ms = Date.now() - began;
      resolve(run);
    };
    child.on("error", (e) => {
      run.spawnError = e.message;
      finish();
    });
    child.on("close", (code, signal) => {
      run.code = code;
      run.signal = signal;
      finish();
    });
  });
}

/** What the board printed through the tool, one line each, without prompts and line-erase sequences. */
export function boardLines(stdout: string): string[] {
  const out: string[] = [];
  for (const raw of stdout.split("\n")) {
    const line = raw.replace(/\x1b\[J/g, "").replace(/[^\n]*\r(?=[^\n])/g, "").replace(/^>+/, "").replace(/\r/g, "").trimEnd();
    if (line && !/^Explicit board JSON supplied|^Upload Complete$/.test(line)) out.push(line);
  }
  return out;
}

export interface ToolVerdict {
  ok: boolean;
  /** One sentence: what went wrong and what to do. */
  error?: string;
  /** True when the tool got as far as the board (so Storage may hold part of a file). */
  reachedBoard: boolean;
}

/** The first line of a Node error in the tool's stderr ("Error: connect ENOENT …"). */
function errorLine(stderr: string): string | undefined {
  const lines = stderr.split("\n").map((l) => l.trim());
  return lines.find((l) => /^(\w*Error|Error)\b.*:/.test(l)) ?? lines.find((l) => l && !/^(node:|at |\^|Node\.js v|Emitted)/.test(l));
}

/**
 * What a run of the tool means for the flash. The tool exits 0 after most of its
 * failures, so its words decide: it opened the port, the board took every line
 * (the marker came), nothing was refused.
 */
export function interpretRun(run: ToolRun, o: { port: string; timeoutMs: number }): ToolVerdict {
  const { stdout, stderr } = run;
  const board = boardLines(stdout);
  const upload = /^Upload Complete\r?$/m.test(stdout);
  const marked = stdout.includes(STORED_MARK);
  const reachedBoard = upload || board.length > 0 || run.timedOut;
  const fail = (error: string): ToolVerdict => ({ ok: false, error, reachedBoard });

  if (run.spawnError) {
    return fail(`the espruino tool did not start (${run.spawnError}): run npm install (it is the npm package espruino)`);
  }
  if (run.timedOut) {
    const chatter = board.length ? `; the board kept printing (last: ${JSON.stringify(board[board.length - 1].slice(0, 40))}), and the tool ends only after half a second of silence` : "";
    return fail(`the espruino tool did not finish within ${Math.round(o.timeoutMs / 1000)} s and was stopped${chatter} (more time: --timeout)`);
  }
  if (/Cannot lock port|Resource temporarily unavailable|Permission denied|EACCES|EBUSY/i.test(stderr)) {
    return fail(explainOpenError(errorLine(stderr) ?? stderr, o.port));
  }
  if (/^Unable to connect!|^serial: Port .* not found/m.test(stderr)) {
    return fail(`the espruino tool could not open ${o.port} (it said "Unable to connect!"): is the board still plugged in? The tool opens only the serial ports the system lists (udev)`);
  }
  if (/dbus|system_bus_socket/i.test(stderr) && run.code !== 0) {
    return fail(`the espruino tool crashed looking for Bluetooth through D-Bus (${errorLine(stderr)}): it must run with --no-ble`);
  }
  // The board gone mid-upload: the tool says "Disconnected." and exits 0, or, when it was writing, dies of EIO.
  if (/^\s*Disconnected\.?\s*$/m.test(stdout) || /\b(EIO|ENXIO|ENODEV)\b/.test(stderr)) {
    return fail(`the port closed while the espruino tool was writing (was the board unplugged or reset?)`);
  }
  const refused = board.filter((l) => /^Uncaught |^ERROR[: ]|^Error: /.test(l));
  if (refused.length) {
    const first = refused[0];
    const times = refused.filter((l) => l === first).length;
    return fail(`the board refused the Storage writes: ${first}${times > 1 ? ` (${times} times)` : ""}: ${/Unable to find or create file/.test(first) ? "Storage is full (require(\"Storage\").compact(), or erase other files)" : "see --verbose for the board's words"}`);
  }
  if (run.code !== 0 || run.signal) {
    const why = run.signal ? `killed by ${run.signal}` : `exit ${run.code}`;
    const line = errorLine(stderr);
    return fail(`the espruino tool failed (${why}${line ? `: ${line}` : ""})`);
  }
  if (!upload) {
    return fail(`the espruino tool ended without finishing the upload${board.length ? ` (the board's last line: ${JSON.stringify(board[board.length - 1].slice(0, 60))})` : ""}`);
  }
  if (!marked) {
    return fail(`the board did not confirm the upload (no "${STORED_MARK}" after the last chunk): it may have lost input or stopped`);
  }
  return { ok: true, reachedBoard };
}

/**
 * Whether the tool will find `port`: it opens only a path its port list (serialport's,
 * from udev on Linux) names. Returns a sentence when it will not, undefined when it will.
 */
export async function toolPortProblem(port: string): Promise<string | undefined> {
  const device = devicePath(port);
  let listed: string[];
  try {
    const { SerialPort } = await import("serialport");
    listed = (await SerialPort.list()).map((p) => p.path);
  } catch (e) {
    const why = (e as Error).message.split("\n")[0];
    return `the serial ports cannot be listed here (${why}), and the espruino tool opens only a listed port: on Linux it needs udevadm (Debian: apt-get install udev)`;
  }
  if (listed.includes(device) || listed.map((p) => p.toLowerCase()).includes(device.toLowerCase())) return undefined;
  return `${port}${device !== port ? ` (${device})` : ""} is not in the system's list of serial ports (${listed.length ? listed.join(", ") : "the list is empty"}), and the espruino tool opens only a listed port: a pseudo-terminal or a port made by another program is not one; use the board's own port`;
}
