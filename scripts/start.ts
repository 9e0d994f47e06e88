/**
 * `npm start`: the firmware working with no hardware. An Aedes broker on
 * loopback (TCP and WebSocket), the modem simulator in front of it, and the
 * virtual board running the exact bytes of a built firmware/*.js on the real
 * clock. Prints the LED, the board's log (modem states) and a readable trace
 * of every MQTT packet between the board and the broker.
 *
 *   tsx scripts/start.ts [--board espruino-wifi] [--modem esp8266] [--port 1883]
 *                        [--ws-port 8883] [--listen 127.0.0.1] [--keepalive 60]
 *                        [--baud 115200 (0 = unpaced)] [--duration SECONDS] [--quiet]
 *                        [--pcap FILE]
 *
 * --pcap FILE writes every byte between the board and the broker as a capture
 * file (./pcap.ts) that Wireshark or `tshark -r FILE -Y mqtt` opens.
 */
import net from "node:net";
import http from "node:http";
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Aedes } from "aedes";
import { WebSocketServer, createWebSocketStream } from "ws";
import mqttPacket from "mqtt-packet";
import { VirtualBoard } from "./virtual-board/index";
import { createModemSim } from "./modem-sim/index";
import { PcapWriter, type TcpFlow } from "./pcap";
import type { BoardDef, ModemKind } from "../src/board/board";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface DemoOptions {
  board?: string;
  modem?: ModemKind;
  /** Broker TCP port (0 = any free port). */
  port?: number;
  /** Broker WebSocket port (0 = any free port, -1 = none). */
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
  wsPort: number | undefined;
  board: BoardDef;
  vb: VirtualBoard;
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

function listen(server: net.Server | http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

export async function startDemo(o: DemoOptions = {}): Promise<Demo> {
  const print = o.print ?? ((s: string) => console.log(s));
  const modem: ModemKind = o.modem ?? "esp8266";
  const boardId = o.board ?? (modem === "sim800" ? "pico" : "espruino-wifi");
  const boardFile = path.join(ROOT, "boards", boardId + ".ts");
  if (!existsSync(boardFile)) throw new Error(`no board "${boardId}" in boards/`);
  const board: BoardDef = (await import(pathToFileURL(boardFile).href)).default;
  if (!board.modems.includes(modem)) throw new Error(`${board.title} is built for ${board.modems.join(", ")}, not ${modem}`);
  const script = path.join(ROOT, "firmware", `${board.id}-${modem}.js`);
  if (!existsSync(script)) throw new Error(`${path.relative(ROOT, script)} is missing: run npm run build`);

  const listenOn = o.listen ?? "127.0.0.1";
  const broker = await Aedes.createBroker();
  const tcp = net.createServer(broker.handle);
  const port = await listen(tcp, o.port ?? 1883, listenOn).catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === "EADDRINUSE" ? `port ${o.port ?? 1883} is taken: try --port 0 or stop the other broker` : e.message);
  });
  let wsPort: number | undefined;
  let httpServer: http.Server | undefined;
  let wss: WebSocketServer | undefined;
  if ((o.wsPort ?? 8883) >= 0) {
    httpServer = http.createServer();
    wss = new WebSocketServer({ server: httpServer });
    wss.on("connection", (ws) => broker.handle(createWebSocketStream(ws) as unknown as net.Socket));
    wsPort = await listen(httpServer, o.wsPort ?? 8883, listenOn);
  }
  const cap = o.pcap ? new PcapWriter(o.pcap) : undefined;
  const flows = new Set<TcpFlow>();
  const proxy = await traceProxy(port, print, cap, flows);
  const proxyPort = (proxy.address() as net.AddressInfo).port;

  const wifi = { ssid: "demo-net", password: "demo-wifi-pass" };
  const gprs = { apn: "internet", user: "", password: "" };
  const sim = createModemSim(modem, {
    ...wifi, apn: gprs.apn, seed: 7,
    baud: o.baud ?? board.baud,
    hostMap: () => ({ host: "127.0.0.1", port: proxyPort }),
  } as never);
  const config = {
    ...(modem === "esp8266" ? { wifi } : { gprs }),
    broker: { host: "broker.local", port: 1883 },
    keepAlive: o.keepAlive ?? 60,
  };
  const vb = new VirtualBoard({ board, clock: "real", storage: { "led.json": JSON.stringify(config) } });
  const uart = vb.uart(board.uart);
  uart.onWrite((bytes) => sim.receive(bytes));
  sim.on("tx", (chunk: string) => uart.inject(chunk));
  const ledPin = board.led;
  vb.on("pin", (name: string, level: number) => {
    // The ESP8266 restarts when the board releases its CH_PD line.
    if (modem === "esp8266" && name === board.enable && level === 1) sim.reboot();
    if (modem === "sim800" && name === board.pwrkey && level === 1) sim.reboot();
    if (name === ledPin) print(`LED     ${(level === 1) !== !!board.ledActiveLow ? "● on" : "○ off"}`);
  });
  vb.onLog((line) => print(`board   ${line.trimEnd()}`));

  print(`broker  mqtt://${listenOn}:${port}` + (wsPort !== undefined ? `  ws://${listenOn}:${wsPort}` : ""));
  print(`board   ${board.title} running firmware/${board.id}-${modem}.js (${readFileSync(script).length} bytes) with a simulated ${modem.toUpperCase()}`);
  print(`phone   mosquitto_pub -h 127.0.0.1 -p ${port} -t led -m on   (or off, toggle)`);
  if (cap) print(`capture ${cap.file}   (Wireshark, or: tshark -r ${cap.file} -Y mqtt)`);
  vb.run(readFileSync(script, "latin1"));

  return {
    port, wsPort, board, vb,
    async stop() {
      vb.dispose();
      sim.close();
      // the capture ends with the board closing each connection still open
      for (const f of flows) f.close("board");
      flows.clear();
      cap?.close();
      proxy.close();
      wss?.clients.forEach((c) => c.terminate());
      wss?.close();
      httpServer?.close();
      tcp.close();
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

function parseArgs(argv: string[]): DemoOptions & { duration?: number; quiet?: boolean } {
  const o: DemoOptions & { duration?: number; quiet?: boolean } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === "--board") o.board = v();
    else if (a === "--modem") o.modem = v() as ModemKind;
    else if (a === "--port") o.port = Number(v());
    else if (a === "--ws-port") o.wsPort = Number(v());
    else if (a === "--listen") o.listen = v();
    else if (a === "--keepalive") o.keepAlive = Number(v());
    else if (a === "--baud") o.baud = Number(v());
    else if (a === "--duration") o.duration = Number(v());
    else if (a === "--quiet") o.quiet = true;
    else if (a === "--pcap") o.pcap = v();
    else throw new Error(`unknown option ${a} (see the top of scripts/start.ts)`);
  }
  return o;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    const demo = await startDemo({ ...opts, print: opts.quiet ? () => {} : undefined });
    const stop = async () => { await demo.stop(); process.exit(0); };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    if (opts.duration) setTimeout(stop, opts.duration * 1000);
  } catch (e) {
    console.error(`npm start: ${(e as Error).message}`);
    process.exit(1);
  }
}
