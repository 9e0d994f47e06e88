/**
 * Types of the build's virtual modules (scripts/build.ts makes one script per
 * board and modem): "virtual:board" is that board's BoardDef (boards/<id>.ts),
 * "virtual:modem" re-exports the chosen driver (src/modem/<modem>.ts).
 */
declare module "virtual:board" {
  const board: import("../board/board").BoardDef;
  export default board;
}

declare module "virtual:modem" {
  type Esp = typeof import("../modem/esp8266").Modem;
  type Sim = typeof import("../modem/sim800").Modem;
  /**
   * The driver the build chose: the options must suit every driver, so they
   * carry both drivers' option types, and the result is either transport.
   */
  export const Modem: new (
    engine: ConstructorParameters<Esp>[0],
    clock: ConstructorParameters<Esp>[1],
    opts: Partial<ConstructorParameters<Esp>[2]> & Partial<ConstructorParameters<Sim>[2]>,
  ) => InstanceType<Esp> | InstanceType<Sim>;
}
