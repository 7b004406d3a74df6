/**
 * A cluster's circuit breaker: stops sending to a cluster whose attempts mostly fail, then lets
 * one probe find out whether it recovered. Built on opossum (its rolling window, thresholds and
 * reset timer), adapted to the forwarder's shape: the forwarder does not hand the breaker a
 * function to run, it asks `admit()` before an attempt and reports the attempt's classified
 * outcome later through the token it got.
 *
 * How opossum is driven: while closed, an attempt's outcome is fed to opossum when it is known,
 * as one `fire()` whose action's promise is settled at once (so opossum's window counts
 * completed attempts, and nothing is pending per request). While half-open, `admit()` fires the
 * probe itself, which consumes opossum's single half-open slot, and the probe's token settles
 * it later. opossum's own per-call timeout is off (`timeout: false`): attempt timeouts belong
 * to the forwarder, and a timer per request is what we avoid.
 */
import CircuitBreaker from 'opossum';
import type { CircuitBreakerConfig } from '../config/types.js';

/** As `outrigger_circuit_breaker_state`: closed 0, half-open 1, open 2. */
export type BreakerState = 'closed' | 'half-open' | 'open';

/** Gauge value of a state for `outrigger_circuit_breaker_state`. */
export function breakerStateValue(s: BreakerState): 0 | 1 | 2 {
  return s === 'closed' ? 0 : s === 'half-open' ? 1 : 2;
}

/**
 * One admitted attempt. Call exactly one of `done` / `cancel`, exactly once. Forgetting it on
 * the half-open probe would keep the circuit half-open (rejecting everything) until the breaker
 * is shut down. While closed, every attempt shares one token object (nothing is allocated per
 * request); an outcome reported after the circuit left that closed period is ignored.
 */
export interface BreakerToken {
  /** The attempt's outcome is known: `failure` as `isFailure(outcome)` (classify.ts). */
  done(failure: boolean): void;
  /**
   * The attempt ended without an outcome that says anything about the upstream (the client
   * went away first). It counts neither way; a cancelled half-open probe puts the circuit back
   * to open, to try again after another `resetTimeout`.
   */
  cancel(): void;
}

// A failure is an expected value here: one shared error, no stack captured per request.
const FAILED = new Error('upstream attempt failed');
function noop(): void {}

const NOOP_TOKEN: BreakerToken = Object.freeze({ done: noop, cancel: noop });

/** The token of every attempt admitted during one closed period (`epoch`). */
class ClosedToken implements BreakerToken {
  constructor(
    private readonly owner: ClusterBreaker,
    private readonly epoch: number,
  ) {}

  done(failure: boolean): void {
    this.owner.closedOutcome(this.epoch, failure);
  }

  cancel(): void {}
}

/** The token of a half-open probe: holds opossum's pending call for it. */
class ProbeToken implements BreakerToken {
  settled = false;

  constructor(
    private readonly owner: ClusterBreaker,
    readonly resolve: () => void,
    readonly reject: (e: Error) => void,
  ) {}

  done(failure: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.probeOutcome(this, failure);
  }

  cancel(): void {
    if (this.settled) return;
    this.settled = true;
    this.owner.probeOutcome(this, null);
  }
}

/**
 * Per-cluster circuit breaker.
 *
 * - closed: every attempt is admitted. Once `volumeThreshold` attempts completed in the rolling
 *   `window`, a failure that brings the failure share to `errorThresholdPercentage` or more
 *   opens the circuit (at-or-above as Hystrix and resilience4j; opossum alone tests "above").
 * - open: `admit()` returns null at once (answer 503 circuit_open, never touch the upstream).
 *   After `resetTimeout` the circuit goes half-open.
 * - half-open: exactly one probe is admitted at a time; its success closes the circuit (with a
 *   fresh window), its failure opens it again. Outcomes of attempts admitted before the circuit
 *   opened are ignored: only the probe decides.
 *
 * `onState` is called on every transition (not for the initial closed state).
 */
export class ClusterBreaker {
  private readonly cb: CircuitBreaker<[], void>;
  private current: BreakerState = 'closed';
  /** bumped on every transition: tells a closed period's token from a later one's */
  private epoch = 0;
  private closedToken: ClosedToken;
  private probe: ProbeToken | null = null;
  /** the settle functions of the call being fired: opossum runs the action inside `fire()` */
  private firedResolve: (() => void) | null = null;
  private firedReject: ((e: Error) => void) | null = null;

  constructor(
    readonly cluster: string,
    cfg: CircuitBreakerConfig,
    private readonly onState: (s: BreakerState) => void,
  ) {
    // Built once: the action's promise executor hands its settle functions over through fields
    // rather than closing over anything per request.
    const executor = (resolve: () => void, reject: (e: Error) => void): void => {
      this.firedResolve = resolve;
      this.firedReject = reject;
    };
    const action = (): Promise<void> => new Promise<void>(executor);
    // opossum rotates its buckets every window/buckets ms: keep that at 1 ms or more.
    const buckets = Math.max(1, Math.min(10, Math.floor(cfg.window)));
    this.cb = new CircuitBreaker<[], void>(action, {
      name: cluster,
      timeout: false,
      resetTimeout: cfg.resetTimeout,
      // opossum opens when the rate is strictly above the threshold; the documented rule reads "once
      // errorThresholdPercentage of requests failed", so shave off less than any real rate step.
      errorThresholdPercentage: cfg.errorThresholdPercentage - 1e-9,
      volumeThreshold: cfg.volumeThreshold,
      rollingCountTimeout: cfg.window,
      rollingCountBuckets: buckets,
      // Percentiles sort every latency in the window on each failure; snapshots are a second
      // interval timer. Neither is used.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      capacity: Number.MAX_SAFE_INTEGER,
    });
    this.closedToken = new ClosedToken(this, 0);
    this.cb.on('open', () => this.transition('open'));
    this.cb.on('halfOpen', () => this.transition('half-open'));
    this.cb.on('close', () => {
      // opossum keeps the window across close(); a circuit that just recovered must not
      // reopen on the failures that opened it (Hystrix resets its counters here too).
      const status = this.cb.status as unknown as { rotateBucket?: () => void };
      if (typeof status.rotateBucket === 'function') {
        for (let i = 0; i < buckets; i++) status.rotateBucket();
      }
      this.transition('closed');
    });
  }

  /** The current state. */
  get state(): BreakerState {
    return this.current;
  }

  /**
   * Asks to make one upstream attempt. null: the circuit is open (or half-open with its probe
   * in flight): answer `circuit_open` without touching the upstream. Otherwise the token on
   * which the attempt's outcome must be reported. Allocates nothing unless it admits a probe.
   * After `shutdown()` every attempt is admitted (with a token that does nothing).
   */
  admit(): BreakerToken | null {
    const cb = this.cb;
    if (cb.closed) return this.closedToken;
    if (!cb.pendingClose || cb.isShutdown) return cb.isShutdown ? NOOP_TOKEN : null;
    // Half-open with its slot free: this attempt is the probe. Firing takes the slot.
    if (!this.fire(true)) return null;
    const t = new ProbeToken(this, this.firedResolve as () => void, this.firedReject as (e: Error) => void);
    this.firedResolve = this.firedReject = null;
    this.probe = t;
    return t;
  }

  /**
   * The token-less form of `token.done(failure)`, for callers that keep no token: while closed
   * it counts the outcome; while half-open it is taken as the probe's outcome (an attempt still
   * running from before the circuit opened could be mistaken for it: prefer tokens); while open
   * it is ignored.
   */
  record(failure: boolean): void {
    const cb = this.cb;
    if (cb.closed) this.feed(failure);
    else if (this.probe !== null) this.probe.done(failure);
  }

  /** @internal A closed-period token reported. */
  closedOutcome(epoch: number, failure: boolean): void {
    if (epoch === this.epoch && this.cb.closed) this.feed(failure);
  }

  /** @internal The probe reported; `failure` null = cancelled. */
  probeOutcome(t: ProbeToken, failure: boolean | null): void {
    if (t !== this.probe || this.cb.isShutdown) return;
    this.probe = null;
    if (failure === null) {
      // No verdict: back to open, and another probe after resetTimeout.
      this.cb.open();
    } else if (failure) {
      t.reject(FAILED);
    } else {
      t.resolve();
    }
  }

  /** Stops the breaker's timers. Later attempts are all admitted, outcomes ignored. */
  shutdown(): void {
    this.cb.shutdown();
    this.probe = null;
  }

  /** One completed attempt, counted by opossum (which may open the circuit a microtask later). */
  private feed(failure: boolean): void {
    if (!this.fire(failure)) return;
    const resolve = this.firedResolve as () => void;
    const reject = this.firedReject as (e: Error) => void;
    this.firedResolve = this.firedReject = null;
    if (failure) reject(FAILED);
    else resolve();
  }

  /**
   * Fires opossum once; true when its action ran (settle functions are in `fired*`).
   * `mayFail`: the call may be rejected, so its promise needs a handler (a success does not:
   * one promise less per request).
   */
  private fire(mayFail: boolean): boolean {
    this.firedResolve = null;
    this.firedReject = null;
    const p = this.cb.fire();
    // A rejection carries nothing the caller does not already know.
    if (mayFail) p.then(undefined, noop);
    return this.firedResolve !== null;
  }

  private transition(s: BreakerState): void {
    if (s === this.current) return;
    this.current = s;
    this.epoch++;
    if (s === 'closed') this.closedToken = new ClosedToken(this, this.epoch);
    this.onState(s);
  }
}
