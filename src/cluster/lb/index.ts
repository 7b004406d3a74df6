/**
 * The load-balancer factory: maps a cluster's `loadBalancer` kind to its implementation.
 * Call it once per cluster build (config snapshot), never per request.
 */
import type { LoadBalancerKind } from '../../config/types.js';
import { LeastRequestBalancer } from './least-request.js';
import { RandomBalancer } from './random.js';
import { RingHashBalancer } from './ring-hash.js';
import { RoundRobinBalancer } from './round-robin.js';
import type { LbEndpoint, LoadBalancer } from './types.js';

export type { LbEndpoint, LoadBalancer } from './types.js';
export { LeastRequestBalancer } from './least-request.js';
export { RingHashBalancer, hash32, DEFAULT_VIRTUAL_NODES } from './ring-hash.js';

/** A new balancer of `kind` over `endpoints` (the list is copied; `update` replaces it). */
export function createLoadBalancer<E extends LbEndpoint>(kind: LoadBalancerKind, endpoints: readonly E[]): LoadBalancer<E> {
  switch (kind) {
    case 'round-robin':
      return new RoundRobinBalancer(endpoints);
    case 'random':
      return new RandomBalancer(endpoints);
    case 'least-request':
      return new LeastRequestBalancer(endpoints);
    case 'ring-hash':
      return new RingHashBalancer(endpoints);
    default: {
      const never: never = kind;
      throw new Error(`unknown load balancer kind: ${String(never)}`);
    }
  }
}
