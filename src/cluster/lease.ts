/**
 * An endpoint lease: the one way any request kind (a forwarded attempt, a tunnel, a mirror copy)
 * takes an endpoint of a cluster, and gives it back.
 *
 * Taking one is, in this order: pick (the balancer, avoiding the endpoint a retry moves away
 * from), admit (the cluster's `maxPending` queue limit; counted and logged by the cluster when it
 * refuses), then the circuit breaker's token (last, because in half-open admitting takes the
 * single probe slot). A lease counts in `ep.active` from `takeLease` until `release()`, which
 * undoes it exactly once whatever path ends the lease. A lease that is a whole request (a tunnel,
 * a mirror copy) also counts in `cluster.active`; an exchange, whose retries span several
 * leases and the backoffs between them, holds the cluster itself from start to finish.
 *
 * The outcome is heard once: `succeeded()` / `failed()` feed the breaker and outlier detection;
 * `abandoned()` (the client went away) cancels the breaker token and says nothing about the
 * endpoint's health. A failure after the outcome was heard (a reset in mid-body) still reaches
 * outlier detection through `brokeLater()`.
 */
import { proxyError, type ProxyError } from '../errors.js';
import type { BreakerToken } from '../resilience/breaker.js';
import type { Direction } from '../telemetry/metrics.js';
import type { Cluster } from './cluster.js';
import type { Endpoint } from './endpoint.js';

const NO_HEALTHY_UPSTREAM = proxyError('no_healthy_upstream');
const OVERFLOW = proxyError('overflow', 'cluster maxPending');
const CIRCUIT_OPEN = proxyError('circuit_open');

export class Lease {
  private heard = false;
  private released = false;

  constructor(
    readonly cluster: Cluster,
    readonly endpoint: Endpoint,
    private token: BreakerToken | null,
    /** the lease is the whole request: it counts in `cluster.active` too */
    private readonly wholeRequest: boolean,
  ) {
    endpoint.active++;
    if (wholeRequest) cluster.requestStarted();
  }

  /** The attempt's outcome was not a failure (a response below 500, a tunnel established). */
  succeeded(): void {
    this.hear(false);
  }

  /** The attempt failed (an error, or a 5xx response). */
  failed(): void {
    this.hear(true);
  }

  /** The outcome was decided by our side (the client left): neither success nor failure. */
  abandoned(): void {
    if (this.heard) return;
    this.heard = true;
    this.token?.cancel();
    this.token = null;
  }

  /** The upstream broke after the outcome was heard: outlier detection still learns of it. */
  brokeLater(): void {
    this.cluster.onAttemptResult(this.endpoint, true);
  }

  get outcomeHeard(): boolean {
    return this.heard;
  }

  /** Gives the endpoint back (once; later calls do nothing). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.endpoint.active--;
    if (this.wholeRequest) this.cluster.requestEnded();
  }

  private hear(failure: boolean): void {
    if (this.heard) return;
    this.heard = true;
    this.token?.done(failure);
    this.token = null;
    this.cluster.onAttemptResult(this.endpoint, failure);
  }
}

/**
 * Takes an endpoint of `cluster` for one attempt, or says why not (`no_healthy_upstream`,
 * `overflow`, `circuit_open`). `direction` labels the overflow counter.
 */
export function takeLease(
  cluster: Cluster,
  hashKey: string | undefined,
  avoid: Endpoint | undefined,
  direction: Direction,
  wholeRequest: boolean,
): Lease | ProxyError {
  const ep = cluster.pick(hashKey, avoid);
  if (ep === null) return NO_HEALTHY_UPSTREAM;
  if (!cluster.admits(ep)) {
    cluster.overflowed(direction);
    return OVERFLOW;
  }
  let token: BreakerToken | null = null;
  if (cluster.breaker !== null) {
    token = cluster.breaker.admit();
    if (token === null) return CIRCUIT_OPEN;
  }
  return new Lease(cluster, ep, token, wholeRequest);
}

/** A mirror never queues and never probes a breaker: a free connection or no copy at all. */
export function takeSpareLease(cluster: Cluster, hashKey: string | undefined): Lease | null {
  const ep = cluster.pick(hashKey, undefined);
  if (ep === null || !cluster.admits(ep)) return null;
  return new Lease(cluster, ep, null, true);
}
