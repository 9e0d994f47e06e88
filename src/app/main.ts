/**
 * The LED app: reads led.json from Storage, brings up the modem named at build
 * time, keeps an MQTT session to the broker and switches the LED on commands.
 * Every failure ends in a retry: the board is never left with a stopped program.
 */
import board from "virtual:board";
import { Modem, modemOptions } from "virtual:modem";
import { AtEngine } from "../at/engine";
import { MqttClient } from "../session/index";
import type { Pulse } from "../board/board";
import type { Clock } from "../transport";
import { CONFIG_FILE, type DeviceConfig } from "./config";
import { LED_IGNORE, nextLevel, parseCommand } from "./led";
import { announce } from "./discovery";

// Espruino's timers as the Clock. Every layer clears only timers still pending
// (Espruino throws on a fired id, and reuses ids), so no wrapper is needed.
const clock: Clock = {
  now: () => getTime() * 1000,
  setTimeout: setTimeout,
  clearTimeout: clearTimeout,
};

const log = (s: string) => console.log(s);

/** A pin held low for `ms`, then high (a modem's reset or power key; the driver says which). None without a pin. */
const pulse: Pulse = (pin, ms) => (pin && ((done: () => void) => {
  digitalWrite(pin, 0);
  setTimeout(() => { digitalWrite(pin, 1); done(); }, ms);
})) as ReturnType<Pulse>;

let started = false;

function start(): void {
  if (started) return;
  // readJSON's second argument: a missing or broken file reads as undefined, not an exception.
  const c: DeviceConfig | undefined = require("Storage").readJSON(CONFIG_FILE, true);
  if (!c || !c.broker) {
    log("no " + CONFIG_FILE);
    setTimeout(start, 30000);
    return;
  }
  started = true;
  const ledPin = c.ledPin || board.led;
  const activeLow = c.ledActiveLow == null ? board.ledActiveLow : c.ledActiveLow;
  const base = (c.prefix ? c.prefix + "/" : "") + (c.topic || "led");
  let lit = false;
  const show = () => digitalWrite(ledPin, lit != !!activeLow);
  show();

  const uart = global[board.uart];
  uart.setup(board.baud, { rx: board.rx, tx: board.tx, path: c.uartPath || board.path });
  const engine = new AtEngine(uart, clock, log);
  uart.removeAllListeners("data");
  uart.on("data", (d: string) => engine.feed(d));
  if (board.boot) digitalWrite(board.boot, 1);
  // The driver takes its credentials from led.json and its control pins from the board.
  const modem = new Modem(engine, clock, Object.assign({ log: log, ssl: c.broker.tls }, modemOptions(board, c, pulse)));

  // The chip's 96-bit serial is "XXXXXXXX-XXXXXXXX-XXXXXXXX"; its last two words make a 21-character id.
  const id = c.clientId || "led-" + getSerial().slice(-17);
  // host, port, username and password come straight from led.json's "broker".
  const client = new MqttClient(modem, clock, Object.assign({
    clientId: id,
    keepAlive: c.keepAlive || 60,
    clean: false,
    will: { topic: base + "/status", payload: "offline", qos: 1 as const, retain: true },
  }, c.broker));
  // State and presence go out at QoS 0, retained: they never wait in the session's
  // bounded table, and a report lost with a dropped link is sent again on connect.
  // A report waits until no command has come for half a second: a burst of commands
  // costs one report, of the state it left, instead of one each (which would
  // overflow the modem's output queue). rt: that timer while pending.
  let rt: any;
  const report = () => {
    if (rt) clearTimeout(rt);
    rt = setTimeout(() => {
      rt = 0;
      client.publish(base + "/state", lit ? "on" : "off", 0, true);
    }, 500);
  };
  // Each MQTT-level reason (refused: N, protocol error, ping timeout, oversize,
  // subscription refused: <filter>...; never a secret) is logged once, until the
  // next connection.
  let why: any;
  client.onError = (e: string) => {
    if (e != why) log("mqtt " + (why = e));
  };
  client.onConnect = () => {
    why = "";
    client.publish(base + "/status", "online", 0, true);
    report();
    // Home Assistant discovery (./discovery.ts), retained, on every connect.
    announce(client, id, base);
  };
  client.onMessage = (topic: string, payload: string) => {
    if (topic != base) return;
    const cmd = parseCommand(payload);
    // At most 16 bytes of it are shown; "..." says the payload went on.
    if (cmd == LED_IGNORE) return log("led: ignored " + JSON.stringify(payload.slice(0, 16)) + (payload.length > 16 ? "..." : ""));
    lit = nextLevel(cmd, lit);
    show();
    report();
  };
  client.subscribe(base, 1);
  client.connect();
}

// From .bootcde the code runs at every boot and "init" follows it: the guard
// keeps one session. save() raises "kill", keeps the timers and raises "init":
// stopping every timer ends this session, so the next start() (and a RAM image)
// is the only one.
E.on("init", start);
E.on("kill", () => {
  started = false;
  (clearTimeout as () => void)();
});
start();
