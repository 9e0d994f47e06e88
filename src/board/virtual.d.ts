/**
 * Types of the build's virtual modules (scripts/build.ts makes one script per
 * board and modem): "virtual:board" is that board's BoardDef (boards/<id>.ts),
 * "virtual:modem" re-exports the chosen driver (src/modem/<modem>.ts).
 */
declare module "virtual:board" {
  const board: import("./board").BoardDef;
  export default board;
}

declare module "virtual:modem" {
  type EspCreate = typeof import("../modem/esp8266").createModem;
  type SimCreate = typeof import("../modem/sim800").createModem;
  /**
   * The driver the build chose: a call must suit every driver, so each argument
   * has both drivers' parameter types and the result is either transport.
   */
  export function createModem(...args: Parameters<EspCreate> & Parameters<SimCreate>): ReturnType<EspCreate> | ReturnType<SimCreate>;
}
