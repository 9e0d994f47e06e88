import type { BoardDef } from "../src/board/board";

/** Espruino WiFi: the ESP8266 is on the board, wired to Serial2. */
const board: BoardDef = {
  id: "espruino-wifi",
  title: "Espruino WiFi",
  chip: "STM32F411CEU6",
  vars: 8190,
  modems: ["esp8266"],
  uart: "Serial2",
  rx: "A3",
  tx: "A2",
  baud: 115200,
  led: "B2",
  enable: "A14",
  boot: "A13",
};
export default board;
