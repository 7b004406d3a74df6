/**
 * A cluster: its endpoints (static or discovered by DNS), their connection pools, its load
 * balancer, and the resilience state that belongs to it (breaker, retry budget, active health
 * checks, outlier detection). A cluster object outlives config snapshots as long as its config
 * does not change, so pools, health, ejections and breaker state survive reloads.
 */
import { Pool } from 'undici';
import type { Address, ClusterConfig } from '../config/types.js';
import type { Logger } from '../telemetry/log.js';
import type { Metrics } from '../telemetry/metrics.js';
import { ClusterBreaker } from '../resilience/breaker.js';
import { RetryBudget } from '../resilience/budget.js';
import { OutlierDetector } from './health/outlier.js';
import { HealthChecker } from './health/active.js';
import { DnsDiscovery } from './dns.js';
import { Endpoint, addressKey } from './endpoint.js';
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

export class Cluster {
  readonly name: string;
  endpoints: Endpoint[] = [];
  readonly lb: LoadBalancer<Endpoint>;
  readonly breaker: ClusterBreaker | null;
  readonly budget: RetryBudget;
  private readonly outlier: OutlierDetector | null;
  private readonly health: HealthChecker | null;
  private readonly dns: DnsDiscovery | null;
  /** requests in flight across all endpoints */
  active = 0;
  private readonly pendingLimit: number;
  private retired = false;
  /** settles once the first DNS answer (or failure) is in; immediately for static clusters */
  readonly ready: Promise<void>;
  readonly hashHeader: string | null;
  private degraded = false;

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
    this.pendingLimit = config.maxPending;
    this.budget = new RetryBudget(config.retryBudget);

    const breakerGauge = m.breakerState.labels(this.name);
    breakerGauge.set(0);
    this.breaker =
      config.circuitBreaker === null
        ? null
        : new ClusterBreaker(this.name, config.circuitBreaker, (s) => {
            breakerGauge.set(BREAKER_GAUGE[s]);
            if (s === 'open') deps.log.warn({ cluster: this.name }, 'circuit breaker opened');
            else if (s === 'closed') deps.log.warn({ cluster: this.name }, 'circuit breaker closed');
            else deps.log.info({ cluster: this.name }, 'circuit breaker half-open');
          });

    const ejections = m.ejections.labels(this.name);
    this.outlier =
      config.outlierDetection === null
        ? null
        : new OutlierDetector(config.outlierDetection, () => this.endpoints, (ep, ejected) => {
            if (ejected) ejections.inc();
            deps.log.warn({ cluster: this.name, endpoint: ep.key }, ejected ? 'endpoint ejected' : 'endpoint returned from ejection');
            this.endpointChanged(ep);
          });
    this.health =
      config.healthCheck === null
        ? null
        : new HealthChecker(config.healthCheck, () => this.endpoints, (ep, healthy) => {
            deps.log.warn({ cluster: this.name, endpoint: ep.key }, healthy ? 'endpoint healthy' : 'endpoint unhealthy');
            this.endpointChanged(ep);
          });

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
            deps.log.warn({ cluster: this.name, name: dns.name, err: err.message }, 'dns resolution failed; keeping last endpoints');
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
    const host = a.host.includes(':') ? `[${a.host}]` : a.host;
    const scheme = this.deps.tls === null ? 'http' : 'https';
    const c = this.config;
    const pool = new Pool(`${scheme}://${host}:${a.port}`, {
      connections: c.maxConnectionsPerEndpoint,
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
    return new Endpoint(a, pool);
  }

  /** DNS answered: keep endpoints (and pools) that stayed, add new ones, retire the rest. */
  private setAddresses(addrs: readonly Address[]): void {
    const old = new Map<string, Endpoint>();
    for (const ep of this.endpoints) old.set(ep.key, ep);
    const next: Endpoint[] = [];
    for (const a of addrs) {
      const key = addressKey(a);
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
      this.deps.metrics.endpointHealthy.remove(this.name, ep.key);
      // close() lets requests in flight finish before the sockets go
      void ep.pool.close().catch(() => undefined);
    }
    this.deps.log.info({ cluster: this.name, endpoints: next.map((e) => e.key) }, 'endpoints updated');
  }

  private endpointChanged(ep: Endpoint): void {
    if (this.retired) return;
    this.deps.metrics.endpointHealthy.labels(this.name, ep.key).set(ep.available ? 1 : 0);
    let anyAvailable = false;
    for (const e of this.endpoints) if (e.available) anyAvailable = true;
    const degraded = this.endpoints.length > 0 && !anyAvailable;
    if (degraded !== this.degraded) {
      this.degraded = degraded;
      if (degraded) this.deps.log.warn({ cluster: this.name }, 'no healthy endpoint left');
      else this.deps.log.warn({ cluster: this.name }, 'cluster has healthy endpoints again');
    }
  }

  /** True when a new request would queue past `maxPending`. */
  overflowing(): boolean {
    return this.active >= this.endpoints.length * this.config.maxConnectionsPerEndpoint + this.pendingLimit;
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

  /** Removed from the config: stop checks now, close pools once in-flight requests finished. */
  async retire(): Promise<void> {
    if (this.retired) return;
    this.retired = true;
    this.dns?.stop();
    this.health?.stop();
    this.outlier?.stop();
    this.breaker?.shutdown();
    for (const ep of this.endpoints) this.deps.metrics.endpointHealthy.remove(this.name, ep.key);
    this.deps.metrics.breakerState.remove(this.name);
    await Promise.all(this.endpoints.map((ep) => ep.pool.close().catch(() => undefined)));
  }

  /** Closes at once (process exit). */
  async destroy(): Promise<void> {
    this.retired = true;
    this.dns?.stop();
    this.health?.stop();
    this.outlier?.stop();
    this.breaker?.shutdown();
    await Promise.all(this.endpoints.map((ep) => ep.pool.destroy().catch(() => undefined)));
  }

  describe(): Record<string, unknown> {
    return {
      name: this.name,
      discovery: this.config.dns === null ? 'static' : `dns:${this.config.dns.name}:${this.config.dns.port}`,
      loadBalancer: this.lb.describe(),
      circuitBreaker: this.breaker === null ? 'disabled' : this.breaker.state,
      activeRequests: this.active,
      retryBudget: { ratio: this.config.retryBudget.ratio, minPerSecond: this.config.retryBudget.minPerSecond, refused: this.budget.refused },
      endpoints: this.endpoints.map((ep) => ({
        address: ep.key,
        healthy: ep.healthy,
        ejected: ep.ejected,
        ejections: ep.ejections,
        available: ep.available,
        activeRequests: ep.active,
      })),
    };
  }
}
