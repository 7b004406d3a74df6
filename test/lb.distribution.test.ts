// Per-algorithm distribution: what distinguishes one balancer from another (the shared
// properties are in lb.contract.test.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLoadBalancer, DEFAULT_VIRTUAL_NODES, hash32, LeastRequestBalancer, RingHashBalancer } from '../src/cluster/lb/index.js';

interface Ep {
  key: string;
  active: number;
  available: boolean;
}

function eps(n: number): Ep[] {
  return Array.from({ length: n }, (_, i) => ({ key: `10.0.${i >> 8}.${i & 255}:8080`, active: 0, available: true }));
}

function counts(pick: (i: number) => Ep | null, n: number): Map<Ep, number> {
  const m = new Map<Ep, number>();
  for (let i = 0; i < n; i++) {
    const e = pick(i)!;
    m.set(e, (m.get(e) ?? 0) + 1);
  }
  return m;
}

describe('round-robin distribution', () => {
  it('is exactly even and cyclic', () => {
    const list = eps(4);
    const lb = createLoadBalancer('round-robin', list);
    const first = [0, 1, 2, 3].map(() => lb.pick(undefined, undefined));
    assert.deepEqual(new Set(first).size, 4);
    for (let i = 0; i < 400; i++) assert.equal(lb.pick(undefined, undefined), first[i % 4]);
    const c = counts(() => lb.pick(undefined, undefined), 4000);
    for (const e of list) assert.equal(c.get(e), 1000);
  });

  it('stays exactly even over the available endpoints when one is down', () => {
    const list = eps(4);
    list[2]!.available = false;
    const lb = createLoadBalancer('round-robin', list);
    const c = counts(() => lb.pick(undefined, undefined), 3000);
    assert.equal(c.get(list[2]!), undefined);
    for (const i of [0, 1, 3]) assert.equal(c.get(list[i]!), 1000);
  });
});

describe('random distribution', () => {
  it('is roughly even over 10,000 picks', () => {
    const list = eps(10);
    const lb = createLoadBalancer('random', list);
    const c = counts(() => lb.pick(undefined, undefined), 10_000);
    // Expected 1000 each, standard deviation ~30: ±300 is a 10-sigma margin.
    for (const e of list) {
      const n = c.get(e) ?? 0;
      assert.ok(n > 700 && n < 1300, `${e.key}: ${n}`);
    }
  });

  it('stays uniform over the survivors when most endpoints are down', () => {
    const list = eps(10);
    for (let i = 0; i < 8; i++) list[i]!.available = false;
    const lb = createLoadBalancer('random', list);
    const c = counts(() => lb.pick(undefined, undefined), 10_000);
    assert.equal(c.size, 2);
    const n = c.get(list[8]!) ?? 0;
    assert.ok(n > 4500 && n < 5500, `${n}`);
  });
});

describe('least-request (P2C) distribution', () => {
  it('prefers endpoints with fewer requests in flight', () => {
    const list = eps(4);
    [0, 5, 10, 20].forEach((a, i) => (list[i]!.active = a));
    const lb = createLoadBalancer('least-request', list);
    const c = counts(() => lb.pick(undefined, undefined), 10_000);
    const n = list.map((e) => c.get(e) ?? 0);
    // With two distinct choices the busiest endpoint always loses, and the idlest wins whenever
    // drawn (half of all picks).
    assert.equal(n[3], 0);
    assert.ok(n[0]! > n[1]! && n[1]! > n[2]! && n[2]! > 0, n.join(','));
    assert.ok(n[0]! > 4500 && n[0]! < 5500, `${n[0]}`);
  });

  it('picks the lower of the two drawn endpoints, ties at random', () => {
    const list = eps(3);
    list[0]!.active = 7;
    list[1]!.active = 3;
    list[2]!.active = 3;
    // Draws: i = floor(r*3), j from the other two slots; the third draw breaks a tie.
    const seq = (values: number[]): (() => number) => {
      let k = 0;
      return () => values[k++ % values.length]!;
    };
    assert.equal(new LeastRequestBalancer(list, seq([0.0, 0.0])).pick(undefined, undefined), list[1]); // 0 vs 1
    assert.equal(new LeastRequestBalancer(list, seq([0.5, 0.0])).pick(undefined, undefined), list[1]); // 1 vs 0
    assert.equal(new LeastRequestBalancer(list, seq([0.5, 0.9, 0.1])).pick(undefined, undefined), list[1]); // tie
    assert.equal(new LeastRequestBalancer(list, seq([0.5, 0.9, 0.9])).pick(undefined, undefined), list[2]); // tie
  });

  it('splits evenly between equally loaded endpoints', () => {
    const list = eps(2);
    const lb = createLoadBalancer('least-request', list);
    const n = counts(() => lb.pick(undefined, undefined), 10_000).get(list[0]!) ?? 0;
    assert.ok(n > 4500 && n < 5500, `${n}`);
  });
});

describe('ring-hash', () => {
  const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

  function owners(lb: RingHashBalancer<Ep>): Ep[] {
    return KEYS.map((k) => lb.pick(k, undefined)!);
  }

  it('hash32 is a stable 32-bit hash', () => {
    assert.equal(hash32('a'), hash32('a'));
    assert.notEqual(hash32('10.0.0.1:8080#1'), hash32('10.0.0.1:8080#2'));
    const h = hash32('x');
    assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
  });

  it('is sticky: a key always maps to the same endpoint, whatever the list order', () => {
    const list = eps(10);
    const a = new RingHashBalancer(list);
    const b = new RingHashBalancer([...list].reverse());
    const before = owners(a);
    assert.deepEqual(owners(a), before);
    assert.deepEqual(owners(b), before);
  });

  it('spreads keys roughly evenly', () => {
    const list = eps(10);
    const c = new Map<Ep, number>();
    for (const e of owners(new RingHashBalancer(list))) c.set(e, (c.get(e) ?? 0) + 1);
    assert.equal(c.size, 10);
    for (const [e, n] of c) assert.ok(n > 500 && n < 1500, `${e.key}: ${n}`);
  });

  it('removing one of 10 endpoints moves only its keys (~10 %)', () => {
    const list = eps(10);
    const lb = new RingHashBalancer(list);
    const before = owners(lb);
    const removed = list[3]!;
    lb.update(list.filter((e) => e !== removed));
    const after = owners(lb);
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === removed) {
        assert.notEqual(after[i], removed);
        moved++;
      } else {
        assert.equal(after[i], before[i], `key ${KEYS[i]} moved off a surviving endpoint`);
      }
    }
    const fraction = moved / KEYS.length;
    assert.ok(fraction > 0.06 && fraction < 0.14, `moved ${fraction}`);
  });

  it('adding an 11th endpoint moves keys only onto the new endpoint', () => {
    const list = eps(11);
    const lb = new RingHashBalancer(list.slice(0, 10));
    const before = owners(lb);
    lb.update(list);
    const after = owners(lb);
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (after[i] !== before[i]) {
        assert.equal(after[i], list[10]);
        moved++;
      }
    }
    assert.ok(moved / KEYS.length > 0.05 && moved / KEYS.length < 0.14, `moved ${moved}`);
  });

  it('walks past an unavailable endpoint without disturbing other keys', () => {
    const list = eps(10);
    const lb = new RingHashBalancer(list);
    const before = owners(lb);
    list[5]!.available = false;
    const after = owners(lb);
    const spilled = new Set<Ep>();
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === list[5]) spilled.add(after[i]!);
      else assert.equal(after[i], before[i]);
    }
    // Virtual nodes spread the down endpoint's keys over many neighbours, not one.
    assert.ok(spilled.size >= 5, `spilled onto ${spilled.size}`);
    assert.ok(!spilled.has(list[5]!));
    list[5]!.available = true;
    assert.deepEqual(owners(lb), before);
  });

  it('avoid moves a retry to the next endpoint on the ring, deterministically', () => {
    const list = eps(10);
    const lb = new RingHashBalancer(list);
    const first = lb.pick('user-42', undefined)!;
    const retry = lb.pick('user-42', first)!;
    assert.notEqual(retry, first);
    assert.equal(lb.pick('user-42', first), retry);
  });

  it('without a hash key, spreads requests round-robin', () => {
    const list = eps(5);
    const lb = new RingHashBalancer(list);
    const c = counts(() => lb.pick(undefined, undefined), 5000);
    for (const e of list) assert.equal(c.get(e), 1000);
  });

  it('describe() reports the ring size', () => {
    const lb = createLoadBalancer('ring-hash', eps(10));
    assert.deepEqual(lb.describe(), {
      kind: 'ring-hash',
      endpoints: 10,
      virtualNodesPerEndpoint: DEFAULT_VIRTUAL_NODES,
      ringSize: 10 * DEFAULT_VIRTUAL_NODES,
    });
  });
});
