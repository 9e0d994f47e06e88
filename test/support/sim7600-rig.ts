/**
 * The cellular rig (./cellular-rig.ts) with the SIM7600 / A7670 (LTE) driver
 * and the simulator's LTE dialect.
 */
import { Sim7600, type Sim7600Options } from "../../src/modem/sim7600";
import { Sim7600Sim, type Sim7600SimOptions } from "../../scripts/simulators/modem-sim/sim7600";
import { CellularRig, type CellularRigOptions } from "./cellular-rig";
import type { Broker } from "./modem-rig";

export type Sim7600RigOptions = CellularRigOptions<Sim7600SimOptions, Sim7600Options>;

export class Sim7600Rig extends CellularRig<Sim7600Sim, Sim7600, Sim7600SimOptions, Sim7600Options> {
  constructor(broker: Broker, o: Sim7600RigOptions = {}) {
    super(broker, o, (opts) => new Sim7600Sim(opts), (engine, clock, opts) => new Sim7600(engine, clock, opts));
  }
}
