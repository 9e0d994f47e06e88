/**
 * Real MQTT brokers on loopback for tests (driver, session and end-to-end).
 *
 *   const a = await startAedes();          // in-process Aedes 1.2
 *   const m = await startMosquitto({ users: { alice: "pw" }, acl: "user alice\ntopic readwrite a/#\n" });
 *   a.port / m.port   → connect MQTT.js or a NodeTransport to 127.0.0.1:port
 *   await x.restart() → drops every connection and listens again on the SAME port
 *   x.pause() / x.resume() → a silent, half-dead broker: TCP stays up (new connections
 *                       are even accepted) but nothing is answered (Aedes: its sockets are
 *                       not read; Mosquitto: SIGSTOP / SIGCONT)
 *   await x.stop()    → call in afterAll (idempotent); every wait is bounded
 *
 * Aedes: restart() closes the server and all its sockets but keeps the broker
 * instance, so its in-memory sessions, subscriptions, queued QoS 1/2 messages and
 * retained messages survive (as a broker with persistence would). Pass Aedes options
 * (authenticate, authorizeSubscribe, ...) as `opts.aedes`.
 *
 * Mosquitto (/usr/sbin/mosquitto, 2.0): started with a generated config in a temp
 * dir: `listener <port> 127.0.0.1`, `persistence false` unless opts.persistence
 * (then sessions and queued messages survive restart(): SIGTERM saves them).
 * With opts.users a password file is made with mosquitto_passwd; anonymous access
 * is then off unless allowAnonymous. opts.acl is the text of an acl_file — note
 * that mosquitto's acl_file never refuses a SUBSCRIBE, it only filters delivery.
 * For SUBACK 0x80 use opts.dynsec instead: the dynamic-security plugin with the
 * same users, each allowed to publish/subscribe/receive only the listed topic
 * patterns (a user not listed may use "#"); everything else is denied.
 * Measured on mosquitto 2.0.11 with MQTT 3.1.1: a wrong password or unknown user gets
 * CONNACK 5 (not authorized); a subscription denied by dynsec gets SUBACK 0x80.
 * With opts.tls a second listener speaks MQTT over TLS (certfile/keyfile, e.g. from
 * ./tls.ts; opts.tls.version sets Mosquitto's minimum tls_version) on `tlsPort`,
 * with the same users and ACL.
 * Processes are killed in stop(), and on process exit as a last resort.
 */
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { Aedes, type AedesOptions } from "aedes";

export interface RunningBroker {
  port: number;
  /** The MQTT-over-TLS listener's port, when the broker has one. */
  tlsPort?: number;
  stop(): Promise<void>;
  restart(): Promise<void>;
  pause(): void;
  resume(): void;
}
export interface AedesBroker extends RunningBroker {
  broker: Aedes;
}

const HOST = "127.0.0.1";

/** A free loopback port (asked from the OS). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((ok, ko) => s.once("error", ko).listen(0, HOST, () => ok()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects after timeoutMs. */
export async function waitForPort(port: number, timeoutMs = 5000, alive: () => boolean = () => true): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect(port, HOST);
      s.setTimeout(500, () => { s.destroy(); res(false); });
      s.once("connect", () => { s.destroy(); res(true); });
      s.once("error", () => res(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`broker on port ${port} exited`);
    if (Date.now() > until) throw new Error(`port ${port} not accepting after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

export async function startAedes(opts: { port?: number; aedes?: AedesOptions } = {}): Promise<AedesBroker> {
  const broker = await Aedes.createBroker(opts.aedes);
  const port = opts.port ?? (await freePort());
  let server: net.Server | null = null;
  const sockets = new Set<net.Socket>();

  const listen = async () => {
    const s = net.createServer((sock) => {
      sockets.add(sock);
      // Aedes pulls with read() on 'readable': while paused it gets nothing
      const read = sock.read.bind(sock);
      sock.read = (n?: number) => (paused ? null : read(n));
      sock.on("close", () => sockets.delete(sock));
      broker.handle(sock);
    });
    await new Promise<void>((ok, ko) => s.once("error", ko).listen(port, HOST, () => ok()));
    server = s;
  };
  const close = async () => {
    const s = server;
    server = null;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    if (s) await bounded(new Promise<void>((ok) => s.close(() => ok())), 3000);
  };
  let paused = false;
  await listen();
  let stopped = false;
  return {
    port,
    broker,
    restart: async () => {
      await close();
      await listen();
    },
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
      for (const sock of sockets) sock.emit("readable");
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await close();
      await bounded(new Promise<void>((ok) => broker.close(() => ok())), 3000);
    },
  };
}

export interface MosquittoOptions {
  /** user name → password; written with mosquitto_passwd. */
  users?: Record<string, string>;
  /** Text of an ACL file (acl_file). */
  acl?: string;
  /** Default: true without users, false with users. */
  allowAnonymous?: boolean;
  /** Keep sessions across restart() (persistence true, saved on SIGTERM). */
  persistence?: boolean;
  port?: number;
  /** user → allowed topic patterns; enables the dynamic-security plugin (needs users). */
  dynsec?: Record<string, string[]>;
  /** Extra config lines. */
  extra?: string[];
  /** A TLS listener too: the server's certificate and key files, the minimum TLS version ("tlsv1.2", "tlsv1.3"). */
  tls?: { cert: string; key: string; version?: string };
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of live) try { p.kill("SIGKILL"); } catch {}
});

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<RunningBroker> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mosq-"));
  const port = opts.port ?? (await freePort());
  const tlsPort = opts.tls ? await freePort() : undefined;
  const conf = [
    `listener ${port} ${HOST}`,
    ...(opts.tls
      ? [`listener ${tlsPort} ${HOST}`, `certfile ${opts.tls.cert}`, `keyfile ${opts.tls.key}`, ...(opts.tls.version ? [`tls_version ${opts.tls.version}`] : [])]
      : []),
    `allow_anonymous ${opts.allowAnonymous ?? !opts.users}`,
    // running as root, mosquitto would switch to user "mosquitto" and lose access to the temp dir
    ...(process.getuid && process.getuid() === 0 ? ["user root"] : []),
    `log_dest stderr`,
    `log_type error`,
    `log_type warning`,
  ];
  if (opts.persistence) conf.push("persistence true", `persistence_location ${dir}/`, "autosave_interval 1");
  else conf.push("persistence false");
  if (opts.dynsec) {
    const file = path.join(dir, "dynsec.json");
    fs.writeFileSync(file, JSON.stringify(dynsecConfig(opts.users ?? {}, opts.dynsec)), { mode: 0o600 });
    conf.push(`plugin ${DYNSEC}`, `plugin_opt_config_file ${file}`);
  } else if (opts.users) {
    const pw = path.join(dir, "passwd");
    fs.writeFileSync(pw, "");
    for (const [u, p] of Object.entries(opts.users)) execFileSync("mosquitto_passwd", ["-b", pw, u, p], { timeout: 5000 });
    fs.chmodSync(pw, 0o600);
    conf.push(`password_file ${pw}`);
  }
  if (opts.acl != null) {
    const acl = path.join(dir, "acl");
    fs.writeFileSync(acl, opts.acl, { mode: 0o600 });
    conf.push(`acl_file ${acl}`);
  }
  conf.push(...(opts.extra ?? []));
  const confFile = path.join(dir, "mosquitto.conf");
  fs.writeFileSync(confFile, conf.join("\n") + "\n");

  let proc: ChildProcess | null = null;
  let log = "";
  const launch = async () => {
    const p = spawn("/usr/sbin/mosquitto", ["-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
    proc = p;
    live.add(p);
    let exited = false;
    p.on("exit", () => { exited = true; live.delete(p); });
    p.stderr!.on("data", (d) => { log = (log + d).slice(-4000); });
    try {
      await waitForPort(port, 5000, () => !exited);
      if (tlsPort) await waitForPort(tlsPort, 5000, () => !exited);
    } catch (e) {
      p.kill("SIGKILL");
      throw new Error(`${(e as Error).message}; mosquitto said: ${log}`);
    }
  };
  const kill = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((ok) => p.once("exit", () => ok()));
    p.kill("SIGCONT");
    p.kill("SIGTERM");
    if (!(await bounded(gone, 3000))) {
      p.kill("SIGKILL");
      await bounded(gone, 2000);
    }
  };
  await launch();
  let stopped = false;
  return {
    port,
    tlsPort,
    restart: async () => {
      await kill();
      await launch();
    },
    pause: () => { proc?.kill("SIGSTOP"); },
    resume: () => { proc?.kill("SIGCONT"); },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const DYNSEC = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

/** A dynamic-security plugin config: one client and one role per user. */
function dynsecConfig(users: Record<string, string>, allow: Record<string, string[]>): object {
  const kinds = ["publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern"];
  return {
    clients: Object.entries(users).map(([username, pw]) => {
      const salt = crypto.randomBytes(12);
      return {
        username, roles: [{ rolename: "r-" + username }], iterations: 101, salt: salt.toString("base64"),
        password: crypto.pbkdf2Sync(pw, salt, 101, 64, "sha512").toString("base64"),
      };
    }),
    roles: Object.keys(users).map((u) => ({
      rolename: "r-" + u,
      acls: (allow[u] ?? ["#"]).flatMap((topic) => kinds.map((acltype) => ({ acltype, topic, allow: true }))),
    })),
    groups: [],
    defaultACLAccess: { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true },
  };
}

/** Waits for p at most ms; true if it settled. */
async function bounded(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([p.then(() => true), new Promise<boolean>((ok) => (t = setTimeout(() => ok(false), ms)))]);
  clearTimeout(t);
  return r;
}
