/**
 * A deterministic Clock for tests. Time starts at `start` (default 1000 ms) and
 * moves only through advance(ms), which runs every timer falling due within the
 * window in order of due time (ties: order of scheduling), including timers
 * scheduled by those timers; now() reads each timer's due time while it runs.
 *
 * With { espruino: true } handles behave as on the board: small integer ids,
 * reused (max id in use + 1), and clearTimeout of undefined or of an id that is
 * no longer a timer (already fired or cleared) THROWS, as Espruino does
 * ("Unknown Timeout"). Use it to prove code never clears a fired handle.
 */
import type { Clock } from "../../src/transport";

interface Timer { at: number; seq: number; fn: () => void; id: number }

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Timer[] = [];

  private espruino: boolean;

  constructor(start = 1000, opts: { espruino?: boolean } = {}) {
    this.t = start;
    this.espruino = !!opts.espruino;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.timers.reduce((m, x) => Math.max(m, x.id), 0) + 1;
    const timer = { at: this.t + Math.max(0, Number(ms) || 0), seq: this.seq++, fn, id };
    this.timers.push(timer);
    return this.espruino ? id : timer;
  }

  clearTimeout(handle: unknown): void {
    if (this.espruino && handle === undefined) throw new Error("clearTimeout(undefined) not allowed. Use clearTimeout() instead.");
    const i = this.espruino ? this.timers.findIndex((x) => x.id === handle) : this.timers.indexOf(handle as Timer);
    if (i >= 0) this.timers.splice(i, 1);
    else if (this.espruino) throw new Error("Unknown Timeout");
  }

  /** Number of timers waiting. */
  get pending(): number {
    return this.timers.length;
  }

  /** Due time of the next timer, or undefined. */
  nextAt(): number | undefined {
    const n = this.next();
    return n && n.at;
  }

  /** Moves time forward by ms, running due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let runs = 0; ; runs++) {
      if (runs > 1e5) throw new Error("FakeClock: timers keep falling due (a zero-delay loop?)");
      const n = this.next();
      if (!n || n.at > end) break;
      this.timers.splice(this.timers.indexOf(n), 1);
      this.t = n.at;
      n.fn();
    }
    this.t = end;
  }

  /** Advances to the next timer and runs it (and any due at the same time); false if none. */
  step(): boolean {
    const n = this.next();
    if (!n) return false;
    this.advance(n.at - this.t);
    return true;
  }

  private next(): Timer | undefined {
    let best: Timer | undefined;
    for (const x of this.timers) if (!best || x.at < best.at || (x.at == best.at && x.seq < best.seq)) best = x;
    return best;
  }
}

/** The real clock as a Clock. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * The real clock sped up `factor` times for the code under test (its time-outs
 * come `factor` times sooner), while simulators and brokers run in real time.
 */
export function fastClock(factor: number): Clock {
  const start = Date.now();
  return {
    now: () => start + (Date.now() - start) * factor,
    setTimeout: (fn, ms) => setTimeout(fn, ms / factor),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
}
