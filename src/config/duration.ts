/**
 * Durations as the config file writes them (`250ms`, `1.5s`, `5s`, `1m`, `1h`, and sums such as
 * `1m30s`) and back. The runtime works in whole milliseconds only; see `types.ts` (`Millis`).
 */

const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

// One `<number><unit>` component; `ms` before `m` so that `250ms` is not read as `250m` + `s`.
const COMPONENT = /(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)/y;

/** Longer inputs are not durations anyone writes; the cap keeps parsing of hostile input trivial. */
const MAX_LENGTH = 64;

/**
 * Parses a duration into milliseconds. Accepts the integer `0` and the string `"0"` (both 0), and
 * one or more `<number><unit>` components with units `h`, `m`, `s`, `ms` (`1m30s`, `1.5s`).
 * Returns null for anything else, for negative values, and for values that are not a whole
 * number of milliseconds (`0.5ms`) or exceed `Number.MAX_SAFE_INTEGER`. Whitespace is not allowed.
 */
export function parseDuration(s: string | number): number | null {
  if (typeof s === 'number') return s === 0 ? 0 : null;
  if (typeof s !== 'string' || s.length === 0 || s.length > MAX_LENGTH) return null;
  if (s === '0') return 0;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    COMPONENT.lastIndex = pos;
    const m = COMPONENT.exec(s);
    if (m === null) return null;
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    pos = COMPONENT.lastIndex;
  }
  // Decimal components (`1.1s`) carry binary floating-point noise; accept them when they land
  // on a whole millisecond, reject sub-millisecond values rather than silently rounding
  // `0.4ms` down to 0 (which means "no timeout").
  const rounded = Math.round(total);
  if (Math.abs(total - rounded) > 1e-6 || !Number.isSafeInteger(rounded)) return null;
  return rounded;
}

/**
 * Formats milliseconds the way the config file writes them, Go-style but with zero components
 * left out: `0s`, `250ms`, `5s`, `1.5s`, `1m30s`, `1h`, `1h1s`.
 * `parseDuration(formatDuration(n)) === n` for every non-negative safe integer `n`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0 || !Number.isInteger(ms)) return `${ms}ms`;
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  let rest = ms - h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  let out = '';
  if (h > 0) out += `${h}h`;
  if (m > 0) out += `${m}m`;
  if (rest > 0) {
    const whole = Math.floor(rest / 1000);
    const frac = rest - whole * 1000;
    // Three fixed digits, trailing zeros trimmed: 1500 → "1.5s", 1001 → "1.001s". Built from
    // integers so that no float formatting (1.0000000002) can leak in.
    out += frac === 0 ? `${whole}s` : `${whole}.${String(frac).padStart(3, '0').replace(/0+$/, '')}s`;
  }
  return out;
}
