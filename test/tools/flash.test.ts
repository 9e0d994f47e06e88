/**
 * npm run flash, without hardware:
 * - whole flashes replayed from real runs against Espruino's Linux interpreter
 *   (test/fixtures/flash/*.json): the console session before the espruino tool,
 *   the tool's command line and what it printed, the session after it; what each
 *   answer (or silence) leads to, and the read-back comparison;
 * - what the tool's recorded outputs mean (test/fixtures/flash/tool/*.json): it
 *   exits 0 after most of its failures;
 * - the tool's time limit (a stand-in that never stops printing and ignores
 *   SIGTERM) and the real tool's Bluetooth switch (a D-Bus socket that counts
 *   connections);
 * - the port check and the port list, the open errors serialport really gives;
 * - the command's exit codes and its one-line failures;
 * - --dry-run, which writes exactly the console lines and the tool's command line a
 *   flash uses, and nothing printed holds a secret.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../../scripts/repo";
import {
  boardLines, devicePath, ESPRUINO_TOOL, espruinoArgv, interpretRun, runEspruino, STORED_MARK, toolPortProblem, type RunOptions, type ToolRun,
} from "../../scripts/device/espruino-tool";
import { flash, noPortMessage, parseArgs, redactor, visible, type FlashOptions } from "../../scripts/device/flash";
import { crc32, DEFAULT_TIMEOUTS, lines } from "../../scripts/device/flash-console";
import { checkPort, explainOpenError, formatPorts, listSerialPorts } from "../../scripts/device/serial-port";
import { drive, loadFixture, loadToolFixture, ReplayLink, type Exchange, type ReplayOptions } from "../support/console-replay";
import { FakeClock } from "../support/fake-clock";

const WIFI_PW = "wifi-S3CRET-hunter2";
const BROKER_PW = "broker-S3CRET-pw";
const tmp = mkdtempSync(path.join(os.tmpdir(), "flash-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The environment without LED_* overrides from the developer's shell. */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LED_")));
const secretForms = [WIFI_PW, BROKER_PW, Buffer.from(WIFI_PW).toString("base64").slice(0, 12)];
const TSX = path.join(ROOT, "node_modules/.bin/tsx");

// The files the recordings wrote, as the board must hold them.
const FW_FILE = path.join(ROOT, "test/fixtures/flash/busy-firmware.js");
const CFG_FILE = path.join(ROOT, "test/fixtures/flash/config.json");
const FW = readFileSync(FW_FILE, "latin1");
const LED_JSON = Buffer.from(JSON.stringify(JSON.parse(readFileSync(CFG_FILE, "utf8"))), "utf8").toString("latin1");

/** The espruino command line a flash runs, with its temporary directory as $TMP and the board's device as $PORT. */
const TOOL_ARGV = [
  "node_modules/.bin/espruino",
  "--no-ble",
  "-q",
  "-p", "$PORT",
  "-b", "9600",
  "--board", "$TMP/board.json",
  "--storage", ".bootcde:test/fixtures/flash/busy-firmware.js",
  "--storage", "led.json:$TMP/led.json",
  "-e", 'print("@@"+"flash stored")',
];

interface Replayed {
  ok: boolean;
  errors: string[];
  /** The console sessions by number (1 before the tool, 2 after, 3 erasing). */
  links: Record<number, ReplayLink>;
  /** The tool's argv as it was called (normalised like TOOL_ARGV), its run options and the board description it found. */
  tool?: { argv: string[]; o: RunOptions; boardJson: string; dir: string; configMode: number };
  log: string[];
  ms: number;
  result: Awaited<ReturnType<typeof flash>>;
}

interface ReplayPlan {
  /** Per session: how its recording is replayed. */
  sessions?: Record<number, ReplayOptions & { exchange?: Exchange; openError?: string }>;
  /** The tool's run to give instead of the recorded one. */
  tool?: ToolRun;
}

/** Flashes as a recording did, against its replay. */
async function replay(name: string, plan: ReplayPlan = {}, extra: Partial<FlashOptions> = {}): Promise<Replayed> {
  const fx = loadFixture(name);
  const clock = new FakeClock(0);
  const links: Record<number, ReplayLink> = {};
  const log: string[] = [];
  let tool: Replayed["tool"];
  const { value, ms } = await drive(
    flash({
      ...fx.options,
      port: "/dev/ttyACM0",
      env: cleanEnv,
      clock,
      log: (l) => log.push(l),
      portCheck: async () => undefined,
      openLink: async (n) => {
        const p = plan.sessions?.[n] ?? {};
        if (p.openError) throw new Error(p.openError);
        const exchange = p.exchange ?? fx.sessions[n];
        if (!exchange) throw new Error(`the recording has no session ${n}`);
        return (links[n] = new ReplayLink(exchange, clock, p));
      },
      runTool: async (argv, o) => {
        const port = argv[argv.indexOf("-p") + 1];
        const tmpDir = path.dirname(argv[argv.indexOf("--board") + 1]);
        tool = {
          argv: argv.map((a) => (a === port ? "$PORT" : a.split(tmpDir).join("$TMP"))),
          o,
          boardJson: readFileSync(argv[argv.indexOf("--board") + 1], "utf8"),
          dir: tmpDir,
          configMode: statSync(path.join(tmpDir, "led.json")).mode & 0o777,
        };
        const run = plan.tool ?? fx.tool;
        if (!run) throw new Error(`the recording ${name} never ran the tool`);
        return run;
      },
      ...extra,
    }),
    clock,
  );
  return { ok: value.ok, errors: value.errors, links, tool, log, ms, result: value };
}

/** The kind of each line sent: hello, reset, prepare, compact, verify, erase <file>, load, ctrl-c. */
function kinds(link: ReplayLink | undefined): string[] {
  return (link?.sent ?? []).map((s) => {
    if (s === lines.ctrlC) return "ctrl-c";
    if (s === lines.reset) return "reset";
    if (s === lines.load) return "load";
    if (s.includes("process.env.BOARD")) return "hello";
    if (s.includes("S.erase(") && s.includes("getStats")) return "prepare";
    if (s.includes("trashBytes")) return "compact";
    if (s.includes("E.CRC32")) return "verify";
    const m = /erase\("([^"]+)"\)/.exec(s);
    if (m) return `erase ${m[1]}`;
    return "?" + s;
  });
}

const BEFORE = ["hello", "reset", "hello", "prepare"];
const AFTER = ["hello", "compact", "verify", "load"];

describe("npm run flash, replayed from a real Espruino interpreter and the real espruino tool", () => {
  it("a first flash: stops the old program, the espruino tool writes both files, then compact, read back, start", async () => {
    const r = await replay("fresh");
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
    expect(kinds(r.links[1])).toEqual(BEFORE);
    expect(kinds(r.links[2])).toEqual(AFTER);
    expect(r.links[1].mismatches).toEqual([]);
    expect(r.links[2].mismatches).toEqual([]);
    expect(r.links[1].closed && r.links[2].closed).toBe(true);
    expect(r.links[3]).toBeUndefined();
    // The tool ran between the sessions, with exactly this command line.
    expect(r.tool!.argv).toEqual(TOOL_ARGV);
    // What the board read back is the files' own length and CRC32.
    expect(r.result.readBack).toEqual({ "led.json": [LED_JSON.length, crc32(LED_JSON)], ".bootcde": [FW.length, crc32(FW)] });
    const out = r.log.join("\n");
    expect(out).toContain(`wrote     led.json ${LED_JSON.length} bytes, .bootcde ${FW.length} bytes (the espruino tool, 1.8 s)`);
    expect(out).toMatch(/verified  led\.json CRC32 0x[0-9a-f]{8}, \.bootcde CRC32 0x[0-9a-f]{8} \(read back from the board\)/);
    expect(r.result.started![0]).toMatch(/^stand-in firmware: led.json ssid "caf\\u00E9-lab"/);
    // The tool's own words stay out of what the user sees.
    expect(out).not.toMatch(/Explicit board JSON|Upload Complete|@@flash|espruino\.com|Donate/);
    for (const s of secretForms) expect(out).not.toContain(s);
  });

  it("the tool's command line: Bluetooth off, quiet, the device behind a symlink, a local board description instead of a network look-up", async () => {
    const r = await replay("fresh");
    // A board description from a file: the tool neither asks the board nor fetches www.espruino.com/json/<BOARD>.json.
    expect(r.tool!.argv.slice(r.tool!.argv.indexOf("--board"), r.tool!.argv.indexOf("--board") + 2)).toEqual(["--board", "$TMP/board.json"]);
    expect(JSON.parse(r.tool!.boardJson)).toEqual({ BOARD: "LINUXLITE", info: { builtin_modules: ["Storage"] } });
    expect(r.tool!.argv.join(" ")).not.toMatch(/https?:|BOARD_JSON_URL/);
    // The tool compares -p with the device names its port list holds: a by-id link is passed as its device.
    const link = path.join(tmp, "usb-Espruino.com_Espruino_Pico-if00");
    symlinkSync("/dev/null", link);
    expect(devicePath(link)).toBe("/dev/null");
    const argv = espruinoArgv({ port: link, baud: 115200, boardJson: "b.json", bootFile: "fw.js", configFile: "c.json" });
    expect(argv.slice(0, 7)).toEqual([ESPRUINO_TOOL, "--no-ble", "-q", "-p", "/dev/null", "-b", "115200"]);
    // The private files exist while the tool runs (led.json readable by the user only), and are gone afterwards.
    expect(r.tool!.o.cwd).toBe(ROOT);
    expect(r.tool!.configMode).toBe(0o600);
    expect(existsSync(r.tool!.dir)).toBe(false);
  });

  it("a reflash over a program printing every 50 ms: reset first, its output skipped, the tool sees a quiet board", async () => {
    const r = await replay("reflash-busy", { sessions: { 2: { chatter: { line: "tick\r\n", everyMs: 50 } } } });
    expect(r.errors).toEqual([]);
    expect(kinds(r.links[1])).toEqual(BEFORE);
    expect(kinds(r.links[2])).toEqual(AFTER);
    expect(r.links[1].mismatches.concat(r.links[2].mismatches)).toEqual([]);
    // Ticks came in before the reset's answer: reset() went out before anything was erased or written.
    const rx = loadFixture("reflash-busy").sessions[1];
    const text = rx.filter(([d]) => d === "rx").map(([, s]) => s).join("");
    expect(text.indexOf("tick")).toBeGreaterThanOrEqual(0);
    expect(text.indexOf("tick")).toBeLessThan(text.indexOf("Espruino is Open Source"));
    expect(text + loadFixture("reflash-busy").tool!.stdout).not.toContain("Function code is null");
    // The new program never goes quiet; the session still ends, on time.
    expect(r.result.started!.length).toBeGreaterThan(1);
    expect(r.links[2].closed).toBe(true);
    expect(r.ms).toBeLessThan(DEFAULT_TIMEOUTS.total);
  });

  it("the tool wrote a .bootcde with one byte changed: the read-back differs, the flash fails and erases .bootcde", async () => {
    const r = await replay("corrupted");
    expect(r.ok).toBe(false);
    expect(r.links[2].mismatches).toEqual([]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^read-back differs from what was sent: \.bootcde has CRC32 0x[0-9a-f]{8}, not 0x[0-9a-f]{8}; \.bootcde was erased, so the board runs nothing at boot: flash again$/);
    expect(kinds(r.links[2])).toEqual(["hello", "compact", "verify", "erase .bootcde"]);
  });

  it("a file the board does not hold, or holds at another length, is a failed flash", async () => {
    const verifyAnswer = (d: string) => d.replace(/(@@flash ok 3 )\[\[\d+,-?\d+\],\[(\d+),(-?\d+)\]\]/, "$1[[1,2],null]");
    const r = await replay("fresh", { sessions: { 2: { alterRx: verifyAnswer } } });
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toMatch(/^read-back differs from what was sent: led\.json holds 1 bytes, not \d+; \.bootcde is missing; the board may hold a damaged \.bootcde: flash again$/);
  });

  it("the board refused the tool's writes (Storage filled meanwhile): the tool exited 0, the flash fails, .bootcde is erased", async () => {
    const fx = loadFixture("tool-refused");
    expect(fx.tool!.code).toBe(0);
    const r = await replay("tool-refused");
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual([
      'the board refused the Storage writes: Uncaught Error: Unable to find or create file (2 times): Storage is full (require("Storage").compact(), or erase other files); .bootcde was erased, so the board runs nothing at boot until a flash succeeds',
    ]);
    expect(kinds(r.links[3])).toEqual(["hello", "erase .bootcde"]);
    expect(r.links[2]).toBeUndefined();
  });

  it("a board that says it is another board: refused before anything is stopped or written; the tool never runs", async () => {
    const r = await replay("wrong-board");
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toBe("the board on this port is LINUXLITE (Espruino 2v29.277), not Espruino Pico (PICO_R1_3): that is --board linux, or use the port of your Espruino Pico");
    expect(kinds(r.links[1])).toEqual(["hello"]);
    expect(r.tool).toBeUndefined();
    expect(r.result.wrote).toBeFalsy();
  });

  it("Storage too full even after compacting: refused before the tool runs", async () => {
    const r = await replay("storage-full");
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toMatch(/^Storage has 568 bytes free, the files need 808: .*; the old \.bootcde and led\.json were erased, so the board runs nothing at boot$/);
    expect(kinds(r.links[1])).toEqual(BEFORE);
    expect(r.tool).toBeUndefined();
  });

  it("a port that echoes, and one that says nothing: one Ctrl-C, a second try, then a clear failure", async () => {
    const echo = await replay("echo");
    expect(echo.errors[0]).toMatch(/^the port only sends back what it is sent, which an Espruino console does not do/);
    expect(kinds(echo.links[1])).toEqual(["hello", "ctrl-c", "hello"]);
    const silent = await replay("silent");
    expect(silent.errors[0]).toMatch(/^no answer from the port in 6\.7 s: is it the board's port/);
    expect(kinds(silent.links[1])).toEqual(["hello", "ctrl-c", "hello"]);
    expect(silent.ms).toBe(DEFAULT_TIMEOUTS.hello + 200 + DEFAULT_TIMEOUTS.reply);
    expect(silent.tool).toBeUndefined();
  });

  it("a board that stops answering after the tool: fails on time, says the files were not read back", async () => {
    const r = await replay("fresh", { sessions: { 2: { stopAfterTx: 1 } } });
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toBe("the files were written, but the board stopped answering during verify (no answer in 5 s): press its reset button or plug it in again, then flash again");
    expect(r.links[2].closed).toBe(true);
  });

  it("the whole flash is bounded by --timeout, and the tool gets what is left of it", async () => {
    const stuck = await replay("fresh", { sessions: { 1: { stopAfterTx: 2 } } }, { timeout: 3 });
    expect(stuck.errors[0]).toBe("the flash took longer than 3 s (stopped during prepare); flash again, or give more time with --timeout");
    expect(stuck.ms).toBeLessThanOrEqual(3000);
    const r = await replay("fresh", {}, { timeout: 20 });
    expect(r.ok).toBe(true);
    // 20 s, less the first session (the 0.3 s after reset()), less 8 s kept for reading back.
    expect(r.tool!.o.timeoutMs).toBe(20_000 - DEFAULT_TIMEOUTS.settle - 8_000);
  });

  it("a board that refuses a step, a garbled answer, a port that closes: each said plainly", async () => {
    const refuse = await replay("fresh", { sessions: { 1: { alterRx: (d) => d.replace(/@@flash ok 3 .*\r\n/, "@@flash err 3 Error: Flash is locked\r\n") } } });
    expect(refuse.errors[0]).toBe("the board refused prepare: Error: Flash is locked");
    const garbled = await replay("fresh", { sessions: { 2: { alterRx: (d) => d.replace(/@@flash ok 3 \[\[/, "@@flash ok 3 [[\x8f") } } });
    expect(garbled.errors[0]).toMatch(/^the files were written, but the board's answer to verify came garbled \("\[\[\\u008f.*: check the cable and the baud rate \(--baud\), then flash again$/);
    const gone = await replay("fresh", { sessions: { 1: { closeAtTx: 3 } } });
    expect(gone.errors[0]).toBe("the port closed during prepare: was the board unplugged or reset? Plug it in and flash again");
    const away = await replay("fresh", { sessions: { 2: { openError: "no serial port /dev/ttyACM0 (it went away: is the board still plugged in?)" } } });
    expect(away.errors[0]).toBe("the files were written, but no serial port /dev/ttyACM0 (it went away: is the board still plugged in?)");
  });

  it("--verbose shows the tool's command line and output and the board's lines, filtered; without it the user sees the steps only", async () => {
    const quiet = await replay("fresh");
    expect(quiet.log.some((l) => /board │|espruino │/.test(l))).toBe(false);
    const loud = await replay("fresh", {}, { verbose: true });
    const out = loud.log.join("\n");
    expect(out).toMatch(/^ {2}espruino {2}node_modules\/\.bin\/espruino --no-ble -q -p \/dev\/ttyACM0 -b 9600 --board \/[^ ]+\/board\.json /m);
    expect(out).toMatch(/board │ .*espruino\.com/);
    expect(out).toMatch(/board │ stand-in firmware/);
    for (const s of secretForms) expect(out).not.toContain(s);
  });
});

describe("what the espruino tool's output means (recorded from real runs)", () => {
  const verdict = (name: string) => {
    const fx = loadToolFixture(name);
    return { fx, v: interpretRun(fx.run, { port: "/dev/ttyACM0", timeoutMs: fx.timeoutMs }) };
  };

  it("a clean run: the tool said Upload Complete and the board printed the marker after the last chunk", () => {
    const run = loadFixture("fresh").tool!;
    expect(interpretRun(run, { port: "/dev/ttyACM0", timeoutMs: 30_000 })).toEqual({ ok: true, reachedBoard: true });
    expect(boardLines(run.stdout)).toEqual([STORED_MARK]);
    // Without the marker, or without Upload Complete, the same exit 0 is a failure.
    const unmarked = interpretRun({ ...run, stdout: run.stdout.replace(STORED_MARK, "") }, { port: "/dev/ttyACM0", timeoutMs: 30_000 });
    expect(unmarked.error).toMatch(/^the board did not confirm the upload \(no "@@flash stored" after the last chunk\)/);
    const cut = interpretRun({ ...run, stdout: run.stdout.replace("Upload Complete", "") }, { port: "/dev/ttyACM0", timeoutMs: 30_000 });
    expect(cut.error).toMatch(/^the espruino tool ended without finishing the upload/);
  });

  it("a port its list does not hold: it prints Unable to connect! and exits 0; the flash says it failed", () => {
    const { fx, v } = verdict("unable-to-connect");
    expect(fx.run.code).toBe(0);
    expect(fx.run.stderr).toMatch(/^Unable to connect!$/m);
    expect(v).toEqual({ ok: false, reachedBoard: false, error: 'the espruino tool could not open /dev/ttyACM0 (it said "Unable to connect!"): is the board still plugged in? The tool opens only the serial ports the system lists (udev)' });
  });

  it("a port another program holds: its stack trace becomes the busy line", () => {
    const { fx, v } = verdict("port-busy");
    expect(fx.run.code).toBe(1);
    expect(v.error).toBe("/dev/ttyACM0 is busy: another program has it open (the Espruino Web IDE, the espruino tool, another npm run flash, screen, minicom); close it and flash again");
  });

  it("without --no-ble where there is no system D-Bus it crashes with exit 7: said in one line", () => {
    const { fx, v } = verdict("no-dbus");
    expect(fx.argv).not.toContain("--no-ble");
    expect(fx.run.code).toBe(7);
    expect(v.error).toBe("the espruino tool crashed looking for Bluetooth through D-Bus (Error: connect ENOENT /nonexistent/system_bus_socket): it must run with --no-ble");
  });

  it("the board went away mid-upload: it prints Disconnected. and exits 0; the flash says it failed", () => {
    const { fx, v } = verdict("disconnected");
    expect(fx.run.code).toBe(0);
    expect(v).toEqual({ ok: false, reachedBoard: true, error: "the port closed while the espruino tool was writing (was the board unplugged or reset?)" });
  });

  it("the board went away while the tool was writing: it dies of EIO (exit 1); said like the disconnect", () => {
    // The stderr of such a run against the stand-in (it happens in about one run in ten; the recorder keeps the other kind).
    const stderr = [
      "node:events:502", "      throw er; // Unhandled 'error' event", "      ^", "", "Error: EIO: i/o error, write",
      "Emitted 'error' event on SerialPort instance at:", "    at emitErrorNT (node:internal/streams/destroy:169:8)",
      "    at emitErrorCloseNT (node:internal/streams/destroy:128:3)", "    at process.processTicksAndRejections (node:internal/process/task_queues:82:21) {",
      "  errno: -5,", "  code: 'EIO',", "  syscall: 'write'", "}", "", "Node.js v20.20.2", "",
    ].join("\n");
    const stdout = 'Explicit board JSON supplied: "/tmp/flash-record-4TJC8f/files/board.json"\n\r\nCompacting... \x08|\r\n';
    const v = interpretRun({ code: 1, signal: null, stdout, stderr, timedOut: false, ms: 2500 }, { port: "/dev/ttyACM0", timeoutMs: 20_000 });
    expect(v).toEqual({ ok: false, reachedBoard: true, error: "the port closed while the espruino tool was writing (was the board unplugged or reset?)" });
  });

  it("a board printing every 50 ms that nobody stopped keeps the tool running: it was stopped at its limit", () => {
    const { fx, v } = verdict("busy-board");
    expect(fx.run.timedOut).toBe(true);
    expect(v.ok).toBe(false);
    expect(v.error).toMatch(/^the espruino tool did not finish within 4 s and was stopped; the board kept printing \(last: "tick \d+[\d.]*"\), and the tool ends only after half a second of silence \(more time: --timeout\)$/);
  });

  it("a tool that is not installed, and one that ends in an unknown way", () => {
    const none = interpretRun({ code: null, signal: null, stdout: "", stderr: "", timedOut: false, ms: 0, spawnError: "spawn node_modules/.bin/espruino ENOENT" }, { port: "p", timeoutMs: 1000 });
    expect(none.error).toBe("the espruino tool did not start (spawn node_modules/.bin/espruino ENOENT): run npm install (it is the npm package espruino)");
    const crash = interpretRun({ code: 1, signal: null, stdout: "", stderr: "/x/y.js:1\nTypeError: foo is not a function\n    at z\n", timedOut: false, ms: 0 }, { port: "p", timeoutMs: 1000 });
    expect(crash.error).toBe("the espruino tool failed (exit 1: TypeError: foo is not a function)");
  });

  it("in a flash: a tool that never reached the board leaves the erase to no one; one that did is followed by an erase of .bootcde", async () => {
    const erase = loadFixture("tool-refused").sessions[3];
    const unable = await replay("fresh", { tool: loadToolFixture("unable-to-connect").run });
    expect(unable.errors[0]).toMatch(/^the espruino tool could not open \/dev\/ttyACM0 .*; the old \.bootcde and led\.json were erased before, so the board runs nothing at boot until a flash succeeds$/);
    expect(unable.links[3]).toBeUndefined();
    const busy = await replay("fresh", { tool: loadToolFixture("busy-board").run, sessions: { 3: { exchange: erase } } });
    expect(busy.errors[0]).toMatch(/^the espruino tool did not finish within \d+ s and was stopped; .*; \.bootcde was erased, so the board runs nothing at boot until a flash succeeds$/);
    expect(kinds(busy.links[3])).toEqual(["hello", "erase .bootcde"]);
    const gone = await replay("fresh", { tool: loadToolFixture("disconnected").run, sessions: { 3: { openError: "no serial port /dev/ttyACM0" } } });
    expect(gone.errors[0]).toBe("the port closed while the espruino tool was writing (was the board unplugged or reset?); the board may hold part of .bootcde, which would run at the next boot: flash again");
  });
});

describe("running the espruino tool", () => {
  it("a tool that keeps printing and ignores SIGTERM is killed with SIGKILL after the grace period", async () => {
    const dir = path.join(tmp, "chatty");
    mkdirSync(dir);
    const script = path.join(dir, "chatty.js");
    writeFileSync(script, "#!/usr/bin/env node\nprocess.on('SIGTERM', () => console.log('ignoring SIGTERM'));\nsetInterval(() => console.log('tick'), 50);\n", { mode: 0o755 });
    const seen: string[] = [];
    const run = await runEspruino([script], { cwd: dir, timeoutMs: 400, graceMs: 400, onLine: (l) => seen.push(l) });
    expect(run.timedOut).toBe(true);
    expect(run.signal).toBe("SIGKILL");
    expect(run.stdout).toContain("ignoring SIGTERM");
    expect(seen).toContain("tick");
    expect(interpretRun(run, { port: "p", timeoutMs: 400 }).error).toMatch(/^the espruino tool did not finish within 0 s and was stopped; the board kept printing/);
  });

  it("a tool that is not there: a spawn error, not a hang", async () => {
    const run = await runEspruino(["node_modules/.bin/no-such-tool"], { cwd: ROOT, timeoutMs: 5000 });
    expect(run.spawnError).toMatch(/ENOENT/);
  });

  it("the real tool with --no-ble never connects to D-Bus; without it, it does (the same socket counts both)", async () => {
    /** Runs the real tool against a port no list holds, with a D-Bus socket that counts connections. */
    const withBus = async (name: string, noBle: boolean) => {
      const sock = path.join(tmp, `${name}.sock`);
      let connections = 0;
      const server = net.createServer((c) => {
        connections++;
        c.destroy();
      });
      await new Promise<void>((r) => server.listen(sock, r));
      const argv = espruinoArgv({ port: path.join(tmp, "ttyACM9"), baud: 9600, boardJson: path.join(tmp, "b.json"), bootFile: FW_FILE, configFile: CFG_FILE })
        .filter((a) => noBle || a !== "--no-ble");
      writeFileSync(path.join(tmp, "b.json"), JSON.stringify({ BOARD: "X", info: { builtin_modules: ["Storage"] } }));
      const run = await runEspruino(argv, { cwd: ROOT, timeoutMs: 20_000, env: { ...cleanEnv, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${sock}` } });
      await new Promise((r) => server.close(r));
      return { run, connections };
    };
    const [off, on] = await Promise.all([withBus("off", true), withBus("on", false)]);
    expect(off.connections).toBe(0);
    expect(off.run.stderr).not.toMatch(/dbus|bluetooth|noble/i);
    expect(off.run.stderr).toMatch(/^Unable to connect!$/m);
    expect(off.run.code).toBe(0);
    expect(on.connections).toBeGreaterThan(0);
  }, 30_000);

  it("before touching the board: a port the system's list does not hold is refused, because the tool could not open it", async () => {
    const p = await toolPortProblem("/dev/null");
    expect(p).toMatch(/^\/dev\/null is not in the system's list of serial ports \(.*\), and the espruino tool opens only a listed port|^the serial ports cannot be listed here/);
    const lines: string[] = [];
    const r = await flash({ board: "linux", port: "/dev/null", config: CFG_FILE, firmware: FW_FILE, env: cleanEnv, log: (l) => lines.push(l),
      openLink: async () => { throw new Error("must not open"); }, portCheck: toolPortProblem });
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual([p]);
  });
});

describe("the port: checked first, and the ports there are listed", () => {
  const dev = path.join(tmp, "dev");
  mkdirSync(path.join(dev, "serial/by-id"), { recursive: true });
  for (const f of ["ttyACM0", "ttyUSB1", "ttyS0", "ttyS1", "tty0", "null", "ttyAMA0"]) writeFileSync(path.join(dev, f), "");
  symlinkSync("../../ttyACM0", path.join(dev, "serial/by-id/usb-Espruino.com_Espruino_Pico_3276-if00"));

  it("lists by-id names (with what they point at), then the other serial devices; not ttyS*", async () => {
    const ports = await listSerialPorts({ dev, platform: "linux" });
    expect(ports.map((p) => p.path)).toEqual([
      path.join(dev, "serial/by-id/usb-Espruino.com_Espruino_Pico_3276-if00"),
      path.join(dev, "ttyAMA0"),
      path.join(dev, "ttyUSB1"),
    ]);
    expect(formatPorts(ports)).toContain(`usb-Espruino.com_Espruino_Pico_3276-if00 (→ ${path.join(dev, "ttyACM0")})`);
    expect(await noPortMessage("no serial port /dev/ttyACM9", dev)).toMatch(/^no serial port \/dev\/ttyACM9; serial ports here: .*Espruino_Pico.*ttyUSB1\. Pick the board's with --port$/);
    expect(await noPortMessage("no serial port /dev/ttyACM9", path.join(tmp, "empty"))).toMatch(/^no serial port \/dev\/ttyACM9, and no serial port is present .*: plug the board in with a USB data cable$/);
  });

  it("a missing path, or a file that is no device, is refused before anything is opened", () => {
    expect(checkPort(path.join(tmp, "nope"))).toBe(`no serial port ${path.join(tmp, "nope")}`);
    expect(checkPort(CFG_FILE)).toMatch(/is not a serial device \(it is a regular file\)$/);
    expect(checkPort("/dev/null")).toBeUndefined();
  });

  it("serialport's open errors (as it really words them) become what to do", () => {
    expect(explainOpenError("Error: No such file or directory, cannot open /dev/ttyACM0", "/dev/ttyACM0")).toMatch(/^no serial port \/dev\/ttyACM0 \(it went away/);
    expect(explainOpenError("Error Resource temporarily unavailable Cannot lock port", "/dev/ttyACM0")).toMatch(/^\/dev\/ttyACM0 is busy: another program has it open .*close it and flash again$/);
    expect(explainOpenError("Error: Permission denied, cannot open /dev/ttyACM0", "/dev/ttyACM0")).toMatch(/^no permission to open \/dev\/ttyACM0: .*dialout/);
    expect(explainOpenError("Inappropriate ioctl for device setting custom baud rate of 9600", "/dev/x")).toBe("/dev/x is not a serial port (it does not take serial settings)");
  });

  it("the command: exit 1 and one line for a missing port, checked before the config; exit 2 for a usage error", () => {
    const run = (...args: string[]) => spawnSync(TSX, ["scripts/device/flash.ts", ...args], { cwd: ROOT, env: cleanEnv, encoding: "utf8", timeout: 60_000 });
    const missing = path.join(tmp, "ttyACM9");
    const r = run("--board", "pico", "--port", missing, "--config", path.join(tmp, "no-such-config.json"));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    const err = r.stderr.trim().split("\n");
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(new RegExp(`^flash failed: no serial port ${missing}(; serial ports here: .*|, and no serial port is present .*)$`));

    const u = run("--board", "pico", "--baud", "fast");
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(/^flash: --baud must be a positive whole number\nusage: npm run flash/);
    const noPort = run("--board", "pico");
    expect(noPort.status).toBe(1);
    expect(noPort.stderr).toMatch(/^flash failed: --port <device> is required/);
  }, 60_000);

  it("the flash modules load neither the espruino tool (it runs as a child process), Bluetooth nor D-Bus", () => {
    for (const f of ["scripts/device/flash.ts", "scripts/device/flash-console.ts", "scripts/device/serial-port.ts", "scripts/device/espruino-tool.ts"]) {
      const src = readFileSync(path.join(ROOT, f), "utf8");
      const imports = [...src.matchAll(/(?:from|import\()\s*"([^"]+)"/g)].map((m) => m[1]);
      for (const i of imports) expect(i).not.toMatch(/^espruino(\/|$)|noble|dbus|bluetooth|node-ble|^(node:)?(net|http|https|dns)$/);
    }
  });
});

describe("npm run flash -- --dry-run", () => {
  /** The shape of a tool argv: its options, with the file paths and the port left out. */
  const shape = (argv: string[]) => argv.map((a, i) =>
    argv[i - 1] === "-p" ? "<port>" : argv[i - 1] === "--board" ? "<board.json>" : argv[i - 1] === "--storage" ? a.replace(/:.*/, ":<file>") : a);

  it("writes the console lines and the tool's command line a flash uses (the same a real flash used), the files, and prints no secret", async () => {
    const dir = path.join(tmp, "dry");
    const r = spawnSync(TSX, [
      "scripts/device/flash.ts", "--board", "linux", "--port", "/dev/ttyACM0",
      "--config", CFG_FILE, "--firmware", FW_FILE, "--dry-run", dir,
    ], { cwd: ROOT, env: cleanEnv, encoding: "utf8", timeout: 60_000 });
    const out = r.stdout + r.stderr;
    expect(r.status, out).toBe(0);
    for (const s of secretForms) expect(out).not.toContain(s);
    expect(out).toContain(dir.startsWith(ROOT) ? path.relative(ROOT, dir) : dir);
    expect(out).toMatch(/^ +node_modules\/\.bin\/espruino --no-ble -q -p \/dev\/ttyACM0 -b 9600 --board \S+board\.json --storage \.bootcde:\S+bootcde\.js --storage led\.json:\S+led\.json -e 'print\("@@"\+"flash stored"\)'$/m);

    // The lines, line for line, and the command line, option for option, that the recorded real flash used.
    const fresh = await replay("fresh");
    const read = (f: string) => readFileSync(path.join(dir, f), "latin1").trimEnd().split("\n");
    expect(read("console-before.txt")).toEqual(fresh.links[1].sent.map(visible));
    expect(read("console-after.txt")).toEqual(fresh.links[2].sent.map(visible));
    const argv = JSON.parse(readFileSync(path.join(dir, "espruino.json"), "utf8")) as string[];
    expect(shape(argv)).toEqual(shape(TOOL_ARGV));
    expect(readFileSync(path.join(dir, "espruino.txt"), "utf8")).toMatch(/^node_modules\/\.bin\/espruino --no-ble /);
    // The files it names are the ones written.
    expect(readFileSync(path.resolve(ROOT, argv[argv.indexOf("--board") + 1]), "utf8")).toBe(readFileSync(path.join(dir, "board.json"), "utf8"));
    expect(readFileSync(path.join(dir, "bootcde.js"), "latin1")).toBe(FW);
    const sent = JSON.parse(readFileSync(path.join(dir, "led.json"), "utf8"));
    expect(sent).toEqual(JSON.parse(readFileSync(CFG_FILE, "utf8")));
    expect(statSync(path.join(dir, "led.json")).mode & 0o077).toBe(0);
    const shown = readFileSync(path.join(dir, "led.redacted.json"), "utf8");
    for (const s of secretForms) expect(shown).not.toContain(s);
  }, 60_000);

  it("sends this build's modem's credentials only, and the built firmware by default", async () => {
    const cfg = path.join(tmp, "both.json");
    writeFileSync(cfg, JSON.stringify({
      wifi: { ssid: "lab-net", password: WIFI_PW },
      gprs: { apn: "internet", password: "apn-S3CRET" },
      broker: { host: "127.0.0.1", port: 1883, username: "dev", password: BROKER_PW },
    }));
    const built = path.join(ROOT, "firmware/pico-esp8266.js");
    const lines: string[] = [];
    const r = await flash({ board: "pico", config: cfg, dryRun: path.join(tmp, "dry2"), env: cleanEnv, log: (l) => lines.push(l) });
    if (!existsSync(built)) {
      expect(r.ok).toBe(false);
      expect(r.errors.join("\n")).toMatch(/npm run build/);
      return;
    }
    expect(r.ok, r.errors.join("\n")).toBe(true);
    expect(readFileSync(path.join(tmp, "dry2/bootcde.js"), "latin1")).toBe(readFileSync(built, "latin1"));
    expect(JSON.parse(readFileSync(path.join(tmp, "dry2/led.json"), "utf8"))).toEqual({
      wifi: { ssid: "lab-net", password: WIFI_PW },
      broker: { host: "127.0.0.1", port: 1883, username: "dev", password: BROKER_PW },
    });
    expect(JSON.parse(readFileSync(path.join(tmp, "dry2/board.json"), "utf8")).BOARD).toBe("PICO_R1_3");
    for (const s of [...secretForms, "apn-S3CRET"]) expect(lines.join("\n")).not.toContain(s);
  });

  it("refuses a bad config without printing it, and a modem the board is not built for", async () => {
    const bad = path.join(tmp, "bad.json");
    writeFileSync(bad, JSON.stringify({ wifi: { ssid: "x", password: "short" }, broker: { host: "h", port: 99999, password: BROKER_PW } }));
    const r = await flash({ board: "pico", config: bad, firmware: FW_FILE, dryRun: path.join(tmp, "dry3"), env: cleanEnv, log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.errors.join("\n")).toMatch(/wifi.password/);
    expect(r.errors.join("\n")).toMatch(/broker.port/);
    expect(r.errors.join("\n")).not.toContain(BROKER_PW);
    expect(existsSync(path.join(tmp, "dry3/led.json"))).toBe(false);

    const m = await flash({ board: "espruino-wifi", modem: "sim800", config: CFG_FILE, firmware: FW_FILE, dryRun: path.join(tmp, "dry4"), env: cleanEnv });
    expect(m.ok).toBe(false);
    expect(m.errors[0]).toMatch(/espruino-wifi is built for esp8266/);
  });

  it("refuses a script outside what Espruino accepts, and a path the tool cannot take", async () => {
    const badFw = path.join(tmp, "bad-fw.js");
    writeFileSync(badFw, "const m = new Map();");
    const r = await flash({ board: "pico", config: CFG_FILE, firmware: badFw, dryRun: path.join(tmp, "dry5"), env: cleanEnv, log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.errors.join("\n")).toMatch(/missing-global/);
    const colon = await flash({ board: "linux", config: CFG_FILE, firmware: FW_FILE, dryRun: path.join(tmp, "a:b"), env: cleanEnv, log: () => {} });
    expect(colon.errors[0]).toMatch(/^the path .*a:b\/bootcde\.js contains ':', which the espruino tool cannot take in --storage: move it$/);
  });
});

describe("flash helpers", () => {
  it("parses the npm run flash arguments", () => {
    expect(parseArgs(["--board", "pico", "--port", "/dev/ttyACM0", "--dry-run"])).toEqual({ board: "pico", port: "/dev/ttyACM0", dryRun: true });
    expect(parseArgs(["--board", "pico", "--dry-run", "out", "--baud", "9600", "--timeout", "90", "--verbose"])).toEqual({ board: "pico", dryRun: "out", baud: 9600, timeout: 90, verbose: true });
    expect(parseArgs(["--modem", "lte", "--board", "pico"])).toEqual({ error: expect.stringMatching(/--modem/) });
    expect(parseArgs(["--port", "/dev/x"])).toEqual({ error: expect.stringMatching(/--board/) });
    expect(parseArgs(["--board", "pico", "--timeout", "0"])).toEqual({ error: expect.stringMatching(/--timeout/) });
  });

  it("CRC32 is the one Espruino's E.CRC32 computes (values read on the interpreter)", () => {
    expect(crc32("abc")).toBe(891568578);
    expect(crc32("\xff\xfe\xfd\xfc")).toBe(1426237168);
  });

  it("the output filter masks secrets and base64 upload chunks", () => {
    const clean = redactor({ wifi: { ssid: "lab", password: WIFI_PW }, broker: { password: BROKER_PW } });
    expect(clean(`require("Storage").write("led.json",atob("eyJ3aWZpIjp7InNzaWQi"),0,40)`)).toBe(`require("Storage").write("led.json",atob("***"),0,40)`);
    expect(clean(`x ${WIFI_PW} y ${JSON.stringify(BROKER_PW)}`)).toBe('x *** y "***"');
    expect(clean("lab")).toBe("lab");
  });

  it("every console line is sent without echo, and no answer marker can come from an echo", () => {
    for (const l of [lines.hello(1), lines.reset, lines.compact(7), lines.load]) {
      expect(l.startsWith("\x10")).toBe(true);
      expect(l).not.toMatch(/@@flash (ok|err)/);
    }
    expect(espruinoArgv({ port: "p", baud: 1, boardJson: "b", bootFile: "f", configFile: "c" }).join(" ")).not.toContain(STORED_MARK);
  });
});
