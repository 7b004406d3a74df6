/**
 * The request path from a routed request to its upstream and back. One `Exchange` per client
 * request (a fixed-shape context object), one `Attempt` per upstream try. Attempts are undici
 * dispatch handlers written straight to the client response: `onData` returns the client
 * socket's back-pressure to undici, which stops reading the upstream socket until `drain`.
 * Expected failures end as `ProxyError` values answered by `respondError`; nothing here throws.
 *
 * Retry rules enforced here (CONTRACT.md "Retries"): the route's policy decides which outcomes
 * are worth another try (`shouldRetry`), and a retry is made only while no response byte reached
 * the client, the body is still replayable (64 KiB, body.ts), attempts are left and the cluster's
 * budget grants it. A retry avoids the endpoint that just failed. The route timeout is one timer
 * for the whole exchange, never restarted by a retry; `perTryTimeout` bounds each try's wait for
 * its response head (undici `headersTimeout`, classified as a timeout).
 *
 * Accounting: `cluster.active` counts the exchange from start to finish (so a retired cluster
 * keeps its pools for our retries); `ep.active` counts the attempt from dispatch until undici
 * is done with it (the body streamed or the attempt failed), which is what least-request and the
 * overflow limits need. Breaker and outlier detection hear each attempt's outcome once, at the
 * response head (a failure in mid-body is still reported to outlier detection).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Cluster } from '../cluster/cluster.js';
import type { Endpoint } from '../cluster/endpoint.js';
import { ERROR_HEADER, errorBody, proxyError, type ProxyError } from '../errors.js';
import type { RetryPolicy, AttemptOutcome } from '../resilience/classify.js';
import { classifyError, errorReason, isFailure, shouldRetry } from '../resilience/classify.js';
import { backoffDelay } from '../resilience/backoff.js';
import type { BreakerToken } from '../resilience/breaker.js';
import type { CompiledHeaderOps } from '../router/table.js';
import type { RouteStats } from '../telemetry/metrics.js';
import { BodySource } from './body.js';
import { clientResponseHeaders } from './headers.js';
import { checkResponseHead } from '../security/edge.js';

/** What the exchange reports when the client response is over (access log + metrics). */
export interface ExchangeSink {
  exchangeDone(x: Exchange): void;
  /** a failed attempt or local refusal (`outrigger_upstream_errors_total`) */
  upstreamError(x: Exchange, reason: string): void;
  retried(x: Exchange): void;
  budgetExhausted(x: Exchange): void;
}

const TIMEOUT_ERROR = Object.freeze(Object.assign(new Error('route timeout'), { code: 'OUTRIGGER_TIMEOUT' }));
const BAD_FRAMING = Object.freeze(new Error('ambiguous response framing from upstream'));
const CLIENT_GONE = Object.freeze(Object.assign(new Error('client closed the request'), { code: 'OUTRIGGER_CLIENT_GONE' }));
const DISCARD_TOO_BIG = Object.freeze(new Error('retried response body too large to drain'));

/** A retried response's body is drained (keeping its connection) up to this, else cut. */
const DISCARD_LIMIT = 64 * 1024;

/** The status logged for a client that went away before its response started (as nginx). */
export const CLIENT_CLOSED_STATUS = 499;

export class Exchange {
  // --- set by the listener before start() ---
  route = '';
  clusterName = '';
  stats: RouteStats | null = null;
  cluster: Cluster | null = null;
  retry: RetryPolicy | null = null;
  timeout = 0;
  /** path+query sent upstream */
  upstreamPath = '';
  /** flat upstream request headers */
  upstreamHeaders: string[] = [];
  responseOps: CompiledHeaderOps | null = null;
  hashKey: string | undefined = undefined;
  requestId = '';
  traceId = '';
  host = '';
  path = '';
  /** passthrough: the one dispatcher to use instead of a cluster */
  passthrough: Dispatcher | null = null;
  passthroughKey = '';

  // --- progress ---
  readonly t0 = performance.now();
  status = 0;
  error: ProxyError | null = null;
  attempts = 0;
  bytesOut = 0;
  upstream = '';
  headersSent = false;
  done = false;
  private body: BodySource | null = null;
  private current: Attempt | null = null;
  private lastEndpoint: Endpoint | undefined = undefined;
  private timer: NodeJS.Timeout | null = null;
  private backoffTimer: NodeJS.Timeout | null = null;
  private resumeUpstream: (() => void) | null = null;
  /** a 'drain' listener is registered on the client response */
  private awaitingDrain = false;
  /** the exchange is counted in `cluster.active` */
  private counted = false;
  /** the failure a pending retry is retrying: the answer if the retry cannot be made */
  private retrying: ProxyError | null = null;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly sink: ExchangeSink,
  ) {
    (res as ExchangeResponse)[EXCHANGE] = this;
    res.on('close', onResponseClose);
  }

  /** A bounded copy of the request body for a mirror, or null when there is no body. */
  teeBody(): Readable | null {
    return this.body === null ? null : this.body.tee();
  }

  get bytesIn(): number {
    return this.body === null ? 0 : this.body.bytesRead;
  }

  /** Whether the request carries a body to stream (RFC 9112 6.3: CL or TE present). */
  private hasBody(): boolean {
    const h = this.req.headers;
    if (h['transfer-encoding'] !== undefined) return true;
    const cl = h['content-length'];
    return cl !== undefined && cl !== '0';
  }

  /** Starts forwarding; the route, cluster (or passthrough) and headers are set. */
  start(): void {
    if (this.cluster !== null) {
      this.cluster.requestStarted();
      this.counted = true;
    }
    if (this.hasBody()) this.body = new BodySource(this.req);
    if (this.timeout > 0) {
      this.timer = setTimeout(onRouteTimeout, this.timeout, this);
    }
    this.attempt();
  }

  /** One upstream try: pick, admit (overflow, breaker), dispatch. */
  private attempt(): void {
    // A retry whose exchange was answered meanwhile (route timeout, client gone) is not made.
    if (this.done || this.headersSent) return;
    const cluster = this.cluster;
    let ep: Endpoint | null = null;
    let token: BreakerToken | null = null;
    let dispatcher: Dispatcher;
    if (cluster !== null) {
      ep = cluster.pick(this.hashKey, this.lastEndpoint);
      if (ep === null) {
        this.refuse('no_healthy_upstream', undefined);
        return;
      }
      if (!cluster.admits(ep)) {
        cluster.overflowed(this.stats === null ? 'outbound' : this.stats.direction);
        this.refuse('overflow', 'cluster maxPending');
        return;
      }
      // Last: in half-open, admitting takes the single probe slot.
      if (cluster.breaker !== null) {
        token = cluster.breaker.admit();
        if (token === null) {
          this.refuse('circuit_open', undefined);
          return;
        }
      }
      dispatcher = ep.pool;
      ep.active++;
      this.upstream = ep.key;
      if (this.attempts === 0) cluster.budget.onRequest();
    } else {
      dispatcher = this.passthrough as Dispatcher;
      this.upstream = this.passthroughKey;
    }
    this.attempts++;
    this.lastEndpoint = ep ?? undefined;
    const a = new Attempt(this, ep, token);
    this.current = a;
    const policy = this.retry;
    dispatcher.dispatch(
      {
        method: (this.req.method ?? 'GET') as Dispatcher.HttpMethod,
        path: this.upstreamPath,
        headers: this.upstreamHeaders,
        body: this.body === null ? null : this.body.attempt(),
        headersTimeout: policy !== null && policy.perTryTimeout > 0 ? policy.perTryTimeout : 0,
        bodyTimeout: 0,
        // a request with a body is never pipelined; undici decides from `idempotent`
        idempotent: false,
        blocking: true,
      },
      a,
    );
  }

  /**
   * A local refusal of a try (counted under its own reason). A first try answers with it; a
   * retry that cannot be made answers with the failure it was retrying, as a retry over budget
   * does: the client learns what went wrong upstream, not that the retry was refused.
   */
  private refuse(reason: 'no_healthy_upstream' | 'overflow' | 'circuit_open', detail: string | undefined): void {
    const prior = this.retrying;
    if (prior !== null) {
      this.sink.upstreamError(this, reason);
      this.fail(prior, '');
      return;
    }
    this.fail(proxyError(reason, detail), reason);
  }

  /** The attempt's dispatch is over (completed or failed): nothing left to abort. */
  attemptEnded(a: Attempt): void {
    if (a.ended) return;
    a.ended = true;
    if (this.current === a) this.current = null;
    const ep = a.endpoint;
    if (ep !== null) ep.active--;
  }

  /** An attempt ended before any response byte reached the client. */
  attemptFailed(a: Attempt, outcome: AttemptOutcome, err: ProxyError): void {
    this.attemptSettled(a, outcome);
    if (this.done || this.headersSent) return;
    if (this.mayRetry(outcome)) {
      this.retrying = err;
      this.scheduleRetry();
      return;
    }
    this.fail(err, ''); // the attempt was counted when it settled
  }

  /** Bookkeeping every attempt gets exactly once. */
  attemptSettled(a: Attempt, outcome: AttemptOutcome): void {
    if (a.settled) return;
    a.settled = true;
    const ep = a.endpoint;
    const cluster = this.cluster;
    if (ep !== null && cluster !== null) {
      // The client going away says nothing about the upstream's health.
      if (!a.clientGone) {
        const failure = isFailure(outcome);
        a.breakerToken?.done(failure);
        cluster.onAttemptResult(ep, failure);
        if (outcome.kind === 'error') this.sink.upstreamError(this, errorReason(outcome.error));
      } else {
        a.breakerToken?.cancel();
      }
    }
  }

  private mayRetry(outcome: AttemptOutcome): boolean {
    const p = this.retry;
    if (p === null || this.attempts > p.attempts) return false;
    if (!shouldRetry(p, outcome, this.req.method ?? 'GET')) return false;
    if (this.body !== null && !this.body.replayable) return false;
    const cluster = this.cluster;
    if (cluster !== null && !cluster.tryRetry()) {
      this.sink.budgetExhausted(this);
      return false;
    }
    return true;
  }

  /**
   * The upstream broke after its head was forwarded (a reset or cut mid-body): the client gets a
   * cut-off. Breaker and error counts had their say at the head; the error is counted here and
   * outlier detection hears of the failure.
   */
  attemptBrokeAfterHead(a: Attempt, reason: string): void {
    // A proxy-made answer is already on its way (a head Node refused to send): leave it be.
    if (this.error !== null) return;
    const ep = a.endpoint;
    if (!a.clientGone) {
      this.sink.upstreamError(this, reason);
      if (ep !== null && this.cluster !== null) this.cluster.onAttemptResult(ep, true);
    }
    this.cutOff();
  }

  /** A drained response is being retried: there is no earlier failure to answer with. */
  retryingResponse(): void {
    this.retrying = null;
  }

  /** A response whose status the policy retries: drain its body, then try again. */
  wantsRetryOnStatus(status: number): boolean {
    if (this.headersSent || this.done) return false;
    return this.mayRetry({ kind: 'response', status });
  }

  scheduleRetry(): void {
    if (this.done || this.headersSent) return;
    const p = this.retry as RetryPolicy;
    this.sink.retried(this);
    const delay = backoffDelay(this.attempts - 1, p.backoffBase, p.backoffMax);
    this.backoffTimer = setTimeout(onBackoffOver, delay, this);
  }

  /** The backoff before a retry is over. */
  backoffOver(): void {
    this.backoffTimer = null;
    this.attempt();
  }

  /** The upstream's response head: forward it to the client. */
  sendHead(status: number, statusText: string, raw: Buffer[], resume: () => void): void {
    this.resumeUpstream = resume;
    this.status = status;
    this.headersSent = true;
    const headers = clientResponseHeaders(raw, this.responseOps);
    const res = this.res;
    try {
      res.writeHead(status, statusText === '' ? undefined : statusText, headers);
      // flush the head with the first body chunk rather than in a packet of its own
    } catch (err) {
      // A header value Node refuses to send (invalid characters from the upstream).
      this.headersSent = false;
      this.status = 0;
      this.current?.abort(err as Error);
      this.fail(proxyError('upstream_protocol_error', (err as Error).message), 'upstream_protocol_error');
    }
  }

  /** One body chunk from the upstream; false asks undici to pause until the client drains. */
  sendData(chunk: Buffer): boolean {
    this.bytesOut += chunk.length;
    if (this.res.write(chunk)) return true;
    // Back-pressure: undici stops reading the upstream until the client drains. Listened for
    // only now, so a response that never fills the socket never registers a listener.
    if (!this.awaitingDrain) {
      this.awaitingDrain = true;
      this.res.once('drain', onResponseDrain);
    }
    return false;
  }

  sendEnd(): void {
    this.clearTimers();
    this.res.end();
  }

  /** The upstream failed after the head was sent: the client sees a cut-off, never a full body. */
  cutOff(): void {
    this.clearTimers();
    this.res.destroy();
  }

  /** The client socket drained: let undici read the upstream again. */
  clientDrained(): void {
    this.awaitingDrain = false;
    const r = this.resumeUpstream;
    if (r !== null && !this.done) r();
  }

  /** The route timeout fired. */
  routeTimedOut(): void {
    this.timer = null;
    if (this.done) return;
    const a = this.current;
    if (this.headersSent) {
      a?.abort(TIMEOUT_ERROR);
      this.cutOff();
      return;
    }
    if (this.backoffTimer !== null) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = null;
    }
    if (a !== null) {
      a.timedOut = true;
      a.abort(TIMEOUT_ERROR);
    }
    // an attempt in flight is counted as a timeout when its abort settles it
    this.fail(proxyError('upstream_timeout'), a !== null ? '' : 'upstream_timeout');
  }

  /** The client response closed: finished, or the client went away first. */
  clientClosed(): void {
    if (!this.res.writableFinished) {
      // the client went away (or we cut it off): stop the upstream too
      const a = this.current;
      if (a !== null && !a.ended) {
        a.clientGone = true;
        a.abort(CLIENT_GONE);
      }
      if (!this.headersSent && this.status === 0) this.status = CLIENT_CLOSED_STATUS;
    }
    this.clearTimers();
    this.finish();
  }

  private clearTimers(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.backoffTimer !== null) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = null;
    }
  }

  /** Answers with a proxy-made error (when nothing was sent yet). */
  fail(err: ProxyError, countAs: string): void {
    this.clearTimers();
    if (this.done || this.headersSent) return;
    this.error = err;
    if (countAs !== '') this.sink.upstreamError(this, countAs);
    respondError(this.res, err);
    this.status = err.status;
    this.headersSent = true;
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.awaitingDrain) {
      this.awaitingDrain = false;
      this.res.off('drain', onResponseDrain);
    }
    if (this.counted) {
      this.counted = false;
      (this.cluster as Cluster).requestEnded();
    }
    if (this.status === 0) this.status = this.res.statusCode;
    this.sink.exchangeDone(this);
  }
}

// The exchange's event and timer callbacks are these module functions, not closures made per
// request: the response carries its exchange, and timers are given it as their argument.
const EXCHANGE = Symbol('outrigger.exchange');
interface ExchangeResponse extends ServerResponse {
  [EXCHANGE]: Exchange;
}

function onResponseClose(this: ServerResponse): void {
  (this as ExchangeResponse)[EXCHANGE].clientClosed();
}

function onResponseDrain(this: ServerResponse): void {
  (this as ExchangeResponse)[EXCHANGE].clientDrained();
}

function onRouteTimeout(x: Exchange): void {
  x.routeTimedOut();
}

function onBackoffOver(x: Exchange): void {
  x.backoffOver();
}

/** One upstream try: an undici dispatch handler (the native, Buffer-based callbacks). */
export class Attempt implements Dispatcher.DispatchHandler {
  /** breaker, outlier and error accounting done */
  settled = false;
  /** the dispatch completed or failed */
  ended = false;
  /** the response head had ambiguous framing */
  private badFraming = false;
  timedOut = false;
  clientGone = false;
  private abortFn: ((err?: Error) => void) | null = null;
  private pendingAbort: Error | null = null;
  /** consuming a response that will be retried */
  private discarding = false;
  private discardStatus = 0;
  private discarded = 0;

  constructor(
    private readonly x: Exchange,
    readonly endpoint: Endpoint | null,
    /** the circuit breaker's token for this attempt, when the cluster has a breaker */
    readonly breakerToken: BreakerToken | null,
  ) {}

  abort(err: Error): void {
    if (this.abortFn !== null) this.abortFn(err);
    else this.pendingAbort = err;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.pendingAbort !== null) abort(this.pendingAbort);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200) return true; // 1xx informational: wait for the final head
    const x = this.x;
    if (x.done || this.settled) return false;
    if (x.headersSent) {
      // the exchange was answered meanwhile (route timeout): this head has nowhere to go, and
      // says nothing either way about the upstream
      this.clientGone = true;
      this.abort(CLIENT_GONE);
      return false;
    }
    if (checkResponseHead(raw) !== null) {
      // Ambiguous framing (CL with TE, TE other than chunked...): the connection cannot be
      // trusted for another request, so it is discarded with the attempt.
      this.badFraming = true;
      this.abort(BAD_FRAMING);
      return false;
    }
    const outcome: AttemptOutcome = { kind: 'response', status };
    // Retry conditions name 5xx classes or listed codes, which the schema keeps within 400-599.
    if (status >= 400 && x.wantsRetryOnStatus(status)) {
      x.retryingResponse();
      this.discarding = true;
      this.discardStatus = status;
      return true;
    }
    x.attemptSettled(this, outcome);
    x.sendHead(status, statusText, raw, resume);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) {
      // Draining keeps the connection; a big error page is not worth it.
      this.discarded += chunk.length;
      if (this.discarded > DISCARD_LIMIT) this.abort(DISCARD_TOO_BIG);
      return true;
    }
    return this.x.sendData(chunk);
  }

  onComplete(): void {
    this.x.attemptEnded(this);
    if (this.discarding) {
      this.x.attemptSettled(this, { kind: 'response', status: this.discardStatus });
      this.x.scheduleRetry();
      return;
    }
    this.x.sendEnd();
  }

  onError(err: Error): void {
    const x = this.x;
    x.attemptEnded(this);
    if (this.clientGone) {
      x.attemptSettled(this, { kind: 'error', error: 'reset' });
      return;
    }
    if (this.timedOut) {
      x.attemptSettled(this, { kind: 'error', error: 'timeout' });
      return;
    }
    if (this.discarding) {
      // the retried response broke while being drained: still retry
      x.attemptSettled(this, { kind: 'response', status: this.discardStatus });
      x.scheduleRetry();
      return;
    }
    const kind = this.badFraming ? 'protocol_error' : err === TIMEOUT_ERROR ? 'timeout' : classifyError(err);
    if (this.settled) {
      // the head was forwarded already
      x.attemptBrokeAfterHead(this, errorReason(kind));
      return;
    }
    const outcome: AttemptOutcome = { kind: 'error', error: kind };
    x.attemptFailed(this, outcome, proxyError(errorReason(kind), err.message));
  }
}

/** Writes a proxy-made response: status, `x-outrigger-error`, `{"error":"REASON"}`. */
export function respondError(res: ServerResponse, err: ProxyError, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(err.reason);
  const headers: string[] = [
    'content-type',
    'application/json',
    'content-length',
    String(body.length),
    ERROR_HEADER,
    err.reason,
  ];
  if (close) headers.push('connection', 'close');
  res.writeHead(err.status, headers);
  res.end(body);
}
