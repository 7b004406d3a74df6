/**
 * The one place that decides what an upstream attempt's outcome *is*: which thrown errors are
 * connect failures, resets, timeouts or protocol errors, and which outcomes are failures (for the
 * circuit breaker and outlier detection). Whether one is worth a retry is retry.ts's question.
 * The request path classifies, then asks; it never looks at error codes itself.
 */
import type { ErrorReason } from '../errors.js';

/** How an attempt failed before (or while) a response came back. */
export type FailureKind = 'connect_failure' | 'reset' | 'timeout' | 'protocol_error';

/** What one upstream attempt produced: a response head, or an error of a known kind. */
export type AttemptOutcome =
  { readonly kind: 'response'; readonly status: number } | { readonly kind: 'error'; readonly error: FailureKind };

/**
 * Code of the error the forwarder should abort a try with when its `perTryTimeout` fires
 * (undici rejects a request with its signal's `reason`), so that it classifies as `timeout`.
 */
export const UPSTREAM_TIMEOUT_CODE = 'OUTRIGGER_UPSTREAM_TIMEOUT';

/** The error a per-try (or route) timeout aborts an attempt with; classifies as `timeout`. */
export class UpstreamTimeoutError extends Error {
  readonly code = UPSTREAM_TIMEOUT_CODE;
  constructor(message = 'upstream attempt timed out') {
    super(message);
    this.name = 'UpstreamTimeoutError';
  }
}

/**
 * A shared instance for `controller.abort(UPSTREAM_TIMEOUT)`: a timeout is an expected value on
 * the data plane, so it is not worth capturing a fresh stack trace per request.
 */
export const UPSTREAM_TIMEOUT: UpstreamTimeoutError = new UpstreamTimeoutError();

// Node / libuv errno codes and undici codes. Anything that means "no connection was ever
// established" is a connect failure: the request never reached the upstream, so retrying it
// is always safe (docs/resilience.md, "Retries").
const CONNECT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NODATA',
  'EAI_NONAME',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'EPROTO', // TLS handshake failed at the OpenSSL layer
  'UND_ERR_CONNECT_TIMEOUT',
  // dispatch on a closed pool is refused before anything is written (dispatcher-base.js)
  'UND_ERR_CLOSED',
  'UND_ERR_PRX_TLS',
  // OpenSSL certificate verification results (tls.connect `error.code`)
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'HOSTNAME_MISMATCH',
]);

const RESET_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET', // "other side closed", "closed" (except 'bad response', see below)
  'UND_ERR_INFO', // socket reset / idle-timeout while a request was queued on it
  'UND_ERR_DESTROYED', // pool destroyed with the request in flight
  'UND_ERR_ABORTED',
  'UND_ERR_ABORT',
  'ABORT_ERR',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', UPSTREAM_TIMEOUT_CODE]);

const PROTOCOL_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_HEADERS_OVERFLOW',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_RESPONSE',
  // undici refused to write the request as given (a header it will not send): no retry helps
  'UND_ERR_INVALID_ARG',
  'ERR_HTTP2_ERROR',
  'ERR_HTTP2_STREAM_ERROR',
  'ERR_HTTP2_PROTOCOL_ERROR',
]);

/** syscalls whose failure means the connection was never established */
const CONNECT_SYSCALLS: ReadonlySet<string> = new Set(['connect', 'getaddrinfo', 'lookup', 'queryA', 'queryAaaa']);

interface ErrorLike {
  code?: unknown;
  name?: unknown;
  message?: unknown;
  syscall?: unknown;
  cause?: unknown;
  errors?: unknown;
}

function classifyOne(e: ErrorLike): FailureKind | null {
  const code = typeof e.code === 'string' ? e.code : '';
  if (code !== '') {
    // ETIMEDOUT from the socket layer is a connect that never completed (SYN timeout); the
    // same code from anywhere else (opossum, user code) means a timed-out exchange.
    if (code === 'ETIMEDOUT') return e.syscall === 'connect' ? 'connect_failure' : 'timeout';
    if (CONNECT_CODES.has(code)) return 'connect_failure';
    if (TIMEOUT_CODES.has(code)) return 'timeout';
    if (code === 'UND_ERR_SOCKET') {
      // undici reports a response that arrives with no request outstanding, a 100 status or
      // an unrequested upgrade as SocketError('bad response' / 'bad upgrade'): a protocol
      // violation by the upstream, not a dropped connection.
      const m = e.message;
      return m === 'bad response' || m === 'bad upgrade' ? 'protocol_error' : 'reset';
    }
    if (RESET_CODES.has(code)) return 'reset';
    if (PROTOCOL_CODES.has(code) || code.startsWith('HPE_')) return 'protocol_error';
    if (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_')) return 'connect_failure';
    if (typeof e.syscall === 'string' && CONNECT_SYSCALLS.has(e.syscall)) return 'connect_failure';
  }
  // AbortSignal.timeout() aborts with a DOMException named TimeoutError (code 23, a number).
  if (e.name === 'TimeoutError') return 'timeout';
  // undici 7's HTTPParserError looks its code up in the wrong direction of llhttp's table and
  // ends up with `code: undefined` (checked against 7.30): its name is the stable part.
  if (e.name === 'HTTPParserError') return 'protocol_error';
  return null;
}

/**
 * Maps an error thrown by undici (7.x) or Node's net/tls/dns layers to a `FailureKind`, by
 * `code` (undici recommends codes over `instanceof`). Looks through `cause` and the first of an
 * `AggregateError`'s `errors` (happy-eyeballs connects) when the outer error says nothing.
 *
 * - connect_failure: ECONNREFUSED, ENOTFOUND, EAI_*, EHOSTUNREACH, ENETUNREACH,
 *   UND_ERR_CONNECT_TIMEOUT, TLS handshake / certificate errors, ETIMEDOUT from `connect`,
 *   UND_ERR_CLOSED (the pool refused the dispatch: nothing was sent).
 * - reset: ECONNRESET, EPIPE, UND_ERR_SOCKET ("other side closed"), UND_ERR_DESTROYED,
 *   UND_ERR_ABORTED. A client abort also lands here: the forwarder should not classify those,
 *   they are not the upstream's fault.
 * - timeout: UND_ERR_HEADERS_TIMEOUT, UND_ERR_BODY_TIMEOUT, {@link UPSTREAM_TIMEOUT_CODE},
 *   a `TimeoutError` from `AbortSignal.timeout()`.
 * - protocol_error: HTTPParserError / HPE_* (llhttp), UND_ERR_RES_CONTENT_LENGTH_MISMATCH,
 *   UND_ERR_HEADERS_OVERFLOW, SocketError('bad response'), UND_ERR_INVALID_ARG (undici would not
 *   send the request as given).
 * - anything unknown: reset (the connection is in an unknown state; a 502 is the honest answer).
 */
export function classifyError(err: unknown): FailureKind {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const el = e as ErrorLike;
    const k = classifyOne(el);
    if (k !== null) return k;
    if (Array.isArray(el.errors) && el.errors.length > 0) e = el.errors[0];
    else e = el.cause;
  }
  return 'reset';
}

/** The `x-outrigger-error` reason (docs/metrics.md, "Error reasons") for a failed attempt that goes back to the client. */
export function errorReason(
  k: FailureKind,
): 'upstream_connect_failure' | 'upstream_reset' | 'upstream_timeout' | 'upstream_protocol_error' {
  switch (k) {
    case 'connect_failure':
      return 'upstream_connect_failure';
    case 'reset':
      return 'upstream_reset';
    case 'timeout':
      return 'upstream_timeout';
    case 'protocol_error':
      return 'upstream_protocol_error';
    default: {
      const never: never = k;
      throw new TypeError(`unknown failure kind ${String(never)}`);
    }
  }
}

// Compile-time check that the reasons above are contract reasons.
const _reasonCheck: (k: FailureKind) => ErrorReason = errorReason;
void _reasonCheck;

/**
 * Whether an attempt counts as a failure for the circuit breaker and outlier detection: every
 * error kind and every 5xx response. 4xx (the caller's fault) and everything else is a success.
 */
export function isFailure(o: AttemptOutcome): boolean {
  return o.kind === 'error' || o.status >= 500;
}
