/**
 * Random load balancer: a uniformly random available endpoint. Stateless between picks, so
 * proxies in a fleet do not synchronise the way round-robin cursors can.
 */
import type { LbEndpoint, LoadBalancer } from './types.js';

/** Random draws tried before falling back to counting the available endpoints. */
const DRAWS = 3;

export class RandomBalancer<E extends LbEndpoint> implements LoadBalancer<E> {
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
    // Common path: a couple of random draws find an eligible endpoint in O(1).
    for (let d = 0; d < DRAWS; d++) {
      const e = eps[(this.random() * n) | 0]!;
      if (e.available && e !== avoid) return e;
    }
    // Degraded path (most endpoints down, or n is 1 or 2): pick the k-th eligible endpoint so
    // the choice stays uniform instead of favouring whoever follows a dead endpoint.
    let eligible = 0;
    let avoidAvailable = false;
    for (let i = 0; i < n; i++) {
      const e = eps[i]!;
      if (!e.available) continue;
      if (e === avoid) avoidAvailable = true;
      else eligible++;
    }
    if (eligible === 0) return avoidAvailable ? (avoid as E) : null;
    let k = (this.random() * eligible) | 0;
    for (let i = 0; i < n; i++) {
      const e = eps[i]!;
      if (!e.available || e === avoid) continue;
      if (k === 0) return e;
      k--;
    }
    return null; // unreachable unless availability flipped mid-pick
  }

  update(endpoints: readonly E[]): void {
    this.endpoints = endpoints.slice();
  }

  describe(): Record<string, unknown> {
    return { kind: 'random', endpoints: this.endpoints.length };
  }
}
