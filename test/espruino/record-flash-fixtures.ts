/**
 * Records test/fixtures/flash/*.json: every byte a flash sends to, and receives
 * from, a real Espruino interpreter (the Linux build) on a pseudo-terminal, in
 * order. test/flash.test.ts replays them to test the flash command's decisions
 * without a board. Run it again when the console protocol changes:
 *
 *   ESPRUINO_BIN=/path/to/espruino npx tsx test/espruino/record-flash-fixtures.ts
 *
 * Each recording flashes the stand-in firmware test/fixtures/flash/busy-firmware.js
 * (a tick every 50 ms) with test/fixtures/flash/config.json (made-up secrets).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../../scripts/bundle";
import { flash, type FlashOptions } from "../../scripts/flash";
import { openSerial, type Link } from "../../scripts/serial-port";
import { espruinoBoard, ptyDevice, type PtyDevice } from "../support/espruino-pty";

const BIN = process.env.ESPRUINO_BIN;
if (!BIN) {
  console.error("set ESPRUINO_BIN to the Espruino interpreter (its Linux build)");
  process.exit(2);
}
const OUT = path.join(ROOT, "test/fixtures/flash");
export const FIXTURE_FIRMWARE = "test/fixtures/flash/busy-firmware.js";
export const FIXTURE_CONFIG = "test/fixtures/flash/config.json";
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LED_")));

/** A link that records both directions; `alter` changes a line on its way to the board (what is recorded is what the flash sent). */
function recording(link: Link, exchange: [string, string][], alter?: (line: string) => string): Link {
  return {
    write: (d) => {
      exchange.push(["tx", d]);
      link.write(alter ? alter(d) : d);
    },
    onData: (cb) => link.onData((d) => {
      exchange.push(["rx", d]);
      cb(d);
    }),
    onClose: (cb) => link.onClose(cb),
    close: () => link.close(),
  };
}

async function record(name: string, about: string, device: PtyDevice, opts: Partial<FlashOptions> = {}, alter?: (line: string) => string) {
  const exchange: [string, string][] = [];
  const link = recording(await openSerial(device.tty, 9600), exchange, alter);
  const log: string[] = [];
  const options = { board: "linux", firmware: FIXTURE_FIRMWARE, config: FIXTURE_CONFIG, env, ...opts };
  const r = await flash({ ...options, link, log: (l) => log.push(l) });
  const { env: _e, ...recorded } = options;
  const fixture = {
    about,
    recorded: "by test/espruino/record-flash-fixtures.ts against Espruino's Linux build on a pseudo-terminal",
    options: recorded,
    result: { ok: r.ok, errors: r.errors },
    exchange,
  };
  // One exchange entry per line, so a diff of a re-recording reads line by line.
  const { exchange: ex, ...head } = fixture;
  const text = JSON.stringify(head, null, 1).replace(/\n}$/, `,\n "exchange": [\n${ex.map((e) => "  " + JSON.stringify(e)).join(",\n")}\n ]\n}\n`);
  writeFileSync(path.join(OUT, name + ".json"), text);
  console.log(`${name}: ${r.ok ? "ok" : "failed: " + r.errors[0]} (${exchange.length} chunks)`);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), "flash-record-"));
const devices: PtyDevice[] = [];
try {
  const board = await espruinoBoard(BIN, tmp);
  devices.push(board);
  await record("fresh", "a first flash onto an interpreter with empty Storage", board);
  await record("reflash-busy", "a second flash while the first one's program prints a tick every 50 ms", board);
  await record("corrupted", "one .bootcde chunk altered on its way to the board (the read-back must catch it)", board, {}, (line) =>
    line.includes('write(".bootcde"') && line.includes(",384)") ? line.replace(/atob\("(.)/, (_m, c) => `atob("${c === "A" ? "B" : "A"}`) : line);
  await record("wrong-board", "--board pico sent to an interpreter that says LINUX", board, { board: "pico" });
  await board.stop();

  const full = path.join(tmp, "full");
  mkdirSync(full);
  const fullBoard = await espruinoBoard(BIN, full);
  devices.push(fullBoard);
  // Fill Storage up to a few hundred bytes before the flash.
  const filler = await openSerial(fullBoard.tty, 9600);
  filler.write('\x10var S=require("Storage");S.write("filler","x",0,S.getFree()-600)\n');
  await new Promise((r) => setTimeout(r, 500));
  await filler.close();
  await record("storage-full", "a board whose Storage has 600 bytes free", fullBoard);

  const echo = await ptyDevice(tmp, "cat", "echo-tty");
  devices.push(echo);
  await record("echo", "a port that sends back what it is sent (cat behind a pseudo-terminal)", echo);
  const silent = await ptyDevice(tmp, "sleep 60", "silent-tty");
  devices.push(silent);
  await record("silent", "a port that never answers (sleep behind a pseudo-terminal)", silent);
} finally {
  for (const d of devices) await d.stop();
  rmSync(tmp, { recursive: true, force: true });
}
