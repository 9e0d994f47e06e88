/**
 * Types of the build's virtual modules (scripts/build/build.ts makes one script per
 * board and modem): "virtual:board" is that board's BoardDef (boards/<id>.ts),
 * "virtual:modem" re-exports the chosen driver (src/modem/<kind>.ts), which
 * has the shape every driver has (src/modem/driver.ts).
 */
declare module "virtual:board" {
  const board: import("../board/board").BoardDef;
  export default board;
}

declare module "virtual:modem" {
  type Driver = import("../modem/driver").ModemDriverModule;
  export const Modem: Driver["Modem"];
  export const modemOptions: Driver["modemOptions"];
}
