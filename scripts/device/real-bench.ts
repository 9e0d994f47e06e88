/**
 * Figures only the real Espruino interpreter can give: RAM in blocks and
 * interpreter CPU, for one built script run from Storage as a board runs it
 * (test/support/real-board.ts), with Aedes as the broker and MQTT.js as the phone.
 *
 * Blocks are reported net of a baseline: the same interpreter with only the
 * measuring prelude in Storage, asked the same way over its console.
 */
import { startAedes, type AedesBroker } from "../../test/support/brokers";
import { Phone, RealBoard, sleep, until, type RealBoardOptions } from "../../test/support/real-board";
import type { ModemKind } from "../../src/board/board";

/**
 * Storage file ".boot0", run at boot before ".bootcde": samples the blocks in use
 * (before collection, so garbage counts) every 20 ms into a global, for the peak.
 * The same prelude runs in the baseline, so its own cost cancels out.
 */
export const PEAK_PRELUDE =
  "global.__peak=0;global.__sampler=setInterval(function(){var u=process.memory(false).usage;if(u>__peak)__peak=u},20);";

export interface RealFigures {
  name: string;
  modem: ModemKind;
  /** Blocks in use with the program loaded but not started (no led.json), net. */
  afterLoad: number;
  /** Blocks once subscribed and idle, net. */
  subscribed: number;
  /** Highest blocks seen (sampled every 20 ms, before collection) from power-on to subscribed, net. */
  peak: number;
  /** Blocks after `commands` phone commands, net. */
  afterCommands: number;
  commands: number;
  /** Interpreter CPU per command (ms), over `cpuCommands` commands. */
  cpuPerCommand: number;
  cpuCommands: number;
  /** Interpreter CPU per second while connected and idle (ms). */
  idlePerSecond: number;
  /** Power-on (process start) to the broker's SUBACK, real ms. */
  bootToSubscribed: number;
  /** Keep-alive cycles run (PINGREQs seen by the broker) and blocks after the 10th and the last. */
  cycles?: number;
  blocksAtCycle10?: number;
  blocksAfterCycles?: number;
}

export interface MeasureOptions {
  bin: string;
  /** Writes Storage when bin has too few blocks to (RealBoardOptions.storageBin). */
  storageBin?: string;
  name: string;
  modem: ModemKind;
  script: string;
  /** Extra Storage files beside .bootcde and led.json. */
  files?: Record<string, string>;
  /**
   * Phone commands in all (default 1000); CPU is taken over the first `cpuCommands` (default
   * 100), each waiting for the board's state report (which follows a command by 0.5 s).
   */
  commands?: number;
  cpuCommands?: number;
  /** Keep-alive cycles to run at a sped-up clock (0: none). */
  cycles?: number;
  /**
   * How many times faster the interpreter's clock runs for those cycles (default 20). The
   * Espruino modules' stack needs 5: its AT commands time out after 1 s of board time, 50 ms of
   * real time at 20, too little for the simulator's answers on a loaded host.
   */
  cycleSpeed?: number;
  /** Prefix of the app's topics ("led"). */
  topic?: string;
  echo?: boolean;
  log?: (s: string) => void;
}

async function baseline(bin: string, storageBin: string | undefined, modem: ModemKind, brokerPort: number): Promise<number> {
  const rb = await RealBoard.start({ bin, storageBin, modem, script: "", brokerPort, empty: true, files: { ".boot0": PEAK_PRELUDE } });
  try {
    await rb.waitForLine(/espruino\.com|2v\d\d/, 5000);
    await sleep(300);
    return await rb.blocks();
  } finally {
    await rb.stop();
  }
}

/** Every figure of RealFigures for one script; throws if the board does not work. */
export async function measureReal(o: MeasureOptions): Promise<RealFigures> {
  const log = o.log ?? (() => {});
  const topic = o.topic ?? "led";
  const commands = o.commands ?? 1000;
  const cpuCommands = Math.min(o.cpuCommands ?? 100, commands);
  const broker: AedesBroker = await startAedes();
  const phone = await Phone.connect(broker.port, topic);
  const boards: RealBoard[] = [];
  const start = async (extra: Partial<RealBoardOptions>) => {
    const rb = await RealBoard.start({ bin: o.bin, storageBin: o.storageBin, modem: o.modem, script: o.script, brokerPort: broker.port, echo: o.echo, ...extra });
    boards.push(rb);
    return rb;
  };
  try {
    const base = await baseline(o.bin, o.storageBin, o.modem, broker.port);
    log(`${o.name}: baseline ${base} blocks`);

    // Loaded, not started: without led.json the app (and the modules' program) only says so and waits.
    const bare = await start({ files: { ".boot0": PEAK_PRELUDE, ...o.files }, noConfig: true });
    await bare.waitForLine(/no led\.json/, 10_000);
    await sleep(300);
    const afterLoad = (await bare.blocks()) - base;
    await bare.stop();

    // Power-on to subscribed, the peak, then idle and commands.
    let subAt = 0;
    const onSub = (_s: unknown, client: { id: string } | null) => {
      if (client && client.id !== phone.client.options.clientId && !subAt) subAt = Date.now();
    };
    broker.broker.on("subscribe", onSub);
    const t0 = Date.now();
    const rb = await start({ files: { ".boot0": PEAK_PRELUDE, ...o.files } });
    await until(() => subAt > 0, 60_000, `${o.name} to subscribe`);
    const bootToSubscribed = subAt - t0;
    await until(() => phone.status === "online", 10_000, `${o.name} to report online`);
    await sleep(500);
    const peak = Number(await rb.eval("__peak")) - base;
    await rb.eval("clearInterval(__sampler)");
    const subscribed = (await rb.blocks()) - base;
    log(`${o.name}: subscribed ${subscribed} blocks, peak ${peak}, ${bootToSubscribed} ms from power-on`);

    const i0 = rb.cpuMs();
    await sleep(3000);
    const idlePerSecond = (rb.cpuMs() - i0) / 3;

    const c0 = rb.cpuMs();
    for (let i = 0; i < cpuCommands; i++) await phone.command("toggle", topic);
    const cpuPerCommand = (rb.cpuMs() - c0) / cpuCommands;
    // the rest as a steady stream (one every 20 ms, QoS 1), then the report of where it ended:
    // the state report waits for a pause in the commands, so waiting for each would take 0.5 s
    for (let i = cpuCommands; i < commands; i++) {
      await phone.client.publishAsync(topic, i % 3 ? "toggle" : i % 2 ? "on" : "off", { qos: 1 });
      await sleep(20);
    }
    await phone.command(commands % 2 ? "on" : "off", topic, 30_000);
    await sleep(300);
    const afterCommands = (await rb.blocks()) - base;
    log(`${o.name}: ${cpuPerCommand.toFixed(2)} ms CPU per command, idle ${idlePerSecond.toFixed(2)} ms/s, ${afterCommands} blocks after ${commands} commands`);
    await rb.stop();

    const figures: RealFigures = {
      name: o.name, modem: o.modem, afterLoad, subscribed, peak, afterCommands, commands, cpuPerCommand, cpuCommands, idlePerSecond, bootToSubscribed,
    };
    if (o.cycles) Object.assign(figures, await keepAliveCycles(o, broker, base, start, log));
    return figures;
  } finally {
    await Promise.all(boards.map((b) => b.stop().catch(() => {})));
    await phone.end().catch(() => {});
    await broker.stop();
  }
}

/**
 * Keep-alive 6 s on a clock sped up 20 times: a PINGREQ/PINGRESP cycle every 0.3 s
 * of real time, and 75 ms of real time for the PINGRESP to come back through the
 * simulator and the broker (which keep real time) before the board's 1.5 s wait ends.
 * (Espruino's MQTT module pings every keep-alive - 5 s below 45 s: every board second.)
 * Blocks after the 10th cycle against blocks after the last.
 */
async function keepAliveCycles(
  o: MeasureOptions,
  broker: AedesBroker,
  base: number,
  start: (extra: Partial<RealBoardOptions>) => Promise<RealBoard>,
  log: (s: string) => void,
): Promise<Pick<RealFigures, "cycles" | "blocksAtCycle10" | "blocksAfterCycles">> {
  let pings = 0;
  broker.broker.on("ping", (_p: unknown, client: { id: string }) => {
    if (client.id === "real-board") pings++;
  });
  const rb = await start({ files: o.files ?? {}, speed: o.cycleSpeed ?? 20, config: { keepAlive: 6 } });
  const cycles = o.cycles!;
  await until(() => pings >= 10, 60_000, "10 keep-alive cycles");
  const blocksAtCycle10 = (await rb.blocksAtRest()) - base;
  await until(() => pings >= cycles, cycles * 1000, `${cycles} keep-alive cycles`);
  const timeouts = rb.lines.filter((l) => /ping timeout/.test(l)).length;
  const blocksAfterCycles = (await rb.blocksAtRest()) - base;
  log(`${o.name}: ${blocksAtCycle10} blocks after 10 keep-alive cycles, ${blocksAfterCycles} after ${pings} (${timeouts} ended in a ping timeout on this loaded host)`);
  await rb.stop();
  return { cycles: pings, blocksAtCycle10, blocksAfterCycles };
}
