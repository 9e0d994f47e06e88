/**
 * runFaultRow's board (./broker-faults.ts) on a real Espruino interpreter: a RealBoard
 * (./real-board.ts) running a built firmware/linux-<modem>.js from Storage, with its
 * clock sped up `speed` times through libfaketime, and the MisbehavingBroker.
 *
 * Board time. The interpreter's clock (getTime(), its timers) runs `speed` times
 * faster than real time from its start, so board ms = real ms since the start × speed:
 *   now()                  (Date.now() − origin) × speed; the broker is given the same
 *                          now(), so its packet times and faultAt are board ms too
 *   idle(ms)               sleeps ms / speed real ms
 *   waitFor(…, timeoutMs)  gives up after timeoutMs / speed + GRACE_MS real ms
 * The modem simulator, socat and the broker keep real time: to the board a real
 * latency L looks like L × speed (20 ms of simulator delay is 200 ms of board time at
 * speed 10). So every bound the rows assert includes the rig's latency magnified
 * `speed` times: the speed must stay low enough that this stays small against the
 * rows' bounds and the firmware's own AT timeouts. GRACE_MS (real) keeps a loaded
 * machine from failing a wait that the board met; the rows' own bounds (recoverMs)
 * are asserted on board time, untouched by it.
 *
 * The LED. This interpreter cannot read a GPIO back: its Linux build has neither
 * sysfs GPIO (SYSFS_GPIO_DIR is only defined for a build without BOARD=…) nor
 * wiringPi, so digitalWrite() drives nothing and digitalRead() always gives 0. What
 * the firmware does to its LED is therefore observed at the one place it happens, the
 * digitalWrite() call: a `.boot0` in Storage (run before `.bootcde`, as Espruino runs
 * .boot0…3 before it) replaces the global digitalWrite with one that prints
 * "LED-PIN 0|1" for the LED pin, at the moment the firmware drives it, and then calls
 * the built-in unchanged. lit() is the level of the last such line (the Linux board's
 * LED is active high). It is not the state report (coalesced 500 ms later, and counted
 * separately by the rows).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ModemKind } from "../../src/board/board";
import type { FaultBoard } from "./broker-faults";
import { startMisbehavingBroker, type MisbehavingBroker } from "./misbehaving-broker";
import { RealBoard, sleep } from "./real-board";

/** The Linux board's LED pin (boards/linux.ts; RealBoard's led.json keeps it). */
const LED_PIN = "D17";
/** Real ms added to every wait, for the real-time parts on a loaded machine. */
export const GRACE_MS = 500;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The `.boot0` that reports every level the firmware writes to `pin` on the console. */
export const ledTap = (pin: string) =>
  `var __dw=digitalWrite;global.digitalWrite=function(p,v){if(p==${JSON.stringify(pin)})print("LED-PIN "+(v?1:0));__dw(p,v);};`;

export interface RealFaultRig {
  board: FaultBoard;
  broker: MisbehavingBroker;
  rb: RealBoard;
  speed: number;
  stop(): Promise<void>;
}

/** The broker, then the interpreter booting firmware/linux-<modem>.js (not yet connected). */
export async function startRealFaultRig(o: { bin: string; modem: ModemKind; speed: number; echo?: boolean }): Promise<RealFaultRig> {
  const speed = o.speed;
  let origin = Date.now();
  const now = () => (Date.now() - origin) * speed;
  const broker = await startMisbehavingBroker({ now });
  const script = readFileSync(path.join(ROOT, "firmware", `linux-${o.modem}.js`), "latin1");
  let rb: RealBoard;
  try {
    origin = Date.now();
    rb = await RealBoard.start({ bin: o.bin, modem: o.modem, script, brokerPort: broker.port, speed, files: { ".boot0": ledTap(LED_PIN) }, echo: o.echo });
  } catch (e) {
    await broker.stop();
    throw e;
  }
  const lines = rb.lines;
  let seen = 0;
  let level: boolean | undefined;
  const lit = () => {
    // RealBoard drops its oldest lines past 50,000: start over then
    if (seen > lines.length) seen = 0;
    for (; seen < lines.length; seen++) {
      const m = /^LED-PIN ([01])$/.exec(lines[seen]);
      if (m) level = m[1] == "1";
    }
    return level;
  };
  const diagnostics = () => {
    const conns = broker.conns.slice(-4).map((c) => {
      const cmds = c.packets.map((x) => x.p.cmd).join(",");
      return `  #${c.n} opened ${Math.round(c.opened)}${c.faultAt !== undefined ? ` fault ${Math.round(c.faultAt)}` : ""}${c.closed ? ` closed ${Math.round(c.closed.at)} by ${c.closed.by}` : ""}: ${cmds.slice(-200)}${c.garbage ? ` garbage ${c.garbage}` : ""}`;
    });
    return `board now ${Math.round(now())} ms (speed ${speed}), interpreter ${rb.alive ? "running" : "EXITED"}, LED ${lit()}\n` +
      `board console (last 25):\n  ${lines.slice(-25).join("\n  ")}\nbroker connections (last 4):\n${conns.join("\n")}`;
  };
  const board: FaultBoard = {
    now,
    async waitFor(pred, what, wo) {
      const boardMs = wo?.timeoutMs ?? 10_000;
      const until = Date.now() + boardMs / speed + GRACE_MS;
      while (!pred()) {
        if (!rb.alive) throw new Error(`the interpreter exited while waiting for ${what}\n${diagnostics()}`);
        if (Date.now() > until) throw new Error(`timed out after ${boardMs} board ms (speed ${speed}, + ${GRACE_MS} real ms) waiting for ${what}\n${diagnostics()}`);
        await sleep(2);
      }
    },
    idle: async (ms) => {
      await sleep(ms / speed);
    },
    lit,
    get console() {
      return lines;
    },
    stall: (on) => rb.sim.stall(on),
    diagnostics,
  };
  return {
    board,
    broker,
    rb,
    speed,
    async stop() {
      await rb.stop();
      await broker.stop();
    },
  };
}
