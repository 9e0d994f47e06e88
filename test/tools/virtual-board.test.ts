/**
 * The virtual board (scripts/simulators/virtual-board): Espruino's globals and only those,
 * its timer and event semantics on a fake clock, Storage, UART wiring for a
 * modem simulator, and errors counted as "Uncaught".
 */
import { afterAll, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { VirtualBoard } from "../../scripts/simulators/virtual-board/index";
import type { BoardDef } from "../../src/board/board";
import { createModemSim } from "../../scripts/simulators/modem-sim/index";
import { startAedes, type AedesBroker } from "../support/brokers";

const FIX = path.join(__dirname, "../fixtures/vb");
const fixture = (name: string) => readFileSync(path.join(FIX, name), "utf8");

const pico: BoardDef = {
  id: "pico", title: "Espruino Pico", chip: "STM32F401CDU6", vars: 5100, modems: ["esp8266"],
  uart: "Serial2", rx: "A3", tx: "A2", baud: 115200, led: "B2", enable: "A14",
};

/** Evaluates an expression inside the board (no "init") and returns what it printed. */
function printed(vb: VirtualBoard, expr: string): string {
  const before = vb.console.length;
  vb.eval(`print(${expr});`);
  return vb.console.slice(before).join("\n");
}

describe("a small Espruino-style program", () => {
  it("reads Storage JSON, blinks on the fake clock, and E 'init' follows the code", () => {
    const vb = new VirtualBoard({ board: pico, clock: "fake", storage: { "led.json": JSON.stringify({ pin: "B3", name: "dev1" }) } });
    const changes: Array<[string, number, number]> = [];
    vb.on("pin", (name: string, level: number) => changes.push([name, level, vb.now()]));
    vb.run(fixture("blink-echo.js"));
    expect(vb.console).toEqual(["boot dev1", "init 33FFD605-41573033-15720843"]);
    expect(vb.pin("B3")).toBeUndefined();
    vb.advance(499);
    expect(vb.pin("B3")).toBeUndefined();
    vb.advance(1);
    expect(vb.pin("B3")).toBe(1);
    vb.advance(2000);
    expect(changes).toEqual([["B3", 1, 500], ["B3", 0, 1000], ["B3", 1, 1500], ["B3", 0, 2000], ["B3", 1, 2500]]);
    expect(vb.uncaught).toBe(0);
  });

  it("without its Storage file it uses the default pin, LED1 being the board's LED", () => {
    const vb = new VirtualBoard({ board: pico, serial: "12345678-9ABCDEF0-12345678" });
    vb.run(fixture("blink-echo.js"));
    expect(vb.console[0]).toBe("boot no config");
    expect(vb.console[1]).toBe("init 12345678-9ABCDEF0-12345678");
    vb.advance(500);
    expect(vb.pin("LED1")).toBe(1);
    expect(printed(vb, "LED1 === B2, String(LED1)")).toBe("true B2");
  });

  it("echoes Serial2: data arrives asynchronously, as one event when the board is idle", async () => {
    const vb = new VirtualBoard({ board: pico, clock: "fake" });
    const uart = vb.uart("Serial2");
    const writes: string[] = [];
    uart.onWrite((b) => writes.push(b));
    vb.run(fixture("blink-echo.js"));
    expect(uart.baud).toBe(115200);
    expect(uart.options).toEqual({ rx: "A3", tx: "A2" });
    uart.inject("he");
    uart.inject("llo\xff");
    expect(writes).toEqual([]); // never inside the host's call
    await vb.runUntil(() => writes.length > 0, { timeoutMs: 1000 });
    expect(writes).toEqual(["echo:hello\xff"]);
    expect(uart.written).toBe("echo:hello\xff");
    expect(vb.uncaught).toBe(0);
  });

  it("bytes written to a UART are byte strings, from strings, numbers and arrays", () => {
    const vb = new VirtualBoard({ board: pico });
    const out: string[] = [];
    vb.uart("Serial1").onWrite((b) => out.push(b));
    vb.run('Serial1.write("A", 66, [67, 68], new Uint8Array([0, 255])); Serial1.print("x"); Serial1.println("y");');
    expect(out).toEqual(["ABCD\x00\xff", "x", "y\r\n"]);
  });
});

describe("only what Espruino has", () => {
  it("a script using Map fails as on the board, counted as uncaught", () => {
    const vb = new VirtualBoard({ board: pico });
    vb.run(fixture("uses-map.js"));
    expect(vb.uncaught).toBe(1);
    expect(vb.console).toContain("Uncaught ReferenceError: Map is not defined");
    expect(vb.console).not.toContain("unreachable on Espruino");
  });

  it("missing globals and methods are gone from the context's own intrinsics", () => {
    const vb = new VirtualBoard({ board: pico });
    const names = ["Map", "Set", "WeakMap", "WeakSet", "Symbol", "Reflect", "Proxy", "TextEncoder", "TextDecoder", "Buffer",
      "setImmediate", "queueMicrotask", "structuredClone", "globalThis", "BigInt", "WebAssembly", "Array.from", "Array.of",
      "Number.isInteger", "Number.isNaN", "Math.trunc", "Object.freeze", "Date.UTC", "Promise.race", "Promise.allSettled",
      "Promise.any", "Promise.prototype.finally", "process.exit", "module", "exports", "__dirname", "fetch"];
    expect(printed(vb, names.map((n) => `typeof ${n}`).join(", "))).toBe(names.map(() => "undefined").join(" "));
  });

  it("Espruino's own globals are there", () => {
    const vb = new VirtualBoard({ board: pico });
    const names = ["Serial1", "Serial6", "Pin", "A0", "H15", "LED1", "LED2", "BTN1", "digitalWrite", "digitalRead", "pinMode",
      "digitalPulse", "setWatch", "setTimeout", "setInterval", "clearTimeout", "clearInterval", "changeInterval", "getTime",
      "getSerial", "E", "E.on", "E.emit", "E.toString", "E.hwRand", "save", "load", "reset", "require", "console.log", "print",
      "Uint8Array", "DataView", "JSON", "Math", "Promise", "Promise.all", "global", "process.memory", "btoa", "atob"];
    const types = printed(vb, names.map((n) => `typeof ${n}`).join(", ")).split(" ");
    names.forEach((n, i) => expect(types[i], n).not.toBe("undefined"));
    expect(printed(vb, "typeof getTime()")).toBe("number");
    expect(printed(vb, "process.version")).toBe("2v29");
  });

  it("require() knows Storage only; Node's modules are not there", () => {
    const vb = new VirtualBoard({ board: pico });
    vb.eval('require("fs")');
    vb.run('require("Storage").write("a.txt", "hi"); print(require("Storage").read("a.txt"), require("Storage").list().length)');
    expect(vb.console).toEqual(["Uncaught Error: Module fs not found", "hi 1"]);
    expect(vb.storage.get("a.txt")).toBe("hi");
  });

  it("every object has Espruino's on/emit", () => {
    const vb = new VirtualBoard({ board: pico });
    expect(printed(vb, '(function(){ var o = {}, n = 0; o.on("x", function (a) { n += a; }); o.emit("x", 2); o.emit("x", 3); o.removeAllListeners("x"); o.emit("x", 5); return n + " " + Object.keys(o).length; })()')).toBe("5 0");
  });
});

describe("errors and timers", () => {
  it("an error thrown out of a timer or a data handler is 'Uncaught', counted, and the board keeps running", async () => {
    const vb = new VirtualBoard({ board: pico });
    vb.run(fixture("throws-in-timer.js"));
    vb.advance(50);
    expect(vb.uncaught).toBe(1);
    expect(vb.console).toEqual(["Uncaught Error: boom"]);
    vb.uart("Serial1").inject("bad");
    await vb.runUntil(() => vb.uncaught === 2, { timeoutMs: 100 });
    expect(vb.console[1]).toMatch(/^Uncaught TypeError: Cannot set propert/);
    vb.uart("Serial1").inject("ok");
    await vb.runUntil(() => vb.console.includes("got ok"), { timeoutMs: 100 });
    vb.advance(1000);
    expect(printed(vb, "ticks")).toBe("10");
    expect(vb.uncaught).toBe(2);
  });

  it("clearTimeout works like Espruino's: ids reused, unknown ids and undefined throw, no argument clears all", () => {
    const vb = new VirtualBoard({ board: pico });
    vb.run("var a = setTimeout(function(){}, 10); var b = setTimeout(function(){}, 20); print(a, b);");
    expect(vb.console.pop()).toBe("1 2");
    vb.advance(25);
    vb.run("var c = setTimeout(function(){ print('c ran'); }, 10); print(c);");
    expect(vb.console.pop()).toBe("1"); // ids are reused once free
    vb.run("clearTimeout(b);"); // b has fired: no longer a timer
    expect(vb.console.pop()).toBe("Uncaught Error: Unknown Timeout");
    vb.run("clearTimeout(undefined);");
    expect(vb.console.pop()).toMatch(/^Uncaught Error: clearTimeout\(undefined\) not allowed/);
    vb.run("setInterval(function(){ print('tick'); }, 5); clearTimeout();");
    vb.advance(100);
    expect(vb.console).not.toContain("c ran");
    expect(vb.console).not.toContain("tick");
    expect(vb.timerCount).toBe(0);
    expect(vb.uncaught).toBe(2);
  });

  it("due timers run in time order, then insertion order; getTime() follows the fake clock", () => {
    const vb = new VirtualBoard({ board: pico });
    vb.run("setTimeout(function(){ print('b', getTime()); }, 20); setTimeout(function(){ print('a', getTime()); }, 10); setTimeout(function(){ print('c'); }, 20);");
    vb.advance(100);
    expect(vb.console).toEqual(["a 0.01", "b 0.02", "c"]);
  });

  it("on the real clock timers fire by themselves", async () => {
    const vb = new VirtualBoard({ board: pico, clock: "real" });
    vb.run("setTimeout(function(){ print('done'); }, 20);");
    expect(() => vb.advance(10)).toThrow(/fake/);
    await vb.runUntil(() => vb.console.includes("done"), { timeoutMs: 5000 });
    vb.dispose();
  });

  it("runUntil is bounded", async () => {
    const vb = new VirtualBoard({ board: pico });
    vb.run("setInterval(function(){}, 1000);");
    await expect(vb.runUntil(() => false, { timeoutMs: 5000 })).rejects.toThrow(/runUntil: condition not met/);
    expect(vb.now()).toBeGreaterThanOrEqual(5000);
    expect(await vb.runUntil(() => false, { timeoutMs: 100, throwOnTimeout: false })).toBe(false);
  });
});

describe("pins, power and Storage boot", () => {
  it("digitalPulse, pinMode, setWatch on a button the host presses", async () => {
    const vb = new VirtualBoard({ board: pico });
    const levels: number[] = [];
    vb.on("pin", (name: string, l: number) => { if (name === "A14") levels.push(l); });
    vb.run("pinMode(A14, 'output'); digitalPulse(A14, 0, 200); setWatch(function (e) { print('btn', e.state); }, BTN1, { edge: 'rising', repeat: true });");
    expect(vb.pinMode("A14")).toBe("output");
    expect(vb.pin("A14")).toBe(0);
    vb.advance(199);
    expect(vb.pin("A14")).toBe(0);
    vb.advance(1);
    expect(levels).toEqual([0, 1]);
    vb.setPin("BTN1", 1);
    vb.setPin("BTN1", 0);
    vb.setPin("C13", 1);
    await vb.runUntil(() => vb.console.length >= 2, { timeoutMs: 100 });
    expect(vb.console).toEqual(["btn true", "btn true"]);
  });

  it("powerOn() runs .bootcde from Storage then 'init'; load() restarts it after 'kill'; save() sends kill then init", async () => {
    const boot = "print('boot'); E.on('init', function(){ print('init'); }); E.on('kill', function(){ print('kill'); });";
    const vb = new VirtualBoard({ board: pico, storage: { ".bootcde": boot } });
    vb.powerOn();
    expect(vb.console).toEqual(["boot", "init"]);
    vb.eval("load(); print('still here');");
    expect(vb.console).toEqual(["boot", "init", "still here"]); // load() waits for the idle loop
    await vb.runUntil(() => vb.console.filter((l) => l === "boot").length === 2, { timeoutMs: 100 });
    expect(vb.console).toEqual(["boot", "init", "still here", "kill", "boot", "init"]);
    vb.eval("save();");
    await vb.runUntil(() => vb.saves === 1, { timeoutMs: 100 });
    expect(vb.console.slice(-3)).toEqual(["init", "kill", "init"]);
    vb.eval("reset();");
    await vb.runUntil(() => vb.console.length === 9, { timeoutMs: 100 });
    expect(vb.console.slice(-1)).toEqual(["kill"]); // reset(): a blank interpreter, .bootcde not run
    expect(vb.eval("typeof E.emit")).toBe("function");
    expect(vb.storage.has(".bootcde")).toBe(true);
    expect(vb.uncaught).toBe(0);
  });
});

describe("a built firmware script", () => {
  const dir = path.join(__dirname, "../../firmware");
  const file = existsSync(dir) ? readdirSync(dir).find((f) => /^pico-esp8266\.js$/.test(f)) : undefined;
  it("runs unchanged with no modem attached: sets up the modem UART, no uncaught error, no secret printed", () => {
    expect(file, "firmware/pico-esp8266.js (npm test builds it first)").toBeDefined();
    const code = readFileSync(path.join(dir, file!), "latin1");
    const cfg = { wifi: { ssid: "lab", password: "secret-pass" }, broker: { host: "127.0.0.1", port: 1883 } };
    const vb = new VirtualBoard({ board: pico, storage: { "led.json": JSON.stringify(cfg) } });
    const uart = vb.uart(pico.uart);
    vb.run(code);
    expect(uart.baud).toBe(pico.baud);
    for (let i = 0; i < 20; i++) vb.advance(1000);
    expect(vb.console.join("\n")).not.toContain("secret-pass");
    expect(vb.uncaught, vb.console.join("\n")).toBe(0);
    vb.dispose();
  });
});

describe("wired to the modem simulator and a real broker (the host API end to end)", () => {
  const dir = path.join(__dirname, "../../firmware");
  const cleanups: Array<() => void | Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  /** pico-esp8266.js on a fake clock, Serial2 ↔ ESP8266 simulator ↔ Aedes, the phone on MQTT.js. */
  async function rig() {
    const broker: AedesBroker = await startAedes();
    cleanups.push(() => broker.stop());
    const port = broker.port;
    const board = (await import("../../boards/pico")).default;
    const sim = createModemSim("esp8266", { ssid: "lab", password: "secret-pass", hostMap: () => ({ host: "127.0.0.1", port }) });
    const cfg = { wifi: { ssid: "lab", password: "secret-pass" }, broker: { host: "broker.example", port: 1883 }, keepAlive: 30 };
    const vb = new VirtualBoard({ board, clock: "fake", storage: { "led.json": JSON.stringify(cfg) } });
    const uart = vb.uart(board.uart);
    uart.onWrite((bytes) => sim.receive(bytes));
    sim.on("tx", (chunk: string) => uart.inject(chunk));
    // The module restarts when the board releases its enable (CH_PD) line.
    vb.on("pin", (name: string, level: number) => { if (name === board.enable && level === 1) sim.reboot(); });
    cleanups.push(() => { vb.dispose(); sim.close(); });
    const states: string[] = [];
    const phone = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    cleanups.push(() => { phone.end(true); });
    phone.on("message", (topic, payload) => { if (topic === "led/state") states.push(payload.toString()); });
    await new Promise<void>((resolve) => phone.on("connect", () => resolve()));
    await new Promise<void>((resolve) => phone.subscribe("led/#", () => resolve()));
    vb.run(readFileSync(path.join(dir, "pico-esp8266.js"), "latin1"));
    return { vb, sim, board, states, phone };
  }

  it("connects, and the phone switches the LED", async () => {
    const { vb, board, states, phone } = await rig();
    await vb.runUntil(() => states.length > 0, { timeoutMs: 60_000 });
    expect(states).toEqual(["off"]);
    phone.publish("led", "on", { qos: 1 });
    await vb.runUntil(() => states.includes("on"), { timeoutMs: 30_000 });
    expect(vb.pin(board.led)).toBe(board.ledActiveLow ? 0 : 1);
    expect(vb.console.join("\n")).not.toContain("secret-pass");
    expect(vb.uncaught, vb.console.join("\n")).toBe(0);
  }, 30_000);

  it("keeps the session alive: PINGREQs go out every keep-alive period", async () => {
    const { vb, sim } = await rig();
    const pings = () => sim.commands.filter((c: string) => c === "AT+CIPSEND=2").length;
    await vb.runUntil(() => sim.commands.some((c: string) => c.startsWith("AT+CIPSEND")), { timeoutMs: 60_000 });
    const t0 = vb.now();
    await vb.runUntil(() => pings() >= 2, { timeoutMs: 100_000, realTimeoutMs: 15_000 });
    expect(vb.now() - t0).toBeLessThan(70_000);
    expect(vb.uncaught, vb.console.join("\n")).toBe(0);
  }, 30_000);
});
