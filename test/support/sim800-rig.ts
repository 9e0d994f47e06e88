/**
 * The cellular rig (./cellular-rig.ts) with the SIM800 driver and simulator.
 * The driver's time-outs are SIMCom's: 1 s, 5 s, 85 s.
 */
import { Sim800, type Sim800Options } from "../../src/modem/sim800";
import { Sim800Sim, type Sim800Options as SimOptions } from "../../scripts/simulators/modem-sim/sim800";
import { CellularRig, type CellularRigOptions } from "./cellular-rig";
import type { Broker } from "./modem-rig";

export type Sim800RigOptions = CellularRigOptions<SimOptions, Sim800Options>;

export class Sim800Rig extends CellularRig<Sim800Sim, Sim800, SimOptions, Sim800Options> {
  constructor(broker: Broker, o: Sim800RigOptions = {}) {
    super(broker, o, (opts) => new Sim800Sim(opts), (engine, clock, opts) => new Sim800(engine, clock, opts));
  }
}
