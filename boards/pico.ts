import type { BoardDef } from "../src/board/board";

/** Espruino Pico with an ESP8266 or a SIM800 wired to Serial2 (see the README's wiring tables). */
const board: BoardDef = {
  id: "pico",
  title: "Espruino Pico",
  chip: "STM32F401CDU6",
  vars: 5100,
  modems: ["esp8266", "sim800", "sim7600"],
  uart: "Serial2",
  rx: "A3",
  tx: "A2",
  baud: 115200,
  led: "B2",
  enable: "B9",
  pwrkey: "B9",
};
export default board;
