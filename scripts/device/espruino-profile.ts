/**
 * Where the blocks and the CPU go, for a built script on the real interpreter
 * (test/support/real-board.ts: the script runs from Storage, the modem simulator
 * on a pty, Aedes as the broker, MQTT.js as the phone):
 *
 * 1. Blocks once subscribed, taken apart: E.dumpVariables() lists every block in
 *    use with its links; function objects (with their code reference, scope link
 *    and one name block per parameter), the closure scopes they keep (one block
 *    per local) and everything else are summed apart.
 * 2. Interpreter CPU per step of a phone command: the UART handler is called
 *    N times in a loop at the console with one chunk the modem could send (an
 *    empty chunk, an idle line, a +IPD frame holding a PINGRESP, a PUBLISH for
 *    another topic, a PUBLISH "on" for the command topic) and the process CPU
 *    time (from /proc) is divided by N; the best of 3 rounds.
 *
 *   ESPRUINO_BIN=… npx tsx scripts/device/espruino-profile.ts [--boards linux] [--calls 200]
 *
 * Without ESPRUINO_BIN it says how to point it at an interpreter, and exits 0.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { encode, PUBLISH } from "../../src/codec/index";
import { startAedes } from "../../test/support/brokers";
import { Phone, RealBoard, realBoardUnavailable, sleep, until } from "../../test/support/real-board";
import { modemEntry, type ModemKind } from "../modems";
import { isMain, parseArgs, ROOT } from "../repo";

/** One line of E.dumpVariables(): "ref,blocks,type,description,link,link,...". */
interface DumpedVar {
  ref: number;
  blocks: number;
  /** The block's type (jsvar.h's JsVarFlags & JSV_VARTYPEMASK). */
  type: number;
  description: string;
  links: number[];
}

export function parseDump(lines: string[]): Map<number, DumpedVar> {
  const vars = new Map<number, DumpedVar>();
  for (const line of lines) {
    const head = /^(\d+),(\d+),(\d+),(.*)$/.exec(line);
    if (!head) continue;
    // the description: a quoted name, String "...", Number n, Object, Array, or nothing
    const described = /^("(?:[^"\\]|\\.)*"|String "(?:[^"\\]|\\.)*"|Number [^,]*|Object|Array|),/.exec(head[4]);
    const rest = described ? head[4].slice(described[0].length) : head[4];
    vars.set(+head[1], {
      ref: +head[1],
      blocks: +head[2],
      type: +head[3],
      description: described ? described[1] : "",
      links: rest.split(",").filter(Boolean).map(Number),
    });
  }
  return vars;
}

export interface BlockShare {
  total: number;
  functions: number;
  functionBlocks: number;
  parameters: number;
  scopes: number;
  scopeLocals: number;
  scopeBlocks: number;
  other: number;
}

/** Block types of the 2v29 interpreter (jsvar.h): a function, and a function starting with `return`. */
const FUNCTION_TYPES = new Set([7, 9]);
/** The hidden names a function keeps: its code, its scope, the `this` of an arrow; the others are its parameters. */
const CODE_NAME = '"\\xFFcod"', SCOPE_NAME = '"\\xFFsco"', THIS_NAME = '"\\xFFths"';

export function blockShares(vars: Map<number, DumpedVar>): BlockShare {
  let total = 0;
  for (const v of vars.values()) total += v.blocks;
  const counted = new Set<number>();
  const scopes = new Set<number>();
  let functions = 0, functionBlocks = 0, parameters = 0;
  const take = (ref: number) => {
    const v = vars.get(ref);
    if (!v || counted.has(ref)) return 0;
    counted.add(ref);
    return v.blocks;
  };
  // A closure's scope (the locals of the call that made it) is a block of a function's
  // type too: the targets of the scope links are scopes, not functions.
  for (const v of vars.values()) if (v.description == SCOPE_NAME) v.links.forEach((scope) => scopes.add(scope));
  for (const v of vars.values()) {
    if (!FUNCTION_TYPES.has(v.type) || scopes.has(v.ref)) continue;
    functions++;
    functionBlocks += take(v.ref);
    for (const child of v.links) {
      const name = vars.get(child);
      if (!name) continue;
      if (name.description == CODE_NAME) name.links.forEach((code) => (functionBlocks += take(code)));
      else if (name.description != THIS_NAME && name.description != SCOPE_NAME && name.description.startsWith('"\\xFF')) parameters++;
      // "prototype" of a class stays with everything else
      if (name.description != '"prototype"') functionBlocks += take(child);
    }
  }
  let scopeLocals = 0, scopeBlocks = 0;
  for (const scope of scopes) {
    scopeBlocks += take(scope);
    for (const local of vars.get(scope)?.links ?? []) {
      scopeLocals++;
      scopeBlocks += take(local);
    }
  }
  return { total, functions, functionBlocks, parameters, scopes: scopes.size, scopeLocals, scopeBlocks, other: total - functionBlocks - scopeBlocks };
}

/** A PUBLISH at QoS 0 as the broker sends it (the same bytes a client's PUBLISH has). */
const publishPacket = (topic: string, payload: string) => encode({ type: PUBLISH, topic, payload, qos: 0, retain: false, dup: false });
/** The chunks each CPU step feeds to the UART handler; received bytes in the module's pushed frame, when it pushes them. */
export function cpuSteps(modem: ModemKind): { what: string; chunk: string }[] {
  const frame = modemEntry(modem).pushedFrame;
  return [
    { what: "an empty chunk", chunk: "" },
    { what: "an idle line (\"Recv 4 bytes\")", chunk: "Recv 4 bytes\r\n" },
    ...(frame
      ? [
          { what: "a received frame: PINGRESP", chunk: frame("\xd0\x00") },
          { what: "a received frame: PUBLISH, another topic", chunk: frame(publishPacket("other", "on")) },
          { what: "a received frame: PUBLISH \"on\", command topic", chunk: frame(publishPacket("led", "on")) },
        ]
      : []),
  ];
}

export interface Profile {
  name: string;
  codeInRam: boolean;
  /** Interpreter CPU per phone command (ms), over COMMANDS commands, each waiting for its state report (0.5 s later). */
  perCommand: number;
  subscribed: number;
  shares: BlockShare;
  cpu: { what: string; us: number }[];
}

/** Phone commands whose interpreter CPU is averaged (each waits for its state report). */
const COMMANDS = 40;

/**
 * Runs one board in one mode: from Storage (as a board runs: the block figures) or with the
 * code in RAM (lexed as cheaply as a board lexes memory-mapped flash: see RealBoardOptions.codeInRam).
 */
export async function profile(bin: string, name: string, modem: ModemKind, script: string, calls: number, codeInRam = false): Promise<Profile> {
  const broker = await startAedes();
  const phone = await Phone.connect(broker.port, "led");
  const board = await RealBoard.start({ bin, modem, script, brokerPort: broker.port, codeInRam });
  try {
    await until(() => phone.status === "online" || board.lines.some((l) => /OUT OF MEMORY/.test(l)), 60_000, `${name} to report online`);
    if (phone.status !== "online") throw new Error("out of memory: the code does not fit in this interpreter's RAM");
    await sleep(1500);
    const subscribed = await board.blocks();
    // the dump: every block's type is its third field
    const from = board.lines.length;
    await board.eval("(E.dumpVariables(),'')", 20_000);
    const dumped = board.lines.slice(from);
    const shares = blockShares(parseDump(dumped));

    const cpu: { what: string; us: number }[] = [];
    for (const step of cpuSteps(modem)) {
      // made inside the interpreter from char codes: a "\u00d0" escape in source text
      // would be read as UTF-8 there, not as one byte
      const codes = JSON.stringify([...step.chunk].map((c) => c.charCodeAt(0)));
      let best = Infinity;
      for (let round = 0; round < 3; round++) {
        const cpu0 = board.cpuMs();
        await board.eval(
          `(function(){var h=Serial1["#ondata"];h=h[0]||h;var d=String.fromCharCode.apply(null,${codes}),i;for(i=0;i<${calls};i++)h(d);return 1})()`,
          60_000,
        );
        best = Math.min(best, ((board.cpuMs() - cpu0) * 1000) / calls);
        // the state report after a command waits 0.5 s: let it go out between rounds
        await sleep(800);
      }
      cpu.push({ what: step.what, us: best });
    }
    const cpu0 = board.cpuMs();
    for (let i = 0; i < COMMANDS; i++) await phone.command("toggle");
    const perCommand = (board.cpuMs() - cpu0) / COMMANDS;
    const errors = board.lines.filter((l) => /^mqtt |^closed|^failed/.test(l));
    if (errors.length) throw new Error(`the board logged errors while profiled: ${errors.slice(0, 3).join(" | ")}`);
    return { name, codeInRam, subscribed, shares, cpu, perCommand };
  } finally {
    await board.stop();
    await phone.end().catch(() => {});
    await broker.stop();
  }
}

export function formatProfile(fromStorage: Profile, inRam: Profile | string): string {
  const s = fromStorage.shares;
  const pct = (n: number) => `${((100 * n) / s.total).toFixed(0)} %`.padStart(5);
  const ram = typeof inRam == "string" ? undefined : inRam;
  const us = (n: number | undefined) => (n === undefined ? "-" : n.toFixed(0)).padStart(9);
  return [
    `${fromStorage.name}: ${s.total} blocks in use once subscribed, from Storage (the interpreter's own included)`,
    `   function objects   ${String(s.functions).padStart(4)} functions, ${String(s.functionBlocks).padStart(4)} blocks ${pct(s.functionBlocks)}  (of which ${s.parameters} parameter names)`,
    `   closure scopes     ${String(s.scopes).padStart(4)} scopes,    ${String(s.scopeBlocks).padStart(4)} blocks ${pct(s.scopeBlocks)}  (${s.scopeLocals} locals)`,
    `   everything else                   ${String(s.other).padStart(4)} blocks ${pct(s.other)}  (strings, objects, arrays, timers, the interpreter's own)`,
    `   interpreter CPU, µs per call of the UART handler (best of 3 rounds)   from Storage   code in RAM`,
    ...fromStorage.cpu.map((c, i) => `     ${c.what.padEnd(58)} ${us(c.us)}     ${us(ram?.cpu[i].us)}`),
    `   interpreter CPU per phone command (ms, ${COMMANDS} commands)${" ".repeat(25)}${fromStorage.perCommand.toFixed(2).padStart(9)}     ${ram ? ram.perCommand.toFixed(2).padStart(9) : "   " + inRam}`,
  ].join("\n");
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { boards: { type: "string", default: "linux" }, calls: { type: "string", default: "200" } } });
  const why = realBoardUnavailable();
  const bin = process.env.ESPRUINO_BIN;
  if (why || !bin) {
    console.log(`espruino-profile: ${why || "ESPRUINO_BIN is not set"}; point ESPRUINO_BIN at a Linux build of Espruino (docs/espruino.md, 'The real interpreter').`);
    process.exit(0);
  }
  const report = JSON.parse(readFileSync(path.join(ROOT, "firmware/sizes.json"), "utf8"));
  const boards = values.boards!.split(",");
  for (const s of report.scripts as { file: string; board: string; modem: ModemKind }[]) {
    if (!boards.includes(s.board)) continue;
    const script = readFileSync(path.join(ROOT, "firmware", s.file), "latin1");
    try {
      const name = s.file.replace(/\.js$/, "");
      const fromStorage = await profile(bin, name, s.modem, script, Number(values.calls));
      const inRam = await profile(bin, name, s.modem, script, Number(values.calls), true).catch((e: Error) => e.message.split("\n")[0]);
      console.log(formatProfile(fromStorage, inRam) + "\n");
    } catch (e) {
      console.log(`${s.file}: failed: ${(e as Error).message.split("\n")[0]}\n`);
    }
  }
  process.exit(0);
}
