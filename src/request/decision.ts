/**
 * What admission decides about one request: a `Decision` (where it goes and under which
 * policies) or a `Refusal` (the proxy-made answer). Both are values, made once per request by
 * admit.ts and never changed after; the exchange, tunnel and mirror that carry a decision out
 * only read it, and the report reads the labels both share.
 */
import type { Cluster } from '../cluster/cluster.js';
import type { PassthroughPools } from '../cluster/passthrough.js';
import type { ProxyError } from '../errors.js';
import type { RetryPolicy } from '../resilience/retry.js';
import type { CompiledHeaderOps } from '../router/table.js';
import type { RouteStats } from '../telemetry/metrics.js';

/** How the request arrived: a plain request, an `Upgrade` request, or `CONNECT host:port`. */
export type RequestKind = 'http' | 'upgrade' | 'connect';

/** What metrics and the access line say of a request, admitted or not. */
export interface RequestLabels {
  /** route name; `app` inbound, `passthrough`, `no_route`, or `none` before routing */
  readonly route: string;
  readonly clusterName: string;
  /** the route × cluster metric children; null before routing (counted under none/none) */
  readonly stats: RouteStats | null;
  /** lower-case host without port once routed; the raw Host header before */
  readonly host: string | undefined;
  /** the normalised path (without its query: queries carry tokens) */
  readonly path: string;
  readonly requestId: string | null;
  readonly traceId: string | null;
}

export interface Decision extends RequestLabels {
  readonly admitted: true;
  readonly kind: RequestKind;
  readonly stats: RouteStats;
  /** the cluster an endpoint is leased from; null sends to `origin` through `passthrough` */
  readonly cluster: Cluster | null;
  readonly passthrough: PassthroughPools;
  /** passthrough and CONNECT-passthrough: `host:port` as the client named it; '' for a cluster */
  readonly origin: string;
  /** whole-request timeout (ms, 0 = none); for tunnels, the wait for the upstream's answer */
  readonly timeout: number;
  readonly retry: RetryPolicy;
  /** route response header policy; null when it has none */
  readonly responseOps: CompiledHeaderOps | null;
  /** path + query sent upstream (after rewrite) */
  readonly upstreamPath: string;
  /** flat upstream request headers (hop-by-hop out, forwarding headers in, policies applied) */
  readonly upstreamHeaders: string[];
  /** ring-hash key (the configured header, else the client address) */
  readonly hashKey: string | undefined;
  /** fault delay before the request starts (ms, 0 = none) */
  readonly delayMs: number;
  /** the cluster a copy goes to (the mirror's percent already rolled); null = no copy */
  readonly mirror: Cluster | null;
  /** tunnels: close after this long without a byte either way (ms, 0 = never) */
  readonly idleTimeout: number;
}

export interface Refusal extends RequestLabels {
  readonly admitted: false;
  readonly error: ProxyError;
  /** the connection closes after the answer (the request's framing or the listener's state) */
  readonly close: boolean;
}

export type Admitted = Decision | Refusal;
