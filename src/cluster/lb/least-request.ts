/**
 * Least-request load balancer: power of two random choices (Envoy's and Linkerd's P2C). Two
 * distinct endpoints are drawn at random and the one with fewer requests in flight (`active`)
 * wins; a tie is broken at random. P2C avoids the herd behaviour of a global "least active"
 * scan (every proxy piling onto the same idle endpoint) at O(1) cost.
 */
import type { LbEndpoint, LoadBalancer } from './types.js';

/** P2C rounds tried before falling back to a scan of all endpoints. */
const ROUNDS = 2;

export class LeastRequestBalancer<E extends LbEndpoint> implements LoadBalancer<E> {
  private endpoints: readonly E[];

  /** `random` returns a number in [0, 1); injectable for tests. */
  constructor(
    endpoints: readonly E[],
    private readonly random: () => number = Math.random,
  ) {
    this.endpoints = endpoints.slice();
  }

  pick(_hashKey: string | undefined, avoid: E | undefined): E | null {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 0) return null;
    if (n >= 2) {
      for (let r = 0; r < ROUNDS; r++) {
        const i = (this.random() * n) | 0;
        // A second index drawn from the other n-1 slots: the two choices are always distinct.
        let j = (this.random() * (n - 1)) | 0;
        if (j >= i) j++;
        const a = eps[i]!;
        const b = eps[j]!;
        const aOk = a.available && a !== avoid;
        const bOk = b.available && b !== avoid;
        if (aOk && bOk) {
          if (a.active < b.active) return a;
          if (b.active < a.active) return b;
          return this.random() < 0.5 ? a : b;
        }
        if (aOk) return a;
        if (bOk) return b;
      }
    }
    // Degraded path (many endpoints down, or a single endpoint): the least active eligible
    // endpoint, scanning from a random offset so ties do not always favour the same one.
    const start = (this.random() * n) | 0;
    let best: E | null = null;
    let avoidAvailable = false;
    for (let k = 0; k < n; k++) {
      let i = start + k;
      if (i >= n) i -= n;
      const e = eps[i]!;
      if (!e.available) continue;
      if (e === avoid) {
        avoidAvailable = true;
        continue;
      }
      if (best === null || e.active < best.active) best = e;
    }
    if (best !== null) return best;
    return avoidAvailable ? (avoid as E) : null;
  }

  update(endpoints: readonly E[]): void {
    this.endpoints = endpoints.slice();
  }

  describe(): Record<string, unknown> {
    return { kind: 'least-request', endpoints: this.endpoints.length, choices: 2 };
  }
}
