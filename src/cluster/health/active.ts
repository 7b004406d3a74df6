/**
 * Active health checking, as Envoy's HTTP health checker: every `interval` (±10 % jitter, so
 * that sidecars started together do not probe in lockstep) each endpoint of the cluster gets a
 * `GET path`; a 2xx answer within `timeout` is a pass, anything else a failure.
 * `unhealthyThreshold` failures in a row mark the endpoint unhealthy, `healthyThreshold` passes
 * in a row mark it healthy again.
 *
 * Initial state: endpoints start healthy (Endpoint's default) and the first round of checks runs
 * at once on `start()`. Envoy instead holds new hosts back until their first check passes; for
 * a sidecar that would turn every restart and every DNS change into a window of
 * no_healthy_upstream, and outlier detection and retries cover a bad new endpoint meanwhile.
 * Endpoints that DNS adds later are read from `endpoints()` each round and are checked from the
 * next round on (within `interval` × 1.1), also starting healthy.
 */
import type { Dispatcher } from 'undici';
import type { HealthCheckConfig } from '../../config/types.js';
import type { Endpoint } from '../endpoint.js';

/** Probes an endpoint: resolves true for a pass. Must not reject (a rejection is a failure). */
export type HealthProbe = (ep: Endpoint, path: string, timeoutMs: number) => Promise<boolean>;

/** User-Agent of the default probe (lets apps keep health checks out of their access logs). */
export const HEALTH_CHECK_USER_AGENT = 'outrigger-health';

interface CheckState {
  passes: number;
  failures: number;
  inFlight: boolean;
  /** round in which the endpoint was last listed by `endpoints()` */
  seen: number;
}

export class HealthChecker {
  private readonly states = new Map<Endpoint, CheckState>();
  /** default probes in flight, aborted by stop() */
  private readonly inflight = new Set<AbortController>();
  private readonly probe: HealthProbe;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private roundNo = 0;

  /**
   * `endpoints` returns the cluster's current endpoints (read each round). `onChange` is called
   * after `ep.healthy` flipped. `probe` replaces the default HTTP probe (tests, other protocols).
   * `dispatcherFor` picks what the default probe sends through (default: the endpoint's pool).
   * The cluster gives each endpoint a connection of its own for checks, as Envoy does: a probe
   * queued behind busy request sockets would time out and mark a merely busy endpoint unhealthy.
   */
  constructor(
    private readonly cfg: HealthCheckConfig,
    private readonly endpoints: () => readonly Endpoint[],
    private readonly onChange: (ep: Endpoint, healthy: boolean) => void,
    probe?: HealthProbe,
    private readonly dispatcherFor: (ep: Endpoint) => Dispatcher = (ep) => ep.pool,
  ) {
    this.probe = probe ?? ((ep, path, timeoutMs) => this.httpProbe(ep, path, timeoutMs));
  }

  /** Runs the first round of checks now, then one every `interval` ± 10 %. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.round();
  }

  /**
   * Stops checking: clears the timer, aborts default probes in flight and ignores any result
   * still to come. Endpoint flags are left as they are.
   */
  stop(): void {
    this.running = false;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    for (const ac of this.inflight) ac.abort();
    this.inflight.clear();
    this.states.clear();
  }

  private round(): void {
    this.timer = null;
    if (!this.running) return;
    const n = ++this.roundNo;
    const eps = this.endpoints();
    for (let i = 0; i < eps.length; i++) {
      const ep = eps[i]!;
      let st = this.states.get(ep);
      if (st === undefined) {
        st = { passes: 0, failures: 0, inFlight: false, seen: n };
        this.states.set(ep, st);
      }
      st.seen = n;
      // A probe slower than the interval is not doubled up on.
      if (!st.inFlight) this.check(ep, st);
    }
    if (this.states.size > eps.length) {
      for (const [ep, st] of this.states) if (st.seen !== n) this.states.delete(ep);
    }
    const delay = this.cfg.interval * (0.9 + 0.2 * Math.random());
    this.timer = setTimeout(() => this.round(), delay);
    this.timer.unref();
  }

  private check(ep: Endpoint, st: CheckState): void {
    st.inFlight = true;
    let p: Promise<boolean>;
    try {
      p = this.probe(ep, this.cfg.path, this.cfg.timeout);
    } catch {
      p = Promise.resolve(false);
    }
    p.then(
      (ok) => this.result(ep, st, ok === true),
      () => this.result(ep, st, false),
    );
  }

  private result(ep: Endpoint, st: CheckState, ok: boolean): void {
    st.inFlight = false;
    // Stopped, or the endpoint left the cluster while its probe was out.
    if (!this.running || this.states.get(ep) !== st) return;
    if (ok) {
      st.failures = 0;
      st.passes++;
      if (!ep.healthy && st.passes >= this.cfg.healthyThreshold) {
        ep.healthy = true;
        this.onChange(ep, true);
      }
    } else {
      st.passes = 0;
      st.failures++;
      if (ep.healthy && st.failures >= this.cfg.unhealthyThreshold) {
        ep.healthy = false;
        this.onChange(ep, false);
      }
    }
  }

  /**
   * The default probe: `GET path` on the endpoint's own pool, `host: ep.key`, body drained.
   * `timeoutMs` bounds the whole check (connect included), not only the response head.
   */
  private async httpProbe(ep: Endpoint, path: string, timeoutMs: number): Promise<boolean> {
    const ac = new AbortController();
    this.inflight.add(ac);
    let timer: NodeJS.Timeout | null = null;
    if (timeoutMs > 0) {
      timer = setTimeout(() => ac.abort(), timeoutMs);
      timer.unref();
    }
    try {
      const res = await this.dispatcherFor(ep).request({
        method: 'GET',
        path,
        headers: { host: ep.key, 'user-agent': HEALTH_CHECK_USER_AGENT },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: ac.signal,
      });
      await res.body.dump();
      return res.statusCode >= 200 && res.statusCode < 300;
    } catch {
      return false;
    } finally {
      if (timer !== null) clearTimeout(timer);
      this.inflight.delete(ac);
    }
  }
}
