/**
 * `npm run broker` and the command lines of `npm start` / `npm run broker`: the broker
 * a real board and a phone use (TCP and WebSocket, the page over HTTP on the
 * WebSocket port, optional credentials never printed, a QR code of the page's
 * address), options checked before anything starts, ports in use reported alike.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import mqtt from "mqtt";
import jsQR from "jsqr";
import { ROOT } from "../../scripts/build/bundle";
import { DEFAULT_WS_PORT, describeBroker, manifest, parseBrokerArgs, qrText, reachableAddresses, startBroker } from "../../scripts/demo/broker";
import { parseStartArgs, startDemo, startHelp } from "../../scripts/demo/start";
import { createRequire } from "node:module";
import { UsageError } from "../../scripts/demo/options";

const TSX = path.join(ROOT, "node_modules/.bin/tsx");
const { nodeVersionProblem, NODE_MAJOR } = createRequire(import.meta.url)("../../scripts/check-node.cjs") as {
  nodeVersionProblem: (v: string) => string | undefined;
  NODE_MAJOR: number;
};
const SECRET = "Br0ker-S3cret-pw";
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LED_")));
const tmp = mkdtempSync(path.join(os.tmpdir(), "phone-broker-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Reads a terminal QR code (half blocks, two module rows per line) back into an image and decodes it. */
function decodeQr(text: string): string | undefined {
  const lines = text.split("\n").filter((l) => l.length);
  const w = Math.max(...lines.map((l) => [...l].length));
  const rows: boolean[][] = [];
  for (const l of lines) {
    const chars = [...l.padEnd(w)];
    rows.push(chars.map((c) => c === "█" || c === "▀"));
    rows.push(chars.map((c) => c === "█" || c === "▄"));
  }
  const scale = 6, pad = 4;
  const W = (w + 2 * pad) * scale, H = (rows.length + 2 * pad) * scale;
  const img = new Uint8ClampedArray(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const r = Math.floor(y / scale) - pad, c = Math.floor(x / scale) - pad;
      // a filled cell is the terminal's foreground; what surrounds the code is filled too (its quiet zone)
      const filled = r < 0 || r >= rows.length || c < 0 || c >= w ? true : rows[r][c];
      const v = filled ? 255 : 0;
      img.set([v, v, v, 255], (y * W + x) * 4);
    }
  }
  return jsQR(img, W, H, { inversionAttempts: "attemptBoth" })?.data;
}

function get(url: string, headers: Record<string, string> = {}, method = "GET"): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Connects MQTT.js; resolves to the CONNACK return code (0 = accepted). */
function connackCode(url: string, auth: { username?: string; password?: string }): Promise<number> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...auth });
    c.on("connect", () => { c.end(true); resolve(0); });
    c.on("error", (e: Error & { code?: number }) => { c.end(true); resolve(typeof e.code === "number" ? e.code : -1); });
  });
}

/** Runs a command until its output matches `until` (or it exits); bounded. */
function runUntil(args: string[], env: NodeJS.ProcessEnv, until: RegExp, ms = 30_000): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(TSX, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { child.kill("SIGKILL"); reject(new Error("timed out; output:\n" + out)); }, ms);
    const check = () => { if (until.test(out)) { clearTimeout(t); resolve({ child, out: () => out }); } };
    child.stdout!.on("data", check);
    child.on("exit", () => { clearTimeout(t); until.test(out) ? resolve({ child, out: () => out }) : reject(new Error("exited; output:\n" + out)); });
  });
}

const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.on("exit", (code) => r(code))));

describe("npm run broker", () => {
  it("prints what led.json needs and the page's address as text and QR code; asks for the credentials and never prints them; serves the page", async () => {
    const env = { ...cleanEnv, LED_BROKER_USERNAME: "board", LED_BROKER_PASSWORD: SECRET };
    const { child, out } = await runUntil(["scripts/demo/broker.ts", "--port", "0", "--ws-port", "0", "--config", path.join(ROOT, "config.example.json")], env, /▀▀▀▀\n/);
    try {
      const text = out();
      const port = Number(/mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(text)![1]);
      const wsPort = Number(/ws:\/\/127\.0\.0\.1:(\d+)\//.exec(text)![1]);
      const page = `http://127.0.0.1:${wsPort}/`;
      expect(text).toContain(`"broker": { "host": "127.0.0.1", "port": ${port}, "username": …, "password": … }`);
      expect(text).toContain("--listen 0.0.0.0");
      expect(text).toContain(`phone   ${page}`);
      expect(decodeQr(text.slice(text.indexOf(`phone   ${page}`)).split("\n").slice(3).join("\n")), "the QR code reads as the page's address").toBe(page);

      // board and page alike must log in; the right credentials get in, over TCP and WebSocket
      expect(await connackCode(`mqtt://127.0.0.1:${port}`, {})).toBe(4);
      expect(await connackCode(`mqtt://127.0.0.1:${port}`, { username: "board", password: "wrong" })).toBe(4);
      expect(await connackCode(`mqtt://127.0.0.1:${port}`, { username: "board", password: SECRET })).toBe(0);
      expect(await connackCode(`ws://127.0.0.1:${wsPort}/`, { username: "board", password: SECRET })).toBe(0);
      expect(await connackCode(`ws://127.0.0.1:${wsPort}/`, { username: "phone", password: SECRET })).toBe(4);

      // the page, its script, MQTT.js's browser build (no CDN) and the manifest, on the WebSocket port
      const html = await get(page);
      expect(html.status).toBe(200);
      expect(html.headers["content-type"]).toMatch(/^text\/html/);
      expect(html.body.toString()).toContain('<script src="mqtt.min.js"></script>');
      expect(html.body.toString()).not.toMatch(/https?:\/\//);
      const lib = await get(page + "mqtt.min.js", { "Accept-Encoding": "gzip" });
      expect(lib.headers["content-encoding"]).toBe("gzip");
      expect(gunzipSync(lib.body).equals(readFileSync(path.join(ROOT, "node_modules/mqtt/dist/mqtt.min.js")))).toBe(true);
      expect((await get(page + "app.js")).body.toString()).toContain("mqtt.connect(");
      const mf = await get(page + "manifest.webmanifest?prefix=kitchen&x=1");
      expect(mf.headers["content-type"]).toBe("application/manifest+json");
      expect(JSON.parse(mf.body.toString())).toMatchObject({ start_url: "./?prefix=kitchen", display: "standalone", icons: [{ src: "icon.svg" }] });
      expect((await get(page + "icon.svg")).status).toBe(200);
      expect((await get(page + "../../package.json")).status).toBe(404);
      expect((await get(page + "config.json")).status).toBe(404);
      expect((await get(page, {}, "POST")).status).toBe(405);
    } finally {
      child.kill("SIGINT");
      expect(await exited(child)).toBe(0);
    }
    // a client's connection and publishes are logged; the password is not, anywhere
    expect(out()).toMatch(/connect {5}mqttjs_/);
    expect(out()).not.toContain(SECRET);
  }, 60_000);

  it("the address a board and a phone use: the listen address, or this machine's network addresses for 0.0.0.0", () => {
    const ifs = {
      lo: [{ address: "127.0.0.1", family: "IPv4", internal: true }],
      eth0: [{ address: "192.168.1.20", family: "IPv4", internal: false }, { address: "fe80::1", family: "IPv6", internal: false }],
      wlan0: [{ address: "10.0.0.7", family: "IPv4", internal: false }],
    } as unknown as NodeJS.Dict<os.NetworkInterfaceInfo[]>;
    expect(reachableAddresses("0.0.0.0", ifs)).toEqual(["192.168.1.20", "10.0.0.7"]);
    expect(reachableAddresses("192.168.1.20", ifs)).toEqual(["192.168.1.20"]);
    const lines = describeBroker({ listen: "0.0.0.0", port: 1883, wsPort: 9001, pageUrl: (h: string) => `http://${h}:9001/` } as never, false, ifs).join("\n");
    expect(lines).toContain('"broker": { "host": "192.168.1.20", "port": 1883 }');
    expect(lines).toContain("(this machine is also at 10.0.0.7)");
    expect(lines).toContain("phone   http://192.168.1.20:9001/");
    expect(lines).not.toContain("cannot reach");
    expect(decodeQr(qrText("http://192.168.1.20:9001/?prefix=kitchen"))).toBe("http://192.168.1.20:9001/?prefix=kitchen");
  });

  it("the manifest keeps only the page's own settings in start_url", () => {
    expect(JSON.parse(manifest("")).start_url).toBe("./");
    expect(JSON.parse(manifest("?broker=ws%3A%2F%2Fh%3A9001%2F&topic=lamp&evil=1")).start_url).toBe("./?topic=lamp&broker=ws%3A%2F%2Fh%3A9001%2F");
  });
});

describe("ports in use: the same message for TCP and WebSocket", () => {
  it("npm run broker's and npm start's listeners", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    const busy = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(startBroker({ port: busy, wsPort: 0 })).rejects.toThrow(`--port ${busy} is taken (another broker or program listens there): stop it, or choose another port with --port (0 picks a free one)`);
      await expect(startBroker({ port: 0, wsPort: busy })).rejects.toThrow(`--ws-port ${busy} is taken (another broker or program listens there): stop it, or choose another port with --ws-port (0 picks a free one)`);
      await expect(startDemo({ port: 0, wsPort: busy, print: () => {} })).rejects.toThrow(`--ws-port ${busy} is taken`);
      // and the command line says it in one line, exit code 1
      const r = spawnSync(TSX, ["scripts/demo/broker.ts", "--port", "0", "--ws-port", String(busy)], { cwd: ROOT, env: cleanEnv, encoding: "utf8", timeout: 30_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`npm run broker: --ws-port ${busy} is taken (another broker or program listens there): stop it, or choose another port with --ws-port (0 picks a free one)\n`);
    } finally {
      blocker.close();
    }
  }, 60_000);

  it(`the WebSocket port defaults to ${DEFAULT_WS_PORT}, not 8883 (MQTT over TLS)`, () => {
    expect(DEFAULT_WS_PORT).not.toBe(8883);
    // 8883 appears in the README only as the TLS port, never as the WebSocket one
    expect(readFileSync(path.join(ROOT, "README.md"), "utf8")).not.toMatch(/ws-port 8883|ws:\/\/[^\s`]*:8883/);
  });
});

describe("command lines are checked before anything starts", () => {
  it.each([
    [["--ws-port", "abc"], '--ws-port must be a whole number from 0 to 65535 (0: any free port), not "abc"'],
    [["--keepalive", "abc"], '--keepalive must be a whole number from 5 to 65535 (seconds), not "abc"'],
    [["--keepalive", "0"], '--keepalive must be a whole number from 5 to 65535 (seconds), not "0"'],
    [["--keepalive", "-5"], '--keepalive must be a whole number from 5 to 65535 (seconds), not "-5"'],
    [["--keepalive", "70000"], '--keepalive must be a whole number from 5 to 65535 (seconds), not "70000"'],
    [["--baud", "abc"], '--baud must be a whole number from 1200 to 4000000 (or 0: unpaced), not "abc"'],
    [["--port", "abc"], '--port must be a whole number from 0 to 65535 (0: any free port), not "abc"'],
    [["--port", "70000"], '--port must be a whole number from 0 to 65535 (0: any free port), not "70000"'],
    [["--duration", "0"], '--duration must be a whole number from 1 to 86400 (seconds), not "0"'],
    [["--listen", "my-laptop"], '--listen must be an IP address of this machine, such as 127.0.0.1 (this machine only) or 0.0.0.0 (every network), not "my-laptop"'],
    [["--board", "nano"], '--board: unknown board "nano"; the boards are discovery-f4, espruino-wifi, linux, nucleo-f401re, original, pico'],
    [["--modem", "lte"], '--modem must be esp8266, sim800 or sim7600, not "lte"'],
    [["--modem", "sim800", "--board", "espruino-wifi"], "--board espruino-wifi is built for esp8266, not --modem sim800"],
    [["--port", "1883", "--ws-port", "1883"], "--port and --ws-port must differ (both are 1883)"],
    [["--keepalive"], "--keepalive needs a value (SECONDS)"],
    [["--bord", "pico"], 'unknown option "--bord"'],
  ])("npm start %j: %s", async (argv, msg) => {
    const e = await parseStartArgs(argv).catch((x) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toBe(msg);
  });

  it("good command lines parse to their values", async () => {
    expect(await parseStartArgs(["--board", "pico", "--modem", "sim800", "--port", "0", "--ws-port", "0", "--keepalive", "10", "--baud", "0", "--no-build"]))
      .toEqual({ board: "pico", modem: "sim800", port: 0, wsPort: 0, keepAlive: 10, baud: 0, noBuild: true });
    expect(parseBrokerArgs(["--listen", "0.0.0.0", "--ws-port=8080"])).toEqual({ listen: "0.0.0.0", wsPort: 8080 });
    expect(() => parseBrokerArgs(["--ws-port", "1883"])).toThrow("--port and --ws-port must differ");
  });

  it("npm start -- --help lists options, boards and modems at once, and a bad value stops it before the build", async () => {
    const help = spawnSync(TSX, ["scripts/demo/start.ts", "--help"], { cwd: ROOT, env: cleanEnv, encoding: "utf8", timeout: 30_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toBe((await startHelp()) + "\n");
    for (const s of ["--keepalive SECONDS", "--ws-port N", "boards (--board):", "espruino-wifi   Espruino WiFi (esp8266)", "pico            Espruino Pico (esp8266, sim800, sim7600)", "modems (--modem): esp8266, sim800, sim7600"]) expect(help.stdout).toContain(s);
    expect(help.stdout + help.stderr).not.toMatch(/npm start: building|script\(s\) for/);

    const bad = spawnSync(TSX, ["scripts/demo/start.ts", "--keepalive", "-5"], { cwd: ROOT, env: cleanEnv, encoding: "utf8", timeout: 30_000 });
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toBe('npm start: --keepalive must be a whole number from 5 to 65535 (seconds), not "-5"\n(npm start -- --help lists the options, boards and modems)\n');
  }, 60_000);
});

describe("Node.js version", () => {
  it(`needs ${NODE_MAJOR} or later, says so in one line, and the README and package.json say the same`, () => {
    expect(nodeVersionProblem("18.19.1")).toBe(`this needs Node.js ${NODE_MAJOR} or later, and this is Node.js 18.19.1: install Node.js ${NODE_MAJOR} (LTS) or newer, then npm install again`);
    expect(nodeVersionProblem("v16.20.2")).toMatch(/this is Node.js 16.20.2/);
    expect(nodeVersionProblem("20.0.0")).toBeUndefined();
    expect(nodeVersionProblem("24.3.0")).toBeUndefined();
    expect(nodeVersionProblem(process.versions.node)).toBeUndefined();
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8"));
    expect(pkg.engines.node).toBe(`>=${NODE_MAJOR}`);
    expect(readFileSync(path.join(ROOT, "README.md"), "utf8")).toContain(`Node.js ${NODE_MAJOR} or later`);
    // npm checks it before every command, with plain node (scripts/check-node.cjs)
    for (const cmd of ["build", "start", "broker", "flash", "test", "bench"]) expect(pkg.scripts["pre" + cmd], cmd).toBe("node scripts/check-node.cjs");
    const ok = spawnSync(process.execPath, [path.join(ROOT, "scripts/check-node.cjs")], { encoding: "utf8" });
    expect([ok.status, ok.stderr]).toEqual([0, ""]);
  });
});
