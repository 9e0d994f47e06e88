/**
 * npm run flash onto a real Espruino interpreter (its Linux build, ESPRUINO_BIN)
 * standing in for a board: its console on a pseudo-terminal made by socat, its
 * Storage in espruino.flash in a temporary directory. The Storage files are written
 * by the real espruino tool; the interpreter is then restarted from that Storage to
 * prove the built firmware runs from it.
 *
 * Also: a reflash over the running firmware, a flash over a program printing every
 * 50 ms, the tool alone against such a program (it is stopped at its time limit), a
 * port that does not exist, a port another program holds, a board that is not the
 * one named, and a pseudo-terminal the system does not list as a serial port.
 *
 * Every flash runs with a system D-Bus address that points at a socket counting
 * connections (none may come), and with a preload that logs every TCP connection
 * and DNS look-up a Node process makes (none may come: no board JSON from the network).
 *
 * The tool opens only ports the system lists, which a pseudo-terminal never is:
 * udevAdmStandIn (test/support/espruino-pty.ts) adds the stand-in's port to that list.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../../scripts/repo";
import { boardJson, espruinoArgv, interpretRun, runEspruino } from "../../scripts/device/espruino-tool";
import { openSerial } from "../../scripts/device/serial-port";
import { bootOutput, espruinoBoard, udevAdmStandIn, type PtyDevice } from "../support/espruino-pty";

const BIN = process.env.ESPRUINO_BIN;
const FIRMWARE = path.join(ROOT, "firmware/linux-esp8266.js");
const BUSY = "test/fixtures/flash/busy-firmware.js";
// uartPath /dev/null: the firmware opens its modem UART there and starts talking AT to nothing.
const CONFIG = "test/fixtures/flash/config.json";
const SECRETS = ["wifi-S3CRET-hunter2", "broker-S3CRET-pw"];

/**
 * The stand-in's own fault: the Linux build's console input queue has no lock between the
 * thread that reads stdin and the main loop (targets/linux: jshInterruptOff() is empty), so
 * now and then a long upload corrupts it: the interpreter stops with "ASSERT(len <= 64)
 * FAILED AT src/jsdevices.c" or stops answering. The flash must then fail loudly (exit 1);
 * the interpreter is restarted from its Storage and the flash run again, at most twice.
 */
const STAND_IN_FAULT = /^flash failed: the (port closed|board stopped answering|board did not confirm the upload|espruino tool did not finish)/m;

describe.skipIf(!BIN)("npm run flash onto Espruino's Linux interpreter on a pseudo-terminal (skipped: set ESPRUINO_BIN)", () => {
  // Nothing is created when the tier is skipped (a skipped describe's body still runs to collect it).
  const dir = BIN ? mkdtempSync(path.join(os.tmpdir(), "flash-espruino-")) : path.join(os.tmpdir(), "flash-espruino-skipped");
  const tty = path.join(dir, "tty");
  let board: PtyDevice;
  let dbusConnections = 0;
  const dbus = net.createServer((c) => {
    dbusConnections++;
    c.destroy();
  });
  const netLog = path.join(dir, "network.log");
  const preload = path.join(dir, "netlog.cjs");
  if (BIN) writeFileSync(preload, `
const fs = require("fs"), net = require("net");
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  // Node calls connect with its normalised arguments: [options, callback] as one array.
  const o = Array.isArray(args[0]) ? args[0][0] : args[0];
  const to = o && typeof o === "object" ? (o.path ? undefined : (o.host || "localhost") + ":" + o.port) : typeof o === "number" || /^\\d+$/.test(String(o)) ? (args[1] || "localhost") + ":" + o : undefined;
  if (to) fs.appendFileSync(${JSON.stringify(netLog)}, process.pid + " " + process.argv.slice(1, 2).join(" ") + " connect " + to + "\\n");
  return connect.apply(this, args);
};
const dns = require("dns"), lookup = dns.lookup;
dns.lookup = function (host, ...rest) {
  fs.appendFileSync(${JSON.stringify(netLog)}, process.pid + " " + process.argv.slice(1, 2).join(" ") + " lookup " + host + "\\n");
  return lookup.call(this, host, ...rest);
};
`);
  /** No LED_* from the developer's shell; the stand-in's port in the system's port list; a D-Bus that counts; the network log. */
  const env: NodeJS.ProcessEnv = !BIN ? {} : {
    ...udevAdmStandIn(dir, [tty], Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LED_")))),
    DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${path.join(dir, "system_bus_socket")}`,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require ${preload}`.trim(),
    npm_config_update_notifier: "false",
  };

  function npmFlash(args: string[], withEnv: NodeJS.ProcessEnv = env) {
    const r = spawnSync("npm", ["run", "--silent", "flash", "--", ...args], { cwd: ROOT, env: withEnv, encoding: "utf8", timeout: 90_000 });
    const out = r.stdout + r.stderr;
    for (const s of SECRETS) expect(out).not.toContain(s);
    // Nothing about Bluetooth or D-Bus, no tool banner, no board JSON from the network; without --verbose, none of the tool's chatter.
    expect(out).not.toMatch(/d-?bus|bluetooth|noble|espruino\.com\/json|Espruino Command-line Tool|Connecting to/i);
    if (!args.includes("--verbose")) expect(out).not.toMatch(/Explicit board JSON|Upload Complete|@@flash/);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, out };
  }

  beforeAll(async () => {
    await new Promise<void>((r) => dbus.listen(path.join(dir, "system_bus_socket"), r));
    board = await espruinoBoard(BIN!, dir);
  });
  afterAll(async () => {
    await board?.stop();
    await new Promise((r) => dbus.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * npm run flash onto the board; after a fault of the stand-in interpreter (see STAND_IN_FAULT)
   * it is restarted, `again` puts back what the test needs running, and the flash is repeated.
   */
  async function flashBoard(args: string[], again?: () => Promise<void>) {
    for (let attempt = 0; ; attempt++) {
      const r = npmFlash(["--port", board.tty, ...args]);
      if (r.status === 0 || attempt === 2 || !STAND_IN_FAULT.test(r.stderr)) return r;
      expect(r.status).toBe(1);
      console.warn(`the stand-in interpreter failed during a flash (${r.stderr.trim()}); restarting it and flashing again`);
      await board.stop();
      board = await espruinoBoard(BIN!, dir);
      await again?.();
    }
  }
  const runBusy = async () => {
    const r = await flashBoard(["--board", "linux", "--config", CONFIG, "--firmware", BUSY]);
    expect(r.status, r.out).toBe(0);
  };
  const runFirmware = async () => {
    const r = await flashBoard(["--board", "linux", "--config", CONFIG]);
    expect(r.status, r.out).toBe(0);
  };

  it("flashes the built firmware with the espruino tool, and the interpreter restarted from Storage runs it", async () => {
    expect(existsSync(FIRMWARE), "firmware/linux-esp8266.js is missing: npm run build").toBe(true);
    const r = await flashBoard(["--board", "linux", "--config", CONFIG]);
    expect(r.status, r.out).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/board +LINUX\w*, Espruino 2v29/);
    const size = readFileSync(FIRMWARE).length;
    expect(r.stdout).toMatch(new RegExp(`stopped +the old program \\(reset\\(\\)\\)\\n +wrote +led\\.json \\d+ bytes, \\.bootcde ${size} bytes \\(the espruino tool, [\\d.]+ s\\)`));
    expect(r.stdout).toMatch(/verified +led\.json CRC32 0x[0-9a-f]{8}, \.bootcde CRC32 0x[0-9a-f]{8} \(read back from the board\)/);
    expect(r.stdout).toMatch(/flash done in [\d.]+ s/);

    // Power-cycle: a fresh interpreter in the same directory boots from Storage.
    await board.stop();
    let boot: string;
    try {
      boot = await bootOutput(BIN!, dir, /AT\+RST/);
    } finally {
      board = await espruinoBoard(BIN!, dir);
    }
    expect(boot, boot).toMatch(/resetting[\s\S]*AT\+RST/);
    expect(boot, boot).not.toMatch(/no led\.json|Uncaught|Error/);
  }, 120_000);

  it("reflashes over the running firmware: it is stopped first, no 'Function code is null'", async () => {
    // The firmware booted from Storage above and is running; this writes the stand-in that ticks every 50 ms.
    const r = await flashBoard(["--board", "linux", "--config", CONFIG, "--firmware", BUSY, "--verbose"], runFirmware);
    expect(r.status, r.out).toBe(0);
    expect(r.stdout).toMatch(/stopped +the old program[\s\S]*espruino +node_modules\/\.bin\/espruino --no-ble -q -p \/dev\/pts\/\d+ [\s\S]*wrote +led\.json \d+ bytes, \.bootcde 555 bytes/);
    expect(r.out).not.toMatch(/Function code is null|Uncaught/);
    // The old copies were reclaimed: Storage does not fill up reflash after reflash.
    expect(r.stdout).toMatch(/storage +\d+ bytes free \(compacted: \d+ bytes of old copies reclaimed\)/);
    expect(r.stdout).toMatch(/board │ tick \d+\n[\s\S]*flash done/);
  }, 120_000);

  it("flashes over a program that prints every 50 ms, and ends (the board never goes quiet)", async () => {
    const r = await flashBoard(["--board", "linux", "--config", CONFIG, "--verbose"], runBusy);
    expect(r.status, r.out).toBe(0);
    expect(r.stdout).toMatch(/board │ tick \d+[\s\S]*stopped +the old program/);
    expect(r.stdout).toMatch(/wrote +led\.json \d+ bytes, \.bootcde \d{4} bytes[\s\S]*board │ AT\+RST[\s\S]*flash done/);
    expect(r.out).not.toMatch(/Function code is null|Uncaught/);
  }, 120_000);

  it("the espruino tool alone against a program printing every 50 ms never ends by itself: it is stopped at its limit", async () => {
    await runBusy();
    const files = mkdtempSync(path.join(dir, "tool-"));
    writeFileSync(path.join(files, "board.json"), boardJson("LINUXLITE"));
    writeFileSync(path.join(files, "led.json"), "{}");
    // Not through npm run flash: nothing stops the program first.
    const argv = espruinoArgv({ port: board.tty, baud: 9600, boardJson: path.join(files, "board.json"), bootFile: BUSY, configFile: path.join(files, "led.json") });
    const run = await runEspruino(argv, { cwd: ROOT, env, timeoutMs: 3000, graceMs: 1000 });
    expect(run.timedOut, run.stdout + run.stderr).toBe(true);
    expect(run.stdout).toMatch(/tick \d+/);
    expect(interpretRun(run, { port: board.tty, timeoutMs: 3000 }).error).toMatch(/^the espruino tool did not finish within 3 s and was stopped; the board kept printing/);
    // And a flash over it still works: it stops the program before the tool runs.
    await runFirmware();
  }, 120_000);

  it("a port that does not exist: exit 1, one line, before anything is opened", () => {
    const missing = path.join(dir, "ttyACM7");
    const r = npmFlash(["--board", "linux", "--port", missing, "--config", CONFIG]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^flash failed: no serial port ${missing}[;,] `));
  }, 60_000);

  it("a pseudo-terminal the system does not list: refused before the board is touched, because the tool could not open it", () => {
    const r = npmFlash(["--board", "linux", "--port", board.tty, "--config", CONFIG], { ...env, PATH: process.env.PATH });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^flash failed: ${board.tty} \\(/dev/pts/\\d+\\) is not in the system's list of serial ports \\(.*\\), and the espruino tool opens only a listed port`));
    expect(r.stdout).not.toMatch(/board +LINUX|stopped/);
  }, 60_000);

  it("a port another program holds: exit 1, says it is busy", async () => {
    // The lock serialport takes (as the espruino tool and the Web IDE's native app do), held here.
    const held = await openSerial(board.tty, 9600);
    try {
      const r = npmFlash(["--board", "linux", "--port", board.tty, "--config", CONFIG]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`flash failed: ${board.tty} is busy: another program has it open (the Espruino Web IDE, the espruino tool, another npm run flash, screen, minicom); close it and flash again\n`);
    } finally {
      await held.close();
    }
  }, 60_000);

  it("the wrong board: exit 1, names the board that answered, writes nothing", () => {
    const r = npmFlash(["--board", "pico", "--port", board.tty, "--config", CONFIG]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^flash failed: the board on this port is LINUX\w* \(Espruino 2v29[.\d]*\), not Espruino Pico \(PICO_R1_3\): that is --board linux/);
    expect(r.stdout).not.toMatch(/stopped|wrote/);
  }, 60_000);

  it("no flash above touched the system D-Bus or opened a network connection (the tool's process included)", () => {
    expect(dbusConnections).toBe(0);
    expect(existsSync(netLog) ? readFileSync(netLog, "utf8") : "").toBe("");
    // The log works: a look-up from a process started the same way lands in it.
    spawnSync(process.execPath, ["-e", "require('dns').lookup('localhost', () => {})"], { env, timeout: 10_000 });
    expect(readFileSync(netLog, "utf8")).toMatch(/lookup localhost/);
  });
});
