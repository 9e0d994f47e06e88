/**
 * Modem simulator CLI: exposes a simulated modem's UART as a TCP server (one
 * board at a time) and bridges the board's connections to a real broker.
 *
 *   tsx scripts/simulators/modem-sim.ts --modem esp8266 --uart-port 7000 --broker 127.0.0.1:1883
 *     [--seed N] [--max-chunk N] [--baud N] [--host 127.0.0.1] [--verbose]
 *
 * Hook up a real Espruino Linux build with, e.g.:
 *   socat pty,link=/tmp/ttyMODEM,raw,echo=0 tcp:127.0.0.1:7000
 * and Serial1.setup(115200, {path: "/tmp/ttyMODEM"}) on the board side.
 * Every host the board asks for is mapped to --broker (default: the host itself).
 */
import net from "node:net";
import { parseArgs } from "../repo";
import { createModemSim, MODEM_KINDS, type ModemKind } from "./modem-sim/index";

const { values: a } = parseArgs({
  options: {
    modem: { type: "string", default: "esp8266" },
    "uart-port": { type: "string", default: "7000" },
    host: { type: "string", default: "127.0.0.1" },
    broker: { type: "string" },
    seed: { type: "string", default: "1" },
    "max-chunk": { type: "string", default: "64" },
    baud: { type: "string" },
    verbose: { type: "boolean", default: false },
  },
});

const kind = a.modem as ModemKind;
if (!MODEM_KINDS.includes(kind)) {
  process.stderr.write(`--modem must be one of ${MODEM_KINDS.join(", ")}` + "\n");
  process.exit(2);
}
let broker: { host: string; port: number } | undefined;
if (a.broker) {
  const m = /^(.*):(\d+)$/.exec(a.broker);
  if (!m) {
    process.stderr.write("--broker must be host:port" + "\n");
    process.exit(2);
  }
  broker = { host: m[1], port: Number(m[2]) };
}
const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${s}`);
let busy = false;

const server = net.createServer((sock) => {
  if (busy) {
    log("a board is already attached: refusing a second one");
    sock.destroy();
    return;
  }
  busy = true;
  log(`board attached from ${sock.remoteAddress}:${sock.remotePort}`);
  const sim = createModemSim(kind, {
    seed: Number(a.seed),
    maxChunk: Number(a["max-chunk"]),
    baud: a.baud ? Number(a.baud) : undefined,
    log: a.verbose ? log : undefined,
    hostMap: (host, port) => {
      const t = broker ?? { host, port };
      log(`board opens ${host}:${port} -> ${t.host}:${t.port}`);
      return t;
    },
  });
  sim.on("tx", (chunk: string) => {
    if (a.verbose) log(`modem> ${JSON.stringify(chunk)}`);
    sock.write(Buffer.from(chunk, "latin1"));
  });
  sock.on("data", (d: Buffer) => {
    const s = d.toString("latin1");
    if (a.verbose) log(`board> ${JSON.stringify(s)}`);
    sim.receive(s);
  });
  const end = () => {
    if (!busy) return;
    busy = false;
    sim.close();
    log("board detached");
  };
  sock.on("close", end);
  sock.on("error", (e) => {
    log(`uart socket: ${e.message}`);
    end();
  });
});

server.listen(Number(a["uart-port"]), a.host, () => {
  log(`${kind} simulator: UART on tcp://${a.host}:${a["uart-port"]}` + (broker ? `, links go to ${broker.host}:${broker.port}` : ""));
});
process.on("SIGINT", () => {
  server.close();
  process.exit(0);
});
