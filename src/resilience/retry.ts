/**
 * Retries: a route's rules (compiled once per snapshot) and the state of one request's retries
 * (made per request, read by the exchange or tunnel that owns it).
 *
 * A retry is made only when all of these hold, checked in `RetryState.decide` in this order:
 * attempts are left; the policy's conditions call for it (`shouldRetry`, Envoy's retry-on
 * semantics); the request body can still be replayed (64 KiB, request/body.ts); and the
 * cluster's retry budget grants it. The caller adds what only it knows: that no response byte
 * reached the client and the route deadline has not passed. A retry avoids the endpoint that
 * just failed and waits an exponential backoff with full jitter first.
 */
import type { RetryConfig } from '../config/types.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Endpoint } from '../cluster/endpoint.js';
import type { ProxyError } from '../errors.js';
import { backoffDelay } from './backoff.js';
import type { AttemptOutcome } from './classify.js';

/** A route's retry policy, compiled once per config snapshot. */
export interface RetryPolicy {
  /** retries after the first try (0 = never retry) */
  readonly attempts: number;
  /** ms; 0 = only the route timeout bounds a try */
  readonly perTryTimeout: number;
  /** `connect-failure` */
  readonly onConnectFailure: boolean;
  /** `reset`: connection reset/closed, protocol error or per-try timeout */
  readonly onReset: boolean;
  /** `5xx`: any 5xx response, and every error kind (as Envoy counts a reset as a 5xx) */
  readonly on5xx: boolean;
  /** `gateway-error`: 502, 503, 504 responses, and every error kind (as Envoy) */
  readonly onGatewayError: boolean;
  /** status codes listed by number */
  readonly statuses: ReadonlySet<number>;
  /** ms */
  readonly backoffBase: number;
  /** ms */
  readonly backoffMax: number;
  /** retry POST/PATCH/... on conditions other than connect failure */
  readonly nonIdempotent: boolean;
}

const EMPTY_STATUSES: ReadonlySet<number> = new Set();

/** The policy of a route without a `retries` block: one retry on connect failure, nothing else. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  attempts: 1,
  perTryTimeout: 0,
  onConnectFailure: true,
  onReset: false,
  on5xx: false,
  onGatewayError: false,
  statuses: EMPTY_STATUSES,
  backoffBase: 25,
  backoffMax: 250,
  nonIdempotent: false,
});

/**
 * Compiles a route's `retries` block; `null` gives {@link DEFAULT_RETRY_POLICY}. Conditions are
 * `connect-failure`, `reset`, `5xx`, `gateway-error` and status codes (numbers, or numeric
 * strings). Throws a TypeError on any other condition: the config schema must have rejected it,
 * so reaching here is a bug, and silently ignoring it would silently disable retries.
 */
export function compileRetryPolicy(r: RetryConfig | null): RetryPolicy {
  if (r === null) return DEFAULT_RETRY_POLICY;
  let onConnectFailure = false;
  let onReset = false;
  let on5xx = false;
  let onGatewayError = false;
  const statuses = new Set<number>();
  for (let i = 0; i < r.on.length; i++) {
    const c = r.on[i];
    if (typeof c === 'number' || (typeof c === 'string' && /^[1-5][0-9][0-9]$/.test(c))) {
      const n = Number(c);
      if (!Number.isInteger(n) || n < 100 || n > 599) {
        throw new TypeError(`retries.on: bad status ${String(c)}`);
      }
      statuses.add(n);
      continue;
    }
    switch (c) {
      case 'connect-failure':
        onConnectFailure = true;
        break;
      case 'reset':
        onReset = true;
        break;
      case '5xx':
        on5xx = true;
        break;
      case 'gateway-error':
        onGatewayError = true;
        break;
      default:
        throw new TypeError(`retries.on: unknown condition ${String(c)}`);
    }
  }
  return Object.freeze({
    attempts: r.attempts,
    perTryTimeout: r.perTryTimeout,
    onConnectFailure,
    onReset,
    on5xx,
    onGatewayError,
    statuses: statuses.size === 0 ? EMPTY_STATUSES : statuses,
    backoffBase: r.backoff.base,
    backoffMax: r.backoff.max,
    nonIdempotent: r.nonIdempotent,
  });
}

/** RFC 9110 §9.2.2 idempotent methods (upper-case, as Node delivers them). */
export function isIdempotent(method: string): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'TRACE':
    case 'PUT':
    case 'DELETE':
      return true;
    default:
      return false;
  }
}

/**
 * Whether the policy's conditions call for another try after outcome `o` (Envoy's
 * `x-envoy-retry-on` semantics as of Envoy 1.2x, `RetryStateImpl::wouldRetryFromReset/Headers`):
 *
 * - `connect_failure` is retried under `connect-failure`, `reset`, `5xx` and `gateway-error`,
 *   whatever the method: nothing reached the upstream.
 * - `reset`, `protocol_error` and `timeout` are retried under `reset`, `5xx` and
 *   `gateway-error` (Envoy turns a per-try timeout and a codec error into a local stream reset,
 *   and counts any reset as a "5xx"/gateway error since it becomes one), but not under
 *   `connect-failure` alone.
 * - A response is retried when its status is listed, or is 5xx under `5xx`, or is 502/503/504
 *   under `gateway-error`.
 * - Everything but a connect failure needs an idempotent method, unless `nonIdempotent`
 *   (docs/resilience.md, Retries).
 *
 * The caller still decides whether a retry is *possible* (attempts left, body replayable, no
 * response bytes sent, the route deadline not passed, the budget) and asks this first.
 */
export function shouldRetry(p: RetryPolicy, o: AttemptOutcome, method: string): boolean {
  if (o.kind === 'error') {
    const anyReset = p.onReset || p.on5xx || p.onGatewayError;
    if (o.error === 'connect_failure') return p.onConnectFailure || anyReset;
    if (!anyReset) return false;
    return p.nonIdempotent || isIdempotent(method);
  }
  const s = o.status;
  const hit = p.statuses.has(s) || (p.on5xx && s >= 500 && s <= 599) || (p.onGatewayError && (s === 502 || s === 503 || s === 504));
  return hit && (p.nonIdempotent || isIdempotent(method));
}

/** What `RetryState.decide` concluded about one failed attempt. */
export type RetryVerdict = 'retry' | 'no' | 'budget_exhausted';

/** One request's retries: attempts made, the endpoint to avoid, the failure being retried. */
export class RetryState {
  /** attempts started so far (the first try included) */
  attempts = 0;
  /** the endpoint of the last attempt, which the next one avoids */
  avoid: Endpoint | undefined = undefined;
  /**
   * The failure a pending retry is retrying: what the client gets if the retry cannot be made
   * (a retry refused locally answers with what went wrong upstream, not with the refusal).
   */
  retrying: ProxyError | null = null;

  constructor(readonly policy: RetryPolicy) {}

  /** An attempt starts on `ep` (undefined: a passthrough origin). */
  started(ep: Endpoint | undefined): void {
    this.attempts++;
    this.avoid = ep;
  }

  /**
   * Whether `outcome` of the last attempt is retried. `replayable` says whether the request body
   * can be sent again; the budget of `cluster` (null: passthrough, no budget) is asked last, so
   * only a retry that would otherwise be made spends it.
   */
  decide(outcome: AttemptOutcome, method: string, replayable: boolean, cluster: Cluster | null): RetryVerdict {
    const p = this.policy;
    if (this.attempts > p.attempts) return 'no';
    if (!shouldRetry(p, outcome, method)) return 'no';
    if (!replayable) return 'no';
    if (cluster !== null && !cluster.tryRetry()) return 'budget_exhausted';
    return 'retry';
  }

  /** The backoff before the retry about to be made (ms). */
  backoff(): number {
    return backoffDelay(this.attempts - 1, this.policy.backoffBase, this.policy.backoffMax);
  }
}
