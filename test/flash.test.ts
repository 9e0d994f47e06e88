/**
 * npm run flash, without hardware:
 * - the console session, replayed from real runs against Espruino's Linux
 *   interpreter (test/fixtures/flash/*.json): what is sent, in which order, what
 *   each answer (or silence) leads to, and the read-back comparison;
 * - the port check and the port list, the open errors serialport really gives;
 * - the command's exit codes and its one-line failures;
 * - --dry-run, which writes exactly the lines a flash sends, and nothing printed
 *   holds a secret.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../scripts/bundle";
import { flash, noPortMessage, parseArgs, redactor, visible, type FlashOptions } from "../scripts/flash";
import { CHUNK, crc32, DEFAULT_TIMEOUTS, lines } from "../scripts/flash-console";
import { checkPort, explainOpenError, formatPorts, listSerialPorts } from "../scripts/serial-port";
import { drive, loadFixture, ReplayLink, type ReplayOptions } from "./support/console-replay";
import { FakeClock } from "./support/fake-clock";

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

interface Replayed {
  ok: boolean;
  errors: string[];
  link: ReplayLink;
  log: string[];
  ms: number;
  result: Awaited<ReturnType<typeof flash>>;
}

/** Flashes as a recording did, against its replay. */
async function replay(name: string, opts: ReplayOptions = {}, extra: Partial<FlashOptions> = {}): Promise<Replayed> {
  const fx = loadFixture(name);
  const clock = new FakeClock(0);
  const link = new ReplayLink(fx, clock, opts);
  const log: string[] = [];
  const { value, ms } = await drive(
    flash({ ...fx.options, env: cleanEnv, link, clock, log: (l) => log.push(l), ...extra }),
    clock,
  );
  return { ok: value.ok, errors: value.errors, link, log, ms, result: value };
}

/** The kind of each line sent: hello, reset, prepare, write <file>@<offset>, compact, verify, erase, load, ctrl-c. */
function kinds(sent: string[]): string[] {
  return sent.map((s) => {
    if (s === lines.ctrlC) return "ctrl-c";
    if (s === lines.reset) return "reset";
    if (s === lines.load) return "load";
    if (s.includes("process.env.BOARD")) return "hello";
    let m = /write\("([^"]+)",atob\("[^"]*"\),(\d+)/.exec(s);
    if (m) return `write ${m[1]}@${m[2]}`;
    if (s.includes("S.erase(") && s.includes("getStats")) return "prepare";
    if (s.includes("trashBytes")) return "compact";
    if (s.includes("E.CRC32")) return "verify";
    if ((m = /erase\("([^"]+)"\)/.exec(s))) return `erase ${m[1]}`;
    return "?" + s;
  });
}

const WRITES = [
  "write led.json@0",
  ...Array.from({ length: Math.ceil(FW.length / CHUNK) }, (_, i) => `write .bootcde@${i * CHUNK}`),
];
const FULL_SESSION = ["hello", "reset", "hello", "prepare", ...WRITES, "compact", "verify", "load"];

describe("npm run flash, replayed from a real Espruino interpreter", () => {
  it("a first flash: stops the old program, writes both files, compacts, reads back, starts it", async () => {
    const r = await replay("fresh");
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.link.mismatches).toEqual([]);
    expect(kinds(r.link.sent)).toEqual(FULL_SESSION);
    expect(r.link.closed).toBe(true);
    // What the board read back is the files' own length and CRC32.
    expect(r.result.readBack).toEqual({ "led.json": [LED_JSON.length, crc32(LED_JSON)], ".bootcde": [FW.length, crc32(FW)] });
    expect(r.log.join("\n")).toMatch(/verified .*\.bootcde CRC32 0x[0-9a-f]{8}/);
    expect(r.result.started![0]).toMatch(/^stand-in firmware: led.json ssid "caf\\u00E9-lab"/);
    // The chunks carry exactly the files' bytes.
    const sentBytes = (file: string) => r.link.sent
      .map((s) => new RegExp(`write\\("${file.replace(".", "\\.")}",atob\\("([^"]*)"\\)`).exec(s))
      .filter((m) => m).map((m) => Buffer.from(m![1], "base64").toString("latin1")).join("");
    expect(sentBytes(".bootcde")).toBe(FW);
    expect(sentBytes("led.json")).toBe(LED_JSON);
    for (const s of secretForms) expect(r.log.join("\n")).not.toContain(s);
  });

  it("every line is sent without echo, and no answer marker can come from an echo", () => {
    for (const l of [lines.hello(1), lines.reset, lines.compact(7), lines.load]) {
      expect(l.startsWith("\x10")).toBe(true);
      expect(l).not.toMatch(/@@flash (ok|err)/);
    }
  });

  it("a reflash over a program printing every 50 ms: reset first, its output skipped, and the session ends although the board never goes quiet", async () => {
    const r = await replay("reflash-busy", { chatter: { line: "tick\r\n", everyMs: 50 } });
    expect(r.errors).toEqual([]);
    expect(r.link.mismatches).toEqual([]);
    expect(kinds(r.link.sent)).toEqual(FULL_SESSION);
    expect(r.link.closed).toBe(true);
    // Ticks came in before the reset's answer: the reset line went out before any Storage write.
    const rx = loadFixture("reflash-busy").exchange.filter(([d]) => d === "rx").map(([, s]) => s).join("");
    expect(rx.indexOf("tick")).toBeLessThan(rx.indexOf("Espruino is Open Source"));
    expect(rx).not.toContain("Function code is null");
    expect(r.result.started!.length).toBeGreaterThan(1);
    expect(r.ms).toBeLessThan(DEFAULT_TIMEOUTS.total);
  });

  it("a chunk changed on its way: the read-back differs, the flash fails and erases .bootcde", async () => {
    const r = await replay("corrupted");
    expect(r.ok).toBe(false);
    expect(r.link.mismatches).toEqual([]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^read-back differs from what was sent: \.bootcde has CRC32 0x[0-9a-f]{8}, not 0x[0-9a-f]{8}; \.bootcde was erased, so the board runs nothing at boot: flash again$/);
    expect(kinds(r.link.sent).slice(-3)).toEqual(["compact", "verify", "erase .bootcde"]);
    expect(r.result.wrote).toBe(true);
  });

  it("a file the board does not hold, or holds at another length, is a failed flash", async () => {
    const verifyAnswer = (d: string) => d.replace(/(@@flash ok \d+ )\[\[\d+,-?\d+\],\[(\d+),(-?\d+)\]\]/, "$1[[1,2],null]");
    const r = await replay("fresh", { alterRx: verifyAnswer });
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toMatch(/^read-back differs from what was sent: led\.json holds 1 bytes, not \d+; \.bootcde is missing; the board may hold a partial \.bootcde: flash again$/);
  });

  it("a board that says it is another board: refused before anything is stopped or written", async () => {
    const r = await replay("wrong-board");
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toBe("the board on this port is LINUXLITE (Espruino 2v29.277), not Espruino Pico (PICO_R1_3): that is --board linux, or use the port of your Espruino Pico");
    expect(kinds(r.link.sent)).toEqual(["hello"]);
    expect(r.result.wrote).toBe(false);
  });

  it("Storage too full even after compacting: refused before writing", async () => {
    const r = await replay("storage-full");
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toMatch(/^Storage has 568 bytes free, the files need 808: /);
    expect(kinds(r.link.sent)).toEqual(["hello", "reset", "hello", "prepare"]);
  });

  it("a port that echoes, and one that says nothing: one Ctrl-C, a second try, then a clear failure", async () => {
    const echo = await replay("echo");
    expect(echo.errors[0]).toMatch(/^the port only sends back what it is sent, which an Espruino console does not do/);
    expect(kinds(echo.link.sent)).toEqual(["hello", "ctrl-c", "hello"]);
    const silent = await replay("silent");
    expect(silent.errors[0]).toMatch(/^no answer from the port in 6\.7 s: is it the board's port/);
    expect(kinds(silent.link.sent)).toEqual(["hello", "ctrl-c", "hello"]);
    expect(silent.ms).toBe(DEFAULT_TIMEOUTS.hello + 200 + DEFAULT_TIMEOUTS.reply);
  });

  it("a board that stops answering in the middle of .bootcde: fails on time and says .bootcde may be partial", async () => {
    const at = FULL_SESSION.indexOf("write .bootcde@384");
    const r = await replay("fresh", { stopAfterTx: at - 1 });
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toBe("the board stopped answering during writing .bootcde at byte 384 (no answer in 10 s); the board may hold a partial .bootcde: flash again");
    expect(kinds(r.link.sent).slice(-2)).toEqual(["write .bootcde@384", "erase .bootcde"]);
    expect(r.link.closed).toBe(true);
  });

  it("the whole flash is bounded by --timeout", async () => {
    const at = FULL_SESSION.indexOf("write .bootcde@0");
    const r = await replay("fresh", { stopAfterTx: at - 1 }, { timeout: 3 });
    expect(r.errors[0]).toMatch(/^the flash took longer than 3 s \(stopped during writing \.bootcde at byte 0\); flash again, or give more time with --timeout; the board may hold a partial \.bootcde/);
    // The bound, plus one short wait to erase the half-written program.
    expect(r.ms).toBeLessThanOrEqual(3000 + DEFAULT_TIMEOUTS.reply);
  });

  it("a board that refuses a write, a garbled answer, a port that closes: each said plainly", async () => {
    const refuse = await replay("fresh", { alterRx: (d) => d.replace("@@flash ok 5\r\n", "@@flash err 5 Error: Unable to find or create file\r\n") });
    expect(refuse.errors[0]).toMatch(/^the board refused writing \.bootcde at byte 0: Error: Unable to find or create file; /);
    const garbled = await replay("fresh", { alterRx: (d) => d.replace(/@@flash ok (\d+) \[\[/, "@@flash ok $1 [[\x8f") });
    expect(garbled.errors[0]).toMatch(/^the board's answer to verify came garbled \("\[\[\\u008f.*: check the cable and the baud rate \(--baud\), then flash again; /);
    const gone = await replay("fresh", { closeAtTx: 5 });
    expect(gone.errors[0]).toBe("the port closed during writing .bootcde at byte 0: was the board unplugged or reset? Plug it in and flash again");
  });

  it("--verbose shows the board's own lines, filtered; without it the user sees the steps only", async () => {
    const quiet = await replay("fresh");
    expect(quiet.log.some((l) => l.includes("board │"))).toBe(false);
    expect(quiet.log.join("\n")).not.toMatch(/espruino\.com|Donate/);
    const loud = await replay("fresh", {}, { verbose: true });
    expect(loud.log.some((l) => /board │ .*espruino\.com/.test(l))).toBe(true);
    expect(loud.log.some((l) => /board │ stand-in firmware/.test(l))).toBe(true);
    for (const s of secretForms) expect(loud.log.join("\n")).not.toContain(s);
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
    const run = (...args: string[]) => spawnSync(TSX, ["scripts/flash.ts", ...args], { cwd: ROOT, env: cleanEnv, encoding: "utf8", timeout: 60_000 });
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

  it("the flash modules never load the espruino tool, Bluetooth or D-Bus", () => {
    for (const f of ["scripts/flash.ts", "scripts/flash-console.ts", "scripts/serial-port.ts"]) {
      const src = readFileSync(path.join(ROOT, f), "utf8");
      const imports = [...src.matchAll(/(?:from|import\()\s*"([^"]+)"/g)].map((m) => m[1]);
      for (const i of imports) expect(i).not.toMatch(/^espruino(\/|$)|noble|dbus|bluetooth|node-ble|^(node:)?(net|http|https|dns)$/);
    }
  });
});

describe("npm run flash -- --dry-run", () => {
  it("writes the console lines a flash sends (the same a real flash sent), the .bootcde bytes and led.json, and prints no secret", async () => {
    const dir = path.join(tmp, "dry");
    const r = spawnSync(TSX, [
      "scripts/flash.ts", "--board", "linux", "--port", "/dev/ttyACM0",
      "--config", CFG_FILE, "--firmware", FW_FILE, "--dry-run", dir,
    ], { cwd: ROOT, env: cleanEnv, encoding: "utf8", timeout: 60_000 });
    const out = r.stdout + r.stderr;
    expect(r.status, out).toBe(0);
    for (const s of secretForms) expect(out).not.toContain(s);
    expect(out).toContain(dir.startsWith(ROOT) ? path.relative(ROOT, dir) : dir);

    // console.txt holds, line for line, what the recorded real flash sent.
    const fresh = await replay("fresh");
    const consoleLines = readFileSync(path.join(dir, "console.txt"), "latin1").trimEnd().split("\n");
    expect(consoleLines).toEqual(fresh.link.sent.map(visible));
    expect(statSync(path.join(dir, "console.txt")).mode & 0o077).toBe(0);

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

  it("refuses a script outside what Espruino accepts", async () => {
    const badFw = path.join(tmp, "bad-fw.js");
    writeFileSync(badFw, "const m = new Map();");
    const r = await flash({ board: "pico", config: CFG_FILE, firmware: badFw, dryRun: path.join(tmp, "dry5"), env: cleanEnv, log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.errors.join("\n")).toMatch(/missing-global/);
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
});
