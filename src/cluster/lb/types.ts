/**
 * The load-balancer contract. One implementation per file in this folder, all run against the
 * same contract test suite (test/lb.contract.test.ts).
 */

/** What a balancer may read of an endpoint. The cluster owns the real Endpoint objects. */
export interface LbEndpoint {
  /** `host:port` (`[v6]:port`); stable identity across DNS refreshes */
  readonly key: string;
  /** requests in flight to this endpoint (least-request reads it) */
  readonly active: number;
  /** healthy (active checks) and not ejected (outlier detection) */
  readonly available: boolean;
}

export interface LoadBalancer<E extends LbEndpoint = LbEndpoint> {
  /**
   * Picks an available endpoint, or null when none is. `hashKey` is read by ring-hash only
   * (the `hashOn` header's value, else the client address). `avoid` is an endpoint a retry
   * should not go back to: it is returned only when it is the only available one.
   * Must be O(1) or O(log n) and allocate nothing on the common path.
   */
  pick(hashKey: string | undefined, avoid: E | undefined): E | null;
  /** Replaces the endpoint set (DNS refresh). Endpoints are compared by identity. */
  update(endpoints: readonly E[]): void;
  /** Balancer state for `/clusters` (JSON-serialisable). */
  describe(): Record<string, unknown>;
}
