/**
 * `npm start`: the firmware working with no hardware. The broker of `npm run broker`
 * (Aedes on TCP and WebSocket, and the phone page) on loopback, the modem simulator
 * in front of it, and the virtual board running the exact bytes of a built
 * firmware/*.js on the real clock. Prints the LED, the board's log (modem states),
 * a readable trace of every MQTT packet between the board and the broker, and the
 * phone page's address.
 *
 *   npm start -- [--board espruino-wifi] [--modem esp8266] [--port 1883] [--ws-port 9001]
 *                [--listen 127.0.0.1] [--keepalive 60] [--baud 115200 (0 = unpaced)]
 *                [--duration SECONDS] [--quiet] [--no-build] [--pcap FILE] [--help]
 *
 * --pcap FILE writes every byte between the board and the broker as a capture
 * file (./pcap.ts) that Wireshark or `tshark -r FILE -Y mqtt` opens.
 *
 * The options are checked before anything starts; then the firmware is built
 * (scripts/build/build.ts, unless --no-build), then the demo runs.
 */
import net from "node:net";
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import mqttPacket from "mqtt-packet";
import { VirtualBoard } from "../simulators/virtual-board/index";
import { PcapWriter, type TcpFlow } from "./pcap";
import type { BoardDef } from "../../src/board/board";
import { controlPinOf, modemEntry, type ModemKind } from "../modems";
import { DEFAULT_PORT, DEFAULT_WS_PORT, reachableAddresses, startBroker } from "./broker";
import { boardId, boardIds, helpText, listenAddress, modemKind, MODEMS, parseOptions, portNumber, UsageError, wholeNumber, type OptionSpec } from "./options";

import { isMain, ROOT } from "../repo";

export interface DemoOptions {
  board?: string;
  modem?: ModemKind;
  /** Broker TCP port (0 = any free port). */
  port?: number;
  /** Broker WebSocket and phone page port (0 = any free port). */
  wsPort?: number;
  /** Address the broker listens on; loopback unless asked. */
  listen?: string;
  keepAlive?: number;
  /** UART rate at which the simulated modem paces bytes to the board (0 = unpaced). */
  baud?: number;
  /** Where output lines go (default: stdout). */
  print?: (line: string) => void;
  /** Write the board's MQTT traffic to this capture file (pcap). */
  pcap?: string;
}

export interface Demo {
  port: number;
  wsPort: number;
  /** The phone page on the WebSocket port. */
  pageUrl: string;
  board: BoardDef;
  /** The running virtual board (a new one after startBoard()). */
  vb: VirtualBoard;
  /**
   * The board loses power: the virtual board stops where it is and its modem's TCP
   * link is left open and silent, so the broker notices only when the keep-alive
   * runs out (1.5 × keepAlive) and publishes the board's last will.
   */
  stopBoard(): void;
  /** Power comes back: a fresh virtual board boots the same script (same chip, same client id). */
  startBoard(): void;
  stop(): Promise<void>;
}

const hex = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
const CONNACK_TEXT = ["accepted", "refused: protocol version", "refused: identifier", "refused: server unavailable", "refused: bad user name or password", "refused: not authorized"];

function show(payload: Buffer): string {
  const text = payload.toString("latin1");
  const printable = /^[\x20-\x7e]*$/.test(text);
  const s = printable ? JSON.stringify(text) : "<" + payload.length + " bytes: " + hex(payload.subarray(0, 16)) + (payload.length > 16 ? " …" : "") + ">";
  return s.length > 60 ? s.slice(0, 57) + "…" : s;
}

/** One line per MQTT packet, in the words of the specification. Passwords are never shown. */
export function describe(p: mqttPacket.Packet): string {
  const q = (p as { qos?: number }).qos;
  const id = (p as { messageId?: number }).messageId;
  switch (p.cmd) {
    case "connect":
      return `CONNECT client=${p.clientId} keepAlive=${p.keepalive} clean=${p.clean ? 1 : 0}` +
        (p.will ? ` will=${p.will.topic}` : "") + (p.username ? ` user=${p.username}` : "") + (p.password ? " password=***" : "");
    case "connack":
      return `CONNACK ${hex(mqttPacket.generate(p))} (${CONNACK_TEXT[p.returnCode ?? 0] ?? "code " + p.returnCode}${p.sessionPresent ? ", session present" : ""})`;
    case "publish":
      return `PUBLISH ${p.topic} ${show(Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload))} qos=${q}` +
        (p.retain ? " retain" : "") + (p.dup ? " dup" : "") + (q ? ` id=${id}` : "");
    case "subscribe":
      return `SUBSCRIBE id=${id} ` + p.subscriptions.map((s) => `${s.topic} qos=${s.qos}`).join(", ");
    case "suback":
      return `SUBACK id=${id} granted=${p.granted.join(",")}`;
    case "unsubscribe":
      return `UNSUBSCRIBE id=${id} ${p.unsubscriptions.join(", ")}`;
    case "pingreq":
    case "pingresp":
    case "disconnect":
      return p.cmd.toUpperCase() + " " + hex(mqttPacket.generate(p));
    default:
      return `${p.cmd.toUpperCase()} id=${id}`;
  }
}

/**
 * A loopback TCP proxy in front of the broker that decodes both directions for the trace,
 * and writes each connection to the capture (as a TCP connection to port 1883) if there is one.
 */
function traceProxy(brokerPort: number, print: (s: string) => void, cap?: PcapWriter, flows?: Set<TcpFlow>): Promise<net.Server> {
  const server = net.createServer((board) => {
    const up = net.connect(brokerPort, "127.0.0.1");
    const flow = cap?.flow(1883);
    if (flow) flows?.add(flow);
    const ended = (who: "board" | "broker") => {
      if (flow) {
        flow.close(who);
        flows?.delete(flow);
      }
    };
    const tap = (arrow: string) => {
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.on("packet", (p) => print(`${arrow} ${describe(p)}`));
      parser.on("error", (e) => print(`${arrow} malformed packet: ${e.message}`));
      return (b: Buffer) => parser.parse(b);
    };
    const toBroker = tap("→");
    const toBoard = tap("←");
    board.on("data", (b) => { toBroker(b); flow?.toBroker(b); up.write(b); });
    up.on("data", (b) => { toBoard(b); flow?.toBoard(b); board.write(b); });
    const end = () => { board.destroy(); up.destroy(); };
    board.on("close", () => { ended("board"); end(); }).on("error", end);
    up.on("close", () => { ended("broker"); end(); }).on("error", end);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

export async function startDemo(o: DemoOptions = {}): Promise<Demo> {
  const print = o.print ?? ((s: string) => console.log(s));
  const modem: ModemKind = o.modem ?? "esp8266";
  const id = o.board ?? modemEntry(modem).demoBoard;
  const boardFile = path.join(ROOT, "boards", id + ".ts");
  if (!existsSync(boardFile)) throw new Error(`no board "${id}" in boards/`);
  const board: BoardDef = (await import(pathToFileURL(boardFile).href)).default;
  if (!board.modems.includes(modem)) throw new Error(`${board.title} is built for ${board.modems.join(", ")}, not ${modem}`);
  const script = path.join(ROOT, "firmware", `${board.id}-${modem}.js`);
  if (!existsSync(script)) throw new Error(`${path.relative(ROOT, script)} is missing: run npm run build`);

  const listenOn = o.listen ?? "127.0.0.1";
  const broker = await startBroker({ port: o.port ?? DEFAULT_PORT, wsPort: o.wsPort ?? DEFAULT_WS_PORT, listen: listenOn });
  const { port, wsPort } = broker;
  const cap = o.pcap ? new PcapWriter(o.pcap) : undefined;
  const flows = new Set<TcpFlow>();
  const proxy = await traceProxy(port, print, cap, flows);
  const proxyPort = (proxy.address() as net.AddressInfo).port;

  const wifi = { ssid: "demo-net", password: "demo-wifi-pass" };
  const gprs = { apn: "internet", user: "", password: "" };
  const credentials: Record<string, Record<string, string>> = { wifi, gprs };
  const modemKey = modemEntry(modem).configKey;
  const sim = modemEntry(modem).simulator(credentials[modemKey], {
    seed: 7,
    baud: o.baud ?? board.baud,
    hostMap: () => ({ host: "127.0.0.1", port: proxyPort }),
  });
  const config = {
    [modemKey]: credentials[modemKey],
    broker: { host: "broker.local", port: 1883 },
    keepAlive: o.keepAlive ?? 60,
  };
  const code = readFileSync(script, "latin1");
  const toBoard = (chunk: string) => demo.vb.uart(board.uart).inject(chunk);
  sim.on("tx", toBoard);

  /** A virtual board wired to the simulator, running the script. */
  const boot = (): VirtualBoard => {
    const vb = new VirtualBoard({ board, clock: "real", storage: { "led.json": JSON.stringify(config) } });
    vb.uart(board.uart).onWrite((bytes) => sim.receive(bytes));
    const ledPin = board.led;
    vb.on("pin", (name: string, level: number) => {
      // The module restarts (ESP8266: CH_PD) or powers up (SIM800: PWRKEY) when the board releases its control line.
      if (name === controlPinOf(board, modem) && level === 1) modemEntry(modem).onControlPulse(sim);
      if (name === ledPin) print(`LED     ${(level === 1) !== !!board.ledActiveLow ? "● on" : "○ off"}`);
    });
    vb.onLog((line) => print(`board   ${line.trimEnd()}`));
    return vb;
  };

  // On 0.0.0.0, the address a phone on the network would use.
  const pageUrl = broker.pageUrl(reachableAddresses(listenOn)[0]);
  print(`broker  mqtt://${listenOn}:${port}  ws://${listenOn}:${wsPort}`);
  print(`board   ${board.title} running firmware/${board.id}-${modem}.js (${code.length} bytes) with a simulated ${modem.toUpperCase()}`);
  print(`phone   ${pageUrl}   (the control page; or: mosquitto_pub -h 127.0.0.1 -p ${port} -t led -m on)`);
  if (cap) print(`capture ${cap.file}   (Wireshark, or: tshark -r ${cap.file} -Y mqtt)`);

  let running = true;
  const demo: Demo = {
    port, wsPort, pageUrl, board,
    vb: boot(),
    stopBoard() {
      if (!running) return;
      running = false;
      demo.vb.dispose();
      sim.off("tx", toBoard);
      print("board   powered off (its TCP link left open and silent)");
    },
    startBoard() {
      if (running) return;
      running = true;
      demo.vb = boot();
      sim.on("tx", toBoard);
      print("board   powered on");
      demo.vb.run(code);
    },
    async stop() {
      demo.vb.dispose();
      sim.close();
      // the capture ends with the board closing each connection still open
      for (const f of flows) f.close("board");
      flows.clear();
      cap?.close();
      proxy.close();
      await broker.stop();
    },
  };
  demo.vb.run(code);
  return demo;
}

/** Whole numbers from 1200 to 4,000,000, or 0 (unpaced). */
function baudRate(text: string, flag: string): number {
  if (text === "0") return 0;
  return wholeNumber(1200, 4_000_000, " (or 0: unpaced)")(text, flag);
}

export const START_OPTIONS: OptionSpec[] = [
  { flag: "--board", arg: "ID", help: "the board to simulate (default espruino-wifi, or pico with --modem sim800 or sim7600)", parse: boardId },
  { flag: "--modem", arg: "KIND", help: `the modem: ${MODEMS.slice(0, -1).join(", ")} or ${MODEMS.at(-1)} (default esp8266)`, parse: modemKind },
  { flag: "--port", arg: "N", help: `broker's MQTT over TCP port (default ${DEFAULT_PORT}; 0: any free port)`, parse: portNumber },
  { flag: "--ws-port", arg: "N", help: `broker's MQTT over WebSocket port, also the phone page (default ${DEFAULT_WS_PORT}; 0: any free port)`, parse: portNumber },
  { flag: "--listen", arg: "ADDRESS", help: "address the broker listens on: 127.0.0.1 (default) or 0.0.0.0 (lets a phone on your network in)", parse: listenAddress },
  { flag: "--keepalive", key: "keepAlive", arg: "SECONDS", help: "the board's MQTT keep-alive, 5 to 65535 (default 60)", parse: wholeNumber(5, 65535, " (seconds)") },
  { flag: "--baud", arg: "N", help: "UART rate the simulated modem paces bytes at (default the board's; 0: unpaced)", parse: baudRate },
  { flag: "--duration", arg: "SECONDS", help: "stop by itself after this long, 1 to 86400", parse: wholeNumber(1, 86400, " (seconds)") },
  { flag: "--quiet", help: "print nothing once running" },
  { flag: "--no-build", help: "run the scripts already in firmware/ instead of building first" },
  { flag: "--pcap", arg: "FILE", help: "write every byte between the board and the broker to FILE as a capture (Wireshark, tshark -r FILE -Y mqtt)"},
];

export type StartCli = DemoOptions & { duration?: number; quiet?: boolean; noBuild?: boolean; help?: boolean };

/**
 * Parses and checks `npm start`'s command line before anything starts: every value,
 * the board and modem pair, distinct ports. Throws UsageError with one message.
 */
export async function parseStartArgs(argv: string[]): Promise<StartCli> {
  const o = parseOptions(argv, START_OPTIONS) as StartCli;
  if (o.help) return o;
  const modem = o.modem ?? "esp8266";
  const id = o.board ?? modemEntry(modem).demoBoard;
  const board: BoardDef = (await import(pathToFileURL(path.join(ROOT, "boards", id + ".ts")).href)).default;
  if (!board.modems.includes(modem)) {
    throw new UsageError(`${o.board ? "--board " + id : "the default board " + id} is built for ${board.modems.join(" and ")}, not --modem ${modem}`);
  }
  const port = o.port ?? DEFAULT_PORT, wsPort = o.wsPort ?? DEFAULT_WS_PORT;
  if (port !== 0 && port === wsPort) throw new UsageError(`--port and --ws-port must differ (both are ${port})`);
  return o;
}

/** The help text, with the boards (and their modems) and the modems. */
export async function startHelp(): Promise<string> {
  const boards: string[] = [];
  for (const id of boardIds()) {
    const b: BoardDef = (await import(pathToFileURL(path.join(ROOT, "boards", id + ".ts")).href)).default;
    boards.push(`  ${id.padEnd(16)}${b.title} (${b.modems.join(", ")})`);
  }
  return helpText("npm start -- [options]", START_OPTIONS, ["", "boards (--board):", ...boards, "", `modems (--modem): ${MODEMS.join(", ")}`]);
}

if (isMain(import.meta.url)) {
  const fail = (msg: string, code: number) => {
    process.stderr.write(`npm start: ${msg}\n`);
    process.exit(code);
  };
  let opts: StartCli;
  try {
    opts = await parseStartArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    fail(`${e.message}\n(npm start -- --help lists the options, boards and modems)`, 2);
  }
  if (opts!.help) {
    console.log(await startHelp());
    process.exit(0);
  }
  // Ctrl-C while building: exit handlers remove the build's temporary directory; firmware/ is untouched.
  const interrupted = () => process.exit(130);
  process.on("SIGINT", interrupted);
  process.on("SIGTERM", interrupted);
  if (!opts!.noBuild) {
    console.log("npm start: building the firmware first (scripts/build/build.ts; --no-build skips it)");
    const { build } = await import("../build/build");
    const r = await build();
    if (!r.ok) fail(["the build failed; firmware/ is left as it was:", ...r.errors].join("\n"), 1);
  }
  try {
    const demo = await startDemo({ ...opts!, print: opts!.quiet ? () => {} : undefined });
    const stop = async () => { await demo.stop(); process.exit(0); };
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    if (opts!.duration) setTimeout(stop, opts!.duration * 1000);
  } catch (e) {
    fail((e as Error).message, 1);
  }
}
