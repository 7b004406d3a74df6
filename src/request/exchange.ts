/**
 * The request path from a routed request to its upstream and back. One `Exchange` per client
 * request (a fixed-shape context object), one `Attempt` per upstream try. Attempts are undici
 * dispatch handlers written straight to the client response: `onData` returns the client
 * socket's back-pressure to undici, which stops reading the upstream socket until `drain`.
 * Expected failures end as `ProxyError` values answered by `respondError`; nothing here throws.
 *
 * An exchange carries out an admitted `Decision` (decision.ts); it never decides routing. Retries:
 * the rules and the per-request state are resilience/retry.ts's `RetryState`; the exchange adds
 * what only it knows, that no response byte reached the client. A retry avoids the endpoint that
 * just failed. The route timeout is one timer for the whole exchange, never restarted by a retry;
 * `perTryTimeout` bounds each try's wait for its response head (undici `headersTimeout`,
 * classified as a timeout).
 *
 * Accounting: `cluster.active` counts the exchange from start to finish (so a retired cluster
 * keeps its pools for our retries); each attempt holds an endpoint lease (cluster/lease.ts) from
 * dispatch until undici is done with it (the body streamed or the attempt failed), which is what
 * least-request and the overflow limits need. Breaker and outlier detection hear each attempt's
 * outcome once, at the response head (a failure in mid-body still reaches outlier detection).
 * When the client response is over, the exchange hands itself to the report, once.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Lease, takeLease } from '../cluster/lease.js';
import { proxyError, respondError, type ProxyError } from '../errors.js';
import type { AttemptOutcome } from '../resilience/classify.js';
import { classifyError, errorReason, isFailure, UPSTREAM_TIMEOUT } from '../resilience/classify.js';
import { RetryState } from '../resilience/retry.js';
import { checkResponseHead } from '../security/edge.js';
import type { Direction } from '../telemetry/metrics.js';
import { BodySource } from './body.js';
import type { Decision } from './decision.js';
import { clientResponseHeaders } from './headers.js';
import { startMirror } from './mirror.js';
import type { Report, Served } from './report.js';

/**
 * What an exchange writes the client's response to: the codec's response object. node:http's
 * ServerResponse is one as it stands; another codec (HTTP/2) supplies an adapter of this shape.
 */
export interface ClientResponse {
  readonly headersSent: boolean;
  readonly writableFinished: boolean;
  /** bytes written and not yet handed to the kernel */
  readonly writableLength: number;
  readonly statusCode: number;
  /** throws when a header value cannot be sent (the exchange answers 502 instead) */
  writeHead(status: number, statusText: string | undefined, headers: string[]): unknown;
  writeHead(status: number, headers: string[]): unknown;
  /** false: the client is not keeping up; wait for 'drain' */
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): unknown;
  destroy(): unknown;
  on(event: 'close', listener: (this: ClientResponse) => void): unknown;
  once(event: 'drain', listener: (this: ClientResponse) => void): unknown;
  off(event: 'drain', listener: (this: ClientResponse) => void): unknown;
}

const BAD_FRAMING = Object.freeze(new Error('ambiguous response framing from upstream'));
const CLIENT_GONE = Object.freeze(Object.assign(new Error('client closed the request'), { code: 'OUTRIGGER_CLIENT_GONE' }));
const DISCARD_TOO_BIG = Object.freeze(new Error('retried response body too large to drain'));

/** A retried response's body is drained (keeping its connection) up to this, else cut. */
const DISCARD_LIMIT = 64 * 1024;

/** The status logged for a client that went away before its response started (as nginx). */
export const CLIENT_CLOSED_STATUS = 499;

export class Exchange implements Served {
  readonly t0 = performance.now();
  status = 0;
  error: ProxyError | null = null;
  bytesOut = 0;
  upstream = '';
  headersSent = false;
  done = false;
  private readonly retry: RetryState;
  private body: BodySource | null = null;
  private current: Attempt | null = null;
  private timer: NodeJS.Timeout | null = null;
  private backoffTimer: NodeJS.Timeout | null = null;
  private resumeUpstream: (() => void) | null = null;
  /** a 'drain' listener is registered on the client response */
  private awaitingDrain = false;
  /** the exchange is counted in `cluster.active` */
  private counted = false;

  constructor(
    readonly labels: Decision,
    readonly method: string,
    /** the request body, or null when the request has none (RFC 9112 6.3) */
    private readonly requestBody: Readable | null,
    readonly res: ClientResponse,
    private readonly report: Report,
    private readonly direction: Direction,
  ) {
    this.retry = new RetryState(labels.retry);
    (res as ExchangeResponse)[EXCHANGE] = this;
    res.on('close', onResponseClose);
  }

  get attempts(): number {
    return this.retry.attempts;
  }

  get bytesIn(): number {
    return this.body === null ? 0 : this.body.bytesRead;
  }

  /** Starts forwarding (after the decision's fault delay, when it has one). */
  start(): void {
    const d = this.labels;
    if (d.delayMs > 0) this.backoffTimer = setTimeout(onDelayOver, d.delayMs, this);
    else this.begin();
  }

  /** The route timer, the first attempt and the mirror copy. */
  begin(): void {
    this.backoffTimer = null;
    if (this.done) return;
    const d = this.labels;
    if (d.cluster !== null) {
      d.cluster.requestStarted();
      this.counted = true;
    }
    if (this.requestBody !== null) this.body = new BodySource(this.requestBody);
    if (d.timeout > 0) this.timer = setTimeout(onRouteTimeout, d.timeout, this);
    this.attempt();
    if (d.mirror !== null) startMirror(d, this.method, this.body, d.mirror);
  }

  /** One upstream try: lease an endpoint (or the passthrough origin's pool), dispatch. */
  private attempt(): void {
    // A retry whose exchange was answered meanwhile (route timeout, client gone) is not made.
    if (this.done || this.headersSent) return;
    const d = this.labels;
    let lease: Lease | null = null;
    let dispatcher: Dispatcher;
    if (d.cluster !== null) {
      const l = takeLease(d.cluster, d.hashKey, this.retry.avoid, this.direction, false);
      if (!(l instanceof Lease)) {
        this.refuse(l);
        return;
      }
      lease = l;
      dispatcher = l.endpoint.pool;
      this.upstream = l.endpoint.key;
      if (this.retry.attempts === 0) d.cluster.budget.onRequest();
    } else {
      dispatcher = d.passthrough.get(d.origin);
      this.upstream = d.origin;
    }
    this.retry.started(lease?.endpoint);
    const a = new Attempt(this, lease);
    this.current = a;
    const policy = d.retry;
    dispatcher.dispatch(
      {
        method: this.method as Dispatcher.HttpMethod,
        path: d.upstreamPath,
        headers: d.upstreamHeaders,
        body: this.body === null ? null : this.body.attempt(),
        headersTimeout: policy.perTryTimeout > 0 ? policy.perTryTimeout : 0,
        bodyTimeout: 0,
        // a request with a body is never pipelined; undici decides from `idempotent`
        idempotent: false,
        blocking: true,
      },
      a,
    );
  }

  /**
   * A lease refused (counted under its own reason). A first try answers with it; a retry that
   * cannot be made answers with the failure it was retrying, as a retry over budget does: the
   * client learns what went wrong upstream, not that the retry was refused.
   */
  private refuse(err: ProxyError): void {
    const prior = this.retry.retrying;
    if (prior !== null) {
      this.report.upstreamError(this.labels.clusterName, err.reason);
      this.fail(prior, '');
      return;
    }
    this.fail(err, err.reason);
  }

  /** The attempt's dispatch is over (completed or failed): its endpoint goes back. */
  attemptEnded(a: Attempt): void {
    if (a.ended) return;
    a.ended = true;
    if (this.current === a) this.current = null;
    a.lease?.release();
  }

  /** An attempt ended before any response byte reached the client. */
  attemptFailed(a: Attempt, outcome: AttemptOutcome, err: ProxyError): void {
    this.attemptSettled(a, outcome);
    if (this.done || this.headersSent) return;
    if (this.mayRetry(outcome)) {
      this.retry.retrying = err;
      this.scheduleRetry();
      return;
    }
    this.fail(err, ''); // the attempt was counted when it settled
  }

  /** Bookkeeping every attempt gets exactly once. */
  attemptSettled(a: Attempt, outcome: AttemptOutcome): void {
    if (a.settled) return;
    a.settled = true;
    const lease = a.lease;
    if (lease === null) return;
    // The client going away says nothing about the upstream's health.
    if (a.clientGone) {
      lease.abandoned();
      return;
    }
    if (isFailure(outcome)) lease.failed();
    else lease.succeeded();
    if (outcome.kind === 'error') this.report.upstreamError(this.labels.clusterName, errorReason(outcome.error));
  }

  private mayRetry(outcome: AttemptOutcome): boolean {
    const replayable = this.body === null || this.body.replayable;
    const v = this.retry.decide(outcome, this.method, replayable, this.labels.cluster);
    if (v === 'budget_exhausted') this.report.budgetExhausted(this.labels.clusterName);
    return v === 'retry';
  }

  /**
   * The upstream broke after its head was forwarded (a reset or cut mid-body): the client gets a
   * cut-off. Breaker and error counts had their say at the head; the error is counted here and
   * outlier detection hears of the failure.
   */
  attemptBrokeAfterHead(a: Attempt, reason: string): void {
    // A proxy-made answer is already on its way (a head Node refused to send): leave it be.
    if (this.error !== null) return;
    if (!a.clientGone && a.lease !== null) {
      this.report.upstreamError(this.labels.clusterName, reason);
      a.lease.brokeLater();
    }
    this.cutOff();
  }

  /** A drained response is being retried: there is no earlier failure to answer with. */
  retryingResponse(): void {
    this.retry.retrying = null;
  }

  /** A response whose status the policy retries: drain its body, then try again. */
  wantsRetryOnStatus(status: number): boolean {
    if (this.headersSent || this.done) return false;
    return this.mayRetry({ kind: 'response', status });
  }

  scheduleRetry(): void {
    if (this.done || this.headersSent) return;
    this.report.retried(this.labels.clusterName);
    this.backoffTimer = setTimeout(onBackoffOver, this.retry.backoff(), this);
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
    const headers = clientResponseHeaders(raw, this.labels.responseOps);
    try {
      // flushed with the first body chunk rather than in a packet of its own
      this.res.writeHead(status, statusText === '' ? undefined : statusText, headers);
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
    // The client socket's own mark (16 KiB) would pause the upstream parser on nearly every
    // response over 16 KiB, and a pause and resume cost more than the bytes: up to
    // RESPONSE_BUFFER bytes may wait in the client socket before the upstream is paused.
    if (this.res.write(chunk) || this.res.writableLength < RESPONSE_BUFFER) return true;
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
      a?.abort(UPSTREAM_TIMEOUT);
      this.cutOff();
      return;
    }
    if (this.backoffTimer !== null) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = null;
    }
    if (a !== null) {
      a.timedOut = true;
      a.abort(UPSTREAM_TIMEOUT);
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
    if (countAs !== '') this.report.upstreamError(this.labels.clusterName, countAs);
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
      this.labels.cluster?.requestEnded();
    }
    if (this.status === 0) this.status = this.res.statusCode;
    this.report.served(this);
  }
}

/** Bytes of one response that may wait for a slow client before the upstream is paused. */
const RESPONSE_BUFFER = 128 * 1024;

// The exchange's event and timer callbacks are these module functions, not closures made per
// request: the response carries its exchange, and timers are given it as their argument.
const EXCHANGE = Symbol('outrigger.exchange');
interface ExchangeResponse extends ClientResponse {
  [EXCHANGE]: Exchange;
}

function onResponseClose(this: ClientResponse): void {
  (this as ExchangeResponse)[EXCHANGE].clientClosed();
}

function onResponseDrain(this: ClientResponse): void {
  (this as ExchangeResponse)[EXCHANGE].clientDrained();
}

function onDelayOver(x: Exchange): void {
  x.begin();
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
    /** the endpoint this attempt holds; null for a passthrough origin */
    readonly lease: Lease | null,
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
    const kind = this.badFraming ? 'protocol_error' : classifyError(err);
    if (this.settled) {
      // the head was forwarded already
      x.attemptBrokeAfterHead(this, errorReason(kind));
      return;
    }
    const outcome: AttemptOutcome = { kind: 'error', error: kind };
    x.attemptFailed(this, outcome, proxyError(errorReason(kind), err.message));
  }
}
