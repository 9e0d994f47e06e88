/**
 * `npm run bench`: figures, side by side in one run, each bounded in time.
 *
 *  1. MQTT codec: this firmware's encode + streaming decode of a PUBLISH against
 *     the mqtt-packet package (what MQTT.js uses), packets per second.
 *  2. AT engine: +IPD frames through feed() in 1-byte and 64-byte UART chunks.
 *  3. The built firmware on the virtual board (real clock), modem simulator paced
 *     at the board's UART rate, Aedes on loopback: boot to "online", and phone
 *     command to LED, ESP8266 against SIM800.
 *  4. Firmware bytes per board script (from the last build).
 *
 * Figures vary with the machine and its load; compare them within one run.
 */
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import mqttPacket from "mqtt-packet";
import mqtt from "mqtt";
import { encode, Decoder, type Packet } from "../../src/codec/index";
import { AtEngine } from "../../src/at/engine";
import { parseArgs } from "node:util";
import { startDemo } from "./start";
import { measureReal, type RealFigures } from "../device/real-bench";
import { modulesProgram, modulesUnavailable } from "../device/espruino-modules";
import { FAKETIME_LIB, realBoardUnavailable } from "../../test/support/real-board";
import { MODEM_KINDS, type ModemKind } from "../modems";

import { ROOT } from "../repo";
const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

/** Runs fn repeatedly for about `ms` and returns operations per second. */
function rate(fn: () => void, ms = 1500): number {
  for (let i = 0; i < 2000; i++) fn(); // warm the JIT
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 500; i++) fn();
    n += 500;
    t = performance.now();
  }
  return (n * 1000) / (t - t0);
}

function benchCodec(): void {
  const pkt = { type: 3, topic: "led", payload: "toggle", qos: 1, retain: false, dup: false, id: 42 } as Packet;
  const ours = rate(() => {
    const bytes = encode(pkt);
    const d = new Decoder(1024, true);
    d.push(bytes, { packet() {}, error(m) { throw new Error(m); } });
  });
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on("packet", () => {});
  const theirs = rate(() => {
    const buf = mqttPacket.generate({ cmd: "publish", topic: "led", payload: Buffer.from("toggle"), qos: 1, retain: false, dup: false, messageId: 42 });
    parser.parse(buf);
  });
  console.log("\n1. MQTT codec, PUBLISH qos 1 \"led\" \"toggle\": encode + decode");
  console.log(`   this firmware's codec   ${fmt(ours).padStart(12)} packets/s`);
  console.log(`   mqtt-packet 9           ${fmt(theirs).padStart(12)} packets/s`);
}

function benchAt(): void {
  const payload = "x".repeat(90) + "\r\nOK\r\n+IPD,";
  const frame = `+IPD,${payload.length}:${payload}`;
  const stream = ("\r\n" + frame).repeat(200) + "\r\nOK\r\n";
  const clock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };
  console.log(`\n2. AT engine, ${frame.length}-byte +IPD frames (payload holds "\\r\\nOK\\r\\n" and "+IPD,")`);
  for (const chunk of [1, 64]) {
    let got = 0;
    const e = new AtEngine({ write() {} }, clock);
    e.onUrc = () => {};
    e.onData = (b: string) => { got += b.length; };
    const pieces: string[] = [];
    for (let i = 0; i < stream.length; i += chunk) pieces.push(stream.slice(i, i + chunk));
    const perStream = rate(() => { for (const p of pieces) e.feed(p); }, 1200);
    if (got === 0) throw new Error("the engine delivered no data");
    const mbps = (perStream * stream.length) / 1e6;
    console.log(`   ${String(chunk).padStart(2)}-byte UART chunks     ${fmt(mbps, 1).padStart(8)} MB/s  (${fmt(1e6 / (perStream * 200), 2)} µs per frame; 115200 baud is 0.0115 MB/s)`);
  }
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

async function benchBoard(modem: ModemKind, rounds: number): Promise<string> {
  const lines: string[] = [];
  const t0 = Date.now();
  const demo = await startDemo({ modem, port: 0, wsPort: 0, print: (s) => lines.push(s) });
  try {
    await until(() => lines.some((l) => l.startsWith("→ PUBLISH led/status \"online\"")), 30_000, `${modem} online`);
    const online = Date.now() - t0;
    const phone = await mqtt.connectAsync(`mqtt://127.0.0.1:${demo.port}`, { reconnectPeriod: 0 });
    const led = () => demo.vb.pin(demo.board.led);
    const lat: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const before = led();
      const t = performance.now();
      await phone.publishAsync("led", "toggle", { qos: 0 });
      await until(() => led() !== before, 10_000, "the LED to toggle");
      lat.push(performance.now() - t);
    }
    await phone.endAsync();
    return `   ${modem.padEnd(8)} ${fmt(online).padStart(7)} ms   ${fmt(pct(lat, 50), 1).padStart(7)} ms   ${fmt(pct(lat, 95), 1).padStart(7)} ms   ${demo.vb.uncaught} uncaught`;
  } finally {
    await demo.stop();
  }
}

function sizes(): void {
  const f = path.join(ROOT, "firmware/sizes.json");
  console.log("\n4. Firmware bytes (minified, as flashed; budget 9,216)");
  if (!existsSync(f)) return console.log("   firmware/sizes.json is missing: run npm run build");
  const report = JSON.parse(readFileSync(f, "utf8"));
  for (const s of report.scripts ?? []) console.log(`   ${String(s.file ?? s.name).padEnd(28)} ${fmt(s.bytes).padStart(6)}`);
  for (const l of report.layers ?? []) console.log(`   layer ${String(l.name).padEnd(22)} ${fmt(l.bytes).padStart(6)}${l.budget ? " / " + fmt(l.budget) : ""}`);
}

/** The modules' keep-alive cycles run on a clock 5 times fast, not 20 (MeasureOptions.cycleSpeed). */
const MODULES_CYCLE_SPEED = 5;

/** Idle CPU above this (ms per second) means the interpreter does not sleep between events. */
const BUSY_IDLE_MS_PER_S = 100;

/** One row of the side-by-side table: a figure's name and how to read it from RealFigures. */
const SIDE_BY_SIDE_ROWS: [string, (f: RealFigures & { bytes: number }) => number | undefined][] = [
  ["blocks after load", (f) => f.afterLoad],
  ["blocks once subscribed", (f) => f.subscribed],
  ["blocks, peak during connect", (f) => f.peak],
  ["blocks after the commands", (f) => f.afterCommands],
  ["blocks after 10 keep-alive cycles", (f) => f.blocksAtCycle10],
  ["blocks after the last cycle", (f) => f.blocksAfterCycles],
  ["keep-alive cycles run", (f) => f.cycles],
  ["CPU ms per command", (f) => f.cpuPerCommand],
  ["idle CPU ms per second", (f) => f.idlePerSecond],
  ["power-on to subscribed, ms", (f) => f.bootToSubscribed],
  ["script bytes", (f) => f.bytes],
];

/** The project's ESP8266 script(s) against Espruino's own modules, figure by figure, with project / modules. */
function printSideBySide(ours: (RealFigures & { bytes: number })[], theirs: RealFigures & { bytes: number }): void {
  const cell = (v: number | undefined) => (v == null || Number.isNaN(v) ? "-" : fmt(v, Number.isInteger(v) ? 0 : 2));
  const ratio = (a: number | undefined, b: number | undefined) => (a == null || b == null || Number.isNaN(a) || Number.isNaN(b) || b === 0 ? "-" : fmt(a / b, 2));
  console.log(`   ${"figure".padEnd(34)} ${ours.map((f) => f.name.padStart(22) + "   ratio").join(" ")} ${"Espruino modules".padStart(17)}`);
  for (const [label, get] of SIDE_BY_SIDE_ROWS) {
    const cols = ours.map((f) => cell(get(f)).padStart(22) + ratio(get(f), get(theirs)).padStart(8)).join(" ");
    console.log(`   ${label.padEnd(34)} ${cols} ${cell(get(theirs)).padStart(17)}`);
  }
}

/**
 * `npm run bench -- --espruino [--boards linux,pico] [--modems esp8266] [--commands 1000] [--cycles 1000] [--modules <dir>]`:
 * the built scripts on the real interpreter (ESPRUINO_BIN; ESPRUINO_BIN_ORIGINAL, a
 * build with the Espruino Original's 2,756 blocks, adds a second table), one after the
 * other. Without ESPRUINO_BIN it says how to point it at one, and exits 0.
 * With --modules <dir> (or ESPRUINO_MODULES=<dir>), a directory holding Espruino's own
 * AT.js, MQTT.js and ESP8266WiFi.js (fetched by the user, never part of this repository),
 * the same figures for those modules doing the same job (scripts/device/espruino-modules.ts),
 * on the same harness, and a side-by-side table with the ratios, project / modules.
 */
async function benchEspruino(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      espruino: { type: "boolean" },
      boards: { type: "string" },
      modems: { type: "string" },
      commands: { type: "string", default: "1000" },
      cycles: { type: "string", default: "1000" },
      "cpu-commands": { type: "string", default: "100" },
      modules: { type: "string", default: process.env.ESPRUINO_MODULES || undefined },
    },
  });
  const bins = [process.env.ESPRUINO_BIN, process.env.ESPRUINO_BIN_ORIGINAL].filter((b): b is string => !!b);
  const why = realBoardUnavailable();
  if (why || !bins.length) {
    console.log(`bench --espruino: ${why || "ESPRUINO_BIN is not set"}.`);
    console.log("Build Espruino's Linux interpreter from its public source (espruino/Espruino), outside this repository,");
    console.log("and run: ESPRUINO_BIN=/path/to/espruino npm run bench -- --espruino   (docs/espruino.md, 'The real interpreter').");
    return;
  }
  const report = JSON.parse(readFileSync(path.join(ROOT, "firmware/sizes.json"), "utf8"));
  const wanted = values.boards ? values.boards.split(",") : undefined;
  const wantedModems = values.modems ? values.modems.split(",") : undefined;
  const scripts: { file: string; board: string; modem: ModemKind }[] = (report.scripts ?? [])
    .filter((s: { board: string; modem: string }) => (!wanted || wanted.includes(s.board)) && (!wantedModems || wantedModems.includes(s.modem)));
  const num = (s: string | undefined) => Number(s);
  const cyclesWanted = num(values.cycles);
  let modulesScript = "";
  if (values.modules) {
    const unusable = modulesUnavailable(values.modules);
    if (unusable) console.log(`bench --espruino --modules: ${unusable}; the modules' column is left out.`);
    else modulesScript = await modulesProgram(values.modules);
  }
  // a Linux build with fewer blocks than the script has bytes cannot write it to Storage itself
  const storageBin = process.env.ESPRUINO_BIN;
  for (const bin of bins) {
    console.log(`\nReal interpreter ${bin} — built scripts run from Storage, modem simulator on a pty, Aedes;`);
    console.log(`blocks net of the interpreter's own, CPU of the interpreter process (this host), ${num(values.commands)} commands, ${cyclesWanted} keep-alive cycles`);
    console.log("   script                      load  subscr.  peak  after cmds  KA 10→last    CPU/cmd   idle/s   on→SUBACK");
    const row = (f: RealFigures) => {
      const ka = f.cycles ? `${f.blocksAtCycle10}→${f.blocksAfterCycles} (${f.cycles})` : "no faketime";
      console.log(
        `   ${f.name.padEnd(26)} ${String(f.afterLoad).padStart(5)} ${String(f.subscribed).padStart(8)} ${String(f.peak).padStart(5)} ${String(f.afterCommands).padStart(11)}  ${ka.padEnd(17)} ${fmt(f.cpuPerCommand, 2).padStart(6)} ms ${fmt(f.idlePerSecond, 2).padStart(6)} ms ${fmt(f.bootToSubscribed).padStart(8)} ms`,
      );
    };
    const measured: (RealFigures & { bytes: number })[] = [];
    const measure = async (name: string, modem: ModemKind, script: string, cycleSpeed?: number) => {
      try {
        const f = await measureReal({
          bin, storageBin, name, modem, script, cycleSpeed,
          commands: num(values.commands), cpuCommands: num(values["cpu-commands"]), cycles: FAKETIME_LIB ? cyclesWanted : 0,
          log: process.env.BENCH_LOG ? (l) => console.log("     | " + l) : undefined,
        });
        row(f);
        return { ...f, bytes: script.length };
      } catch (e) {
        console.log(`   ${name.padEnd(26)} failed: ${(e as Error).message.split("\n")[0]}`);
        return undefined;
      }
    };
    for (const s of scripts) {
      const f = await measure(s.file.replace(/\.js$/, ""), s.modem, readFileSync(path.join(ROOT, "firmware", s.file), "latin1"));
      if (f && s.modem === "esp8266") measured.push(f);
    }
    if (!modulesScript) continue;
    const theirs = await measure("espruino-modules-esp8266", "esp8266", modulesScript, MODULES_CYCLE_SPEED);
    if (!theirs) continue;
    console.log(`\nSide by side on ${bin}: Espruino's own AT + MQTT + ESP8266WiFi modules (from ${values.modules},`);
    console.log("minified, cached with Modules.addCached, and a small app doing this firmware's job), ratio = project / modules");
    if (!measured.length) console.log("   (no ESP8266 script of the project was measured: none selected, or each failed above)");
    printSideBySide(measured, theirs);
    if (theirs.idlePerSecond > BUSY_IDLE_MS_PER_S)
      console.log(
        `   The modules' stack does not sleep while connected (${fmt(theirs.idlePerSecond)} ms of CPU per idle second): its CPU per command is mostly that idle load over the command's round trip, not the command's work.`,
      );
  }
}

if (process.argv.includes("--espruino")) {
  await benchEspruino(process.argv.slice(2));
  process.exit(0);
}

const rounds = Number(process.env.BENCH_ROUNDS ?? 20);
console.log("Host figures (Node/V8 on this machine): they compare designs side by side; the board runs the same code far slower.");
const guard = setTimeout(() => { console.error("bench: over its 3-minute bound"); process.exit(1); }, 180_000);
benchCodec();
benchAt();
console.log(`\n3. Built firmware on the virtual board, modem simulator paced at 115200 baud, Aedes; ${rounds} toggles`);
console.log("   modem    boot→online   LED p50      LED p95");
for (const m of MODEM_KINDS) console.log(await benchBoard(m, rounds));
sizes();
clearTimeout(guard);
process.exit(0);
