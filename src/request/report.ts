/**
 * The report: the one place where a request that is over reaches the metrics and its one
 * access-log line, whether it was forwarded (an exchange), tunnelled, or refused by admission.
 * The upstream side calls it; it never calls back into a listener. One per listener, made with
 * the listener's admission, whose in-flight count it releases when an admitted request ends.
 */
import type { AccessLog } from '../telemetry/access.js';
import type { Direction, Metrics } from '../telemetry/metrics.js';
import type { Admission } from './admit.js';
import type { RequestLabels, Refusal } from './decision.js';

/** What a forwarded request or a tunnel knows when it is over. */
export interface Served {
  readonly labels: RequestLabels;
  readonly method: string | undefined;
  /** the status sent to the client (101 / 200 for established tunnels, 499 for a client gone) */
  readonly status: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** endpoint key of the last attempt; '' when none was tried */
  readonly upstream: string;
  readonly attempts: number;
  /** set when the proxy made the response */
  readonly error: { readonly reason: string } | null;
  /** `performance.now()` when the request arrived */
  readonly t0: number;
}

export class Report {
  /** `outrigger_upstream_errors_total` children by cluster and reason, made on first use */
  private readonly errorCounters = new Map<string, { inc(): void }>();

  constructor(
    readonly direction: Direction,
    private readonly metrics: Metrics,
    private readonly accessLog: AccessLog,
    private readonly admission: Admission,
  ) {}

  /** An admitted request is over: counted, logged, and released from the listener's count. */
  served(x: Served, tunnel?: 'upgrade' | 'connect'): void {
    this.admission.release();
    const seconds = (performance.now() - x.t0) / 1000;
    this.record(x.labels, x.method, x.status, seconds, x.bytesIn, x.bytesOut, x.upstream, x.attempts, x.error?.reason, tunnel);
  }

  /** A request admission refused: answered by the codec, counted and logged here. */
  refused(method: string | undefined, r: Refusal, tunnel?: 'upgrade' | 'connect'): void {
    this.record(r, method, r.error.status, 0, 0, 0, '', 0, r.error.reason, tunnel);
  }

  /** The one sample and the one access line of a request. */
  private record(
    l: RequestLabels,
    method: string | undefined,
    status: number,
    seconds: number,
    bytesIn: number,
    bytesOut: number,
    upstream: string,
    attempts: number,
    error: string | undefined,
    tunnel: 'upgrade' | 'connect' | undefined,
  ): void {
    if (l.stats !== null) l.stats.observe(status, seconds);
    else this.metrics.requests.labels(this.direction, 'none', 'none', String(status)).inc();
    this.accessLog.write({
      direction: this.direction,
      method,
      path: l.path,
      host: l.host,
      status,
      duration_ms: Math.round(seconds * 1e6) / 1e3,
      bytes_in: bytesIn,
      bytes_out: bytesOut,
      route: l.route,
      cluster: l.clusterName,
      upstream: upstream === '' ? null : upstream,
      attempts,
      request_id: l.requestId,
      trace_id: l.traceId,
      tunnel,
      error,
    });
  }

  /** A failed attempt or a local refusal of one (`outrigger_upstream_errors_total`). */
  upstreamError(cluster: string, reason: string): void {
    const key = `${cluster}\0${reason}`;
    let c = this.errorCounters.get(key);
    if (c === undefined) {
      c = this.metrics.upstreamErrors.labels(cluster, reason);
      this.errorCounters.set(key, c);
    }
    c.inc();
  }

  retried(cluster: string): void {
    this.metrics.retries.labels(cluster).inc();
  }

  budgetExhausted(cluster: string): void {
    this.metrics.retryBudgetExhausted.labels(cluster).inc();
  }
}
