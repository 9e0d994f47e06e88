/**
 * The LED app: reads led.json from Storage, brings up the modem named at build
 * time, keeps an MQTT session to the broker and switches the LED on commands.
 * Every failure ends in a retry: the board is never left with a stopped program.
 */
import board from "virtual:board";
import { Modem, modemOptions } from "virtual:modem";
import { AtEngine } from "../at/engine";
import { MqttClient, type MqttError } from "../session/index";
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

/** Without led.json, look again this often. */
const CONFIG_RETRY_MS = 30e3;
/** State reports wait until no command has come for this long. */
const REPORT_QUIET_MS = 500;
/** MQTT keep-alive unless led.json says otherwise. */
const DEFAULT_KEEPALIVE_S = 60;
/** Characters of an ignored command shown in the log. */
const LOGGED_PAYLOAD_CHARS = 16;
/** The last two words of the chip's serial ("XXXXXXXX-XXXXXXXX"). */
const SERIAL_CHARS_IN_ID = 17;

let started = false;

function start(): void {
  if (started) return;
  // readJSON's second argument: a missing or broken file reads as undefined, not an exception.
  let config: DeviceConfig | undefined = require("Storage").readJSON(CONFIG_FILE, true);
  if (!config || !config.broker) {
    log("no " + CONFIG_FILE);
    setTimeout(start, CONFIG_RETRY_MS);
    return;
  }
  started = true;
  const ledPin = config.ledPin || board.led;
  const activeLow = config.ledActiveLow == null ? board.ledActiveLow : config.ledActiveLow;
  const commandTopic = (config.prefix ? config.prefix + "/" : "") + (config.topic || "led");
  let ledLit = false;
  const showLed = () => digitalWrite(ledPin, ledLit != !!activeLow);
  showLed();

  const uart = global[board.uart];
  uart.setup(board.baud, { rx: board.rx, tx: board.tx, path: config.uartPath || board.path });
  const engine = new AtEngine(uart, clock, log);
  uart.removeAllListeners("data");
  uart.on("data", (chunk: string) => engine.feed(chunk));
  if (board.boot) digitalWrite(board.boot, 1);
  // The driver takes its credentials from led.json and its control pins from the board.
  const modem = new Modem(engine, clock, Object.assign({ log: log, ssl: config.broker.tls }, modemOptions(board, config, pulse)));

  // The chip's 96-bit serial is "XXXXXXXX-XXXXXXXX-XXXXXXXX"; its last two words make a 21-character id.
  const clientId = config.clientId || "led-" + getSerial().slice(-SERIAL_CHARS_IN_ID);
  // host, port, username and password come straight from led.json's "broker".
  const client = new MqttClient(modem, clock, Object.assign({
    clientId: clientId,
    keepAlive: config.keepAlive || DEFAULT_KEEPALIVE_S,
    clean: false,
    will: { topic: commandTopic + "/status", payload: "offline", qos: 1 as const, retain: true },
  }, config.broker));
  // State and presence go out at QoS 0, retained: they never wait in the session's
  // bounded table, and a report lost with a dropped link is sent again on connect.
  // A report waits until no command has come for REPORT_QUIET_MS: a burst of commands
  // costs one report, of the state it left, instead of one each (which would
  // overflow the modem's output queue). reportTimer: that timer while pending.
  let reportTimer: any;
  const reportState = () => {
    if (reportTimer) clearTimeout(reportTimer);
    reportTimer = setTimeout(() => {
      reportTimer = 0;
      client.publish(commandTopic + "/state", ledLit ? "on" : "off", 0, true);
    }, REPORT_QUIET_MS);
  };
  // Each MQTT-level reason (refused: N, protocol error, ping timeout, oversize,
  // subscription refused: <filter>...; never a secret) is logged once, until the
  // next connection.
  let lastLoggedError: any;
  client.onError = (reason: MqttError) => {
    if (reason != lastLoggedError) log("mqtt " + (lastLoggedError = reason));
  };
  client.onConnect = () => {
    lastLoggedError = "";
    client.publish(commandTopic + "/status", "online", 0, true);
    reportState();
    // Home Assistant discovery (./discovery.ts), retained, on every connect.
    announce(client, clientId, commandTopic);
  };
  client.onMessage = (topic: string, payload: string) => {
    if (topic != commandTopic) return;
    const command = parseCommand(payload);
    // At most LOGGED_PAYLOAD_CHARS of it are shown; "..." says the payload went on.
    if (command == LED_IGNORE)
      return log("led: ignored " + JSON.stringify(payload.slice(0, LOGGED_PAYLOAD_CHARS)) + (payload.length > LOGGED_PAYLOAD_CHARS ? "..." : ""));
    ledLit = nextLevel(command, ledLit);
    showLed();
    reportState();
  };
  client.subscribe(commandTopic, 1);
  client.connect();
  // The handlers above keep this function's locals alive: let the parsed led.json go
  // (the layers hold the values they need).
  config = undefined;
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
