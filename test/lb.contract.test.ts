// One contract suite run against every load balancer (hono's common.case pattern): whatever
// the algorithm, these properties hold. Algorithm-specific distribution lives in
// lb.distribution.test.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLoadBalancer } from '../src/cluster/lb/index.js';
import type { LoadBalancerKind } from '../src/config/types.js';

interface Ep {
  key: string;
  active: number;
  available: boolean;
}

function eps(n: number, from = 0): Ep[] {
  return Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + from}:8080`, active: 0, available: true }));
}

const KINDS: readonly LoadBalancerKind[] = ['round-robin', 'random', 'least-request', 'ring-hash'];
// Each balancer is exercised both with and without a hash key (only ring-hash reads it).
const KEY_MODES: readonly { name: string; key: (i: number) => string | undefined }[] = [
  { name: 'no hash key', key: () => undefined },
  { name: 'varying hash keys', key: (i) => `user-${i}` },
];

for (const kind of KINDS) {
  for (const mode of KEY_MODES) {
    describe(`load balancer contract: ${kind}, ${mode.name}`, () => {
      const key = mode.key;

      it('returns null for an empty endpoint list', () => {
        const lb = createLoadBalancer<Ep>(kind, []);
        assert.equal(lb.pick(key(0), undefined), null);
        assert.equal(lb.pick(key(1), undefined), null);
      });

      it('never picks an unavailable endpoint, and every available one gets traffic', () => {
        const list = eps(6);
        list[1]!.available = false;
        list[4]!.available = false;
        const lb = createLoadBalancer(kind, list);
        const seen = new Map<string, number>();
        for (let i = 0; i < 3000; i++) {
          const e = lb.pick(key(i), undefined);
          assert.ok(e !== null);
          assert.ok(e.available, `picked unavailable ${e.key}`);
          seen.set(e.key, (seen.get(e.key) ?? 0) + 1);
        }
        assert.deepEqual([...seen.keys()].sort(), [list[0]!.key, list[2]!.key, list[3]!.key, list[5]!.key].sort());
      });

      it('reads availability live (a flip after construction is honoured)', () => {
        const list = eps(3);
        const lb = createLoadBalancer(kind, list);
        list[0]!.available = false;
        list[2]!.available = false;
        for (let i = 0; i < 200; i++) assert.equal(lb.pick(key(i), undefined), list[1]);
        list[0]!.available = true;
        let back = 0;
        for (let i = 0; i < 500; i++) if (lb.pick(key(i), undefined) === list[0]) back++;
        assert.ok(back > 0, 'endpoint that became available again gets no traffic');
      });

      it('returns null when no endpoint is available', () => {
        const list = eps(4);
        for (const e of list) e.available = false;
        const lb = createLoadBalancer(kind, list);
        for (let i = 0; i < 50; i++) assert.equal(lb.pick(key(i), undefined), null);
        assert.equal(lb.pick(key(0), list[0]), null);
      });

      it('honours avoid when another endpoint is available', () => {
        const list = eps(5);
        const lb = createLoadBalancer(kind, list);
        for (let i = 0; i < 2000; i++) {
          const avoid = list[i % 5]!;
          const e = lb.pick(key(i), avoid);
          assert.ok(e !== null);
          assert.notEqual(e, avoid);
        }
        // Two available endpoints, one avoided: always the other.
        list[0]!.available = false;
        list[1]!.available = false;
        list[2]!.available = false;
        for (let i = 0; i < 200; i++) assert.equal(lb.pick(key(i), list[3]), list[4]);
      });

      it('returns the avoided endpoint when it is the only available one', () => {
        const list = eps(3);
        list[0]!.available = false;
        list[2]!.available = false;
        const lb = createLoadBalancer(kind, list);
        for (let i = 0; i < 100; i++) assert.equal(lb.pick(key(i), list[1]), list[1]);
        const single = eps(1);
        const lb1 = createLoadBalancer(kind, single);
        assert.equal(lb1.pick(key(0), single[0]), single[0]);
      });

      it('handles update(): added endpoints get traffic, removed ones never do', () => {
        const list = eps(3);
        const lb = createLoadBalancer(kind, list);
        for (let i = 0; i < 10; i++) lb.pick(key(i), undefined);
        const next = [list[1]!, list[2]!, ...eps(2, 10)];
        lb.update(next);
        const seen = new Set<string>();
        for (let i = 0; i < 3000; i++) {
          const e = lb.pick(key(i), undefined);
          assert.ok(e !== null);
          assert.notEqual(e, list[0], 'picked a removed endpoint');
          assert.ok(next.includes(e));
          seen.add(e.key);
        }
        assert.equal(seen.size, 4);
        lb.update([]);
        assert.equal(lb.pick(key(0), undefined), null);
        lb.update(list);
        assert.ok(list.includes(lb.pick(key(0), undefined)!));
      });

      it('copies the endpoint list (mutating the caller array changes nothing)', () => {
        const list = eps(2);
        const lb = createLoadBalancer(kind, list);
        const intruder = eps(1, 99)[0]!;
        list.push(intruder);
        for (let i = 0; i < 500; i++) assert.notEqual(lb.pick(key(i), undefined), intruder);
      });

      it('spreads traffic over all of many endpoints', () => {
        const list = eps(20);
        const lb = createLoadBalancer(kind, list);
        const seen = new Set<Ep>();
        for (let i = 0; i < 20000; i++) seen.add(lb.pick(key(i), undefined)!);
        assert.equal(seen.size, 20);
      });

      it('describe() is JSON-serialisable and names the kind', () => {
        const lb = createLoadBalancer(kind, eps(3));
        const d = JSON.parse(JSON.stringify(lb.describe())) as Record<string, unknown>;
        assert.equal(d['kind'], kind);
        assert.equal(d['endpoints'], 3);
      });
    });
  }
}
