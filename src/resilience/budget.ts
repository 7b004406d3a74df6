/**
 * A cluster's retry budget, after Linkerd's and Finagle's: over a sliding 10 s window, retries
 * may add at most `ratio` of the requests on top, plus a floor of `minPerSecond` retries in each
 * second so that a quiet cluster can still retry. This is what stops a retry storm from
 * multiplying load on an upstream that is already failing: over any storm of S seconds against
 * an upstream that always fails, attempts stay within
 * `(1 + ratio) × requests + minPerSecond × ⌈S + 1⌉` (the +1: a storm straddles one more clock
 * second than its length).
 *
 * Unlike Finagle (and tower), the floor is not granted as one lump of `minPerSecond × 10` up
 * front: a lump lets a storm shorter than the window spend ten seconds' worth of floor in its
 * first second. Here the floor is spent per clock second and never saved up, and the retries it
 * pays for are not charged to the ratio (floor and ratio add, as in Finagle's steady state).
 *
 * The window is 10 buckets of 1 s kept as two ring buffers with running totals: every call is
 * O(1) (at most 10 buckets are cleared when time jumps), allocates nothing, and needs no timer.
 */
import type { RetryBudgetConfig } from '../config/types.js';

/** The window `ratio` is measured over: ten one-second buckets. */
const BUCKETS = 10;
const BUCKET_MS = 1000;

function monotonicNow(): number {
  return performance.now();
}

export class RetryBudget {
  private readonly ratio: number;
  private readonly floor: number;
  private readonly requests = new Float64Array(BUCKETS);
  /** retries paid for by the ratio (floor retries are not charged here) */
  private readonly retries = new Float64Array(BUCKETS);
  /** floor retries spent in the current second */
  private floorUsed = 0;
  private requestTotal = 0;
  private retryTotal = 0;
  /** absolute bucket number (time / 1 s) of the newest bucket; NaN before the first call */
  private head = Number.NaN;
  private refusedCount = 0;

  /** `now` returns milliseconds from a monotonic clock (injectable for tests). */
  constructor(
    cfg: RetryBudgetConfig,
    private readonly now: () => number = monotonicNow,
  ) {
    this.ratio = cfg.ratio;
    this.floor = cfg.minPerSecond;
  }

  /** Retries refused since construction (for logs and metrics). */
  get refused(): number {
    return this.refusedCount;
  }

  /** Retries that `tryRetry` would grant right now (may be fractional; for `/clusters`). */
  get available(): number {
    this.advance();
    return Math.max(0, this.ratio * this.requestTotal - this.retryTotal) + (this.floor - this.floorUsed);
  }

  /** Counts one original request (call once per client request, not per attempt). */
  onRequest(): void {
    const i = this.advance();
    this.requests[i]! += 1;
    this.requestTotal += 1;
  }

  /**
   * Asks to spend one retry. true: the retry is counted and may be made. false: over budget,
   * the failure must go back to the client; `refused` is incremented.
   */
  tryRetry(): boolean {
    const i = this.advance();
    if (this.retryTotal + 1 <= this.ratio * this.requestTotal) {
      this.retries[i]! += 1;
      this.retryTotal += 1;
      return true;
    }
    if (this.floorUsed < this.floor) {
      this.floorUsed++;
      return true;
    }
    this.refusedCount++;
    return false;
  }

  /** Moves the window to the current time; returns the index of the current bucket. */
  private advance(): number {
    const bucket = Math.floor(this.now() / BUCKET_MS);
    if (bucket > this.head || this.head !== this.head /* NaN: first call */) {
      // Clear the buckets that fell out of the window (all of them after a long quiet spell).
      const steps = this.head !== this.head ? BUCKETS : Math.min(bucket - this.head, BUCKETS);
      for (let s = 1; s <= steps; s++) {
        const j = mod(bucket - steps + s);
        this.requestTotal -= this.requests[j]!;
        this.retryTotal -= this.retries[j]!;
        this.requests[j] = 0;
        this.retries[j] = 0;
      }
      this.head = bucket;
      this.floorUsed = 0;
    }
    // A clock that steps back (only an injected one can) keeps writing the newest bucket.
    return mod(this.head);
  }
}

function mod(n: number): number {
  const r = n % BUCKETS;
  return r < 0 ? r + BUCKETS : r;
}
