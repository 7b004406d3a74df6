/**
 * Admission: the front half of every request, whatever its kind (plain, Upgrade, CONNECT) and
 * whatever codec parsed it. In this order:
 *
 *   draining refusal → listener config present → edge check (framing, limits) → target and path
 *   → maxConcurrent → forwarding headers (ids, trace, via) and the loop check → inbound:
 *   authorization, rate limit | outbound: route (or passthrough / no_route), the self-target
 *   check, route rate limit, fault abort → fault delay, mirror roll, hash key
 *
 * The result is a `Decision` (decision.ts) for the exchange or tunnel to carry out, or a
 * `Refusal` for the codec to answer; nothing here touches a socket or a response object. An
 * admitted request counts in `active` until its report releases it (report.ts).
 */
import { proxyError, type ProxyError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import type { CompiledRoute } from '../router/table.js';
import { DegradedEpisode } from '../resilience/degraded.js';
import { checkRequestHead } from '../security/edge.js';
import { normalizePath } from '../security/normalize.js';
import type { Logger } from '../telemetry/log.js';
import type { Direction, Metrics } from '../telemetry/metrics.js';
import type { Admitted, Decision, Refusal, RequestKind } from './decision.js';
import { upstreamRequestHeaders, type ForwardingInfo } from './headers.js';
import { viaEntry, type OwnAddresses } from './loop.js';
import { authorityPort, hostOnly, hostPort, parseTarget, splitHostPort } from './target.js';

/** The request head as a codec hands it over (node:http's IncomingMessage is one). */
export interface RequestHead {
  readonly method?: string | undefined;
  /** the request-target as sent */
  readonly url?: string | undefined;
  /** flat [name, value, ...] as received */
  readonly rawHeaders: readonly string[];
  /** lower-cased names; only `host` and the hash header are read */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
}

/** The client connection a request came on (a net.Socket or TLSSocket is one). */
export interface ClientConnection {
  readonly remoteAddress?: string | undefined;
}

/** What admission reads from the proxy: the snapshot in force and the shared services. */
export interface AdmissionContext {
  readonly metrics: Metrics;
  readonly log: Logger;
  runtime(): Runtime;
  /** principal of an inbound mTLS connection (recorded at handshake); null for plaintext */
  principalOf(conn: ClientConnection): string | null;
  /** the proxy's own listener addresses, for the self-target check */
  ownAddresses(): OwnAddresses;
}

const DRAINING = proxyError('draining');
const NO_LISTENER = proxyError('no_route');
const NO_ROUTE = proxyError('no_route');
const BAD_TARGET = proxyError('bad_request', 'request-target');
const BAD_PATH = proxyError('bad_request', 'path');
const BAD_HOST = proxyError('bad_request', 'host');
const BAD_AUTHORITY = proxyError('bad_request', 'authority');
const OVERFLOW = proxyError('overflow', 'maxConcurrent');
const FORBIDDEN = proxyError('forbidden');
const RATE_LIMITED = proxyError('rate_limited');
const LOOP = proxyError('loop_detected', "the request carries this listener's via entry");
const SELF_TARGET = proxyError('loop_detected', "the target is one of the proxy's own listeners");

/** Labels of a request refused before it was routed. */
function unrouted(head: RequestHead, error: ProxyError, close: boolean): Refusal {
  return {
    admitted: false,
    error,
    close,
    route: 'none',
    clusterName: 'none',
    stats: null,
    host: head.headers['host'] as string | undefined,
    path: pathOnly(head.url ?? ''),
    requestId: null,
    traceId: null,
  };
}

function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** One per listener: its admission state and the steps above. */
export class Admission {
  /** admitted requests (and tunnels) in flight on this listener */
  active = 0;
  /** set when the proxy shuts this listener down: new requests get 503 draining */
  refusing = false;
  /** this listener's `via` entry (loop.ts) */
  readonly via = viaEntry();
  private readonly overflowCounter: { inc(): void };
  /** one warning when the listener starts refusing at maxConcurrent, one when it stops */
  private readonly overflowEpisode: DegradedEpisode;

  constructor(
    readonly direction: Direction,
    private readonly ctx: AdmissionContext,
    private readonly proto: 'http' | 'https',
  ) {
    this.overflowCounter = ctx.metrics.overflows.labels(direction, 'maxConcurrent');
    this.overflowEpisode = new DegradedEpisode(
      () => ctx.log.warn({ direction }, 'listener at maxConcurrent: requests refused with 503 overflow'),
      (n) => ctx.log.warn({ direction, refused: n }, 'listener no longer at maxConcurrent'),
    );
  }

  /** An admitted request is over (called by its report, once). */
  release(): void {
    this.active--;
  }

  admit(head: RequestHead, conn: ClientConnection, kind: RequestKind): Admitted {
    if (this.refusing) return unrouted(head, DRAINING, true);
    const rt = this.ctx.runtime();
    const lc = this.direction === 'inbound' ? rt.inbound : rt.outbound;
    if (lc === null) return unrouted(head, NO_LISTENER, kind !== 'http');
    const method = head.method ?? '';
    const url = head.url ?? '';
    const verdict = checkRequestHead(head.rawHeaders, method, url, head.httpVersionMinor, lc.limits, head.httpVersionMajor);
    if (!verdict.ok) {
      this.ctx.metrics.edgeRejections.labels(this.direction, String(verdict.status)).inc();
      this.ctx.log.debug({ direction: this.direction, detail: verdict.detail }, 'request refused at the edge');
      return unrouted(head, proxyError('bad_request', verdict.detail, verdict.status), true);
    }

    // The target: `host:port` for CONNECT, origin- or absolute-form otherwise.
    let authority: string;
    let path: string;
    let query = '';
    const hostHeader = (head.headers['host'] as string | undefined) ?? '';
    const info: ForwardingInfo = {
      clientIp: conn.remoteAddress ?? '',
      proto: this.proto,
      hostOverride: null,
      upgrade: kind === 'upgrade',
      via: kind === 'connect' ? '' : this.via,
      requestId: '',
      traceId: '',
      loop: false,
    };
    if (kind === 'connect') {
      authority = url;
      path = url;
    } else {
      const target = parseTarget(url);
      if (target === null || (kind === 'upgrade' && target.path === '*')) return unrouted(head, BAD_TARGET, true);
      const norm = target.path === '*' ? { path: '*', query: target.query } : normalizePath(target.path + target.query);
      if (norm === null) return unrouted(head, BAD_PATH, true);
      path = norm.path;
      query = norm.query;
      // RFC 9112 3.2.2: a proxy MUST ignore Host for an absolute-form target and send the
      // target's authority, so the route and the Host the upstream sees are the same name.
      authority = target.authority ?? hostHeader;
      if (target.authority !== null && target.authority.toLowerCase() !== hostHeader.toLowerCase()) info.hostOverride = target.authority;
    }

    if (this.active >= lc.maxConcurrent) {
      this.overflowCounter.inc();
      this.overflowEpisode.hit();
      return unrouted(head, OVERFLOW, kind !== 'http');
    }

    const host = hostOnly(authority);
    if (this.direction === 'inbound') {
      const headers = upstreamRequestHeaders(head.rawHeaders, info, null);
      let error: ProxyError | null = null;
      if (info.loop) error = LOOP;
      else if (rt.authorizer !== null && !rt.authorizer.allows(this.ctx.principalOf(conn), method || 'GET', path)) error = FORBIDDEN;
      else if (rt.inboundBucket !== null && !rt.inboundBucket.tryTake()) error = RATE_LIMITED;
      if (error !== null) return refusal(error, kind, 'app', 'app', rt.inboundStats, host, path, info);
      return this.decided(rt, kind, 'app', rt.appCluster, '', host, path, path + query, headers, info, conn, lc);
    }

    const routes = rt.routes;
    if (routes === null) return unrouted(head, NO_ROUTE, kind !== 'http');
    let route: CompiledRoute | null;
    if (kind === 'connect') {
      const hp = hostPort(authority);
      if (hp === null) return unrouted(head, BAD_AUTHORITY, true);
      route = routes.routeForConnect(host, authorityPort(hp));
    } else {
      const d = routes.route(host, authorityPort(authority), path, method || 'GET', head.rawHeaders);
      route = d.kind === 'route' ? d.route : null;
      if (d.kind === 'no_route') {
        const headers = upstreamRequestHeaders(head.rawHeaders, info, null);
        void headers; // ids for the log line even though nothing goes upstream
        return refusal(NO_ROUTE, kind, 'no_route', 'no_route', rt.noRouteStats, host, path, info);
      }
    }

    if (route === null) {
      // passthrough (CONNECT to a host or port no route takes falls here too)
      if (kind === 'connect' && !routes.passthrough)
        return refusal(NO_ROUTE, kind, 'no_route', 'no_route', rt.noRouteStats, host, path, info);
      const headers = kind === 'connect' ? EMPTY : upstreamRequestHeaders(head.rawHeaders, info, null);
      const hp = hostPort(authority);
      let error: ProxyError | null = null;
      if (info.loop) error = LOOP;
      else if (hp === null) error = BAD_HOST;
      else if (this.isSelf(hp)) error = SELF_TARGET;
      if (error !== null || hp === null)
        return refusal(error ?? BAD_HOST, kind, 'passthrough', 'passthrough', rt.passthroughStats, host, path, info);
      return this.decided(rt, kind, 'passthrough', null, hp, host, path, path + query, headers, info, conn, lc);
    }

    const target = route.pickTarget();
    const headers =
      kind === 'connect' ? EMPTY : upstreamRequestHeaders(head.rawHeaders, info, route.requestHeaders.empty ? null : route.requestHeaders);
    let error: ProxyError | null = null;
    if (info.loop) error = LOOP;
    else if (route.bucket !== null && !route.bucket.tryTake()) error = RATE_LIMITED;
    else if (route.faultAbortPercent > 0 && Math.random() * 100 < route.faultAbortPercent) error = route.faultAbort;
    if (error !== null) return refusal(error, kind, route.name, target.cluster.name, target.stats, host, path, info);
    const hh = target.cluster.hashHeader;
    let hashKey: string | undefined;
    if (hh !== null) {
      const v = head.headers[hh];
      hashKey = typeof v === 'string' ? v : Array.isArray(v) ? v[0] : conn.remoteAddress;
    } else {
      hashKey = conn.remoteAddress;
    }
    const d: Decision = {
      admitted: true,
      kind,
      route: route.name,
      clusterName: target.cluster.name,
      stats: target.stats,
      host,
      path,
      requestId: kind === 'connect' ? null : info.requestId,
      traceId: kind === 'connect' ? null : info.traceId,
      cluster: target.cluster,
      passthrough: rt.passthrough,
      origin: '',
      timeout: route.timeout,
      retry: route.retry,
      responseOps: route.responseHeaders.empty ? null : route.responseHeaders,
      upstreamPath: kind === 'connect' ? '' : route.rewrite(path, query),
      upstreamHeaders: headers,
      hashKey,
      delayMs: route.faultDelayPercent > 0 && Math.random() * 100 < route.faultDelayPercent ? route.faultDelayMs : 0,
      mirror: kind === 'http' && route.mirror !== null && Math.random() * 100 < route.mirrorPercent ? route.mirror.cluster : null,
      idleTimeout: lc.limits.idleTimeout,
    };
    this.active++;
    return d;
  }

  /** Whether a passthrough `host:port` is one of our own listeners (it would loop to us). */
  private isSelf(hp: string): boolean {
    const { host, port } = splitHostPort(hp);
    return this.ctx.ownAddresses().has(host, port);
  }

  /** The decision of an inbound or passthrough request (no route policies). */
  private decided(
    rt: Runtime,
    kind: RequestKind,
    name: 'app' | 'passthrough',
    cluster: Decision['cluster'],
    origin: string,
    host: string,
    path: string,
    upstreamPath: string,
    headers: string[],
    info: ForwardingInfo,
    conn: ClientConnection,
    lc: { readonly timeout: number; readonly limits: { readonly idleTimeout: number } },
  ): Decision {
    this.active++;
    return {
      admitted: true,
      kind,
      route: name,
      clusterName: name,
      stats: name === 'app' ? rt.inboundStats : rt.passthroughStats,
      host,
      path,
      requestId: kind === 'connect' ? null : info.requestId,
      traceId: kind === 'connect' ? null : info.traceId,
      cluster,
      passthrough: rt.passthrough,
      origin,
      timeout: lc.timeout,
      retry: name === 'app' ? rt.appRetry : rt.defaultRetry,
      responseOps: null,
      upstreamPath: kind === 'connect' ? '' : upstreamPath,
      upstreamHeaders: headers,
      hashKey: conn.remoteAddress,
      delayMs: 0,
      mirror: null,
      idleTimeout: lc.limits.idleTimeout,
    };
  }
}

const EMPTY: string[] = [];

function refusal(
  error: ProxyError,
  kind: RequestKind,
  route: string,
  clusterName: string,
  stats: Refusal['stats'],
  host: string,
  path: string,
  info: ForwardingInfo,
): Refusal {
  return {
    admitted: false,
    error,
    close: kind !== 'http',
    route,
    clusterName,
    stats,
    host,
    path,
    requestId: kind === 'connect' || info.requestId === '' ? null : info.requestId,
    traceId: kind === 'connect' || info.traceId === '' ? null : info.traceId,
  };
}
