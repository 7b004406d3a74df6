// Micro-benchmark of LoadBalancer.pick: ns per pick for each algorithm with 10 and 100
// endpoints (all available, and with a fifth of them down). Run after building the tests:
//   node .build-test/bench/lb.bench.js   [picks, default 1e6]
import { createLoadBalancer } from '../src/cluster/lb/index.js';
import type { LbEndpoint } from '../src/cluster/lb/types.js';
import type { LoadBalancerKind } from '../src/config/types.js';

const PICKS = Number(process.argv[2] ?? 1e6);
const KINDS: readonly LoadBalancerKind[] = ['round-robin', 'random', 'least-request', 'ring-hash'];
// Hash keys are built up front so the loop times the balancer, not string building.
const KEYS = Array.from({ length: 1024 }, (_, i) => `user-${i * 7919}`);

interface Ep extends LbEndpoint {
  key: string;
  active: number;
  available: boolean;
}

function endpoints(n: number, downEvery: number): Ep[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `10.0.${i >> 8}.${i & 255}:8080`,
    active: i % 7,
    available: downEvery === 0 || i % downEvery !== 0,
  }));
}

function run(kind: LoadBalancerKind, n: number, downEvery: number): number {
  const lb = createLoadBalancer(kind, endpoints(n, downEvery));
  const keyed = kind === 'ring-hash';
  let sink = 0;
  const loop = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const e = lb.pick(keyed ? KEYS[i & 1023] : undefined, undefined);
      if (e !== null) sink += e.active;
    }
  };
  loop(Math.min(PICKS, 200_000)); // warm up: let the JIT optimise pick()
  const t0 = process.hrtime.bigint();
  loop(PICKS);
  const ns = Number(process.hrtime.bigint() - t0);
  if (sink < 0) console.log(sink); // keeps the loop from being optimised away
  return ns / PICKS;
}

const rows: string[][] = [['balancer', 'endpoints', 'down', 'ns/pick']];
for (const kind of KINDS) {
  for (const n of [10, 100]) {
    for (const downEvery of [0, 5]) {
      rows.push([kind, String(n), downEvery === 0 ? '0' : `${n / downEvery}`, run(kind, n, downEvery).toFixed(1)]);
    }
  }
}
const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
console.log(`LoadBalancer.pick, ${PICKS} picks per row (node ${process.version})`);
for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
