/**
 * The LED app: reads led.json from Storage, brings up the modem named at build
 * time, keeps an MQTT session to the broker and switches the LED on commands.
 * Every failure ends in a retry: the board is never left with a stopped program.
 */
import board from "virtual:board";
import { createModem } from "virtual:modem";
import { AtEngine } from "../at/engine";
import { MqttClient } from "../session/index";
import type { Clock } from "../session/transport";
import { CONFIG_FILE, type DeviceConfig } from "./config";
import { LED_IGNORE, nextLevel, parseCommand } from "./led";

// Espruino reuses timer ids and throws when clearing one that has fired, so a
// handle remembers its id only until the timer runs.
interface TimerHandle { i?: number }
const clock: Clock = {
  now: () => getTime() * 1000,
  setTimeout: (fn, ms) => {
    const h: TimerHandle = {};
    h.i = setTimeout(() => { h.i = undefined; fn(); }, ms);
    return h;
  },
  clearTimeout: (h) => {
    const t = h as TimerHandle;
    if (t && t.i != null) { clearTimeout(t.i); t.i = undefined; }
  },
};

const log = (s: string) => console.log(s);

let started = false;

function start(): void {
  if (started) return;
  let cfg: DeviceConfig | undefined;
  try { cfg = require("Storage").readJSON(CONFIG_FILE, true); } catch (e) { /* no Storage: stays undefined */ }
  if (!cfg || !cfg.broker) {
    log("no " + CONFIG_FILE + ": npm run flash writes it");
    setTimeout(start, 30000);
    return;
  }
  started = true;
  const c = cfg;
  const ledPin = c.ledPin || board.led;
  const activeLow = c.ledActiveLow == null ? !!board.ledActiveLow : c.ledActiveLow;
  const base = (c.prefix ? c.prefix + "/" : "") + (c.topic || "led");
  let lit = false;
  const show = () => digitalWrite(ledPin, lit != activeLow);
  show();

  const uart = global[board.uart];
  uart.setup(board.baud, { rx: board.rx, tx: board.tx, path: c.uartPath || board.path });
  const engine = new AtEngine(uart, clock, log);
  uart.removeAllListeners("data");
  uart.on("data", (d: string) => engine.feed(d));
  const pulse = (pin: string | undefined, level: number, ms: number) => (done: () => void) => {
    if (!pin) return done();
    digitalWrite(pin, level);
    setTimeout(() => { digitalWrite(pin, 1 - level); done(); }, ms);
  };
  if (board.boot) digitalWrite(board.boot, 1);
  const modem = createModem(engine, clock, c, {
    hardReset: board.enable ? pulse(board.enable, 0, 200) : undefined,
    powerOn: board.pwrkey ? pulse(board.pwrkey, 0, 1200) : undefined,
  }, log);

  const client = new MqttClient(modem, clock, {
    host: c.broker.host,
    port: c.broker.port,
    // The chip's 96-bit serial is "XXXXXXXX-XXXXXXXX-XXXXXXXX"; its last two words make a 21-character id.
    clientId: c.clientId || "led-" + getSerial().slice(-17),
    keepAlive: c.keepAlive || 60,
    clean: false,
    username: c.broker.username,
    password: c.broker.password,
    will: { topic: base + "/status", payload: "offline", qos: 1, retain: true },
  });
  const report = () => client.publish(base + "/state", lit ? "on" : "off", 1, true);
  client.onConnect = () => {
    client.publish(base + "/status", "online", 1, true);
    report();
  };
  client.onMessage = (topic: string, payload: string) => {
    if (topic != base) return;
    const cmd = parseCommand(payload);
    if (cmd == LED_IGNORE) return log("led: ignored " + JSON.stringify(payload.slice(0, 16)));
    lit = nextLevel(cmd, lit);
    show();
    report();
  };
  client.subscribe(base, 1);
  client.connect();
}

// From .bootcde the code runs at every boot and "init" follows it: the guard
// keeps one session. save() raises "kill" first, so a RAM image starts afresh.
E.on("init", start);
E.on("kill", () => { started = false; });
start();
