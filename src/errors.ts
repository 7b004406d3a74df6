/**
 * The proxy's own responses: every failure the data plane can answer with is a `ProxyError`
 * kind, and `errorStatus` is the one mapping from kind to status and `x-outrigger-error` reason
 * (CONTRACT.md, "A response the proxy makes itself").
 */

export type ErrorReason =
  | 'bad_request'
  | 'forbidden'
  | 'fault_injected'
  | 'no_route'
  | 'rate_limited'
  | 'upstream_connect_failure'
  | 'upstream_reset'
  | 'upstream_protocol_error'
  | 'no_healthy_upstream'
  | 'circuit_open'
  | 'overflow'
  | 'draining'
  | 'upstream_timeout';

/** Default status of each reason; `bad_request` may also be 414 or 431, `fault_injected` any 4xx/5xx. */
export const REASON_STATUS: Readonly<Record<ErrorReason, number>> = Object.freeze({
  bad_request: 400,
  forbidden: 403,
  fault_injected: 503,
  no_route: 404,
  rate_limited: 429,
  upstream_connect_failure: 502,
  upstream_reset: 502,
  upstream_protocol_error: 502,
  no_healthy_upstream: 503,
  circuit_open: 503,
  overflow: 503,
  draining: 503,
  upstream_timeout: 504,
});

/** An expected failure, as a value. `status` overrides the reason's default status. */
export interface ProxyError {
  readonly reason: ErrorReason;
  readonly status: number;
  /** for logs only; never sent to the client */
  readonly detail?: string;
}

export function proxyError(reason: ErrorReason, detail?: string, status?: number): ProxyError {
  const e: { reason: ErrorReason; status: number; detail?: string } = {
    reason,
    status: status ?? REASON_STATUS[reason],
  };
  if (detail !== undefined) e.detail = detail;
  return e;
}

// Bodies are tiny and fixed per reason: build them once.
const BODIES = new Map<ErrorReason, Buffer>();
for (const r of Object.keys(REASON_STATUS) as ErrorReason[]) {
  BODIES.set(r, Buffer.from(`{"error":"${r}"}`));
}

/** The JSON body `{"error":"REASON"}` of a proxy-made response. */
export function errorBody(reason: ErrorReason): Buffer {
  return BODIES.get(reason) as Buffer;
}

/** Header name carried by every proxy-made response. */
export const ERROR_HEADER = 'x-outrigger-error';
