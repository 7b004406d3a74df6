/**
 * Upgrade (WebSocket and others) and CONNECT tunnels, on both listeners.
 *
 * Owns: the request path of a request that leaves HTTP. It runs the same edge check, routing
 * (outbound) or authorization (inbound), rate limit and fault abort as a plain request, dials
 * the picked endpoint itself (net/tls with the cluster's connect options: a tunnel socket can
 * never go back to a pool), sends the upgrade request with node:http's client on that socket so
 * the upstream's answer is parsed properly, and then splices the two sockets together.
 *
 * Lifetime rules: the route (or inbound) timeout bounds the wait for the upstream's 101 only; an
 * established tunnel lives until either side closes it (the other side is then ended after
 * what is in flight is flushed) or until no byte moved for `limits.idleTimeout`. Both sockets
 * are registered with the listener's ConnectionTracker, so a drain waits for them and destroys
 * them at its deadline. One access-log line and one `requests_total` sample (101, or 200 for
 * CONNECT) when the tunnel closes, with the bytes carried each way.
 *
 * A `CONNECT host:port` whose host a route names goes to that route's cluster (as Envoy's CONNECT
 * routing); other hosts are dialled as given through the configured resolver under
 * `unknownHosts: passthrough`, and refused with 404 no_route under `reject`.
 */
import http, { type IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { Cluster } from '../cluster/cluster.js';
import type { Endpoint } from '../cluster/endpoint.js';
import { ERROR_HEADER, errorBody, proxyError, type ProxyError } from '../errors.js';
import { hostOnly, hostPort, isTlsSocket, outboundAuthority, parseTarget } from '../listener/handler.js';
import type { Listener } from '../listener/listener.js';
import type { BreakerToken } from '../resilience/breaker.js';
import type { CompiledHeaderOps, CompiledRoute } from '../router/table.js';
import { checkRequestHead } from '../security/edge.js';
import { normalizePath } from '../security/normalize.js';
import type { RouteStats } from '../telemetry/metrics.js';
import { isHopByHop, upstreamRequestHeaders, type ForwardingInfo } from './headers.js';
import type { PassthroughPools } from './passthrough.js';

/** Connect failures are retried once on another endpoint, as plain requests are. */
const MAX_CONNECT_ATTEMPTS = 2;

function swallow(): void {}

/** The bytes of a proxy-made error response on a raw socket (the connection then closes). */
function rawErrorResponse(err: ProxyError): string {
  const body = errorBody(err.reason);
  return (
    `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status] ?? 'Error'}\r\n` +
    `content-type: application/json\r\n${ERROR_HEADER}: ${err.reason}\r\n` +
    `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body.toString('latin1')}`
  );
}

/** Splits `host:port` / `[v6]:port` (as hostPort() returns it) for net.connect. */
function splitHostPort(hp: string): { host: string; port: number } {
  const c = hp.lastIndexOf(':');
  let host = hp.slice(0, c);
  if (host.charCodeAt(0) === 91) host = host.slice(1, -1);
  return { host, port: Number(hp.slice(c + 1)) };
}

/** Response head lines from a raw header array: hop-by-hop dropped except where `keep` says. */
function responseHeadLines(raw: readonly string[], ops: CompiledHeaderOps | null, upgrade: boolean): string {
  let out = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (isHopByHop(lower)) {
      if (upgrade && lower === 'upgrade') out += `${name}: ${raw[i + 1] as string}\r\n`;
      continue;
    }
    if (ops !== null && ops.remove.has(lower)) continue;
    out += `${name}: ${raw[i + 1] as string}\r\n`;
  }
  if (ops !== null) {
    const set = ops.set;
    for (let i = 0; i < set.length; i += 2) out += `${set[i] as string}: ${set[i + 1] as string}\r\n`;
  }
  out += upgrade ? 'connection: upgrade\r\n' : 'connection: close\r\n';
  return out;
}

type Kind = 'upgrade' | 'connect';

/** One tunnel from the client's request to the close of both sockets. */
class Tunnel {
  readonly t0 = performance.now();
  route = 'none';
  clusterName = 'none';
  stats: RouteStats | null = null;
  host = '';
  path = '';
  status = 0;
  error: ProxyError | null = null;
  attempts = 0;
  upstream = '';
  requestId: string | null = null;
  traceId: string | null = null;
  bytesIn = 0;
  bytesOut = 0;
  /** set for cluster targets; null dials `dialHost:dialPort` through the passthrough resolver */
  cluster: Cluster | null = null;
  passthrough: PassthroughPools | null = null;
  dialHost = '';
  dialPort = 0;
  hashKey: string | undefined = undefined;
  responseOps: CompiledHeaderOps | null = null;
  upstreamPath = '';
  upstreamHeaders: string[] = [];
  /** wait for the upstream's answer (ms, 0 = none) */
  timeout = 0;
  idleMs = 0;
  /** the endpoint of the attempt in progress or of the open tunnel (counted in its `active`) */
  private endpoint: Endpoint | null = null;
  /** the endpoint of the previous attempt, which a connect retry avoids */
  private lastEndpoint: Endpoint | null = null;
  private token: BreakerToken | null = null;
  private upSocket: Socket | null = null;
  private upReq: http.ClientRequest | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** the client's answer has been decided (refused, failed, or the tunnel is up) */
  private answered = false;
  private finished = false;

  constructor(
    readonly listener: Listener,
    readonly req: IncomingMessage,
    readonly client: Socket,
    readonly kind: Kind,
    private readonly head: Buffer,
  ) {
    client.on('error', swallow);
    client.once('close', () => this.onClientClose());
  }

  /** Answers with a proxy-made error and closes the client connection. */
  refuse(err: ProxyError, countAs = ''): void {
    this.clearTimer();
    if (this.answered) return;
    this.answered = true;
    this.error = err;
    this.status = err.status;
    if (countAs !== '') this.countError(countAs);
    if (!this.client.destroyed) {
      this.client.end(rawErrorResponse(err));
      this.client.destroySoon();
    }
  }

  private countError(reason: string): void {
    this.listener.context.metrics.upstreamErrors.labels(this.clusterName, reason).inc();
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Picks an endpoint and dials it; the route, cluster (or passthrough) and headers are set. */
  dial(): void {
    if (this.answered || this.client.destroyed) return;
    if (this.timeout > 0 && this.timer === null && this.kind === 'upgrade') {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.answered) return;
        this.settleEndpoint(true);
        this.abortUpstream();
        this.refuse(proxyError('upstream_timeout'), 'upstream_timeout');
      }, this.timeout);
    }
    const cluster = this.cluster;
    let sock: Socket;
    if (cluster !== null) {
      const ep = cluster.pick(this.hashKey, this.lastEndpoint ?? undefined);
      if (ep === null) {
        this.refuse(proxyError('no_healthy_upstream'), 'no_healthy_upstream');
        return;
      }
      if (!cluster.admits(ep)) {
        cluster.overflowed(this.listener.direction);
        this.refuse(proxyError('overflow', 'cluster maxPending'), 'overflow');
        return;
      }
      if (cluster.breaker !== null) {
        this.token = cluster.breaker.admit();
        if (this.token === null) {
          this.refuse(proxyError('circuit_open'), 'circuit_open');
          return;
        }
      }
      this.endpoint = ep;
      ep.active++;
      cluster.requestStarted();
      this.upstream = ep.key;
      const opts = cluster.connectOptions;
      const host = ep.address.host;
      const port = ep.address.port;
      if (opts === null) {
        sock = net.connect({ host, port, noDelay: true });
      } else {
        const o: tls.ConnectionOptions = { ...(opts as tls.ConnectionOptions), host, port, ALPNProtocols: ['http/1.1'] };
        sock = tls.connect(o);
      }
      sock.setTimeout(cluster.config.connectTimeout);
    } else {
      const pt = this.passthrough as PassthroughPools;
      this.upstream = net.isIPv6(this.dialHost) ? `[${this.dialHost}]:${this.dialPort}` : `${this.dialHost}:${this.dialPort}`;
      sock = net.connect({ host: this.dialHost, port: this.dialPort, noDelay: true, lookup: pt.lookup });
      sock.setTimeout(pt.connectTimeout);
    }
    this.attempts++;
    this.upSocket = sock;
    this.listener.tracker.trackTunnel(sock);
    let connected = false;
    const isTls = sock instanceof tls.TLSSocket;
    sock.once(isTls ? 'secureConnect' : 'connect', () => {
      connected = true;
      sock.setTimeout(0);
      if (this.kind === 'connect') this.connectEstablished(sock);
    });
    sock.once('timeout', () => {
      if (!connected) sock.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    });
    const onDialError = (err: Error): void => {
      if (this.answered) return;
      this.settleEndpoint(true);
      if (!connected) {
        const retry = this.cluster !== null && this.attempts < MAX_CONNECT_ATTEMPTS && !this.client.destroyed;
        this.countError('connect_failure');
        if (retry) {
          this.dial();
          return;
        }
        this.refuse(proxyError('upstream_connect_failure', err.message));
        return;
      }
      this.refuse(proxyError('upstream_reset', err.message), 'reset');
    };
    if (this.kind === 'connect') {
      sock.on('error', onDialError);
      return;
    }
    const req = http.request({
      method: this.req.method ?? 'GET',
      path: this.upstreamPath,
      headers: this.upstreamHeaders,
      createConnection: () => sock,
    });
    this.upReq = req;
    req.on('error', onDialError);
    sock.on('error', swallow);
    req.on('upgrade', (res: IncomingMessage, usock: Socket, uhead: Buffer) => this.upgraded(res, usock, uhead));
    req.on('response', (res: IncomingMessage) => this.refusedUpgrade(res));
    req.end();
  }

  /** Outlier, breaker and active-count bookkeeping for the endpoint of this attempt (once). */
  private settleEndpoint(failure: boolean): void {
    const ep = this.endpoint;
    const cluster = this.cluster;
    if (ep === null || cluster === null) return;
    this.endpoint = null;
    ep.active--;
    cluster.requestEnded();
    this.token?.done(failure);
    this.token = null;
    cluster.onAttemptResult(ep, failure);
    // kept as `avoid` for a connect retry
    this.lastEndpoint = ep;
  }

  /** The upstream answered 101: send it on and splice the sockets. */
  private upgraded(res: IncomingMessage, usock: Socket, uhead: Buffer): void {
    this.clearTimer();
    if (this.answered || this.client.destroyed) {
      usock.destroy();
      return;
    }
    this.answered = true;
    this.status = 101;
    this.markHealthy();
    this.client.write(`HTTP/1.1 101 ${res.statusMessage ?? 'Switching Protocols'}\r\n${responseHeadLines(res.rawHeaders, this.responseOps, true)}\r\n`);
    if (uhead.length > 0) {
      this.bytesOut += uhead.length;
      this.client.write(uhead);
    }
    this.splice(usock);
  }

  /** CONNECT: the TCP (or TLS) connection is up. */
  private connectEstablished(usock: Socket): void {
    this.clearTimer();
    if (this.answered || this.client.destroyed) {
      usock.destroy();
      return;
    }
    this.answered = true;
    this.status = 200;
    this.markHealthy();
    this.client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    this.splice(usock);
  }

  /** Reports success for the endpoint but keeps it counted as active while the tunnel lives. */
  private markHealthy(): void {
    const ep = this.endpoint;
    const cluster = this.cluster;
    if (ep === null || cluster === null) return;
    this.token?.done(false);
    this.token = null;
    cluster.onAttemptResult(ep, false);
  }

  /** The upstream answered the upgrade request with something else: relay it and close. */
  private refusedUpgrade(res: IncomingMessage): void {
    this.clearTimer();
    const status = res.statusCode ?? 502;
    this.settleEndpoint(status >= 500);
    if (this.answered || this.client.destroyed) {
      res.destroy();
      return;
    }
    this.answered = true;
    this.status = status;
    const c = this.client;
    c.write(`HTTP/1.1 ${status} ${res.statusMessage ?? ''}\r\n${responseHeadLines(res.rawHeaders, this.responseOps, false)}\r\n`);
    res.on('data', (chunk: Buffer) => {
      this.bytesOut += chunk.length;
      if (!c.write(chunk)) {
        res.pause();
        c.once('drain', () => res.resume());
      }
    });
    res.on('end', () => {
      c.end();
      c.destroySoon();
      this.upSocket?.destroy();
    });
    res.on('error', () => c.destroy());
  }

  /** Both directions flow; either side's end or close ends the other; idleness closes both. */
  private splice(usock: Socket): void {
    const c = this.client;
    this.upSocket = usock;
    usock.on('error', swallow);
    c.setTimeout(0);
    if (this.head.length > 0) {
      this.bytesIn += this.head.length;
      usock.write(this.head);
    }
    c.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
    });
    usock.on('data', (chunk: Buffer) => {
      this.bytesOut += chunk.length;
    });
    c.pipe(usock);
    usock.pipe(c);
    usock.once('close', () => {
      if (!c.destroyed) c.destroySoon();
      this.finish();
    });
    if (this.idleMs > 0) {
      const idle = (): void => {
        c.destroy();
        usock.destroy();
      };
      c.setTimeout(this.idleMs, idle);
      usock.setTimeout(this.idleMs, idle);
    }
  }

  private abortUpstream(): void {
    if (this.upReq !== null) this.upReq.destroy();
    else this.upSocket?.destroy();
  }

  private onClientClose(): void {
    if (!this.answered) {
      // the client went away before the upstream answered
      this.answered = true;
      this.status = 499;
      this.clearTimer();
      this.abortUpstream();
      if (this.endpoint !== null && this.cluster !== null) {
        const ep = this.endpoint;
        this.endpoint = null;
        ep.active--;
        this.cluster.requestEnded();
        this.token?.cancel();
        this.token = null;
      }
    } else if (this.upSocket !== null && !this.upSocket.destroyed) {
      this.upSocket.destroySoon();
    }
    const u = this.upSocket;
    if (u === null || u.destroyed || (this.status !== 101 && this.status !== 200)) this.finish();
  }

  /** Once per tunnel: release the endpoint, count, log. */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearTimer();
    const ep = this.endpoint;
    if (ep !== null && this.cluster !== null) {
      this.endpoint = null;
      ep.active--;
      this.cluster.requestEnded();
    }
    const ctx = this.listener.context;
    const seconds = (performance.now() - this.t0) / 1000;
    const dir = this.listener.direction;
    if (this.stats !== null) this.stats.observe(this.status, seconds);
    else ctx.metrics.requests.labels(dir, 'none', 'none', String(this.status)).inc();
    ctx.accessLog.served(dir, this, seconds, this.kind);
  }
}

/** The common front half: the edge check. Returns false (and answers) when refused. */
function edge(l: Listener, t: Tunnel): boolean {
  const rt = l.context.runtime();
  const lc = l.direction === 'inbound' ? rt.inbound : rt.outbound;
  const req = t.req;
  if (lc === null) {
    t.refuse(proxyError('no_route'));
    return false;
  }
  t.idleMs = lc.limits.idleTimeout;
  const verdict = checkRequestHead(req.rawHeaders, req.method ?? '', req.url ?? '', req.httpVersionMinor, lc.limits, req.httpVersionMajor);
  if (!verdict.ok) {
    l.context.metrics.edgeRejections.labels(l.direction, String(verdict.status)).inc();
    t.refuse(proxyError('bad_request', verdict.detail, verdict.status));
    return false;
  }
  return true;
}

function forwardingInfo(socket: Socket): ForwardingInfo {
  return {
    clientIp: socket.remoteAddress ?? '',
    proto: isTlsSocket(socket) ? 'https' : 'http',
    hostOverride: null,
    upgrade: true,
    requestId: '',
    traceId: '',
  };
}

/** Route policies shared by upgrades and CONNECT: target, rate limit, fault abort. False when answered. */
function applyRoute(t: Tunnel, route: CompiledRoute): boolean {
  const target = route.pickTarget();
  t.route = route.name;
  t.clusterName = target.cluster.name;
  t.stats = target.stats;
  if (route.bucket !== null && !route.bucket.tryTake()) {
    t.refuse(proxyError('rate_limited'));
    return false;
  }
  if (route.faultAbortPercent > 0 && Math.random() * 100 < route.faultAbortPercent) {
    t.refuse(proxyError('fault_injected', undefined, route.faultAbortStatus));
    return false;
  }
  t.cluster = target.cluster;
  t.timeout = route.timeout;
  t.responseOps = route.responseHeaders.empty ? null : route.responseHeaders;
  const hh = target.cluster.hashHeader;
  const v = hh === null ? undefined : t.req.headers[hh];
  t.hashKey = typeof v === 'string' ? v : Array.isArray(v) ? v[0] : t.req.socket.remoteAddress;
  return true;
}

/** Dials now, or after the route's fault delay when it applies. */
function dialMaybeDelayed(t: Tunnel, route: CompiledRoute | null): void {
  if (route !== null && route.faultDelayPercent > 0 && Math.random() * 100 < route.faultDelayPercent) {
    setTimeout(() => t.dial(), route.faultDelayMs).unref();
    return;
  }
  t.dial();
}

/** An `Upgrade` request (the listener's 'upgrade' event), on either listener. */
export function handleUpgrade(l: Listener, req: IncomingMessage, socket: Socket, head: Buffer): void {
  l.tracker.trackTunnel(socket);
  const t = new Tunnel(l, req, socket, 'upgrade', head);
  if (!edge(l, t)) return;
  const rt = l.context.runtime();
  const target = parseTarget(req.url ?? '');
  if (target === null || target.path === '*') {
    t.refuse(proxyError('bad_request', 'request-target'));
    return;
  }
  const norm = normalizePath(target.path + target.query);
  if (norm === null) {
    t.refuse(proxyError('bad_request', 'path'));
    return;
  }
  t.path = norm.path;
  const info = forwardingInfo(socket);
  const hostHeader = req.headers.host ?? '';
  // ids for the log line even when the tunnel is refused
  const ids = (): void => {
    t.requestId = info.requestId;
    t.traceId = info.traceId;
  };

  if (l.direction === 'inbound') {
    t.host = hostOnly(hostHeader);
    t.route = 'app';
    t.clusterName = 'app';
    t.stats = rt.inboundStats;
    t.upstreamHeaders = upstreamRequestHeaders(req.rawHeaders, info, null);
    ids();
    if (rt.authorizer !== null && !rt.authorizer.allows(l.context.principalOf(socket), req.method ?? 'GET', norm.path)) {
      t.refuse(proxyError('forbidden'));
      return;
    }
    if (rt.inboundBucket !== null && !rt.inboundBucket.tryTake()) {
      t.refuse(proxyError('rate_limited'));
      return;
    }
    t.cluster = rt.appCluster;
    t.timeout = rt.inbound?.timeout ?? 0;
    t.upstreamPath = norm.path + norm.query;
    t.hashKey = socket.remoteAddress;
    t.dial();
    return;
  }

  const authority = outboundAuthority(target, hostHeader, info);
  const host = hostOnly(authority);
  t.host = host;
  const decision = rt.routes!.route(host, norm.path, req.method ?? 'GET', req.rawHeaders);
  if (decision.kind === 'no_route') {
    t.route = 'no_route';
    t.clusterName = 'no_route';
    t.stats = rt.noRouteStats;
    upstreamRequestHeaders(req.rawHeaders, info, null);
    ids();
    t.refuse(proxyError('no_route'));
    return;
  }
  if (decision.kind === 'passthrough') {
    t.route = 'passthrough';
    t.clusterName = 'passthrough';
    t.stats = rt.passthroughStats;
    t.upstreamHeaders = upstreamRequestHeaders(req.rawHeaders, info, null);
    ids();
    const hp = hostPort(authority);
    if (hp === null) {
      t.refuse(proxyError('bad_request', 'host'));
      return;
    }
    const { host: dh, port } = splitHostPort(hp);
    t.passthrough = rt.passthrough;
    t.dialHost = dh;
    t.dialPort = port;
    t.timeout = rt.outbound!.timeout;
    t.upstreamPath = norm.path + norm.query;
    t.dial();
    return;
  }
  const route = decision.route;
  t.upstreamHeaders = upstreamRequestHeaders(req.rawHeaders, info, route.requestHeaders.empty ? null : route.requestHeaders);
  ids();
  if (!applyRoute(t, route)) return;
  t.upstreamPath = route.rewrite(norm.path, norm.query);
  dialMaybeDelayed(t, route);
}

/** `CONNECT host:port` on the outbound listener: a TCP tunnel. */
export function handleConnect(l: Listener, req: IncomingMessage, socket: Socket, head: Buffer): void {
  l.tracker.trackTunnel(socket);
  const t = new Tunnel(l, req, socket, 'connect', head);
  const authority = req.url ?? '';
  t.path = authority;
  if (!edge(l, t)) return;
  const rt = l.context.runtime();
  const host = hostOnly(authority);
  t.host = host;
  const hp = hostPort(authority);
  const routes = rt.routes;
  if (hp === null || routes === null) {
    t.refuse(hp === null ? proxyError('bad_request', 'authority') : proxyError('no_route'));
    return;
  }
  const route = routes.routeForHost(host);
  if (route !== null) {
    if (!applyRoute(t, route)) return;
    dialMaybeDelayed(t, route);
    return;
  }
  if (!routes.passthrough) {
    t.route = 'no_route';
    t.clusterName = 'no_route';
    t.stats = rt.noRouteStats;
    t.refuse(proxyError('no_route'));
    return;
  }
  t.route = 'passthrough';
  t.clusterName = 'passthrough';
  t.stats = rt.passthroughStats;
  const { host: dh, port } = splitHostPort(hp);
  t.passthrough = rt.passthrough;
  t.dialHost = dh;
  t.dialPort = port;
  t.dial();
}
