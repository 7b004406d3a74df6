/**
 * A listener: one node:http (or node:https for inbound mTLS) server with the edge protections
 * of its `limits`, connection tracking for drain, and its pipeline (admission and report) under
 * which the codecs run: HTTP/1.1 requests (codec/http1.ts) and Upgrade / CONNECT tunnels
 * (codec/tunnel.ts). Node's parser runs strict (never `insecureHTTPParser`); what it rejects is
 * answered here in the proxy's error format (docs/metrics.md, "Error reasons"), then the connection is closed.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { isClosing, markClosing, serveRequest } from '../codec/http1.js';
import { handleTunnel, type TunnelListener } from '../codec/tunnel.js';
import type { Address, ListenerLimits } from '../config/types.js';
import { proxyError, rawErrorResponse } from '../errors.js';
import { Admission, type AdmissionContext } from '../request/admit.js';
import { Report } from '../request/report.js';
import type { AccessLog } from '../telemetry/access.js';
import type { Direction } from '../telemetry/metrics.js';
import { ConnectionTracker } from './connections.js';
import { listenOn } from './bind.js';
import { handshakeFailureReason } from '../security/tls.js';

/** What a listener gets from the proxy: admission's context and the access log. */
export interface ListenerContext extends AdmissionContext {
  readonly accessLog: AccessLog;
}

export interface TlsServerOptions {
  readonly options: https.ServerOptions;
  /** checks the peer after the handshake; returns the principal or a refusal reason */
  readonly verify: (socket: import('node:tls').TLSSocket) => { ok: true; principal: string | null } | { ok: false; reason: string };
}

export class Listener implements TunnelListener {
  readonly server: http.Server;
  readonly admission: Admission;
  readonly report: Report;
  readonly tracker: ConnectionTracker;
  private bound: Address | null = null;

  constructor(
    readonly direction: Direction,
    readonly address: Address,
    limits: ListenerLimits,
    private readonly ctx: ListenerContext,
    tls: TlsServerOptions | null,
    onTlsError: (reason: string, socket: Socket) => void,
  ) {
    const opts: http.ServerOptions = {
      maxHeaderSize: limits.maxHeaderBytes,
      insecureHTTPParser: false,
      noDelay: true,
      keepAlive: true,
      // edge.ts refuses a missing Host itself, in the proxy's error format (Node's own 400
      // carries no x-outrigger-error)
      requireHostHeader: false,
      joinDuplicateHeaders: false,
      // The route/inbound timeout bounds a whole exchange; Node's own request timer would cut
      // long uploads that the config allows.
      requestTimeout: 0,
      headersTimeout: limits.headersTimeout,
      // Node enforces headersTimeout only when it sweeps its connections (every 30 s by default),
      // so a slowloris head would live up to 30 s past the limit.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeout / 2))),
      keepAliveTimeout: limits.keepAliveTimeout,
    };
    this.admission = new Admission(direction, ctx, tls === null ? 'http' : 'https');
    this.report = new Report(direction, ctx.metrics, ctx.accessLog, this.admission);
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => serveRequest(this, req, res);
    if (tls === null) {
      this.server = http.createServer(opts, onRequest);
    } else {
      const s = https.createServer({ ...opts, ...tls.options }, onRequest);
      s.on('secureConnection', (sock) => {
        const v = tls.verify(sock);
        if (!v.ok) {
          // The verdict's reason may carry OpenSSL's message after a ':'; the metric label keeps
          // the bounded part only.
          const c = v.reason.indexOf(':');
          onTlsError(c === -1 ? v.reason : v.reason.slice(0, c), sock);
          sock.destroy();
          return;
        }
        principals.set(sock, v.principal);
      });
      s.on('tlsClientError', (err: Error & { code?: string }, sock: Socket) => {
        onTlsError(handshakeFailureReason(err, sock as import('node:tls').TLSSocket), sock);
      });
      this.server = s;
    }
    // A client that sends a whole request and then half-closes (`printf ... | nc`, some health
    // checkers) still gets its answer; the connection closes after it. A request cut off by the
    // FIN is a parser error (HPE_INVALID_EOF_STATE) and aborts (onClientError).
    (this.server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.applyLimits(limits);
    this.tracker = new ConnectionTracker(this.server, { maxConnections: limits.maxConnections });
    this.server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => this.onClientError(err, socket));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      handleTunnel(this, 'upgrade', req, socket as Socket, head);
    });
    if (direction === 'outbound') {
      this.server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        handleTunnel(this, 'connect', req, socket as Socket, head);
      });
    }
  }

  trackTunnel(socket: Socket): void {
    this.tracker.trackTunnel(socket);
  }

  /** Applies the limits that can change without rebinding. */
  applyLimits(limits: ListenerLimits): void {
    const s = this.server;
    s.headersTimeout = limits.headersTimeout;
    s.keepAliveTimeout = limits.keepAliveTimeout;
    // One over the limit so the edge check sees the excess and answers 431 (Node would drop
    // the extra headers silently).
    s.maxHeadersCount = limits.maxHeaders + 1;
    s.timeout = limits.idleTimeout;
    this.tracker?.setMaxConnections(limits.maxConnections);
  }

  /**
   * Bytes Node's parser refused. The connection is done: nothing after them is processed. Answers
   * to requests before them go out first, in order; then the 400 (431, 408), then the close. If a
   * refusal with `Connection: close` is already on its way, that is the last word.
   */
  private onClientError(err: Error & { code?: string }, duplex: Duplex): void {
    const socket = duplex as Socket;
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable) {
      // reset, or a FIN in the middle of a request: nobody to answer, and a cut-off request aborts
      socket.destroy();
      return;
    }
    if (isClosing(socket)) return;
    markClosing(socket);
    let status = 400;
    if (err.code === 'HPE_HEADER_OVERFLOW') status = 431;
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') status = 408;
    this.ctx.metrics.edgeRejections.labels(this.direction, String(status)).inc();
    this.ctx.log.debug({ direction: this.direction, code: err.code, err: err.message }, 'malformed request');
    const answer = rawErrorResponse(proxyError('bad_request', err.code, status));
    const send = (): void => {
      if (!socket.writable) return;
      socket.end(answer);
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    // Bytes inside a request's body (a bad chunk size): that request is the malformed one and
    // is answered now (its exchange aborts with the connection). Bytes after complete requests
    // wait for those requests' answers.
    let cut: http.ServerResponse | null = null;
    for (const res of this.tracker.responsesOn(socket) ?? []) if (!res.req.complete) cut = res;
    if (cut === null) this.tracker.afterResponses(socket, send);
    else if (cut.headersSent) socket.destroy();
    else send();
  }

  async listen(): Promise<Address> {
    this.bound = await listenOn(this.server, this.address, true);
    return this.bound;
  }

  get boundAddress(): Address | null {
    return this.bound;
  }

  /** Graceful: stop accepting, let in-flight requests finish with `Connection: close`. */
  drain(timeoutMs: number): Promise<void> {
    return this.tracker.drain(timeoutMs);
  }

  /**
   * Shutdown: like `drain`, and a request that arrives from now on (on a connection opened
   * before) is answered 503 `draining` with `Connection: close` instead of being started, so its
   * client retries it on another instance.
   */
  shutdown(timeoutMs: number): Promise<void> {
    this.admission.refusing = true;
    return this.tracker.drain(timeoutMs);
  }
}

/** Principals of verified inbound TLS sockets. */
export const principals = new WeakMap<object, string | null>();
