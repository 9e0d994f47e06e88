import type { BoardDef } from "../src/board/board";

/** STM32F4DISCOVERY: the console is on Serial2, so the modem goes on Serial3 (D8 TX, D9 RX). */
const board: BoardDef = {
  id: "discovery-f4",
  title: "STM32F4DISCOVERY",
  chip: "STM32F407VGT6",
  vars: 5450,
  modems: ["esp8266", "sim800", "sim7600"],
  uart: "Serial3",
  rx: "D9",
  tx: "D8",
  baud: 115200,
  led: "D12",
  enable: "D10",
  pwrkey: "D10",
};
export default board;
