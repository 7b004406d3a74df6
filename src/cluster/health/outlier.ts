/**
 * Passive health: outlier detection by consecutive errors, as Envoy's `consecutive_5xx`
 * detector. The forwarder reports each attempt's classified outcome per endpoint; an endpoint
 * with `consecutiveErrors` failures in a row is ejected (taken out of load balancing) for
 * `ejectionTime × ejections`, then returns by itself.
 */
import type { OutlierDetectionConfig } from '../../config/types.js';
import type { Endpoint } from '../endpoint.js';

/**
 * Longest ejection, whatever the multiplier: Envoy's `max_ejection_time` default (300 s), or
 * `ejectionTime` when that is longer. Stops a flapping endpoint from being banished for hours.
 */
export const MAX_EJECTION_TIME = 300_000;

export class OutlierDetector {
  private readonly timers = new Map<Endpoint, NodeJS.Timeout>();
  private stopped = false;

  /**
   * `endpoints` returns the cluster's current endpoints (read on each ejection decision, so DNS
   * changes are seen). `onChange` is called after `ep.ejected` flipped.
   */
  constructor(
    private readonly cfg: OutlierDetectionConfig,
    private readonly endpoints: () => readonly Endpoint[],
    private readonly onChange: (ep: Endpoint, ejected: boolean) => void,
  ) {}

  /** An attempt to `ep` succeeded (not `isFailure`): its run of errors is broken. */
  onSuccess(ep: Endpoint): void {
    ep.consecutiveFailures = 0;
  }

  /**
   * An attempt to `ep` failed (`isFailure`). The `consecutiveErrors`-th failure in a row tries
   * to eject it and restarts the count either way (as Envoy: another full run is needed before
   * the next try). Failures of an endpoint already ejected (stragglers) are not counted.
   */
  onFailure(ep: Endpoint): void {
    if (ep.ejected || this.stopped) return;
    if (++ep.consecutiveFailures < this.cfg.consecutiveErrors) return;
    ep.consecutiveFailures = 0;
    if (!this.mayEject()) return;
    ep.ejected = true;
    ep.ejections++;
    const ms = Math.min(this.cfg.ejectionTime * ep.ejections, Math.max(MAX_EJECTION_TIME, this.cfg.ejectionTime));
    const timer = setTimeout(() => this.restore(ep), ms);
    timer.unref();
    this.timers.set(ep, timer);
    this.onChange(ep, true);
  }

  /** Endpoints currently ejected by this detector. */
  get ejectedCount(): number {
    return this.timers.size;
  }

  /**
   * Clears every ejection timer. Endpoints still ejected stay so: the cluster manager that stops
   * the detector is expected to drop (or reset) its endpoints, as it builds new ones when a
   * cluster's config changes.
   */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /**
   * Envoy's `max_ejection_percent`, rounded down: at most floor(n × maxEjectionPercent / 100)
   * endpoints are ejected at once. So the only endpoint of a cluster is never ejected (ejecting
   * it turns a few errors into 503s for the whole ejection time), nor both of two at 50%.
   */
  private mayEject(): boolean {
    const eps = this.endpoints();
    let ejected = 0;
    for (let i = 0; i < eps.length; i++) if (eps[i]!.ejected) ejected++;
    return ejected + 1 <= Math.floor((eps.length * this.cfg.maxEjectionPercent) / 100);
  }

  private restore(ep: Endpoint): void {
    this.timers.delete(ep);
    if (this.stopped) return;
    ep.ejected = false;
    ep.consecutiveFailures = 0;
    // An endpoint that DNS removed meanwhile is nobody's business any more.
    if (this.endpoints().includes(ep)) this.onChange(ep, false);
  }
}
