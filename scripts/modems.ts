/**
 * The modem registry: one row per modem kind, and everything the host side
 * derives from it: the build matrix (which driver a <board>-<kind>.js script
 * bundles, its layer budget), the configuration (the led.json section and its
 * LED_* variables, the credential checks), the simulator dialect, the board
 * pin whose pulse restarts the simulated module, and the transcript fixtures.
 * The firmware side of a kind is its driver file alone (src/modem/<kind>.ts,
 * the shape in src/modem/driver.ts). docs/adding-a-modem.md is the checklist.
 */
import type { BoardDef } from "../src/board/board";
import type { ModemSimCore, SimOptions } from "./simulators/modem-sim/core";
import { Esp8266Sim } from "./simulators/modem-sim/esp8266";
import { Sim800Sim } from "./simulators/modem-sim/sim800";
import { Sim7600Sim } from "./simulators/modem-sim/sim7600";

export interface ModemEntry {
  /** For people: "ESP8266". */
  title: string;
  /** Minified bytes the driver may take, bundled without the AT engine (the build's layer table). */
  driverBudget: number;
  /** The led.json section holding this modem's credentials, and its keys. */
  configKey: string;
  configFields: readonly string[];
  /** LED_* environment variables → path in the configuration. */
  env: Record<string, string>;
  /** The credential checks of a configuration for this modem (the section may be missing). */
  validate(section: Record<string, unknown> | undefined, errors: string[]): void;
  /** The board pin whose pulse restarts (or powers) the module; the driver pulses it (src/modem/<kind>.ts: modemOptions). */
  controlPin: "enable" | "pwrkey";
  /** A simulated module of this dialect that accepts these credentials (led.json's section). */
  simulator(credentials: Record<string, any>, opts?: SimOptions): ModemSimCore;
  /** What the module does at the end of a pulse on controlPin. */
  onControlPulse(sim: ModemSimCore): void;
  /** The board `npm start` simulates by default with this modem. */
  demoBoard: string;
  /** The AT commands (their start) that open the link, plain or TLS: tests count the board's connections by them. */
  openCommands: string[];
  /**
   * The frame the module pushes received bytes in, given the bytes ("+IPD,<len>:<bytes>"
   * or "+IPD<len>\r\n<bytes>"), or none when the driver pulls them with a command
   * (scripts/device/espruino-profile.ts feeds such frames to the board's UART handler).
   */
  pushedFrame?: (bytes: string) => string;
}

const ipdFrame = (bytes: string) => `+IPD,${bytes.length}:${bytes}`;

/** The WiFi password config.example.json ships with: a configuration still holding it was not filled in. */
export const EXAMPLE_WIFI_PASSWORD = "change-me-please";

const str = (v: unknown): v is string => typeof v === "string";
/** The APN section ("gprs") both SIMCom kinds read: apn required, user and password strings. */
const checkApn = (g: Record<string, unknown> | undefined, errors: string[], title: string) => {
  if (!g || !str(g.apn) || g.apn === "") errors.push(`gprs.apn is required for a ${title} build (LED_APN)`);
  for (const k of ["user", "password"]) if (g && g[k] !== undefined && !str(g[k])) errors.push(`gprs.${k} must be a string`);
};
const utf8Length = (s: string) => Buffer.byteLength(s, "utf8");

export const MODEMS = {
  esp8266: {
    title: "ESP8266",
    driverBudget: 1750,
    configKey: "wifi",
    configFields: ["ssid", "password"],
    env: { LED_WIFI_SSID: "wifi.ssid", LED_WIFI_PASSWORD: "wifi.password" },
    validate(w, errors) {
      if (!w || !str(w.ssid) || w.ssid === "") errors.push("wifi.ssid is required for an ESP8266 build (LED_WIFI_SSID)");
      else if (utf8Length(w.ssid) > 32) errors.push("wifi.ssid is longer than 32 bytes");
      if (w && w.password !== undefined && !str(w.password)) errors.push("wifi.password must be a string");
      if (w && w.password === EXAMPLE_WIFI_PASSWORD) errors.push(`wifi.password is still config.example.json's placeholder "${EXAMPLE_WIFI_PASSWORD}": put your network's password there`);
      else if (w && str(w.password) && w.password !== "" && (w.password.length < 8 || w.password.length > 64))
        errors.push("wifi.password must be empty (open network) or 8 to 64 characters");
    },
    controlPin: "enable",
    simulator: (wifi, opts = {}) => new Esp8266Sim({ ssid: wifi.ssid, password: wifi.password, ...opts }),
    onControlPulse: (sim) => sim.reboot(),
    demoBoard: "espruino-wifi",
    openCommands: ["AT+CIPSTART"],
    pushedFrame: ipdFrame,
  },
  sim800: {
    title: "SIM800",
    driverBudget: 1950,
    configKey: "gprs",
    configFields: ["apn", "user", "password"],
    env: { LED_APN: "gprs.apn", LED_APN_USER: "gprs.user", LED_APN_PASSWORD: "gprs.password" },
    validate: (g, errors) => checkApn(g, errors, "SIM800"),
    controlPin: "pwrkey",
    simulator: (gprs, opts = {}) => new Sim800Sim({ apn: gprs.apn, ...opts }),
    onControlPulse: (sim) => (sim as Sim800Sim).powerKey(),
    demoBoard: "pico",
    openCommands: ["AT+CIPSTART"],
    pushedFrame: ipdFrame,
  },
  sim7600: {
    title: "SIM7600 / A7670 (LTE)",
    // the issue's figure, below the SIM800's 1,950: received data comes pushed and framed by the engine
    driverBudget: 1800,
    // The same APN section as the SIM800's: a board moving from 2G to LTE keeps its led.json.
    configKey: "gprs",
    configFields: ["apn", "user", "password"],
    env: { LED_APN: "gprs.apn", LED_APN_USER: "gprs.user", LED_APN_PASSWORD: "gprs.password" },
    // broker.tls goes through the module's SSL service (AT+CCH*, src/modem/sim7600.ts)
    validate: (g, errors) => checkApn(g, errors, "SIM7600 / A7670"),
    controlPin: "pwrkey",
    simulator: (gprs, opts = {}) => new Sim7600Sim({ apn: gprs.apn, ...opts }),
    onControlPulse: (sim) => (sim as Sim7600Sim).powerKey(),
    demoBoard: "pico",
    // TCP/IP service, or with TLS the SSL service
    openCommands: ["AT+CIPOPEN", "AT+CCHOPEN"],
    pushedFrame: (bytes) => `+IPD${bytes.length}\r\n${bytes}`,
  },
} satisfies Record<string, ModemEntry>;

export type ModemKind = keyof typeof MODEMS;
export const MODEM_KINDS = Object.keys(MODEMS) as ModemKind[];

export const isModemKind = (text: string): text is ModemKind => Object.hasOwn(MODEMS, text);

/** The registry row of a kind. */
export const modemEntry = (kind: ModemKind): ModemEntry => MODEMS[kind];

/** The driver file of a kind, relative to the repository root. */
export const driverPath = (kind: string) => `src/modem/${kind}.ts`;

/** The transcript fixtures of a kind (test/fixtures/<kind>/*.txt), relative to the repository root. */
export const fixturesPath = (kind: string) => `test/fixtures/${kind}`;

/** The board pin that restarts the module on `board`, if the board wires it. */
export const controlPinOf = (board: BoardDef, kind: ModemKind): string | undefined => board[modemEntry(kind).controlPin];
