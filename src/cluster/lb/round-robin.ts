/**
 * Round-robin load balancer (the default): a cursor walks the endpoint list, skipping endpoints
 * that are unavailable (failed health checks, ejected) and, when another is available, the
 * endpoint a retry wants to avoid.
 */
import type { LbEndpoint, LoadBalancer } from './types.js';

export class RoundRobinBalancer<E extends LbEndpoint> implements LoadBalancer<E> {
  private endpoints: readonly E[];
  private next = 0;

  constructor(endpoints: readonly E[]) {
    this.endpoints = endpoints.slice();
  }

  pick(_hashKey: string | undefined, avoid: E | undefined): E | null {
    const eps = this.endpoints;
    const n = eps.length;
    let i = this.next;
    // `avoid` is remembered rather than returned at once: it is the answer only when no other
    // endpoint is available (a retry to the same endpoint beats no retry at all).
    let fallback: E | null = null;
    for (let tries = 0; tries < n; tries++) {
      if (i >= n) i = 0;
      const e = eps[i]!;
      i++;
      if (!e.available) continue;
      if (e === avoid) {
        fallback = e;
        continue;
      }
      this.next = i;
      return e;
    }
    if (fallback !== null) this.next = i;
    return fallback;
  }

  update(endpoints: readonly E[]): void {
    this.endpoints = endpoints.slice();
    // Keep the cursor's position (modulo the new size) so a DNS refresh does not send the next
    // burst of requests to the first endpoint of every proxy in the fleet at once.
    if (this.next >= this.endpoints.length) this.next = 0;
  }

  describe(): Record<string, unknown> {
    return { kind: 'round-robin', endpoints: this.endpoints.length, next: this.next };
  }
}
