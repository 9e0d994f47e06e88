import type { BoardDef } from "../src/board/board";

/** Espruino Original: 2,756 memory blocks, the tightest target. Modem on Serial2. */
const board: BoardDef = {
  id: "original",
  title: "Espruino Original",
  chip: "STM32F103RCT6",
  vars: 2756,
  modems: ["esp8266", "sim800", "sim7600"],
  uart: "Serial2",
  rx: "A3",
  tx: "A2",
  baud: 115200,
  led: "A13",
  enable: "C10",
  pwrkey: "C10",
};
export default board;
