/**
 * The comparison column of `npm run bench -- --espruino --modules <dir>`: Espruino's
 * own stack (its AT, MQTT and ESP8266WiFi modules, whose source the user fetches into
 * <dir>; none of it is part of this repository) doing this firmware's job, as one
 * program written to Storage as `.bootcde`, so it runs on the same harness the same way.
 *
 * The program holds the modules the way Espruino's IDE uploads them (minified, each
 * wrapped in `Modules.addCached(name, function(){...})`, so `require(name)` finds it),
 * then a small app that does what src/app/main.ts does: reads `led.json` from Storage
 * (without it: logs "no led.json" and looks again later), opens the modem UART,
 * resets the ESP8266 and joins the WiFi through ESP8266WiFi, connects MQTT to the
 * broker with the same client id and keep-alive, publishes "online" retained to
 * <topic>/status, subscribes to <topic> at QoS 1, switches the LED on on/off/toggle
 * (and 1/0/true/false, any case), and publishes the state retained to <topic>/state
 * once no command has come for 0.5 s. On a lost connection it connects again after 1 s.
 * What it does not do, which the firmware does: a last will, Home Assistant discovery,
 * back-off, a ping timeout, the modem's reset pin, SIM800.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { minify } from "terser";

/** The modules the ESP8266 stack needs, by the name `require` asks for. */
export const MODULE_NAMES = ["AT", "MQTT", "ESP8266WiFi"] as const;

/** Why `dir` cannot be used for the comparison, or "". */
export function modulesUnavailable(dir: string): string {
  const missing = MODULE_NAMES.filter((m) => !existsSync(path.join(dir, m + ".js")));
  return missing.length ? `${dir} has no ${missing.map((m) => m + ".js").join(", ")}` : "";
}

/** The app part, in plain ES5 as the interpreter runs it. */
const APP = `
var CONFIG_FILE = "led.json";
var CONFIG_RETRY_MS = 30000;
var REPORT_QUIET_MS = 500;
var RECONNECT_MS = 1000;
var DEFAULT_KEEPALIVE_S = 60;
var MEANING = { off: 0, on: 1, toggle: 2, "0": 0, "1": 1, "false": 0, "true": 1 };
function start() {
  var config = require("Storage").readJSON(CONFIG_FILE, true);
  if (!config || !config.broker) {
    console.log("no " + CONFIG_FILE);
    setTimeout(start, CONFIG_RETRY_MS);
    return;
  }
  var topic = (config.prefix ? config.prefix + "/" : "") + (config.topic || "led");
  var ledPin = config.ledPin || LED1;
  var ledLit = false;
  function showLed() { digitalWrite(ledPin, ledLit != !!config.ledActiveLow); }
  showLed();
  Serial1.setup(115200, { path: config.uartPath });
  var wifi = require("ESP8266WiFi").connect(Serial1, function (err) {
    if (err) return console.log("esp8266: " + err);
    wifi.connect(config.wifi.ssid, config.wifi.password, function (err) {
      if (err) return console.log("wifi: " + err);
      console.log("wifi joined");
      var mqtt = require("MQTT").create(config.broker.host, {
        port: config.broker.port,
        client_id: config.clientId || "led-" + getSerial(),
        keep_alive: config.keepAlive || DEFAULT_KEEPALIVE_S,
        username: config.broker.username,
        password: config.broker.password
      });
      var reportTimer;
      function reportState() {
        if (reportTimer) clearTimeout(reportTimer);
        reportTimer = setTimeout(function () {
          reportTimer = 0;
          mqtt.publish(topic + "/state", ledLit ? "on" : "off", { retain: true });
        }, REPORT_QUIET_MS);
      }
      mqtt.on("connected", function () {
        console.log("mqtt connected");
        mqtt.publish(topic + "/status", "online", { retain: true });
        mqtt.subscribe(topic, { qos: 1 });
        reportState();
      });
      mqtt.on("publish", function (message) {
        if (message.topic != topic) return;
        var command = MEANING[message.message.trim().toLowerCase()];
        if (command === undefined) return console.log("led: ignored");
        ledLit = command == 2 ? !ledLit : command == 1;
        showLed();
        reportState();
      });
      mqtt.on("disconnected", function () {
        console.log("mqtt disconnected");
        setTimeout(function () { mqtt.connect(); }, RECONNECT_MS);
      });
      mqtt.on("error", function (reason) { console.log("mqtt " + reason); });
      mqtt.connect();
    });
  });
}
start();
`;

/**
 * The `.bootcde` text: each module of `dir`, minified as the IDE minifies it, cached
 * under its name, then the app. Throws when a module is missing.
 */
export async function modulesProgram(dir: string): Promise<string> {
  const why = modulesUnavailable(dir);
  if (why) throw new Error(why);
  const parts: string[] = [];
  for (const name of MODULE_NAMES) {
    const source = readFileSync(path.join(dir, name + ".js"), "utf8");
    // wrapped in a function, the module's top level is private: its names may be mangled too
    const small = await minify(source, { ecma: 2015, compress: { passes: 2 }, mangle: true, toplevel: true });
    if (!small.code) throw new Error(`terser gave nothing for ${name}.js`);
    parts.push(`Modules.addCached(${JSON.stringify(name)},function(){${small.code}});`);
  }
  const app = await minify(APP, { ecma: 5, compress: { passes: 2 }, mangle: true, toplevel: true });
  return parts.join("\n") + "\n" + app.code;
}
