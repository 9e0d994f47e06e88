/**
 * A real Espruino interpreter (its Linux build, ESPRUINO_BIN) standing in for a
 * board: its console on a pseudo-terminal made by Debian's socat, so a flash
 * opens it exactly as it opens /dev/ttyACM0. The interpreter runs in `dir` and
 * keeps its Storage there in ./espruino.flash, so a restart in the same dir boots
 * from what was flashed.
 *
 * Also: a pseudo-terminal with some other program behind it (a port that is not an
 * Espruino), the interpreter started on pipes to read what it prints at boot, and a
 * udevadm that lists the pseudo-terminals as serial ports (udevAdmStandIn).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface PtyDevice {
  /** The pseudo-terminal's path (a link to /dev/pts/N). */
  tty: string;
  dir: string;
  /** Ends socat and the program behind it. */
  stop(): Promise<void>;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Child process ids of pid (Linux /proc). */
function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal); } catch { /* gone */ }
}

/** Ends proc and the processes it started (socat runs its program in a session of its own). */
function stopper(proc: ChildProcess): () => Promise<void> {
  return async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    // The interpreter takes SIGTERM as a request it may not get to; it writes Storage to its file as it
    // goes, so SIGKILL loses nothing.
    for (const k of children(proc.pid!)) kill(k, "SIGKILL");
    kill(proc.pid!, "SIGKILL");
    await exited;
  };
}

/** `command` (argv joined for socat's EXEC) behind a pseudo-terminal at dir/name. */
export async function ptyDevice(dir: string, command: string, name = "tty"): Promise<PtyDevice> {
  const tty = path.join(dir, name);
  const proc = spawn("socat", [`pty,link=${tty},raw,echo=0`, `EXEC:${command},pty,raw,echo=0`], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  proc.stderr!.on("data", (d) => (err += d));
  await waitFor(() => existsSync(tty) || proc.exitCode !== null, 5000, `socat to make ${tty}`);
  if (!existsSync(tty)) throw new Error(`socat did not start: ${err}`);
  return { tty, dir, stop: stopper(proc) };
}

/** The interpreter as a board: its console on dir/tty, its Storage in dir/espruino.flash. */
export function espruinoBoard(bin: string, dir: string): Promise<PtyDevice> {
  return ptyDevice(dir, bin);
}

/**
 * Starts the interpreter in dir on pipes (it runs .bootcde from Storage), collects
 * what it prints until `until` matches or ms pass, then ends it.
 */
export async function bootOutput(bin: string, dir: string, until: RegExp, ms = 10000): Promise<string> {
  const proc = spawn(bin, [], { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d.toString("latin1")));
  proc.stderr!.on("data", (d) => (out += d.toString("latin1")));
  try {
    await waitFor(() => until.test(out) || proc.exitCode !== null, ms, `${until} from the restarted interpreter`).catch(() => {});
  } finally {
    await stopper(proc)();
  }
  return out;
}

/** The first executable `name` on PATH, or undefined. */
function which(name: string, pathVar = process.env.PATH ?? ""): string | undefined {
  for (const d of pathVar.split(path.delimiter)) {
    const f = path.join(d, name);
    try {
      accessSync(f, constants.X_OK);
      return f;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/**
 * The espruino tool opens only a port that its port list names, and on Linux that list
 * is `udevadm info -e` (through serialport): serial devices the kernel registered.
 * A pseudo-terminal is never among them. This writes dir/bin/udevadm, which prints the
 * system's own list and then one tty entry per given pseudo-terminal (its link resolved
 * when it runs, so a restarted stand-in is found again), and returns an environment
 * with dir/bin first on PATH. Only the stand-in boards' ports are added; nothing else changes.
 */
export function udevAdmStandIn(dir: string, ttys: string[], env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const bin = path.join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  const real = which("udevadm", env.PATH);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    "#!/bin/sh",
    "# test stand-in: the system's udevadm, plus the pseudo-terminals of Espruino stand-in boards as serial ports",
    real ? `if [ "$1 $2" != "info -e" ]; then exec ${q(real)} "$@"; fi` : `if [ "$1 $2" != "info -e" ]; then exit 1; fi`,
    real ? `${q(real)} info -e` : "",
    `for t in ${ttys.map(q).join(" ")}; do`,
    `  d=$(readlink -f "$t") && [ -e "$d" ] || continue`,
    `  printf 'P: /devices/virtual/tty/stand-in\\nN: ttyACM-stand-in\\nE: DEVNAME=%s\\nE: SUBSYSTEM=tty\\n\\n' "$d"`,
    "done",
    "",
  ].join("\n");
  writeFileSync(path.join(bin, "udevadm"), script);
  chmodSync(path.join(bin, "udevadm"), 0o755);
  return { ...env, PATH: bin + path.delimiter + (env.PATH ?? "") };
}
