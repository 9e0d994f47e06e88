/**
 * createModemSim(kind, opts): one simulated modem of the given dialect (the
 * dialects plug into ./core, see the contract at the top of core.ts; the modem
 * registry, scripts/modems.ts, names the dialect of each kind).
 */
import { ModemSimCore } from "./core";
import { Esp8266Sim, type Esp8266SimOptions } from "./esp8266";
import { Sim800Sim, type Sim800Options } from "./sim800";
import { Sim7600Sim, type Sim7600SimOptions } from "./sim7600";
import { isModemKind, MODEM_KINDS, MODEMS, type ModemKind } from "../../modems";

export * from "./core";
export { Esp8266Sim, Sim800Sim, Sim7600Sim, type Esp8266SimOptions, type Sim800Options, type Sim7600SimOptions };
export { MODEM_KINDS, type ModemKind };

export function createModemSim(kind: "esp8266", opts?: Esp8266SimOptions): Esp8266Sim;
export function createModemSim(kind: "sim800", opts?: Sim800Options): Sim800Sim;
export function createModemSim(kind: "sim7600", opts?: Sim7600SimOptions): Sim7600Sim;
export function createModemSim(kind: ModemKind | string, opts?: Esp8266SimOptions | Sim800Options | Sim7600SimOptions): ModemSimCore;
export function createModemSim(kind: string, opts: Esp8266SimOptions | Sim800Options | Sim7600SimOptions = {}): ModemSimCore {
  if (!isModemKind(kind)) throw new Error(`unknown modem kind ${JSON.stringify(kind)} (${MODEM_KINDS.join(" | ")})`);
  // the dialect's own credential options pass through as they are
  return MODEMS[kind].simulator(opts as Record<string, unknown>, opts);
}
