/**
 * Local rate limiting (`rateLimit:` on a route or the inbound listener): a token bucket refilled
 * lazily from a monotonic clock on each `tryTake`, so an idle limiter costs nothing and there
 * are no timers to clean up on config reload.
 */

/** Absorbs float error from many small refills (10 × 0.1 must make a whole token). */
const EPSILON = 1e-9;

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly perMs: number;
  private readonly capacity: number;

  /**
   * @param requestsPerSecond sustained rate (> 0)
   * @param burst bucket size: requests allowed at once after an idle period. Values below 1 are
   *   raised to 1, since a bucket that can never hold a whole token would refuse everything.
   * @param now monotonic clock in milliseconds (default `performance.now`); injectable for tests
   */
  constructor(
    requestsPerSecond: number,
    burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(requestsPerSecond > 0) || !Number.isFinite(requestsPerSecond)) {
      throw new RangeError(`requestsPerSecond must be positive, got ${requestsPerSecond}`);
    }
    this.perMs = requestsPerSecond / 1000;
    this.capacity = Math.max(1, burst);
    this.tokens = this.capacity;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    // A clock that went backwards (only possible with an injected one) refills nothing.
    if (t > this.last) {
      this.tokens = Math.min(this.capacity, this.tokens + (t - this.last) * this.perMs);
      this.last = t;
    }
  }

  /** Takes one token if there is one; false means the request is over the limit (429). */
  tryTake(): boolean {
    this.refill();
    if (this.tokens >= 1 - EPSILON) {
      this.tokens = Math.max(0, this.tokens - 1);
      return true;
    }
    return false;
  }

  /** Milliseconds until a token will be available (0 if one is now), e.g. for `retry-after`. */
  waitMs(): number {
    this.refill();
    const missing = 1 - EPSILON - this.tokens;
    return missing <= 0 ? 0 : missing / this.perMs;
  }
}
