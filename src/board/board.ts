/**
 * A board's pin map: everything the firmware needs to know about one board.
 * Each file in boards/ default-exports one of these; adding a board is adding a file.
 */
/** A modem kind: a key of the modem registry (scripts/modems.ts); the build refuses any other. */
export type ModemKind = string;

/**
 * The app's pin pulse (src/app/main.ts): a function that holds `pin` low for `ms`,
 * then high, then calls done; undefined when the board has no such pin.
 */
export type Pulse = (pin: string | undefined, ms: number) => ((done: () => void) => void) | undefined;

export interface BoardDef {
  /** File name and firmware name part, e.g. "espruino-wifi". */
  id: string;
  title: string;
  /** MCU, for the README and the size table, e.g. "STM32F411CEU6". */
  chip: string;
  /** Memory blocks (JsVars) the interpreter has on this board. */
  vars: number;
  /** Modems this board is built for; a firmware script is built for each. */
  modems: ModemKind[];
  /** The modem's UART: Espruino's global name ("Serial2"). */
  uart: string;
  /** UART pins by Espruino pin name; absent where the UART has fixed pins or is a device path. */
  rx?: string;
  tx?: string;
  baud: number;
  /** Espruino on Linux opens a UART by device path (e.g. "/dev/serial0"). */
  path?: string;
  /** LED pin name ("B2"); configuration may override it (Linux GPIO numbers). */
  led: string;
  ledActiveLow?: boolean;
  /** Modem control pins, where the board wires them. */
  /** ESP8266 CH_PD / EN: low = off. Pulsed low to hard-reset the module. */
  enable?: string;
  /** ESP8266 RST (active low). */
  reset?: string;
  /** ESP8266 GPIO0 / BOOT: held high for normal boot. */
  boot?: string;
  /** SIMCom PWRKEY (SIM800, SIM7600 / A7670): pulled low to power on or off (the driver picks the length). */
  pwrkey?: string;
  /** SIM800 RST (active low). */
  simReset?: string;
}
