/**
 * A cluster: its endpoints (static or discovered by DNS), their connection pools, its load
 * balancer, and the resilience state that belongs to it (breaker, retry budget, active health
 * checks, outlier detection). A cluster object outlives config snapshots as long as its config
 * does not change, so pools, health, ejections and breaker state survive reloads.
 *
 * It also owns the overflow limits, Envoy style. `maxConnectionsPerEndpoint` is the undici Pool's
 * `connections`: sockets per endpoint are capped there, and with pipelining 1 an attempt beyond
 * the cap waits in the pool's queue. `maxPending` bounds that waiting: an attempt that would have
 * to wait while `maxPending` attempts already wait across the cluster is refused at once (503
 * overflow) instead of joining an unbounded queue. Waiting attempts are counted from the
 * endpoints' `active` (Σ max(0, active − maxConnectionsPerEndpoint)), which mirrors and tunnels
 * bump too, so nothing has to keep a second counter in step.
 */
import { Pool, type Dispatcher } from 'undici';
import type { Address, ClusterConfig } from '../config/types.js';
import type { Logger } from '../telemetry/log.js';
import type { Direction, Metrics } from '../telemetry/metrics.js';
import { ClusterBreaker } from '../resilience/breaker.js';
import { RetryBudget } from '../resilience/budget.js';
import { DegradedEpisode } from '../resilience/degraded.js';
import { OutlierDetector } from './health/outlier.js';
import { HealthChecker } from './health/active.js';
import { DnsDiscovery } from './dns.js';
import { formatAddress } from '../config/address.js';
import { Endpoint, type PanicMode } from './endpoint.js';
import { createLoadBalancer } from './lb/index.js';
import type { LoadBalancer } from './lb/types.js';

/** undici `connect` options a cluster's pools use (TLS material included when configured). */
export type ConnectOptions = Record<string, unknown>;

export interface ClusterDeps {
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly resolvers: readonly Address[] | null;
  /** TLS connect options, already built from the cluster's tls files; null for plain TCP */
  readonly tls: ConnectOptions | null;
  /** fingerprint of the TLS material, so a rotation rebuilds the pools */
  readonly tlsFingerprint: string;
}

const BREAKER_GAUGE = { closed: 0, 'half-open': 1, open: 2 } as const;

/**
 * How long a retired cluster waits for its requests in flight (retries and backoffs included)
 * before it closes its pools. Closing is graceful anyway (undici lets running requests finish);
 * the wait keeps the pools open for retries of requests that started on the old config.
 */
export const RETIRE_GRACE_MS = 30_000;

/**
 * Which cluster object owns a cluster name's metric series. A changed cluster is rebuilt under
 * the same name before the old one retires: the old one must not remove the new one's series.
 */
const seriesOwners = new WeakMap<Metrics, Map<string, Cluster>>();

export class Cluster {
  readonly name: string;
  endpoints: Endpoint[] = [];
  readonly lb: LoadBalancer<Endpoint>;
  readonly breaker: ClusterBreaker | null;
  readonly budget: RetryBudget;
  private readonly outlier: OutlierDetector | null;
  private readonly health: HealthChecker | null;
  private readonly dns: DnsDiscovery | null;
  /**
   * Requests in flight on this cluster (client requests from their first attempt to their end,
   * backoffs included; mirrors and tunnels count too). `retire()` waits for it to reach 0.
   */
  active = 0;
  private readonly maxConnections: number;
  private readonly pendingLimit: number;
  private retired = false;
  private onIdle: (() => void) | null = null;
  private readonly overflowEpisode: DegradedEpisode;
  private readonly budgetEpisode: DegradedEpisode;
  private overflowCount = 0;
  private readonly overflowCounters: [{ inc(): void } | null, { inc(): void } | null] = [null, null];
  /** the breaker opened and has not closed since (half-open probes included) */
  private breakerDegraded = false;
  /** each endpoint's health-check connection (apart from its request sockets) */
  private readonly checkPools = new Map<Endpoint, Pool>();
  /** settles once the first DNS answer (or failure) is in; immediately for static clusters */
  readonly ready: Promise<void>;
  readonly hashHeader: string | null;
  private degraded = false;
  /** shared with this cluster's endpoints: on while fewer than `panicThreshold`% of them are up */
  private readonly panic: PanicMode = { on: false };

  constructor(
    readonly config: ClusterConfig,
    private readonly deps: ClusterDeps,
  ) {
    this.name = config.name;
    this.hashHeader = config.hashOn?.header ?? null;
    const m = deps.metrics;
    const endpoints = (config.endpoints ?? []).map((a) => this.makeEndpoint(a));
    this.endpoints = endpoints;
    this.lb = createLoadBalancer<Endpoint>(config.loadBalancer, endpoints);
    this.maxConnections = config.maxConnectionsPerEndpoint;
    this.pendingLimit = config.maxPending;
    this.budget = new RetryBudget(config.retryBudget);
    let owners = seriesOwners.get(m);
    if (owners === undefined) seriesOwners.set(m, (owners = new Map()));
    // Taking over the name from the cluster this one replaces: the endpoints it had and this one
    // has not are gone from the config, so are their series (the old cluster, no longer the
    // owner, leaves them alone when it retires).
    const previous = owners.get(this.name);
    if (previous !== undefined && previous !== this) {
      const kept = new Set((config.endpoints ?? []).map(formatAddress));
      for (const ep of previous.endpoints) if (!kept.has(ep.key)) m.endpointHealthy.remove(this.name, ep.key);
    }
    owners.set(this.name, this);

    this.overflowEpisode = new DegradedEpisode(
      () => deps.log.warn({ maxPending: this.pendingLimit }, 'cluster overflowing: requests refused with 503 overflow'),
      (n) => deps.log.warn({ refused: n }, 'cluster no longer overflowing'),
    );
    this.budgetEpisode = new DegradedEpisode(
      () => deps.log.warn({ ...config.retryBudget }, 'retry budget exhausted: retries refused'),
      (n) => deps.log.warn({ refused: n }, 'retry budget no longer exhausted'),
    );

    const breakerGauge = m.breakerState.labels(this.name);
    breakerGauge.set(0);
    this.breaker =
      config.circuitBreaker === null
        ? null
        : new ClusterBreaker(this.name, config.circuitBreaker, (s) => {
            if (this.retired) return;
            breakerGauge.set(BREAKER_GAUGE[s]);
            // One warning when the outage starts and one when it ends; the probe cycles in
            // between (half-open, open again) are info.
            if (s === 'open' && !this.breakerDegraded) {
              this.breakerDegraded = true;
              deps.log.warn('circuit breaker opened: requests fail with 503 circuit_open');
            } else if (s === 'closed' && this.breakerDegraded) {
              this.breakerDegraded = false;
              deps.log.warn('circuit breaker closed');
            } else {
              deps.log.info({ state: s }, 'circuit breaker ' + s);
            }
          });

    const ejections = m.ejections.labels(this.name);
    this.outlier =
      config.outlierDetection === null
        ? null
        : new OutlierDetector(
            config.outlierDetection,
            () => this.endpoints,
            (ep, ejected) => {
              if (ejected) ejections.inc();
              deps.log.warn({ endpoint: ep.key }, ejected ? 'endpoint ejected' : 'endpoint returned from ejection');
              this.endpointChanged(ep);
            },
          );
    this.health =
      config.healthCheck === null
        ? null
        : new HealthChecker(
            config.healthCheck,
            () => this.endpoints,
            (ep, healthy) => {
              deps.log.warn({ endpoint: ep.key }, healthy ? 'endpoint healthy' : 'endpoint unhealthy');
              this.endpointChanged(ep);
            },
            undefined,
            (ep) => this.checkPool(ep),
          );

    if (config.dns !== null) {
      const dns = config.dns;
      const failures = m.dnsFailures.labels(this.name);
      this.dns = new DnsDiscovery({
        name: dns.name,
        port: dns.port,
        refresh: dns.refresh,
        servers: deps.resolvers,
        onUpdate: (addrs) => this.setAddresses(addrs),
        onError: (err, consecutive) => {
          failures.inc();
          if (consecutive === 1) {
            deps.log.warn({ name: dns.name, err: err.message }, 'dns resolution failed; keeping last endpoints');
          }
        },
      });
      this.ready = this.dns.firstResult;
    } else {
      this.dns = null;
      this.ready = Promise.resolve();
    }
    for (const ep of endpoints) this.endpointChanged(ep);
  }

  /** The TLS options its pools connect with (tls.connect-compatible), null for plain TCP; tunnels dial with them. */
  get connectOptions(): ConnectOptions | null {
    return this.deps.tls;
  }

  /** Starts health checks and DNS refreshes (after the cluster is part of a live snapshot). */
  start(): void {
    this.dns?.start();
    this.health?.start();
  }

  private makeEndpoint(a: Address): Endpoint {
    return new Endpoint(a, this.makePool(a, this.config.maxConnectionsPerEndpoint), this.panic);
  }

  /** The health checker's own one-socket pool for `ep`, made on first use. */
  private checkPool(ep: Endpoint): Dispatcher {
    let p = this.checkPools.get(ep);
    if (p === undefined) {
      p = this.makePool(ep.address, 1);
      this.checkPools.set(ep, p);
    }
    return p;
  }

  private closeCheckPool(ep: Endpoint, destroy: boolean): void {
    const p = this.checkPools.get(ep);
    if (p === undefined) return;
    this.checkPools.delete(ep);
    void (destroy ? p.destroy() : p.close()).catch(() => undefined);
  }

  private makePool(a: Address, connections: number): Pool {
    const scheme = this.deps.tls === null ? 'http' : 'https';
    const c = this.config;
    return new Pool(`${scheme}://${formatAddress(a)}`, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      // Whole-request and per-try deadlines are the forwarder's; undici's 300 s defaults would
      // only mask them.
      headersTimeout: 0,
      bodyTimeout: 0,
      strictContentLength: true,
      connect: { timeout: c.connectTimeout, noDelay: true, keepAlive: true, ...(this.deps.tls ?? {}) },
    });
  }

  /** DNS answered: keep endpoints (and pools) that stayed, add new ones, retire the rest. */
  private setAddresses(addrs: readonly Address[]): void {
    const old = new Map<string, Endpoint>();
    for (const ep of this.endpoints) old.set(ep.key, ep);
    const next: Endpoint[] = [];
    for (const a of addrs) {
      const key = formatAddress(a);
      const kept = old.get(key);
      if (kept !== undefined) {
        next.push(kept);
        old.delete(key);
      } else {
        const ep = this.makeEndpoint(a);
        next.push(ep);
      }
    }
    this.endpoints = next;
    this.lb.update(next);
    for (const ep of next) this.endpointChanged(ep);
    for (const ep of old.values()) {
      if (this.ownsSeries()) this.deps.metrics.endpointHealthy.remove(this.name, ep.key);
      this.closeCheckPool(ep, false);
      // close() lets requests in flight finish before the sockets go
      void ep.pool.close().catch(() => undefined);
    }
    this.deps.log.info({ endpoints: next.map((e) => e.key) }, 'endpoints updated');
  }

  private endpointChanged(ep: Endpoint): void {
    if (this.retired) return;
    this.deps.metrics.endpointHealthy.labels(this.name, ep.key).set(ep.up ? 1 : 0);
    const n = this.endpoints.length;
    let up = 0;
    for (const e of this.endpoints) if (e.up) up++;
    const degraded = n > 0 && up === 0;
    if (degraded !== this.degraded) {
      this.degraded = degraded;
      if (degraded) this.deps.log.warn('no healthy endpoint left');
      else this.deps.log.warn('cluster has healthy endpoints again');
    }
    // Envoy's healthy panic threshold, short of none: with no endpoint up the answer stays
    // 503 no_healthy_upstream rather than traffic to endpoints known to be down.
    const panic = up > 0 && up * 100 < n * this.config.panicThreshold;
    if (panic !== this.panic.on) {
      this.panic.on = panic;
      if (panic) {
        this.deps.log.warn(
          { up, endpoints: n, panicThreshold: this.config.panicThreshold },
          'panic mode: balancing across every endpoint, healthy or not',
        );
      } else this.deps.log.warn({ up, endpoints: n }, 'panic mode over');
    }
  }

  /** Attempts waiting for a connection in the endpoints' pools (beyond their socket cap). */
  queued(): number {
    const max = this.maxConnections;
    const eps = this.endpoints;
    let q = 0;
    for (let i = 0; i < eps.length; i++) {
      const a = eps[i]!.active;
      if (a > max) q += a - max;
    }
    return q;
  }

  /**
   * Whether an attempt on `ep` may start: it gets a connection of its own, or the cluster's
   * queue has room. The common case (a free connection) reads one field.
   */
  admits(ep: Endpoint): boolean {
    return ep.active < this.maxConnections || this.queued() < this.pendingLimit;
  }

  /** True when the queue is full (for callers that check before picking an endpoint). */
  overflowing(): boolean {
    return this.queued() >= this.pendingLimit;
  }

  /** An attempt was refused by `maxPending`: counted, and logged once per episode. */
  overflowed(direction: Direction): void {
    this.overflowCount++;
    const slot = direction === 'inbound' ? 0 : 1;
    let c = this.overflowCounters[slot];
    if (c === null) c = this.overflowCounters[slot] = this.deps.metrics.overflows.labels(direction, 'maxPending');
    c.inc();
    this.overflowEpisode.hit();
  }

  /** Asks the retry budget for one retry; a refusal is counted and logged once per episode. */
  tryRetry(): boolean {
    if (this.budget.tryRetry()) return true;
    this.budgetEpisode.hit();
    return false;
  }

  /** A client request starts using this cluster (before its first attempt). */
  requestStarted(): void {
    this.active++;
  }

  /** A client request that `requestStarted` is over (its response finished or was cut). */
  requestEnded(): void {
    if (--this.active <= 0 && this.onIdle !== null) {
      const f = this.onIdle;
      this.onIdle = null;
      f();
    }
  }

  pick(hashKey: string | undefined, avoid: Endpoint | undefined): Endpoint | null {
    return this.lb.pick(hashKey, avoid);
  }

  onAttemptResult(ep: Endpoint, failure: boolean): void {
    if (this.outlier !== null) {
      if (failure) this.outlier.onFailure(ep);
      else this.outlier.onSuccess(ep);
    }
  }

  /** Whether this cluster can serve the given config without rebuilding. */
  sameAs(cfg: ClusterConfig, tlsFingerprint: string, clusterChanged: (a: ClusterConfig, b: ClusterConfig) => boolean): boolean {
    return !clusterChanged(this.config, cfg) && tlsFingerprint === this.deps.tlsFingerprint;
  }

  /**
   * Removed from the config: stops checks and DNS now, keeps the pools for the requests in
   * flight (their retries included) until `active` reaches 0 or `graceMs` passed, then closes
   * them gracefully (running requests still finish).
   */
  async retire(graceMs: number = RETIRE_GRACE_MS): Promise<void> {
    if (this.retired) return;
    this.stopAll();
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        // requestEnded() wakes us; the poll covers callers that bump `active` by hand (tunnels)
        const deadline = Date.now() + graceMs;
        const poll = setInterval(
          () => {
            if (this.active <= 0 || Date.now() >= deadline) done();
          },
          Math.min(250, Math.max(1, graceMs)),
        );
        poll.unref();
        const done = (): void => {
          clearInterval(poll);
          this.onIdle = null;
          resolve();
        };
        this.onIdle = done;
      });
    }
    await Promise.all(this.endpoints.map((ep) => ep.pool.close().catch(() => undefined)));
  }

  /** Closes at once (process exit, or a snapshot that never went live). */
  async destroy(): Promise<void> {
    this.stopAll();
    const idle = this.onIdle;
    this.onIdle = null;
    idle?.();
    await Promise.all(this.endpoints.map((ep) => ep.pool.destroy().catch(() => undefined)));
  }

  private ownsSeries(): boolean {
    return seriesOwners.get(this.deps.metrics)?.get(this.name) === this;
  }

  private stopAll(): void {
    if (this.retired) return;
    this.retired = true;
    this.dns?.stop();
    this.health?.stop();
    this.outlier?.stop();
    this.breaker?.shutdown();
    this.overflowEpisode.stop();
    this.budgetEpisode.stop();
    for (const ep of [...this.checkPools.keys()]) this.closeCheckPool(ep, true);
    if (this.ownsSeries()) {
      seriesOwners.get(this.deps.metrics)?.delete(this.name);
      for (const ep of this.endpoints) this.deps.metrics.endpointHealthy.remove(this.name, ep.key);
      this.deps.metrics.breakerState.remove(this.name);
    }
  }

  /** State for `GET /clusters` (JSON-serialisable). */
  describe(): Record<string, unknown> {
    return {
      name: this.name,
      discovery: this.config.dns === null ? 'static' : `dns:${this.config.dns.name}:${this.config.dns.port}`,
      loadBalancer: this.lb.describe(),
      circuitBreaker: this.breaker === null ? 'disabled' : this.breaker.state,
      panic: this.panic.on,
      activeRequests: this.active,
      limits: {
        maxConnectionsPerEndpoint: this.maxConnections,
        maxPending: this.pendingLimit,
        queued: this.queued(),
        overflows: this.overflowCount,
      },
      retryBudget: {
        ratio: this.config.retryBudget.ratio,
        minPerSecond: this.config.retryBudget.minPerSecond,
        available: Math.floor(this.budget.available),
        refused: this.budget.refused,
      },
      endpoints: this.endpoints.map((ep) => ({
        address: ep.key,
        healthy: ep.healthy,
        ejected: ep.ejected,
        ejections: ep.ejections,
        available: ep.up,
        activeRequests: ep.active,
      })),
    };
  }
}
