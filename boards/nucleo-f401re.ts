import type { BoardDef } from "../src/board/board";

/** Nucleo-F401RE: Serial2 is the ST-LINK console, so the modem goes on Serial1 (A9 TX / A10 RX, headers D8 / D2). */
const board: BoardDef = {
  id: "nucleo-f401re",
  title: "Nucleo-F401RE",
  chip: "STM32F401RET6",
  vars: 5376,
  modems: ["esp8266", "sim800", "sim7600"],
  uart: "Serial1",
  rx: "A10",
  tx: "A9",
  baud: 115200,
  led: "A5",
  enable: "B5",
  pwrkey: "B5",
};
export default board;
