/**
 * Records test/fixtures/flash/*.json and test/fixtures/flash/tool/*.json from real
 * runs against Espruino's Linux interpreter on a pseudo-terminal:
 *
 * - whole flashes: every byte each console session sent and received, in order, and
 *   the espruino tool's run (its argv, everything it printed, how it ended);
 * - the espruino tool alone in the situations a flash must not mistake for success.
 *
 * test/flash.test.ts replays them to test the flash command's decisions without a
 * board. Run it again when the console protocol or the tool's command line changes:
 *
 *   ESPRUINO_BIN=/path/to/espruino npx tsx test/espruino/record-flash-fixtures.ts
 *
 * Each flash writes the stand-in firmware test/fixtures/flash/busy-firmware.js (a
 * tick every 50 ms) with test/fixtures/flash/config.json (made-up secrets). The
 * stand-in's Linux console sometimes loses input (see docs/CONTRIBUTING.md); a
 * recording whose result is not the expected one is made again, at most three times.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../../scripts/repo";
import { boardJson, espruinoArgv, runEspruino, type RunOptions, type ToolRun } from "../../scripts/device/espruino-tool";
import { flash, type FlashOptions, type FlashResult } from "../../scripts/device/flash";
import { openSerial, type Link } from "../../scripts/device/serial-port";
import { espruinoBoard, ptyDevice, udevAdmStandIn, type PtyDevice } from "../support/espruino-pty";

const BIN = process.env.ESPRUINO_BIN;
if (!BIN) {
  console.error("set ESPRUINO_BIN to the Espruino interpreter (its Linux build)");
  process.exit(2);
}
const OUT = path.join(ROOT, "test/fixtures/flash");
export const FIXTURE_FIRMWARE = "test/fixtures/flash/busy-firmware.js";
export const FIXTURE_CONFIG = "test/fixtures/flash/config.json";
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LED_")));

const tmp = mkdtempSync(path.join(os.tmpdir(), "flash-record-"));
const devices: PtyDevice[] = [];
const ttys = ["board/tty", "full/tty", "busy/tty", "echo-tty", "silent-tty"].map((t) => path.join(tmp, t));
// The tool finds the stand-ins' pseudo-terminals through this udevadm (test/support/espruino-pty.ts says why).
const toolEnv = udevAdmStandIn(tmp, ttys, baseEnv);
process.env.PATH = toolEnv.PATH; // for the flash's own check that the tool will find the port

/** The tool's argv as stored: the temporary directory as $TMP, the board's device as $PORT. */
function normalArgv(argv: string[], tool: string[] = argv): string[] {
  const port = argv[argv.indexOf("-p") + 1];
  return tool.map((a) => (a === port ? "$PORT" : a.replace(/\/[^\s:'"]*\/(led-flash|flash-record)-[^/:]+/g, "$TMP")));
}

/** Writes a fixture with one array entry per line, so a diff of a re-recording reads line by line. */
function write(file: string, head: Record<string, unknown>, arrays: Record<string, unknown[][]> = {}): void {
  let text = JSON.stringify(head, null, 1).replace(/\n}$/, "");
  for (const [k, list] of Object.entries(arrays)) text += `,\n ${JSON.stringify(k)}: [\n${list.map((e) => "  " + JSON.stringify(e)).join(",\n")}\n ]`;
  writeFileSync(file, text + "\n}\n");
}

/** A link that records both directions into `exchange`. */
function recording(link: Link, exchange: [string, string][]): Link {
  return {
    write: (d) => {
      exchange.push(["tx", d]);
      link.write(d);
    },
    onData: (cb) => link.onData((d) => {
      exchange.push(["rx", d]);
      cb(d);
    }),
    onClose: (cb) => link.onClose(cb),
    close: () => link.close(),
  };
}

interface Recorded { r: FlashResult; sessions: Record<string, [string, string][]>; tool?: Record<string, unknown> }

async function recordFlash(device: () => PtyDevice, opts: Partial<FlashOptions> = {}, aroundTool?: (argv: string[], o: RunOptions) => Promise<ToolRun>): Promise<Recorded> {
  const sessions: Record<string, [string, string][]> = {};
  let tool: Record<string, unknown> | undefined;
  const options = { board: "linux", firmware: FIXTURE_FIRMWARE, config: FIXTURE_CONFIG, env: baseEnv, ...opts };
  const r = await flash({
    ...options,
    port: device().tty,
    log: () => {},
    openLink: async (n) => recording(await openSerial(device().tty, 9600), (sessions[n] = [])),
    runTool: async (argv, o) => {
      const run = await (aroundTool ?? runEspruino)(argv, { ...o, env: toolEnv });
      tool = { argv: normalArgv(argv), ...run, ms: Math.round(run.ms / 100) * 100 };
      return run;
    },
  });
  return { r, sessions, tool };
}

async function saveFlash(name: string, about: string, expect: (r: FlashResult) => boolean, device: () => PtyDevice, opts: Partial<FlashOptions> = {}, aroundTool?: (argv: string[], o: RunOptions) => Promise<ToolRun>, again?: () => Promise<void>) {
  for (let attempt = 1; ; attempt++) {
    const { r, sessions, tool } = await recordFlash(device, opts, aroundTool);
    if (!expect(r) && attempt < 3) {
      console.log(`${name}: unexpected (${r.ok ? "ok" : r.errors[0]}), recording again`);
      await again?.();
      continue;
    }
    const { env: _e, ...shown } = { board: "linux", firmware: FIXTURE_FIRMWARE, config: FIXTURE_CONFIG, ...opts } as Record<string, unknown>;
    const head: Record<string, unknown> = {
      about,
      recorded: "by test/espruino/record-flash-fixtures.ts against Espruino's Linux build on a pseudo-terminal",
      options: shown,
      result: { ok: r.ok, errors: r.errors },
      tool: tool ?? null,
    };
    const arrays: Record<string, unknown[][]> = {};
    for (const [n, ex] of Object.entries(sessions)) arrays[`session ${n}`] = ex;
    write(path.join(OUT, name + ".json"), head, arrays);
    console.log(`${name}: ${r.ok ? "ok" : "failed: " + r.errors[0]} (sessions ${Object.keys(sessions).join(", ")}; tool ${tool ? (tool.timedOut ? "timed out" : `exit ${tool.code}`) : "not run"})`);
    return;
  }
}

/** Runs the tool and keeps its run as tool/<name>.json (`pick` may rename it, or return undefined to keep nothing). */
async function saveTool(name: string, about: string, argv: string[], o: Partial<RunOptions> & { timeoutMs: number }, pick?: (r: ToolRun) => string | undefined) {
  const run = await runEspruino(argv, { cwd: ROOT, env: toolEnv, ...o });
  if (pick) {
    const picked = pick(run);
    if (!picked) return console.log(`tool/${name}: ${run.timedOut ? "timed out" : `exit ${run.code}`}, not the run wanted; again`);
    name = picked;
  }
  write(path.join(OUT, "tool", name + ".json"), {
    about,
    recorded: "by test/espruino/record-flash-fixtures.ts: the espruino tool against Espruino's Linux build on a pseudo-terminal",
    argv: normalArgv(argv),
    timeoutMs: o.timeoutMs,
    run: { ...run, ms: Math.round(run.ms / 100) * 100 },
  });
  console.log(`tool/${name}: ${run.timedOut ? "timed out" : `exit ${run.code}`}; ${JSON.stringify((run.stderr || run.stdout).split("\n").filter(Boolean).slice(-1)[0] ?? "")}`);
}

/** Types one line on a board's console (the port is free between flashes). */
async function type(tty: string, line: string): Promise<void> {
  const link = await openSerial(tty, 9600);
  link.onData(() => {});
  link.write(line);
  await new Promise((r) => setTimeout(r, 600));
  await link.close();
}

try {
  mkdirSync(path.join(OUT, "tool"), { recursive: true });
  for (const d of ["board", "full", "busy"]) mkdirSync(path.join(tmp, d));
  let board = await espruinoBoard(BIN, path.join(tmp, "board"));
  devices.push(board);
  const restart = async () => {
    await board.stop();
    board = await espruinoBoard(BIN, path.join(tmp, "board"));
    devices.push(board);
  };
  const ok = (r: FlashResult) => r.ok;

  await saveFlash("fresh", "a first flash onto an interpreter with empty Storage", ok, () => board, {}, undefined, restart);
  await saveFlash("reflash-busy", "a second flash while the first one's program prints a tick every 50 ms", ok, () => board, {}, undefined, restart);

  // The tool writes a .bootcde with one byte changed (the read-back must catch it; what is recorded is the flash's own argv).
  const bad = path.join(tmp, "corrupted.js");
  const fw = readFileSync(path.join(ROOT, FIXTURE_FIRMWARE), "latin1");
  writeFileSync(bad, fw.slice(0, 400) + (fw[400] === "a" ? "b" : "a") + fw.slice(401), "latin1");
  await saveFlash("corrupted", "the tool wrote a .bootcde with one byte changed (the read-back must catch it)",
    (r) => /read-back differs/.test(r.errors[0] ?? ""), () => board, {},
    (argv, o) => runEspruino(argv.map((a) => (a.startsWith(".bootcde:") ? `.bootcde:${bad}` : a)), o), restart);

  // Storage filled up between the console's check and the tool: the board refuses each .bootcde chunk.
  await saveFlash("tool-refused", "Storage filled by someone else between the console's check and the tool (each .bootcde chunk refused)",
    (r) => /refused the Storage writes/.test(r.errors[0] ?? ""), () => board, {},
    async (argv, o) => {
      await type(board.tty, '\x10var S=require("Storage");S.compact();S.write("filler","x",0,S.getFree()-600)\n');
      return runEspruino(argv, o);
    }, restart);
  await type(board.tty, '\x10require("Storage").erase("filler")\n');

  await saveFlash("wrong-board", "--board pico sent to an interpreter that says LINUX", (r) => !r.ok, () => board, { board: "pico" });

  // The tool alone. Files as a flash writes them.
  const files = path.join(tmp, "files");
  mkdirSync(files);
  writeFileSync(path.join(files, "board.json"), boardJson("LINUXLITE"));
  writeFileSync(path.join(files, "led.json"), JSON.stringify(JSON.parse(readFileSync(path.join(ROOT, FIXTURE_CONFIG), "utf8"))));
  const argvFor = (tty: string) => espruinoArgv({ port: tty, baud: 9600, boardJson: path.join(files, "board.json"), bootFile: FIXTURE_FIRMWARE, configFile: path.join(files, "led.json") });

  // A port that is not in the system's list (a pseudo-terminal the udevadm stand-in does not name).
  const other = await ptyDevice(tmp, "cat", "unlisted-tty");
  devices.push(other);
  await saveTool("unable-to-connect", "a port the tool's port list does not hold: it says so and exits 0", argvFor(other.tty), { timeoutMs: 20000 });

  // A port another program holds (with serialport's lock, as the Web IDE and the tool do).
  const held = await openSerial(board.tty, 9600);
  await saveTool("port-busy", "a port another program holds", argvFor(board.tty), { timeoutMs: 20000 });
  await held.close();

  // Without --no-ble, on a machine without a system D-Bus.
  await saveTool("no-dbus", "without --no-ble where there is no system D-Bus (DBUS_SYSTEM_BUS_ADDRESS names no socket)",
    argvFor(board.tty).filter((a) => a !== "--no-ble"),
    { timeoutMs: 20000, env: { ...toolEnv, DBUS_SYSTEM_BUS_ADDRESS: "unix:path=/nonexistent/system_bus_socket" } });

  // The board goes away in the middle of the upload. The tool then says "Disconnected." and exits 0; now and
  // then (about one run in ten under load) it was writing at that moment and dies of EIO instead (exit 1; test/flash.test.ts
  // quotes such a run). The "Disconnected." run is the one kept.
  for (let attempt = 1, kept = false; !kept && attempt <= 5; attempt++) {
    const gone = setTimeout(() => void board.stop(), 2500);
    const fwArgv = espruinoArgv({ port: board.tty, baud: 9600, boardJson: path.join(files, "board.json"), bootFile: "firmware/linux-esp8266.js", configFile: path.join(files, "led.json") });
    await saveTool("disconnected", "the board went away 2.5 s into writing an 8 KB .bootcde", fwArgv, { timeoutMs: 20000 }, (run) => {
      kept = /Disconnected\./.test(run.stdout);
      return kept ? "disconnected" : undefined;
    });
    clearTimeout(gone);
    board = await espruinoBoard(BIN, path.join(tmp, "board"));
    devices.push(board);
  }

  // A program printing every 50 ms that nobody stopped: the tool never sees half a second of silence.
  const busy = await espruinoBoard(BIN, path.join(tmp, "busy"));
  devices.push(busy);
  await type(busy.tty, '\x10var n=0;setInterval(function(){n++;print("tick "+n)},50)\n');
  await saveTool("busy-board", "a board printing every 50 ms, not stopped first: the tool is stopped after 4 s", argvFor(busy.tty), { timeoutMs: 4000, graceMs: 2000 });

  // Sessions that end before the tool.
  const fullBoard = await espruinoBoard(BIN, path.join(tmp, "full"));
  devices.push(fullBoard);
  await type(fullBoard.tty, '\x10var S=require("Storage");S.write("filler","x",0,S.getFree()-600)\n');
  await saveFlash("storage-full", "a board whose Storage has 600 bytes free", (r) => !r.ok, () => fullBoard);
  const echo = await ptyDevice(tmp, "cat", "echo-tty");
  devices.push(echo);
  await saveFlash("echo", "a port that sends back what it is sent (cat behind a pseudo-terminal)", (r) => !r.ok, () => echo);
  const silent = await ptyDevice(tmp, "sleep 60", "silent-tty");
  devices.push(silent);
  await saveFlash("silent", "a port that never answers (sleep behind a pseudo-terminal)", (r) => !r.ok, () => silent);
} finally {
  for (const d of devices) await d.stop();
  rmSync(tmp, { recursive: true, force: true });
}
