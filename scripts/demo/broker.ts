/**
 * `npm run broker`: an MQTT broker for a real board and a phone on the same network.
 * Aedes on TCP (for the board) and on MQTT over WebSocket (for the phone page),
 * and the phone page itself (web/, MQTT.js's browser build from node_modules/mqtt/dist)
 * over HTTP on the WebSocket port. Prints what the board's led.json needs and the
 * page's address, as text and as a QR code to scan with the phone.
 *
 *   npm run broker -- [--listen 0.0.0.0] [--port 1883] [--ws-port 9001] [--config config.json]
 *
 * Loopback only unless --listen says otherwise. A user name and password, when
 * config.json's broker section or LED_BROKER_USERNAME / LED_BROKER_PASSWORD give
 * them, are required of every client (board and page alike); they are never printed.
 * `npm start` (scripts/demo/start.ts) starts the same broker and page for the virtual board.
 */
import net from "node:net";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { Aedes, type AuthenticateError } from "aedes";
import { WebSocketServer, createWebSocketStream } from "ws";
import { renderUnicodeCompact } from "uqr";
import { ROOT } from "../build/bundle";
import { brokerCredentials } from "../config";
import { helpText, listenAddress, parseOptions, portNumber, UsageError, type OptionSpec } from "./options";
import { isMain } from "../repo";

export const DEFAULT_PORT = 1883;
/**
 * MQTT over WebSocket and the page: 9001, the port commonly given to Mosquitto's
 * websockets listener. (8883 is the registered port of MQTT over TLS.)
 */
export const DEFAULT_WS_PORT = 9001;

export interface BrokerOptions {
  /** TCP port (0: any free port). */
  port?: number;
  /** WebSocket and page port (0: any free port). */
  wsPort?: number;
  /** Address to listen on (default loopback). */
  listen?: string;
  /** Credentials every client must give. */
  auth?: { username: string; password?: string };
}

export interface PhoneBroker {
  aedes: Aedes;
  port: number;
  wsPort: number;
  listen: string;
  /** The page's address for a host name or address (default: the listen address, or 127.0.0.1 for a wildcard). */
  pageUrl(host?: string): string;
  stop(): Promise<void>;
}

/** The page's files, by URL path. */
const WEB = path.join(ROOT, "web");
const MQTT_BROWSER = path.join(ROOT, "node_modules/mqtt/dist/mqtt.min.js");
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: path.join(WEB, "index.html"), type: "text/html; charset=utf-8" },
  "/index.html": { file: path.join(WEB, "index.html"), type: "text/html; charset=utf-8" },
  "/app.js": { file: path.join(WEB, "app.js"), type: "text/javascript; charset=utf-8" },
  "/style.css": { file: path.join(WEB, "style.css"), type: "text/css; charset=utf-8" },
  "/icon.svg": { file: path.join(WEB, "icon.svg"), type: "image/svg+xml" },
  "/mqtt.min.js": { file: MQTT_BROWSER, type: "text/javascript; charset=utf-8" },
};
const HEADERS = {
  "Cache-Control": "no-cache",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  // The page may talk MQTT to another broker (?broker=…), so any ws:/wss: address.
  "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

/** The web app manifest; start_url carries the page's settings (prefix, topic, broker). */
export function manifest(search: string): string {
  const q = new URLSearchParams(search);
  const keep = new URLSearchParams();
  for (const k of ["prefix", "topic", "broker"]) {
    const v = q.get(k);
    if (v) keep.set(k, v);
  }
  const s = keep.toString();
  const name = (q.get("prefix") ? q.get("prefix") + " " : "") + "LED";
  return JSON.stringify({
    name,
    short_name: name.slice(0, 12),
    description: "Switch the board's LED over MQTT",
    start_url: "./" + (s ? "?" + s : ""),
    scope: "./",
    display: "standalone",
    orientation: "portrait",
    background_color: "#14171c",
    theme_color: "#14171c",
    icons: [{ src: "icon.svg", sizes: "any", type: "image/svg+xml", purpose: "any" }],
  }, null, 2);
}

/** Serves the page's files (GET and HEAD only), gzipped when the client takes it. */
function servePage(): http.RequestListener {
  const cache = new Map<string, { raw: Buffer; gz: Buffer }>();
  const load = (file: string) => {
    let c = cache.get(file);
    if (!c) {
      const raw = readFileSync(file);
      c = { raw, gz: gzipSync(raw) };
      // The page's own files are read afresh while developing; MQTT.js once.
      if (file === MQTT_BROWSER) cache.set(file, c);
    }
    return c;
  };
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://page");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", ...HEADERS }).end();
      return;
    }
    let body: Buffer;
    let type: string;
    if (url.pathname === "/manifest.webmanifest") {
      body = Buffer.from(manifest(url.search));
      type = "application/manifest+json";
    } else if (FILES[url.pathname]) {
      const f = FILES[url.pathname];
      if (!existsSync(f.file)) {
        res.writeHead(500, { "Content-Type": "text/plain", ...HEADERS }).end(`${path.relative(ROOT, f.file)} is missing (npm install?)\n`);
        return;
      }
      const c = load(f.file);
      const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
      res.writeHead(200, { "Content-Type": f.type, ...(gzip ? { "Content-Encoding": "gzip" } : {}), "Content-Length": (gzip ? c.gz : c.raw).length, Vary: "Accept-Encoding", ...HEADERS });
      res.end(req.method === "HEAD" ? undefined : gzip ? c.gz : c.raw);
      return;
    } else {
      res.writeHead(404, { "Content-Type": "text/plain", ...HEADERS }).end("not found\n");
      return;
    }
    res.writeHead(200, { "Content-Type": type, "Content-Length": body.length, ...HEADERS });
    res.end(req.method === "HEAD" ? undefined : body);
  };
}

/** A listen failure in words: which option, and what to do. */
export function listenError(e: NodeJS.ErrnoException, flag: string, port: number, address: string): Error {
  if (e.code === "EADDRINUSE") return new Error(`${flag} ${port} is taken (another broker or program listens there): stop it, or choose another port with ${flag} (0 picks a free one)`);
  if (e.code === "EADDRNOTAVAIL") return new Error(`--listen ${address} is not an address of this machine`);
  if (e.code === "EACCES") return new Error(`${flag} ${port}: not allowed to listen there (ports below 1024 need root)`);
  return new Error(`${flag} ${port}: ${e.message}`);
}

function listenOn(server: net.Server, port: number, host: string, flag: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException) => reject(listenError(e, flag, port, host));
    server.once("error", fail);
    server.listen(port, host, () => {
      server.off("error", fail);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

const digest = (s: string | Buffer) => createHash("sha256").update(s).digest();

/** Aedes' authenticate: the configured user name and password, compared in constant time. */
function authenticator(auth: { username: string; password?: string }) {
  const user = digest(auth.username);
  const pass = auth.password === undefined ? undefined : digest(auth.password);
  return (_c: unknown, username: string | undefined, password: Buffer | undefined, done: (e: AuthenticateError | null, ok: boolean | null) => void) => {
    const okUser = username !== undefined && timingSafeEqual(digest(username), user);
    const okPass = pass === undefined ? password === undefined : password !== undefined && timingSafeEqual(digest(password), pass);
    if (okUser && okPass) return done(null, true);
    const e = new Error("bad user name or password") as AuthenticateError;
    (e as { returnCode: number }).returnCode = 4;
    done(e, false);
  };
}

/** Aedes on TCP and WebSocket, and the page on the WebSocket port. */
export async function startBroker(o: BrokerOptions = {}): Promise<PhoneBroker> {
  const listen = o.listen ?? "127.0.0.1";
  const aedes = await Aedes.createBroker(o.auth ? { authenticate: authenticator(o.auth) } : {});
  const tcp = net.createServer(aedes.handle);
  const httpServer = http.createServer(servePage());
  const wss = new WebSocketServer({ server: httpServer });
  // ws passes the HTTP server's errors on: a listen error is handled by listenOn() below.
  wss.on("error", () => {});
  wss.on("connection", (ws) => aedes.handle(createWebSocketStream(ws) as unknown as net.Socket));
  const closeAll = async () => {
    wss.clients.forEach((c) => c.terminate());
    wss.close();
    httpServer.closeAllConnections();
    await Promise.all([
      new Promise<void>((r) => (httpServer.listening ? httpServer.close(() => r()) : r())),
      new Promise<void>((r) => (tcp.listening ? tcp.close(() => r()) : r())),
      new Promise<void>((r) => aedes.close(() => r())),
    ]);
  };
  try {
    const port = await listenOn(tcp, o.port ?? DEFAULT_PORT, listen, "--port");
    const wsPort = await listenOn(httpServer, o.wsPort ?? DEFAULT_WS_PORT, listen, "--ws-port");
    return {
      aedes, port, wsPort, listen,
      pageUrl: (host) => `http://${urlHost(host ?? (isWildcard(listen) ? "127.0.0.1" : listen))}:${wsPort}/`,
      stop: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

const isWildcard = (a: string) => a === "0.0.0.0" || a === "::";
const urlHost = (h: string) => (net.isIPv6(h) ? `[${h}]` : h);
const isLoopback = (a: string) => a === "localhost" || a === "::1" || a.startsWith("127.");

/**
 * The addresses a board or a phone can reach the broker at: the listen address
 * itself, or for a wildcard (0.0.0.0, ::) this machine's non-loopback IPv4 addresses.
 */
export function reachableAddresses(listen: string, interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string[] {
  if (!isWildcard(listen)) return [listen];
  const out: string[] = [];
  for (const list of Object.values(interfaces)) {
    for (const i of list ?? []) if (i.family === "IPv4" && !i.internal) out.push(i.address);
  }
  return out;
}

/** A QR code of text for the terminal (two rows per line of half blocks), with its quiet zone. */
export function qrText(text: string): string {
  return renderUnicodeCompact(text, { border: 2 });
}

/** What `npm run broker` prints once it listens: the addresses, what led.json needs, the page, a QR code. */
export function describeBroker(b: PhoneBroker, authed: boolean, interfaces?: NodeJS.Dict<os.NetworkInterfaceInfo[]>): string[] {
  const hosts = reachableAddresses(b.listen, interfaces);
  const host = hosts[0] ?? "127.0.0.1";
  const lines = [
    `broker  mqtt://${urlHost(b.listen)}:${b.port} (TCP, for the board)   ws://${urlHost(b.listen)}:${b.wsPort}/ (WebSocket, for the page)`,
    `        ${authed ? "clients must give the user name and password from the configuration (not shown)" : "no user name or password asked"}`,
    "",
    "led.json (npm run flash writes it from config.json's \"broker\"):",
    `        "broker": { "host": ${JSON.stringify(host)}, "port": ${b.port}${authed ? ', "username": …, "password": …' : ""} }`,
  ];
  if (hosts.length > 1) lines.push(`        (this machine is also at ${hosts.slice(1).join(", ")})`);
  if (isLoopback(b.listen) || !hosts.length) {
    lines.push("        A board or a phone cannot reach a broker on loopback: start it with --listen 0.0.0.0");
    lines.push("        (or this machine's address on your network).");
  }
  const url = b.pageUrl(host);
  lines.push("", `phone   ${url}`, "        open it on the phone (same network), or scan:", "", qrText(url));
  return lines;
}

export const BROKER_OPTIONS: OptionSpec[] = [
  { flag: "--listen", arg: "ADDRESS", help: "address to listen on: 127.0.0.1 (default, this machine only) or 0.0.0.0 (every network)", parse: listenAddress },
  { flag: "--port", arg: "N", help: `MQTT over TCP, for the board (default ${DEFAULT_PORT}; 0: any free port)`, parse: portNumber },
  { flag: "--ws-port", arg: "N", help: `MQTT over WebSocket and the phone page (default ${DEFAULT_WS_PORT}; 0: any free port)`, parse: portNumber },
  { flag: "--config", arg: "FILE", help: "where the broker user name and password are read from (default config.json; LED_BROKER_USERNAME / LED_BROKER_PASSWORD win)" },
  { flag: "--quiet", help: "print only the addresses, not each client and message" },
];

export interface BrokerCli { listen?: string; port?: number; wsPort?: number; config?: string; quiet?: boolean; help?: boolean }

/** Parses and checks the command line; throws UsageError. */
export function parseBrokerArgs(argv: string[]): BrokerCli {
  const o = parseOptions(argv, BROKER_OPTIONS) as BrokerCli;
  if (!o.help && o.port !== undefined && o.port !== 0 && o.port === (o.wsPort ?? DEFAULT_WS_PORT)) throw new UsageError("--port and --ws-port must differ");
  if (!o.help && o.wsPort !== undefined && o.wsPort !== 0 && o.wsPort === (o.port ?? DEFAULT_PORT)) throw new UsageError("--port and --ws-port must differ");
  return o;
}

async function main(): Promise<void> {
  let o: BrokerCli;
  try {
    o = parseBrokerArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`npm run broker: ${e.message}\n(npm run broker -- --help lists the options)\n`);
    process.exit(2);
  }
  if (o.help) {
    console.log(helpText("npm run broker -- [options]", BROKER_OPTIONS, ["", "For a real board on your network: npm run broker -- --listen 0.0.0.0"]));
    return;
  }
  const configFile = path.resolve(ROOT, o.config ?? "config.json");
  if (o.config && !existsSync(configFile)) {
    process.stderr.write(`npm run broker: --config ${o.config} does not exist\n`);
    process.exit(2);
  }
  const cred = brokerCredentials({ file: configFile, env: process.env });
  if (cred.error) {
    process.stderr.write(`npm run broker: ${cred.error}\n`);
    process.exit(2);
  }
  const auth = cred.username !== undefined ? { username: cred.username, password: cred.password } : undefined;
  let b: PhoneBroker;
  try {
    b = await startBroker({ port: o.port, wsPort: o.wsPort, listen: o.listen, auth });
  } catch (e) {
    process.stderr.write(`npm run broker: ${(e as Error).message}\n`);
    process.exit(1);
  }
  for (const l of describeBroker(b, !!auth)) console.log(l);
  if (!o.quiet) {
    b.aedes.on("client", (c) => console.log(`connect     ${c.id}`));
    b.aedes.on("clientDisconnect", (c) => console.log(`disconnect  ${c.id}`));
    b.aedes.on("publish", (p, c) => {
      if (!c || p.topic.startsWith("$SYS/")) return;
      const text = Buffer.from(p.payload).toString("utf8");
      const shown = text.length > 60 ? JSON.stringify(text.slice(0, 60)) + `... (${text.length} characters)` : JSON.stringify(text);
      console.log(`publish     ${c.id}  ${p.topic} ${shown}${p.retain ? " retained" : ""}`);
    });
  }
  const stop = async () => {
    await b.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (isMain(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`npm run broker: ${String(e && e.message ? e.message : e)}\n`);
    process.exit(1);
  });
}
