/**
 * Waiting in tests, on the real clock: polling for a condition, sleeping, and a
 * bound on a promise. The one place these are written (timing is never asserted:
 * a time-out here only turns a hang into a failure that says what was awaited).
 */

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `condition` (which may be async) every `everyMs` until it holds; throws
 * after `ms` with what was awaited.
 */
export async function until(condition: () => boolean | Promise<boolean>, ms = 5000, what = "condition", everyMs = 5): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Rejects with `what` when `promise` has not settled within ms. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timed out: " + what)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
