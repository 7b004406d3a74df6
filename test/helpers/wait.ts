/**
 * The one poll-until of the test suite. A wait is only a cap, never a timing assertion: tests wait
 * for a state (a counter, a log line, a metric) and assert on it afterwards.
 */
import { inspect } from 'node:util';

export interface WaitOptions {
  /** what is awaited, named in the timeout error */
  what?: string;
  /** give up after this long (default 10 s) */
  timeoutMs?: number;
  /** pause between polls (default 20 ms) */
  intervalMs?: number;
}

type Falsy = undefined | null | false;

/**
 * Calls `f` until it returns (or resolves to) a truthy value, and returns that value. An exception
 * thrown by `f` counts as "not yet". On timeout, throws an Error naming `what` and the last value
 * or exception seen (the exception is also the error's `cause`).
 */
export async function waitFor<T>(f: () => T | Falsy | Promise<T | Falsy>, opts: WaitOptions = {}): Promise<T> {
  const { what = 'a condition', timeoutMs = 10_000, intervalMs = 20 } = opts;
  const end = Date.now() + timeoutMs;
  for (;;) {
    let last: unknown;
    let threw = false;
    try {
      const v = await f();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
      threw = true;
    }
    if (Date.now() >= end) {
      const seen = `${threw ? 'exception' : 'value'} ${describe(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${seen}`, threw ? { cause: last } : undefined);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function describe(x: unknown): string {
  if (x instanceof Error) return `${x.name}: ${x.message}`;
  return inspect(x, { depth: 2, breakLength: Infinity, maxStringLength: 200 });
}
