import type { BoardDef } from "../src/board/board";

/**
 * Espruino on Linux (a Raspberry Pi, say): the modem UART is opened by device
 * path and the LED is a numbered GPIO. Both can be changed in led.json
 * ("uartPath", "ledPin").
 */
const board: BoardDef = {
  id: "linux",
  title: "Espruino on Linux (Raspberry Pi)",
  chip: "any",
  vars: 20000,
  modems: ["esp8266", "sim800", "sim7600"],
  uart: "Serial1",
  path: "/dev/serial0",
  baud: 115200,
  led: "D17",
};
export default board;
