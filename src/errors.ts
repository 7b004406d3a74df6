/**
 * The proxy's own responses: every failure the data plane can answer with is a `ProxyError`
 * value, `REASON_STATUS` is the one mapping from reason to status, and the two writers below are
 * the only code that turns one into bytes: `respondError` on a codec's response object,
 * `rawErrorResponse` on a raw socket (refused tunnels, requests Node's parser gave up on).
 * See docs/traffic.md, "Responses the proxy makes itself".
 */
import { STATUS_CODES } from 'node:http';

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
  | 'upstream_timeout'
  | 'loop_detected';

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
  // RFC 5842's Loop Detected: the request came back to the listener that sent it
  loop_detected: 508,
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

/** The headers of a proxy-made response, flat, as node:http's `writeHead` takes them. */
function errorHeaders(err: ProxyError, close: boolean): string[] {
  const body = errorBody(err.reason);
  const h = ['content-type', 'application/json', 'content-length', String(body.length), ERROR_HEADER, err.reason];
  if (close) h.push('connection', 'close');
  return h;
}

/** What `respondError` needs of a codec's response (node:http's ServerResponse is one). */
export interface ErrorResponseTarget {
  readonly headersSent: boolean;
  writeHead(status: number, headers: string[]): unknown;
  end(body: Buffer): unknown;
  destroy(): unknown;
}

/**
 * Writes a proxy-made response: status, `x-outrigger-error`, `{"error":"REASON"}`; with `close`,
 * `connection: close`. A response whose head is already out can only be cut off.
 */
export function respondError(res: ErrorResponseTarget, err: ProxyError, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(err.status, errorHeaders(err, close));
  res.end(errorBody(err.reason));
}

/** The bytes of a proxy-made response on a raw socket; the connection closes after it. */
export function rawErrorResponse(err: ProxyError): string {
  const h = errorHeaders(err, true);
  // Date as node:http writes it on its responses (RFC 9110 6.6.1: an origin with a clock sends it)
  let head = `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\ndate: ${new Date().toUTCString()}\r\n`;
  for (let i = 0; i < h.length; i += 2) head += `${h[i] as string}: ${h[i + 1] as string}\r\n`;
  return head + '\r\n' + errorBody(err.reason).toString('latin1');
}
