/**
 * The device configuration, kept in the board's Storage as "led.json" beside
 * the program (npm run flash writes both), so the firmware script itself holds
 * no secret and one build serves every device.
 */
export interface DeviceConfig {
  /** ESP8266 builds. */
  wifi?: { ssid: string; password: string };
  /** SIM800 builds. */
  gprs?: { apn: string; user?: string; password?: string };
  /** tls: the modem's TLS link (ESP8266 "SSL", SIM800 AT+CIPSSL=1); npm run flash makes the port 8883 unless given. */
  broker: { host: string; port: number; username?: string; password?: string; tls?: boolean };
  /** Default: "led-" and the chip's serial. */
  clientId?: string;
  /** Seconds; default 60. */
  keepAlive?: number;
  /** Command topic; default "led". State goes to <topic>/state, presence to <topic>/status. */
  topic?: string;
  /** Optional device prefix: "<prefix>/<topic>". */
  prefix?: string;
  /** Overrides of the board's LED pin and polarity (Linux GPIO numbers, own wiring). */
  ledPin?: string;
  ledActiveLow?: boolean;
  /** Espruino on Linux: the modem's serial device. */
  uartPath?: string;
}

export const CONFIG_FILE = "led.json";
