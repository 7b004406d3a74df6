/**
 * Ring-hash load balancer: a Ketama-style consistent hash ring. Each endpoint owns
 * `virtualNodes` points on a 32-bit ring (the hash of `key#i`); a request's hash key (the
 * `hashOn` header, else the client address) goes to the first point at or after its own hash.
 * Because points are derived from endpoint keys alone, adding or removing one of N endpoints
 * moves only about 1/N of the keys, and an unavailable endpoint's keys spill over to the next
 * points on the ring while every other key stays where it was.
 */
import type { LbEndpoint, LoadBalancer } from './types.js';
import { RoundRobinBalancer } from './round-robin.js';

/** Ketama's classic 160 points per endpoint: ~8 % spread of load between endpoints. */
export const DEFAULT_VIRTUAL_NODES = 160;

/**
 * 32-bit hash of a string: FNV-1a over UTF-16 code units, then murmur3's fmix32 finaliser,
 * because plain FNV-1a avalanches poorly on strings that differ only in their last characters
 * (`10.0.0.7:8080#1`, `#2`, ...), which would clump the virtual nodes. Allocation-free.
 */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function sameList<E>(a: readonly E[], b: readonly E[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class RingHashBalancer<E extends LbEndpoint> implements LoadBalancer<E> {
  private endpoints: readonly E[] = [];
  /** sorted point hashes */
  private hashes = new Uint32Array(0);
  /** index into `endpoints` of the endpoint owning each point */
  private owners = new Uint32Array(0);
  /** requests without a hash key have no affinity to keep: they are spread round-robin */
  private readonly keyless = new RoundRobinBalancer<E>([]);

  constructor(
    endpoints: readonly E[],
    private readonly virtualNodes: number = DEFAULT_VIRTUAL_NODES,
  ) {
    this.update(endpoints);
  }

  pick(hashKey: string | undefined, avoid: E | undefined): E | null {
    if (hashKey === undefined) return this.keyless.pick(undefined, avoid);
    const hashes = this.hashes;
    const len = hashes.length;
    if (len === 0) return null;
    const h = hash32(hashKey);
    // Binary search: first point with hash >= h, wrapping to the start of the ring.
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hashes[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    if (lo === len) lo = 0;
    const owners = this.owners;
    const eps = this.endpoints;
    let fallback: E | null = null;
    // Walk forward past unavailable endpoints. Bounded by the ring size; the full walk happens
    // only when (nearly) every endpoint is down.
    for (let step = 0; step < len; step++) {
      let p = lo + step;
      if (p >= len) p -= len;
      const e = eps[owners[p]!]!;
      if (!e.available) continue;
      if (e === avoid) {
        fallback = e;
        continue;
      }
      return e;
    }
    return fallback;
  }

  update(endpoints: readonly E[]): void {
    // Rebuilding costs a sort of n × virtualNodes points: skip it when nothing changed.
    if (this.hashes.length > 0 && sameList(this.endpoints, endpoints)) return;
    const eps = endpoints.slice();
    const vn = this.virtualNodes;
    const size = eps.length * vn;
    const pointHash = new Uint32Array(size);
    const pointOwner = new Uint32Array(size);
    const order = new Array<number>(size);
    for (let e = 0; e < eps.length; e++) {
      const key = eps[e]!.key;
      for (let v = 0; v < vn; v++) {
        const p = e * vn + v;
        pointHash[p] = hash32(`${key}#${v}`);
        pointOwner[p] = e;
        order[p] = p;
      }
    }
    // Colliding points are ordered by endpoint key, so the ring depends on the set of keys and
    // not on the order DNS happened to return them in.
    order.sort((a, b) => {
      const d = pointHash[a]! - pointHash[b]!;
      if (d !== 0) return d;
      const ka = eps[pointOwner[a]!]!.key;
      const kb = eps[pointOwner[b]!]!.key;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    const hashes = new Uint32Array(size);
    const owners = new Uint32Array(size);
    for (let i = 0; i < size; i++) {
      const p = order[i]!;
      hashes[i] = pointHash[p]!;
      owners[i] = pointOwner[p]!;
    }
    this.endpoints = eps;
    this.hashes = hashes;
    this.owners = owners;
    this.keyless.update(eps);
  }

  describe(): Record<string, unknown> {
    return {
      kind: 'ring-hash',
      endpoints: this.endpoints.length,
      virtualNodesPerEndpoint: this.virtualNodes,
      ringSize: this.hashes.length,
    };
  }
}
