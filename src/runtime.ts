/**
 * A runtime snapshot: everything the request path reads, built from one Config and frozen.
 * Building one reuses the clusters (pools, health, breakers) of the previous snapshot whose
 * config did not change; a request keeps the snapshot it started with until it finishes.
 */
import { createHash } from 'node:crypto';
import type { ClusterConfig, Config, InboundConfig, OutboundConfig } from './config/types.js';
import { clusterChanged } from './config/diff.js';
import { CLUSTER, RETRY_BUDGET, defaultsOf } from './config/fields.js';
import { Cluster, type ConnectOptions } from './cluster/cluster.js';
import { RouteTable } from './router/table.js';
import { compileRetryPolicy, type RetryPolicy } from './resilience/retry.js';
import { TokenBucket } from './resilience/ratelimit.js';
import { compileAuthorization, type Authorizer } from './security/authz.js';
import { clusterConnectOptions, readTlsMaterial } from './security/tls.js';
import type { Logger } from './telemetry/log.js';
import type { Metrics, RouteStats } from './telemetry/metrics.js';
import { PassthroughPools } from './cluster/passthrough.js';

export interface RuntimeDeps {
  readonly metrics: Metrics;
  readonly log: Logger;
}

export class Runtime {
  constructor(
    readonly config: Config,
    readonly clusters: ReadonlyMap<string, Cluster>,
    readonly routes: RouteTable | null,
    readonly appCluster: Cluster | null,
    readonly passthrough: PassthroughPools,
    readonly authorizer: Authorizer | null,
    readonly inboundBucket: TokenBucket | null,
    readonly inboundStats: RouteStats,
    readonly passthroughStats: RouteStats,
    readonly noRouteStats: RouteStats,
  ) {}

  readonly appRetry: RetryPolicy = compileRetryPolicy(null);
  readonly defaultRetry: RetryPolicy = compileRetryPolicy(null);

  get inbound(): InboundConfig | null {
    return this.config.inbound;
  }
  get outbound(): OutboundConfig | null {
    return this.config.outbound;
  }

  /** Every cluster this snapshot uses, the inbound app's included. */
  allClusters(): Cluster[] {
    const all = [...this.clusters.values()];
    if (this.appCluster !== null) all.push(this.appCluster);
    return all;
  }

  /** Settles when every DNS cluster answered (or failed) once. */
  ready(): Promise<void> {
    return Promise.all(this.allClusters().map((c) => c.ready)).then(() => undefined);
  }
}

/**
 * The inbound app as a cluster of one endpoint, so it shares the forwarding machinery: a
 * cluster's defaults (fields.ts), with room for every inbound request and no panic mode (one
 * endpoint has no others to spread over).
 */
function appClusterConfig(inbound: InboundConfig): ClusterConfig {
  return {
    ...defaultsOf(CLUSTER),
    name: 'app',
    endpoints: [inbound.app],
    dns: null,
    hashOn: null,
    maxConnectionsPerEndpoint: 1024,
    maxPending: inbound.maxConcurrent,
    healthCheck: null,
    outlierDetection: null,
    panicThreshold: 0,
    circuitBreaker: null,
    retryBudget: defaultsOf(RETRY_BUDGET),
    tls: null,
  };
}

async function tlsFor(cfg: ClusterConfig): Promise<{ opts: ConnectOptions | null; fingerprint: string }> {
  if (cfg.tls === null) return { opts: null, fingerprint: '' };
  const material = await readTlsMaterial({ cert: cfg.tls.cert, key: cfg.tls.key, ca: cfg.tls.ca });
  const h = createHash('sha256');
  for (const b of [material.cert, material.key, material.ca]) h.update(b ?? '').update('\0');
  return { opts: clusterConnectOptions(cfg.tls, material) as unknown as ConnectOptions, fingerprint: h.digest('hex') };
}

export interface BuildResult {
  readonly runtime: Runtime;
  /** clusters made for this snapshot (start them once it is live; destroy them if it is not used) */
  readonly created: readonly Cluster[];
  /** clusters of the previous snapshot that this one no longer uses */
  readonly dropped: readonly Cluster[];
}

/** Builds a snapshot; throws (with nothing left open) when TLS material cannot be read. */
export async function buildRuntime(config: Config, prev: Runtime | null, deps: RuntimeDeps): Promise<BuildResult> {
  const created: Cluster[] = [];
  const reused = new Set<Cluster>();
  try {
    const clusters = new Map<string, Cluster>();
    const reuse = async (cfg: ClusterConfig, old: Cluster | null | undefined): Promise<Cluster> => {
      const tls = await tlsFor(cfg);
      if (old != null && old.sameAs(cfg, tls.fingerprint, clusterChanged)) {
        reused.add(old);
        return old;
      }
      const c = new Cluster(cfg, {
        metrics: deps.metrics,
        log: deps.log.child({ cluster: cfg.name }),
        resolvers: config.resolver.servers,
        tls: tls.opts,
        tlsFingerprint: tls.fingerprint,
      });
      created.push(c);
      return c;
    };
    for (const [name, cfg] of Object.entries(config.clusters)) {
      clusters.set(name, await reuse(cfg, prev?.clusters.get(name)));
    }
    const appCluster = config.inbound === null ? null : await reuse(appClusterConfig(config.inbound), prev?.appCluster);
    const routes = config.outbound === null ? null : new RouteTable(config.outbound, clusters, deps.metrics);
    const sameResolvers = prev !== null && JSON.stringify(prev.config.resolver.servers) === JSON.stringify(config.resolver.servers);
    const passthrough = sameResolvers && prev !== null ? prev.passthrough : new PassthroughPools(config.resolver.servers);
    const inbound = config.inbound;
    const m = deps.metrics;
    const runtime = new Runtime(
      config,
      clusters,
      routes,
      appCluster,
      passthrough,
      inbound?.authorization == null ? null : compileAuthorization(inbound.authorization),
      inbound?.rateLimit == null ? null : new TokenBucket(inbound.rateLimit.requestsPerSecond, inbound.rateLimit.burst),
      m.routeStats('inbound', 'app', 'app'),
      m.routeStats('outbound', 'passthrough', 'passthrough'),
      m.routeStats('outbound', 'no_route', 'no_route'),
    );
    const dropped: Cluster[] = [];
    if (prev !== null) for (const c of prev.allClusters()) if (!reused.has(c)) dropped.push(c);
    return { runtime, created, dropped };
  } catch (err) {
    await Promise.all(created.map((c) => c.destroy()));
    throw err;
  }
}
