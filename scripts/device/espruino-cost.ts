/**
 * The real interpreter's cost model: what one closure, one method, one object
 * field, one string cost in memory blocks, and what a line of work costs in CPU,
 * each measured by running a snippet from Storage (as a board runs .bootcde) and
 * reading process.memory().usage before and after it makes 100 of the thing.
 *
 *   ESPRUINO_BIN=… npx tsx scripts/device/espruino-cost.ts      (also part of npm run bench -- --espruino)
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { isMain } from "../repo";

/** Each probe makes N of something into `keep` (so it stays alive) between two measurements. */
const N = 100;
export const PROBES: { what: string; make: string }[] = [
  { what: "a small integer in an array", make: "keep.push(i)" },
  { what: "an object field holding a small integer (plus its object share)", make: "keep.push({a:i})" },
  { what: "an empty object", make: "keep.push({})" },
  { what: "an object with 4 fields", make: "keep.push({a:i,b:i,c:i,d:i})" },
  { what: "a 4-character string", make: "keep.push('ab'+(i%10)+'c')" },
  { what: "a 12-character string", make: "keep.push('abcdefghij'+(10+i%80))" },
  { what: "a 40-character string", make: "keep.push('abcdefghijabcdefghijabcdefghijabcdefgh'+(10+i%80))" },
  { what: "a closure, no parameters, from code in Storage", make: "keep.push(function(){return i})" },
  { what: "an arrow function, no parameters", make: "keep.push(()=>i)" },
  { what: "an arrow function, 3 parameters", make: "keep.push((a,b,c)=>a+b+c)" },
  { what: "a closure that owns 3 locals (scope + function)", make: "keep.push((function(){var a=i,b=2,c=3;return function(){return a+b+c}})())" },
  { what: "an instance of a class with 3 methods (methods shared)", make: "keep.push(new K(i))" },
  { what: "an object with 3 own closures", make: "keep.push(mk(i))" },
  { what: "a packed 3-entry array [1,2,3]", make: "keep.push([1,2,3])" },
];

const PRELUDE =
  "class K{constructor(i){this.i=i}a(){return this.i}b(){return 2}c(){return 3}}" +
  "function mk(i){return {a:function(){return i},b:function(){return 2},c:function(){return 3}}}";

/** CPU probes: each runs `body` 20,000 times; the figure is µs per run. */
export const CPU_PROBES: { what: string; body: string }[] = [
  { what: "an empty loop turn", body: "" },
  { what: "call an empty function", body: "f0()" },
  { what: "call a function whose body is 400 bytes of skipped code", body: "f400(0)" },
  { what: "string concatenation of 2 short strings", body: "s='ab'+i" },
  { what: "charCodeAt", body: "s.charCodeAt(1)" },
  { what: "a regex test, 3 alternatives, no match", body: "/^AB|^CD|^EF/.test('Recv 5 bytes')" },
  { what: "indexOf on a 20-byte string", body: "'Recv 5 bytes\\r\\nOK\\r\\n'.indexOf('\\n')" },
  { what: "slice of a 20-byte string", body: "'Recv 5 bytes\\r\\nOK\\r\\n'.slice(3)" },
  { what: "String.fromCharCode of 2 codes", body: "String.fromCharCode(48,49)" },
  { what: "an object literal with 3 fields", body: "o={a:1,b:2,c:3}" },
];
const CPU_PRELUDE =
  "function f0(){}function f400(x){if(x){" + "x=x+1;".repeat(66) + "}return x}var s='abc',o;";

/** Writes `code` as .bootcde, starts the interpreter with no file, returns its console once `done` shows (then kills it). */
async function runFromStorage(bin: string, code: string, done: RegExp): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "espruino-cost-"));
  try {
    writeFileSync(path.join(dir, "setup.js"), `require("Storage").write(".bootcde", ${JSON.stringify(code)});`);
    const w = spawnSync(bin, ["setup.js"], { cwd: dir, input: "", timeout: 20_000, killSignal: "SIGKILL", encoding: "latin1" });
    if (w.status !== 0) throw new Error("writing Storage failed: " + w.stdout.slice(-200));
    // (the interpreter ignores SIGTERM and keeps running at end of input: it is killed once done)
    const p = spawn(bin, [], { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    return await new Promise<string>((ok, ko) => {
      const t = setTimeout(() => {
        p.kill("SIGKILL");
        ko(new Error("the probe did not finish in 120 s:\n" + out.slice(-400)));
      }, 120_000);
      p.stdout.setEncoding("latin1").on("data", (d: string) => {
        out += d;
        if (done.test(out)) {
          clearTimeout(t);
          p.kill("SIGKILL");
          ok(out);
        }
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CostRow {
  what: string;
  blocks: number;
}

export async function measureCosts(bin: string): Promise<CostRow[]> {
  const code =
    PRELUDE +
    "var out=[];" +
    PROBES.map(
      (p, j) =>
        `(function(){var keep=[];for(var i=0;i<${N};i++){}process.memory();var u0=process.memory().usage;` +
        `for(var i=0;i<${N};i++){${p.make}}var u1=process.memory().usage;out.push("COST ${j} "+(u1-u0));keep=undefined})();`,
    ).join("") +
    "print(out.join('\\n')+'\\nPROBES DONE');";
  // the array that keeps the things costs blocks too: measure it alone and subtract
  const out = await runFromStorage(bin, code, /PROBES DONE/);
  const rows: CostRow[] = [];
  for (const m of out.matchAll(/COST (\d+) (-?\d+)/g)) rows.push({ what: PROBES[+m[1]].what, blocks: +m[2] / N });
  if (rows.length !== PROBES.length) throw new Error("the cost probes did not all report:\n" + out.slice(-500));
  // "a small integer in an array" is the array's own share of each entry
  const slot = rows[0].blocks;
  return rows.map((r, i) => (i ? { what: r.what, blocks: +(r.blocks - slot).toFixed(2) } : r));
}

export async function measureCpu(bin: string): Promise<CostRow[]> {
  const R = 20000;
  const code =
    CPU_PRELUDE +
    "var out=[];" +
    CPU_PROBES.map(
      (p, j) => `(function(){var t0=getTime();for(var i=0;i<${R};i++){${p.body}}out.push("CPU ${j} "+((getTime()-t0)*1e6/${R}))})();`,
    ).join("") +
    "print(out.join('\\n')+'\\nPROBES DONE');";
  const out = await runFromStorage(bin, code, /PROBES DONE/);
  const rows: CostRow[] = [];
  for (const m of out.matchAll(/CPU (\d+) ([\d.e+-]+)/g)) rows.push({ what: CPU_PROBES[+m[1]].what, blocks: +(+m[2]).toFixed(2) });
  if (rows.length !== CPU_PROBES.length) throw new Error("the CPU probes did not all report:\n" + out.slice(-500));
  const loop = rows[0].blocks;
  return rows.map((r, i) => (i ? { what: r.what, blocks: +(r.blocks - loop).toFixed(2) } : r));
}

if (isMain(import.meta.url)) {
  const bin = process.env.ESPRUINO_BIN;
  if (!bin) {
    console.log("ESPRUINO_BIN is not set: point it at a Linux build of the Espruino interpreter (see README).");
    process.exit(0);
  }
  console.log(`Blocks per thing (${path.basename(bin)}, code from Storage, ${N} of each):`);
  for (const r of await measureCosts(bin)) console.log(`  ${String(r.blocks).padStart(6)}  ${r.what}`);
  console.log(`\nInterpreter CPU, µs per operation (the empty loop turn is the first row; the others are net of it):`);
  for (const r of await measureCpu(bin)) console.log(`  ${String(r.blocks).padStart(8)}  ${r.what}`);
}
