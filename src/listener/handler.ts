/**
 * What a listener does with each request: the edge checks, the target and path, the route
 * decision (outbound) or the authorization (inbound), the local policies (concurrency, rate
 * limit, faults), and then an Exchange that forwards. Also the sink that turns a finished
 * exchange into an access-log line and metric samples.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { proxyError, type ProxyError } from '../errors.js';
import { Exchange, respondError, type ExchangeSink } from '../upstream/forward.js';
import { upstreamRequestHeaders, type ForwardingInfo } from '../upstream/headers.js';
import { normalizePath } from '../security/normalize.js';
import { checkRequestHead } from '../security/edge.js';
import type { Logger } from '../telemetry/log.js';
import type { AccessLog } from '../telemetry/access.js';
import type { Direction, Metrics, RouteStats } from '../telemetry/metrics.js';
import type { CompiledRoute } from '../router/table.js';
import type { Runtime } from '../runtime.js';
import { startMirror } from '../upstream/mirror.js';
import { DegradedEpisode } from '../resilience/degraded.js';

/** Where a listener reads the snapshot in force and the shared services. */
export interface ListenerContext {
  readonly metrics: Metrics;
  readonly log: Logger;
  /** the access log (one line per request) */
  readonly accessLog: AccessLog;
  runtime(): Runtime;
  /** principal of an inbound mTLS connection (set at handshake) */
  principalOf(socket: Socket): string | null;
}

export interface ParsedTarget {
  /** authority of an absolute-form target (`host[:port]`), else null */
  authority: string | null;
  path: string;
  /** `?query` or '' */
  query: string;
}

/** Splits the request-target; null when it is not origin-form or http absolute-form. */
export function parseTarget(url: string): ParsedTarget | null {
  let authority: string | null = null;
  let rest = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    if (url.length > 7 && url.slice(0, 7).toLowerCase() === 'http://') {
      const after = url.slice(7);
      let end = after.length;
      for (let i = 0; i < after.length; i++) {
        const c = after.charCodeAt(i);
        if (c === 47 || c === 63 || c === 35) {
          end = i;
          break;
        }
      }
      authority = after.slice(0, end);
      if (authority === '' || authority.includes('@')) return null;
      rest = after.slice(end);
      if (rest === '' || rest.charCodeAt(0) === 63) rest = '/' + rest;
    } else if (url === '*') {
      return { authority: null, path: '*', query: '' };
    } else {
      return null;
    }
  }
  const q = rest.indexOf('?');
  if (q === -1) return { authority, path: rest, query: '' };
  return { authority, path: rest.slice(0, q), query: rest.slice(q) };
}

/**
 * The authority an outbound request is routed on: an absolute-form target's authority wins over
 * Host (RFC 9112 3.2.2: a proxy MUST ignore Host and send the target's authority instead), so the
 * route and the Host the upstream sees are the same name. Sets `info.hostOverride` when they differ.
 */
export function outboundAuthority(target: ParsedTarget, hostHeader: string, info: ForwardingInfo): string {
  const a = target.authority;
  if (a === null) return hostHeader;
  if (a.toLowerCase() !== hostHeader.toLowerCase()) info.hostOverride = a;
  return a;
}

/** `Host`-style authority → lower-case host without port (IPv6 keeps its brackets). */
export function hostOnly(authority: string): string {
  let h = authority;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']');
    h = end === -1 ? h : h.slice(0, end + 1);
  } else {
    const c = h.lastIndexOf(':');
    if (c !== -1) h = h.slice(0, c);
  }
  return h.toLowerCase();
}

/** `host:port` for a passthrough pool; port 80 when absent. Null when the authority is unusable. */
export function hostPort(authority: string): string | null {
  if (authority.charCodeAt(0) === 91) {
    const end = authority.indexOf(']');
    if (end === -1) return null;
    const port = authority.slice(end + 1);
    if (port === '') return `${authority}:80`;
    return /^:\d{1,5}$/.test(port) ? authority : null;
  }
  const c = authority.indexOf(':');
  if (c === -1) return authority === '' ? null : `${authority}:80`;
  if (c === 0 || !/^\d{1,5}$/.test(authority.slice(c + 1))) return null;
  return authority;
}

export class ListenerHandler implements ExchangeSink {
  /** requests in flight on this listener */
  active = 0;
  /** set when the proxy shuts this listener down: new requests get 503 draining */
  refusing = false;
  private readonly errorCounters = new Map<string, { inc(): void }>();
  private readonly overflowCounter: { inc(): void };
  /** one warning when the listener starts refusing at maxConcurrent, one when it stops */
  private readonly overflowEpisode: DegradedEpisode;

  constructor(
    readonly direction: Direction,
    private readonly ctx: ListenerContext,
    private readonly proto: 'http' | 'https',
  ) {
    this.overflowCounter = ctx.metrics.overflows.labels(direction, 'maxConcurrent');
    this.overflowEpisode = new DegradedEpisode(
      () => ctx.log.warn({ direction }, 'listener at maxConcurrent: requests refused with 503 overflow'),
      (n) => ctx.log.warn({ direction, refused: n }, 'listener no longer at maxConcurrent'),
    );
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.refusing) {
      this.reject(req, res, proxyError('draining'), null, true);
      return;
    }
    const rt = this.ctx.runtime();
    const lc = this.direction === 'inbound' ? rt.inbound : rt.outbound;
    if (lc === null) {
      this.reject(req, res, proxyError('no_route'), null);
      return;
    }
    const verdict = checkRequestHead(req.rawHeaders, req.method ?? '', req.url ?? '', req.httpVersionMinor, lc.limits, req.httpVersionMajor);
    if (!verdict.ok) {
      this.ctx.metrics.edgeRejections.labels(this.direction, String(verdict.status)).inc();
      this.ctx.log.debug({ direction: this.direction, detail: verdict.detail }, 'request refused at the edge');
      this.reject(req, res, proxyError('bad_request', verdict.detail, verdict.status), null, true);
      return;
    }
    const target = parseTarget(req.url ?? '');
    if (target === null) {
      this.reject(req, res, proxyError('bad_request', 'request-target'), null, true);
      return;
    }
    const norm = target.path === '*' ? { path: '*', query: target.query } : normalizePath(target.path + target.query);
    if (norm === null) {
      this.reject(req, res, proxyError('bad_request', 'path'), null, true);
      return;
    }
    if (this.active >= lc.maxConcurrent) {
      this.overflowCounter.inc();
      this.overflowEpisode.hit();
      this.reject(req, res, proxyError('overflow', 'maxConcurrent'), null);
      return;
    }

    const x = new Exchange(req, res, this);
    this.active++;
    x.path = norm.path;
    const socket = req.socket;
    const info: ForwardingInfo = {
      clientIp: socket.remoteAddress ?? '',
      proto: this.proto,
      hostOverride: null,
      upgrade: false,
      requestId: '',
      traceId: '',
    };
    const hostHeader = req.headers.host ?? '';

    if (this.direction === 'inbound') {
      x.host = hostOnly(hostHeader);
      x.route = 'app';
      x.clusterName = 'app';
      x.stats = rt.inboundStats;
      const inbound = rt.inbound!;
      if (rt.authorizer !== null) {
        const principal = this.ctx.principalOf(socket);
        if (!rt.authorizer.allows(principal, req.method ?? 'GET', norm.path)) {
          this.early(x, info, proxyError('forbidden'));
          return;
        }
      }
      if (rt.inboundBucket !== null && !rt.inboundBucket.tryTake()) {
        this.early(x, info, proxyError('rate_limited'));
        return;
      }
      x.cluster = rt.appCluster;
      x.retry = rt.appRetry;
      x.timeout = inbound.timeout;
      x.upstreamPath = norm.path + norm.query;
      x.upstreamHeaders = upstreamRequestHeaders(req.rawHeaders, info, null);
      this.go(x, info);
      return;
    }

    // outbound
    const authority = outboundAuthority(target, hostHeader, info);
    const host = hostOnly(authority);
    x.host = host;
    const decision = rt.routes!.route(host, norm.path, req.method ?? 'GET', req.rawHeaders);
    if (decision.kind === 'no_route') {
      x.route = 'no_route';
      x.clusterName = 'no_route';
      x.stats = rt.noRouteStats;
      this.early(x, info, proxyError('no_route'));
      return;
    }
    if (decision.kind === 'passthrough') {
      const hp = hostPort(authority);
      x.route = 'passthrough';
      x.clusterName = 'passthrough';
      x.stats = rt.passthroughStats;
      if (hp === null) {
        this.early(x, info, proxyError('bad_request', 'host'));
        return;
      }
      x.passthrough = rt.passthrough.get(hp);
      x.passthroughKey = hp;
      x.retry = rt.defaultRetry;
      x.timeout = rt.outbound!.timeout;
      x.upstreamPath = norm.path + norm.query;
      x.upstreamHeaders = upstreamRequestHeaders(req.rawHeaders, info, null);
      this.go(x, info);
      return;
    }
    this.routed(x, info, decision.route, norm.path, norm.query);
  }

  private routed(x: Exchange, info: ForwardingInfo, route: CompiledRoute, path: string, query: string): void {
    const target = route.pickTarget();
    x.route = route.name;
    x.clusterName = target.cluster.name;
    x.stats = target.stats;
    if (route.bucket !== null && !route.bucket.tryTake()) {
      this.early(x, info, proxyError('rate_limited'));
      return;
    }
    if (route.faultAbortPercent > 0 && Math.random() * 100 < route.faultAbortPercent) {
      this.early(x, info, proxyError('fault_injected', undefined, route.faultAbortStatus));
      return;
    }
    x.cluster = target.cluster;
    x.retry = route.retry;
    x.timeout = route.timeout;
    x.responseOps = route.responseHeaders.empty ? null : route.responseHeaders;
    x.upstreamPath = route.rewrite(path, query);
    x.upstreamHeaders = upstreamRequestHeaders(x.req.rawHeaders, info, route.requestHeaders.empty ? null : route.requestHeaders);
    const hh = target.cluster.hashHeader;
    if (hh !== null) {
      const v = x.req.headers[hh];
      x.hashKey = typeof v === 'string' ? v : Array.isArray(v) ? v[0] : x.req.socket.remoteAddress;
    } else {
      x.hashKey = x.req.socket.remoteAddress;
    }
    if (route.faultDelayPercent > 0 && Math.random() * 100 < route.faultDelayPercent) {
      x.requestId = info.requestId;
      x.traceId = info.traceId;
      setTimeout(() => {
        if (!x.done) this.go(x, info, route);
      }, route.faultDelayMs).unref();
      return;
    }
    this.go(x, info, route);
  }

  private go(x: Exchange, info: ForwardingInfo, route?: CompiledRoute): void {
    x.requestId = info.requestId;
    x.traceId = info.traceId;
    x.start();
    if (route !== undefined && route.mirror !== null && Math.random() * 100 < route.mirrorPercent) {
      startMirror(x, route.mirror.cluster, this.ctx.log);
    }
  }

  /** A proxy-made answer for a request that got an exchange (counted and logged). */
  private early(x: Exchange, info: ForwardingInfo, err: ProxyError): void {
    if (x.requestId === '') {
      // ids for the log line even though nothing goes upstream
      upstreamRequestHeaders(x.req.rawHeaders, info, null);
      x.requestId = info.requestId;
      x.traceId = info.traceId;
    }
    x.fail(err, '');
  }

  /** Refused before an exchange exists (edge errors, overflow): answered, counted, logged. */
  private reject(req: IncomingMessage, res: ServerResponse, err: ProxyError, stats: RouteStats | null, close = false): void {
    if (close) {
      res.shouldKeepAlive = false;
      req.resume();
    }
    respondError(res, err, close);
    if (close) res.on('finish', () => req.socket.destroySoon());
    stats?.observe(err.status, 0);
    this.ctx.metrics.requests.labels(this.direction, 'none', 'none', String(err.status)).inc();
    this.ctx.accessLog.write({
      direction: this.direction,
      method: req.method,
      // as for forwarded requests, the path without its query (queries carry tokens)
      path: pathOnly(req.url ?? ''),
      host: req.headers.host,
      status: err.status,
      duration_ms: 0,
      bytes_in: 0,
      bytes_out: 0,
      route: 'none',
      cluster: 'none',
      upstream: null,
      attempts: 0,
      request_id: null,
      trace_id: null,
      error: err.reason,
    });
  }

  exchangeDone(x: Exchange): void {
    this.active--;
    const seconds = (performance.now() - x.t0) / 1000;
    x.stats?.observe(x.status, seconds);
    this.ctx.accessLog.served(this.direction, x, seconds);
  }

  upstreamError(x: Exchange, reason: string): void {
    const key = `${x.clusterName}\0${reason}`;
    let c = this.errorCounters.get(key);
    if (c === undefined) {
      c = this.ctx.metrics.upstreamErrors.labels(x.clusterName, reason);
      this.errorCounters.set(key, c);
    }
    c.inc();
  }

  retried(x: Exchange): void {
    this.ctx.metrics.retries.labels(x.clusterName).inc();
  }

  budgetExhausted(x: Exchange): void {
    this.ctx.metrics.retryBudgetExhausted.labels(x.clusterName).inc();
  }
}

function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** The principal of a TLS socket as recorded at handshake; null for plaintext. */
export function isTlsSocket(s: Socket): s is TLSSocket {
  return (s as TLSSocket).encrypted === true;
}
