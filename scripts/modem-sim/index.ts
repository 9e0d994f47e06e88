/**
 * createModemSim(kind, opts): one simulated modem of the given dialect.
 * The dialects plug into ./core (see the contract at the top of core.ts).
 */
import { ModemSimCore } from "./core";
import { Esp8266Sim, type Esp8266SimOptions } from "./esp8266";
import { Sim800Sim, type Sim800Options } from "./sim800";

export * from "./core";
export { Esp8266Sim, Sim800Sim, type Esp8266SimOptions, type Sim800Options };

export type ModemKind = "esp8266" | "sim800";
export const MODEM_KINDS: ModemKind[] = ["esp8266", "sim800"];

export function createModemSim(kind: "esp8266", opts?: Esp8266SimOptions): Esp8266Sim;
export function createModemSim(kind: "sim800", opts?: Sim800Options): Sim800Sim;
export function createModemSim(kind: ModemKind, opts?: Esp8266SimOptions | Sim800Options): ModemSimCore;
export function createModemSim(kind: ModemKind, opts: Esp8266SimOptions | Sim800Options = {}): ModemSimCore {
  if (kind === "esp8266") return new Esp8266Sim(opts as Esp8266SimOptions);
  if (kind === "sim800") return new Sim800Sim(opts as Sim800Options);
  throw new Error(`unknown modem kind ${JSON.stringify(kind)} (esp8266 | sim800)`);
}
