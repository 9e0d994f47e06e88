/**
 * The README's front door: `npm start` brings up broker, modem simulator and
 * virtual board, and a phone (here MQTT.js over TCP, then over WebSocket)
 * switches the LED. Real clock, so the bounds are generous.
 */
import { afterAll, describe, expect, it } from "vitest";
import mqtt from "mqtt";
import { startDemo, type Demo } from "../../scripts/demo/start";
import { until } from "../support/wait";


describe("npm start (scripts/demo/start.ts)", () => {
  let demo: Demo | undefined;
  const lines: string[] = [];
  afterAll(async () => { await demo?.stop(); });

  it("shows the trace and obeys a phone over TCP and over WebSocket", async () => {
    demo = await startDemo({ port: 0, wsPort: 0, keepAlive: 60, print: (s) => lines.push(s) });
    await until(() => lines.some((l) => l.startsWith("← CONNACK 20 02 00 00")), 20_000, "CONNACK");
    expect(lines.find((l) => l.startsWith("→ CONNECT"))).toMatch(/^→ CONNECT client=led-\S+ keepAlive=60 clean=0 will=led\/status$/);
    await until(() => lines.some((l) => l.startsWith("← SUBACK")), 20_000, "SUBACK");
    // Nothing secret in anything printed.
    expect(lines.join("\n")).not.toContain("demo-wifi-pass");

    const tcp = await mqtt.connectAsync(`mqtt://127.0.0.1:${demo.port}`, { reconnectPeriod: 0 });
    await tcp.publishAsync("led", "on", { qos: 1 });
    await until(() => lines.includes("LED     ● on"), 20_000, "LED on");
    expect(demo.vb.pin(demo.board.led)).toBe(1);
    await tcp.endAsync();

    const ws = await mqtt.connectAsync(`ws://127.0.0.1:${demo.wsPort}`, { reconnectPeriod: 0 });
    await ws.publishAsync("led", "toggle", { qos: 0 });
    await until(() => lines.filter((l) => l === "LED     ○ off").length >= 2, 20_000, "LED off");
    expect(demo.vb.pin(demo.board.led)).toBe(0);
    await ws.endAsync();
    expect(demo.vb.uncaught).toBe(0);
  }, 60_000);

  it("--modem sim7600 shows the LTE module's dialogue and obeys the phone", async () => {
    await demo?.stop();
    lines.length = 0;
    demo = await startDemo({ modem: "sim7600", port: 0, wsPort: 0, keepAlive: 60, print: (s) => lines.push(s) });
    await until(() => lines.some((l) => l.startsWith("← SUBACK")), 30_000, "SUBACK");
    const board = lines.filter((l) => l.startsWith("board   ")).map((l) => l.slice(8));
    // the bring-up in order, the credentials hidden
    const order = ["AT+CPIN?;+CSQ", "AT+CEREG?;+CGREG?", "AT+NETCLOSE", "AT+CGDCONT=<hidden>", "AT+NETOPEN", "AT+CIPSRIP=0", "connected"];
    const at = order.map((want) => board.findIndex((l) => l === want));
    expect(at, board.join("\n")).not.toContain(-1);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(board.some((l) => /^AT\+CIPOPEN=0,"TCP","[^"]+",\d+$/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith("← CONNACK 20 02 00 00"))).toBe(true);
    const phone = await mqtt.connectAsync(`mqtt://127.0.0.1:${demo.port}`, { reconnectPeriod: 0 });
    await phone.publishAsync("led", "on", { qos: 1 });
    await until(() => lines.includes("LED     ● on"), 20_000, "LED on");
    expect(demo.vb.pin(demo.board.led)).toBe(1);
    await phone.endAsync();
    expect(demo.vb.uncaught).toBe(0);
  }, 60_000);
});
