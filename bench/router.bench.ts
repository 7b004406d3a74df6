// Micro-benchmark of RouteTable.route: ns per match with 1,000 routes, for the request that
// matches the first, the middle and the last route, and for one that matches none — over four
// table shapes: exact hosts (one route per host), one host with 1,000 path prefixes, wildcard
// hosts, and one host with 1,000 regex paths. Run after building the tests:
//   node .build-test/bench/router.bench.js   [ms per cell, default 300]
import { parseConfig } from '../src/config/load.js';
import type { Cluster } from '../src/cluster/cluster.js';
import { RouteTable } from '../src/router/table.js';
import { Metrics } from '../src/telemetry/metrics.js';

const N = 1000;
const BUDGET_MS = Number(process.argv[2] ?? 300);
const RAW_HEADERS: readonly string[] = ['host', 'x', 'user-agent', 'bench', 'accept', '*/*'];

interface Shape {
  name: string;
  /** YAML of one route's `match` */
  match(i: number): string;
  /** host and path of a request matching route i (i = -1: matching nothing) */
  request(i: number): [string, string];
}

const SHAPES: Shape[] = [
  {
    name: 'exact host',
    match: (i) => `{ host: svc-${i}.shop.svc.cluster.local, path: { prefix: /api } }`,
    request: (i) => [i < 0 ? 'unknown.shop.svc.cluster.local' : `svc-${i}.shop.svc.cluster.local`, '/api/items/42'],
  },
  {
    name: 'one host, prefix',
    match: (i) => `{ host: api, path: { prefix: /r${i}/ } }`,
    request: (i) => ['api', i < 0 ? '/none/items/42' : `/r${i}/items/42`],
  },
  {
    name: 'wildcard host',
    match: (i) => `{ host: "*.zone-${i}.example.com" }`,
    request: (i) => [i < 0 ? 'a.nowhere.example.org' : `a.zone-${i}.example.com`, '/items/42'],
  },
  {
    name: 'one host, regex',
    match: (i) => `{ host: api, path: { regex: "/v1/r${i}/items/[0-9]+" } }`,
    request: (i) => ['api', i < 0 ? '/v1/none/items/42' : `/v1/r${i}/items/42`],
  },
];

const metrics = new Metrics(false);
// The table reads only a cluster's identity when it compiles targets.
const clusters = new Map<string, Cluster>([['c', { name: 'c' } as unknown as Cluster]]);

function table(shape: Shape): RouteTable {
  const routes: string[] = [];
  for (let i = 0; i < N; i++) routes.push(`    - { name: r${i}, match: ${shape.match(i)}, cluster: c }`);
  const yaml = `outbound:\n  listen: 127.0.0.1:0\n  unknownHosts: reject\n  routes:\n${routes.join('\n')}\nclusters:\n  c: { endpoints: ["127.0.0.1:1"] }\n`;
  const loaded = parseConfig(yaml, 'router-bench.yaml');
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => p.message).join('\n'));
  return new RouteTable(loaded.config.outbound!, clusters, metrics);
}

function time(t: RouteTable, host: string, path: string, expect: string): number {
  const d = t.route(host, 80, path, 'GET', RAW_HEADERS);
  const got = d.kind === 'route' ? d.route.name : d.kind;
  if (got !== expect) throw new Error(`${host}${path}: expected ${expect}, got ${got}`);
  let sink = 0;
  const loop = (count: number): void => {
    for (let i = 0; i < count; i++) if (t.route(host, 80, path, 'GET', RAW_HEADERS).kind === 'route') sink++;
  };
  loop(20_000); // warm up: let the JIT optimise route()
  // Batches until the time budget is spent, so slow cells (long scans) still finish quickly.
  let batch = 1000;
  let count = 0;
  const t0 = process.hrtime.bigint();
  let ns = 0;
  while (ns < BUDGET_MS * 1e6) {
    loop(batch);
    count += batch;
    ns = Number(process.hrtime.bigint() - t0);
    if (batch < 100_000) batch *= 2;
  }
  if (sink < 0) console.log(sink); // keeps the loop from being optimised away
  return ns / count;
}

const rows: string[][] = [['routes: 1000', 'first', 'middle', 'last', 'no match']];
for (const shape of SHAPES) {
  const t = table(shape);
  const row = [shape.name];
  for (const [i, expect] of [
    [0, 'r0'],
    [N / 2, `r${N / 2}`],
    [N - 1, `r${N - 1}`],
    [-1, 'no_route'],
  ] as const) {
    const [host, path] = shape.request(i);
    row.push(time(t, host, path, expect).toFixed(1));
  }
  rows.push(row);
}
const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
console.log(`RouteTable.route, ns/match, ~${BUDGET_MS} ms per cell (node ${process.version})`);
for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
