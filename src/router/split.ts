/**
 * Weighted traffic splitting (a route's `split:`): an exact, O(1) picker. The schedule is built
 * once per config snapshot as a smooth weighted round-robin sequence (nginx's algorithm), so a
 * 90/10 split sends exactly 9 of every 10 requests to the first cluster, interleaved rather than
 * in runs, and no random numbers are drawn per request.
 */

/** Upper bound on the schedule's length; larger weight sums are scaled down to fit. */
export const MAX_SCHEDULE = 10_000;

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/** Integer weights with the same ratios (exactly when possible), summing to at most `max`. */
function normalise(weights: readonly number[], max: number): number[] {
  let ints = weights.every(Number.isInteger) ? weights.slice() : null;
  let sum = 0;
  for (const w of weights) sum += w;
  if (ints !== null) {
    let g = 0;
    for (const w of ints) g = gcd(g, w);
    ints = ints.map((w) => w / g);
    if (sum / g <= max) return ints;
  }
  // Fractional weights or a huge sum: scale to `max` slots. Each ratio is off by at most half a
  // slot in `max` (0.005 %); every item keeps at least one slot since weights are positive.
  const scaled = weights.map((w) => Math.max(1, Math.round((w * max) / sum)));
  let g = 0;
  for (const w of scaled) g = gcd(g, w);
  return scaled.map((w) => w / g);
}

/**
 * Picks values in proportion to their weights, exactly over each cycle of the schedule.
 * Weights must be positive finite numbers (zero-weight entries are excluded by config validation).
 */
export class WeightedPicker<T> {
  private readonly schedule: readonly T[];
  private index: number;

  /** `start` offsets the first pick into the schedule (0 = deterministic start). */
  constructor(items: readonly { value: T; weight: number }[], start = 0) {
    if (items.length === 0) throw new RangeError('WeightedPicker needs at least one item');
    for (const it of items) {
      if (!(it.weight > 0) || !Number.isFinite(it.weight)) {
        throw new RangeError(`weight must be a positive finite number, got ${it.weight}`);
      }
    }
    const weights = normalise(
      items.map((it) => it.weight),
      MAX_SCHEDULE,
    );
    let total = 0;
    for (const w of weights) total += w;
    const current = new Array<number>(weights.length).fill(0);
    const schedule = new Array<T>(total);
    for (let s = 0; s < total; s++) {
      let best = 0;
      for (let i = 0; i < weights.length; i++) {
        current[i]! += weights[i]!;
        if (current[i]! > current[best]!) best = i;
      }
      current[best]! -= total;
      schedule[s] = items[best]!.value;
    }
    this.schedule = schedule;
    this.index = ((start % total) + total) % total;
  }

  /** The next value of the schedule. */
  pick(): T {
    const v = this.schedule[this.index]!;
    const n = this.index + 1;
    this.index = n === this.schedule.length ? 0 : n;
    return v;
  }

  /** Length of one full cycle of the schedule (the picks over which the split is exact). */
  get cycle(): number {
    return this.schedule.length;
  }
}
