/**
 * A modem simulator's output, collected for a dialect test: say() sends a line,
 * waitFor(text) waits until `text` has come out and returns (and consumes) all
 * output up to it, take() returns and consumes what is there, out() peeks.
 */
import type { ModemSimCore } from "../../scripts/simulators/modem-sim/core";
import { until } from "./wait";

export function collectOutput(sim: ModemSimCore) {
  let out = "";
  sim.on("tx", (c: string) => (out += c));
  const take = () => {
    const o = out;
    out = "";
    return o;
  };
  const waitFor = async (text: string) => {
    await until(() => out.includes(text), 3000, JSON.stringify(text) + " in " + JSON.stringify(out));
    const i = out.indexOf(text) + text.length;
    const o = out.slice(0, i);
    out = out.slice(i);
    return o;
  };
  return { take, waitFor, out: () => out, say: (line: string) => sim.receive(line + "\r\n") };
}
