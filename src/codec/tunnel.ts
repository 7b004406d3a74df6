/**
 * Upgrade (WebSocket and others) and CONNECT tunnels, on both listeners: the codec of a request
 * that leaves HTTP.
 *
 * The request goes through the same admission as a plain request (request/admit.ts: draining,
 * maxConcurrent, edge check, authorization or route, rate limit, fault) and its endpoint is taken
 * with the same lease (cluster/lease.ts). The tunnel then dials the endpoint itself (net/tls
 * with the cluster's connect options: a tunnel socket can never go back to a pool), sends the
 * upgrade request with node:http's client on that socket so the upstream's answer is parsed
 * properly, and splices the two sockets together. A CONNECT tunnel is L4 only: what flows inside
 * it is bytes (no rewrite, retries, header policies or per-request metrics).
 *
 * Lifetime rules: the decision's timeout bounds the wait for the upstream's 101 only; an
 * established tunnel lives until either side closes it (the other side is then ended after
 * what is in flight is flushed) or until no byte moved for `limits.idleTimeout`. Both sockets
 * are registered with the listener's ConnectionTracker, so a drain waits for them and destroys
 * them at its deadline. A connect failure is retried on another endpoint as the decision's retry
 * policy says (once by default, as for plain requests). The report gets the tunnel once, when it
 * closes (101, or 200 for CONNECT, with the bytes carried each way).
 */
import http, { type IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { Lease, takeLease } from '../cluster/lease.js';
import { formatAddress } from '../config/address.js';
import { proxyError, rawErrorResponse, type ProxyError } from '../errors.js';
import { classifyError, errorReason } from '../resilience/classify.js';
import { RetryState } from '../resilience/retry.js';
import type { CompiledHeaderOps } from '../router/table.js';
import type { Direction } from '../telemetry/metrics.js';
import type { Admission, RequestHead } from '../request/admit.js';
import type { Decision, Refusal, RequestKind } from '../request/decision.js';
import { isHopByHop } from '../request/headers.js';
import type { Report, Served } from '../request/report.js';
import { splitHostPort } from '../request/target.js';

/** What a tunnel needs of its listener. */
export interface TunnelListener {
  readonly direction: Direction;
  readonly admission: Admission;
  readonly report: Report;
  /** registers a socket for drain (the ConnectionTracker's) */
  trackTunnel(socket: Socket): void;
}

function swallow(): void {}

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

/** One tunnel from the client's request to the close of both sockets. */
class Tunnel implements Served {
  readonly t0 = performance.now();
  status = 0;
  error: ProxyError | null = null;
  upstream = '';
  bytesIn = 0;
  bytesOut = 0;
  private readonly retry: RetryState;
  /** the endpoint of the attempt in progress or of the open tunnel */
  private lease: Lease | null = null;
  private upSocket: Socket | null = null;
  private upReq: http.ClientRequest | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** the client's answer has been decided (failed, or the tunnel is up) */
  private answered = false;
  private finished = false;

  constructor(
    private readonly listener: TunnelListener,
    readonly labels: Decision,
    readonly method: string | undefined,
    private readonly client: Socket,
    private readonly head: Buffer,
  ) {
    this.retry = new RetryState(labels.retry);
    client.on('error', swallow);
    client.once('close', () => this.onClientClose());
  }

  get kind(): 'upgrade' | 'connect' {
    return this.labels.kind === 'connect' ? 'connect' : 'upgrade';
  }

  get attempts(): number {
    return this.retry.attempts;
  }

  /** Answers with a proxy-made error and closes the client connection. */
  private refuse(err: ProxyError, countAs = ''): void {
    this.clearTimer();
    if (this.answered) return;
    this.answered = true;
    this.error = err;
    this.status = err.status;
    if (countAs !== '') this.listener.report.upstreamError(this.labels.clusterName, countAs);
    if (!this.client.destroyed) {
      this.client.end(rawErrorResponse(err));
      this.client.destroySoon();
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Dials now, or after the decision's fault delay. */
  start(): void {
    if (this.labels.delayMs > 0) setTimeout(() => this.dial(), this.labels.delayMs).unref();
    else this.dial();
  }

  /** Leases an endpoint (or takes the passthrough origin) and dials it. */
  private dial(): void {
    if (this.answered || this.client.destroyed) return;
    const d = this.labels;
    if (d.timeout > 0 && this.timer === null && d.kind === 'upgrade') {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.answered) return;
        this.lease?.failed();
        this.abortUpstream();
        this.refuse(proxyError('upstream_timeout'), 'upstream_timeout');
      }, d.timeout);
    }
    let sock: Socket;
    const cluster = d.cluster;
    if (cluster !== null) {
      const l = takeLease(cluster, d.hashKey, this.retry.avoid, this.listener.direction, true);
      if (!(l instanceof Lease)) {
        // a connect retry that cannot be made answers with the failure it was retrying
        const prior = this.retry.retrying;
        this.refuse(prior ?? l, l.reason);
        return;
      }
      this.lease = l;
      this.upstream = l.endpoint.key;
      const { host, port } = l.endpoint.address;
      const opts = cluster.connectOptions;
      if (opts === null) sock = net.connect({ host, port, noDelay: true });
      else sock = tls.connect({ ...(opts as tls.ConnectionOptions), host, port, ALPNProtocols: ['http/1.1'] });
      sock.setTimeout(cluster.config.connectTimeout);
    } else {
      const { host, port } = splitHostPort(d.origin);
      this.upstream = formatAddress({ host, port });
      sock = net.connect({ host, port, noDelay: true, lookup: d.passthrough.lookup });
      sock.setTimeout(d.passthrough.connectTimeout);
    }
    this.retry.started(this.lease?.endpoint);
    this.upSocket = sock;
    this.listener.trackTunnel(sock);
    let connected = false;
    const isTls = sock instanceof tls.TLSSocket;
    sock.once(isTls ? 'secureConnect' : 'connect', () => {
      connected = true;
      sock.setTimeout(0);
      if (d.kind === 'connect') this.connectEstablished(sock);
    });
    sock.once('timeout', () => {
      if (!connected) sock.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT', syscall: 'connect' }));
    });
    const onDialError = (err: Error): void => {
      if (this.answered) return;
      const failure = connected ? 'reset' : classifyError(err);
      const reason = errorReason(failure);
      this.releaseLease(true);
      const e = proxyError(reason, err.message);
      if (!connected && !this.client.destroyed) {
        const v = this.retry.decide({ kind: 'error', error: failure }, this.method ?? 'GET', true, d.cluster);
        if (v === 'budget_exhausted') this.listener.report.budgetExhausted(d.clusterName);
        if (v === 'retry') {
          this.listener.report.upstreamError(d.clusterName, reason);
          this.listener.report.retried(d.clusterName);
          this.retry.retrying = e;
          this.dial();
          return;
        }
      }
      this.refuse(e, reason);
    };
    if (d.kind === 'connect') {
      sock.on('error', onDialError);
      return;
    }
    const req = http.request({
      method: this.method ?? 'GET',
      path: d.upstreamPath,
      headers: d.upstreamHeaders,
      createConnection: () => sock,
    });
    this.upReq = req;
    req.on('error', onDialError);
    sock.on('error', swallow);
    req.on('upgrade', (res: IncomingMessage, usock: Socket, uhead: Buffer) => this.upgraded(res, usock, uhead));
    req.on('response', (res: IncomingMessage) => this.refusedUpgrade(res));
    req.end();
  }

  /** The attempt's outcome for breaker and outlier detection, and the endpoint back (once). */
  private releaseLease(failure: boolean): void {
    const l = this.lease;
    if (l === null) return;
    this.lease = null;
    if (failure) l.failed();
    else l.succeeded();
    l.release();
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
    this.lease?.succeeded();
    this.client.write(
      `HTTP/1.1 101 ${res.statusMessage ?? 'Switching Protocols'}\r\n${responseHeadLines(res.rawHeaders, this.labels.responseOps, true)}\r\n`,
    );
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
    this.lease?.succeeded();
    this.client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    this.splice(usock);
  }

  /** The upstream answered the upgrade request with something else: relay it and close. */
  private refusedUpgrade(res: IncomingMessage): void {
    this.clearTimer();
    const status = res.statusCode ?? 502;
    this.releaseLease(status >= 500);
    if (this.answered || this.client.destroyed) {
      res.destroy();
      return;
    }
    this.answered = true;
    this.status = status;
    const c = this.client;
    c.write(`HTTP/1.1 ${status} ${res.statusMessage ?? ''}\r\n${responseHeadLines(res.rawHeaders, this.labels.responseOps, false)}\r\n`);
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
    const idleMs = this.labels.idleTimeout;
    if (idleMs > 0) {
      const idle = (): void => {
        c.destroy();
        usock.destroy();
      };
      c.setTimeout(idleMs, idle);
      usock.setTimeout(idleMs, idle);
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
      const l = this.lease;
      if (l !== null) {
        this.lease = null;
        l.abandoned();
        l.release();
      }
    } else if (this.upSocket !== null && !this.upSocket.destroyed) {
      this.upSocket.destroySoon();
    }
    const u = this.upSocket;
    if (u === null || u.destroyed || (this.status !== 101 && this.status !== 200)) this.finish();
  }

  /** Once per tunnel: the endpoint back, then the report. */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearTimer();
    this.lease?.release();
    this.lease = null;
    this.listener.report.served(this, this.kind);
  }
}

/** A refused tunnel request: the raw answer, then the report. */
function refuseRaw(l: TunnelListener, method: string | undefined, socket: Socket, r: Refusal, kind: 'upgrade' | 'connect'): void {
  socket.on('error', swallow);
  if (!socket.destroyed) {
    socket.end(rawErrorResponse(r.error));
    socket.destroySoon();
  }
  l.report.refused(method, r, kind);
}

/** An `Upgrade` request or a `CONNECT` (the server's 'upgrade' / 'connect' events). */
export function handleTunnel(l: TunnelListener, kind: Exclude<RequestKind, 'http'>, req: RequestHead, socket: Socket, head: Buffer): void {
  l.trackTunnel(socket);
  const a = l.admission.admit(req, socket, kind);
  if (!a.admitted) {
    refuseRaw(l, req.method, socket, a, kind);
    return;
  }
  new Tunnel(l, a, req.method, socket, head).start();
}
