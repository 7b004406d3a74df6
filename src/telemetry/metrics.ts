/**
 * Every metric outrigger exports, declared in one list (docs/metrics.md), on a registry of
 * its own so that several proxies can live in one process (tests). The request path never looks
 * a label set up: routes and clusters cache their children when a config snapshot is built.
 */
import client from 'prom-client';

export type Direction = 'inbound' | 'outbound';

/** Latency buckets in seconds, Envoy-like: sub-millisecond resolution where a sidecar lives. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new client.Registry();

  readonly requests = new client.Counter({
    name: 'outrigger_requests_total',
    help: 'Requests answered, by the status sent to the client.',
    labelNames: ['direction', 'route', 'cluster', 'code'] as const,
    registers: [this.registry],
  });
  readonly duration = new client.Histogram({
    name: 'outrigger_request_duration_seconds',
    help: 'Time from the request head to the last byte of the response.',
    labelNames: ['direction', 'route', 'cluster'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly retries = new client.Counter({
    name: 'outrigger_upstream_retries_total',
    help: 'Retries sent to a cluster.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });
  readonly retryBudgetExhausted = new client.Counter({
    name: 'outrigger_upstream_retry_budget_exhausted_total',
    help: 'Retries not made because the cluster retry budget was spent.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });
  readonly upstreamErrors = new client.Counter({
    name: 'outrigger_upstream_errors_total',
    help: 'Failed upstream attempts and local refusals, by reason.',
    labelNames: ['cluster', 'reason'] as const,
    registers: [this.registry],
  });
  readonly breakerState = new client.Gauge({
    name: 'outrigger_circuit_breaker_state',
    help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });
  readonly endpointHealthy = new client.Gauge({
    name: 'outrigger_endpoint_healthy',
    help: '1 when the endpoint may receive traffic (healthy and not ejected).',
    labelNames: ['cluster', 'endpoint'] as const,
    registers: [this.registry],
  });
  readonly ejections = new client.Counter({
    name: 'outrigger_outlier_ejections_total',
    help: 'Endpoints ejected by outlier detection.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });
  readonly overflows = new client.Counter({
    name: 'outrigger_overflow_total',
    help: 'Requests refused with 503 overflow, by the limit that refused them.',
    labelNames: ['direction', 'limit'] as const,
    registers: [this.registry],
  });
  /**
   * Requests in flight, read from the listeners when scraped: counting into a gauge child on
   * every request start and end was a visible share of the request path.
   */
  readonly active = new client.Gauge({
    name: 'outrigger_active_requests',
    help: 'Requests in flight.',
    labelNames: ['direction'] as const,
    registers: [this.registry],
    collect: () => {
      const a = this.activeSource();
      this.active.labels('inbound').set(a.inbound);
      this.active.labels('outbound').set(a.outbound);
    },
  });
  /** Set by the proxy: how many requests each direction has in flight. */
  activeSource: () => { inbound: number; outbound: number } = () => ({ inbound: 0, outbound: 0 });
  readonly configReloads = new client.Counter({
    name: 'outrigger_config_reloads_total',
    help: 'Config reloads, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly configLastReloadOk = new client.Gauge({
    name: 'outrigger_config_last_reload_successful',
    help: '1 when the last config load succeeded.',
    registers: [this.registry],
  });
  readonly dnsFailures = new client.Counter({
    name: 'outrigger_dns_resolution_failures_total',
    help: 'Failed DNS resolutions of dns clusters.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });
  readonly tlsHandshakeErrors = new client.Counter({
    name: 'outrigger_tls_handshake_errors_total',
    help: 'Failed inbound TLS handshakes and refused client certificates, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly edgeRejections = new client.Counter({
    name: 'outrigger_http_rejected_total',
    help: 'Requests refused at the HTTP edge (malformed or ambiguous), by status.',
    labelNames: ['direction', 'status'] as const,
    registers: [this.registry],
  });

  constructor(defaultMetrics = true) {
    if (defaultMetrics) client.collectDefaultMetrics({ register: this.registry });
    this.active.labels('inbound').set(0);
    this.active.labels('outbound').set(0);
    this.configLastReloadOk.set(0);
  }

  /** The cached children of one (direction, route, cluster) triple. */
  routeStats(direction: Direction, route: string, cluster: string): RouteStats {
    return new RouteStats(this, direction, route, cluster);
  }
}

/** Children for one route×cluster pair, built once per snapshot; `code` children built lazily once. */
export class RouteStats {
  readonly duration: client.Histogram.Internal<string>;
  private readonly byCode = new Map<number, client.Counter.Internal>();

  constructor(
    private readonly m: Metrics,
    readonly direction: Direction,
    readonly route: string,
    readonly cluster: string,
  ) {
    this.duration = m.duration.labels(direction, route, cluster);
  }

  observe(status: number, seconds: number): void {
    let c = this.byCode.get(status);
    if (c === undefined) {
      c = this.m.requests.labels(this.direction, this.route, this.cluster, String(status));
      this.byCode.set(status, c);
    }
    c.inc();
    this.duration.observe(seconds);
  }
}
