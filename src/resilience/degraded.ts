/**
 * Episode logging for degraded modes that have no state machine of their own (requests refused
 * by overflow limits, retries refused by the budget): one warning when the first refusal of an
 * episode happens, one when none has happened for `quietMs`, with the count in between. Per
 * request it costs a counter bump and a clock read; the one timer exists only during an episode.
 * (Modes that do have explicit transitions, the breaker and "no healthy endpoint", log on them.)
 */

/** How long without a refusal before an episode counts as over. */
export const DEGRADED_QUIET_MS = 1_000;

export class DegradedEpisode {
  private inEpisode = false;
  private count = 0;
  private last = 0;
  private timer: NodeJS.Timeout | null = null;

  /**
   * `onStart` runs at the first refusal of an episode, `onEnd(count)` once `quietMs` passed
   * without one (count: refusals during the episode). `now` is a millisecond clock (injectable).
   */
  constructor(
    private readonly onStart: () => void,
    private readonly onEnd: (count: number) => void,
    private readonly quietMs: number = DEGRADED_QUIET_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether an episode is in progress. */
  get active(): boolean {
    return this.inEpisode;
  }

  /** One refusal. */
  hit(): void {
    this.count++;
    this.last = this.now();
    if (this.inEpisode) return;
    this.inEpisode = true;
    this.onStart();
    this.timer = setInterval(this.check, this.quietMs);
    this.timer.unref();
  }

  /** Ends the bookkeeping without logging (the owner is going away). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.inEpisode = false;
    this.count = 0;
  }

  private readonly check = (): void => {
    if (!this.inEpisode || this.now() - this.last < this.quietMs) return;
    const n = this.count;
    this.stop();
    this.onEnd(n);
  };
}
