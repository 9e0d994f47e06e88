/**
 * The build replaces the scripts in its output directory only when the whole build
 * has succeeded: a failed build and an interrupted one (Ctrl-C) leave the previous
 * scripts as they were. (Once, Ctrl-C during `npm start`'s build deleted every
 * committed firmware/*.js.) Stand-in entries keep these builds short.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../../scripts/build/bundle";
import { build, BUILD_TMP, loadBoards, sweepBuildDirs } from "../../scripts/build/build";

const tmp = mkdtempSync(path.join(os.tmpdir(), "build-output-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** An output directory holding a previous build's files. */
function previousBuild(name: string): { dir: string; before: Record<string, string> } {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  const before = { "pico-esp8266.js": "old pico esp8266;", "pico-sim800.js": "old pico sim800;", "gone-board-esp8266.js": "a board since removed;", "sizes.json": "{}\n" };
  for (const [f, text] of Object.entries(before)) writeFileSync(path.join(dir, f), text);
  return { dir, before };
}
const contents = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(path.join(dir, f), "utf8")]));

describe("the build's output directory", () => {
  it("a failed build leaves the previous scripts as they were", async () => {
    const { dir, before } = previousBuild("failed");
    const r = await build({ entry: "test/fixtures/build/broken.ts", outDir: dir, only: ["pico"], typecheck: false, log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.errors.join("\n")).toMatch(/broken\.ts/);
    expect(contents(dir)).toEqual(before);
  }, 120_000);

  it("a successful build replaces them all at the end, and removes stale ones", async () => {
    const { dir } = previousBuild("ok");
    const lines: string[] = [];
    const r = await build({ entry: "test/fixtures/build/main.ts", outDir: dir, only: ["pico"], typecheck: false, log: (l) => lines.push(l) });
    expect(r.ok, r.errors.join("\n")).toBe(true);
    // one script per modem the Pico is built for (boards/pico.ts)
    const picoModems = (await loadBoards()).find(({ board }) => board.id == "pico")!.board.modems;
    expect(lines[0]).toMatch(new RegExp(`^building ${picoModems.length} script\\(s\\) for pico: .*changes only if all of them succeed$`));
    expect(readdirSync(dir).sort()).toEqual([...picoModems.map((m) => `pico-${m}.js`), "sizes.json"].sort());
    expect(readFileSync(path.join(dir, "pico-esp8266.js"), "utf8")).toContain("stand-in");
    expect(JSON.parse(readFileSync(path.join(dir, "sizes.json"), "utf8")).scripts).toHaveLength(picoModems.length);
  }, 120_000);

  it("Ctrl-C in the middle of a build leaves the output directory as it was; the next build sweeps what it left", async () => {
    const { dir, before } = previousBuild("interrupted");
    // its own process group, so Ctrl-C can be sent as a terminal sends it: to tsx and the build alike
    const child = spawn(path.join(ROOT, "node_modules/.bin/tsx"), ["scripts/build/build.ts", "--entry", "test/fixtures/build/main.ts", "--out", dir, "--no-typecheck"], {
      cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true,
    });
    let out = "";
    let sent = false;
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      const t = setTimeout(() => { process.kill(-child.pid!, "SIGKILL"); reject(new Error("the build did not start or stop; output:\n" + out)); }, 90_000);
      child.stdout.on("data", () => {
        if (!sent && /^building /m.test(out)) {
          sent = true;
          process.kill(-child.pid!, "SIGINT");
        }
      });
      child.on("exit", (c) => { clearTimeout(t); resolve(c); });
    });
    const scripts = (await loadBoards()).reduce((n, { board }) => n + board.modems.length, 0);
    expect(out).toMatch(new RegExp(`^building ${scripts} script\\(s\\)`, "m"));
    expect(out, "stopped before the end").not.toMatch(/^built /m);
    expect(code, out).toBe(130);
    expect(contents(dir)).toEqual(before);
    // whatever temporary directory it could not remove belongs to a process that is gone: swept
    sweepBuildDirs();
    const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
    expect(existsSync(BUILD_TMP) ? readdirSync(BUILD_TMP).filter((n) => !alive(Number(n.split("-")[0]))) : []).toEqual([]);
  }, 120_000);
});
