/**
 * What every modem driver module (src/modem/<kind>.ts) exports: the build picks
 * one by the board's modem kind (scripts/modems.ts, the registry) and serves it
 * to the app as "virtual:modem". The app knows only this shape, so adding a
 * modem edits neither the app nor the AT engine (docs/adding-a-modem.md).
 */
import type { AtEngine } from "../at/engine";
import type { BoardDef, Pulse } from "../board/board";
import type { Clock, LinkCloseReason, Transport } from "../transport";

/**
 * A driver's states, reported to onState (why: a short reason, never a secret):
 * "resetting" (a reset or power pulse), "joining" (Wi-Fi) or "attaching" (the
 * cellular network; why: the signal), "joined" (an IP, no socket), "connecting",
 * "connected", "failed" (why: the reason the open ended).
 */
export type ModemState = "resetting" | "joining" | "attaching" | "joined" | "connecting" | "connected" | "failed";
/**
 * The `why` of a state report: the reason the open ended ("failed"; "joined" when
 * the bearer outlives the socket), the driver's own LinkCloseReason; or the signal
 * while "attaching" (the AT+CSQ line).
 */
export type ModemStateDetail = LinkCloseReason | `+CSQ: ${string}`;

/** A driver: a Transport over the AT engine, reporting its states to `onState`. */
export interface ModemDriver extends Transport {
  onState: (state: ModemState, why?: ModemStateDetail) => void;
}

export interface ModemDriverModule<Options = any> {
  /** new Modem(engine, clock, options): the driver registers its URC patterns with the engine. */
  Modem: new (engine: AtEngine, clock: Clock, options: Options) => ModemDriver;
  /**
   * The driver's wiring on a board: its credentials from led.json (the section the
   * registry names) and its control pins as pulses. The app adds `log` and `ssl`.
   */
  modemOptions: (board: BoardDef, config: Record<string, any>, pulse: Pulse) => Partial<Options>;
}
