// The route table against a plain reference: first match in file order over host (exact,
// `*.suffix`, `*`, none), path (prefix, exact, regex), methods and headers. Property-based, with
// tables big enough that the host buckets and the path-segment index are in play.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseConfig } from '../src/config/load.js';
import type { Cluster } from '../src/cluster/cluster.js';
import { RouteTable, regexLiteralPrefix } from '../src/router/table.js';
import { Metrics } from '../src/telemetry/metrics.js';

interface R {
  hosts: string[] | null;
  path: { prefix: string } | { exact: string } | { regex: string } | null;
  methods: string[] | null;
  canary: boolean;
}

const HOSTS = ['a', 'b', 'x.example.com', '*.example.com', '*.com'];
const PATHS: R['path'][] = [
  null,
  { prefix: '/' },
  { prefix: '/api' },
  { prefix: '/api/' },
  { prefix: '/api/v1/' },
  { prefix: '/r1/' },
  { prefix: '/r2/x' },
  { prefix: '/r3/q/' },
  { exact: '/api' },
  { exact: '/api/v1/items' },
  { exact: '/r1/a' },
  { exact: '/' },
  { regex: '/api/v[0-9]+/.*' },
  { regex: '/r1/[a-z]+' },
  { regex: '/r2/x.*' },
  { regex: '(/a|/b)/c' },
  { regex: '/r3/q?/z' },
];
const REQ_HOSTS = ['a', 'b', 'x.example.com', 'z.example.com', 'example.com', 'other'];
const REQ_PATHS = [
  '/',
  '/api',
  '/apix',
  '/api/',
  '/api/v1/items',
  '/api/v2/items',
  '/r1/a',
  '/r1/abc',
  '/r2/xyz',
  '/r2/x',
  '/r3/q/z',
  '/r3//z',
  '/a/c',
  '/b/c',
];

const route: fc.Arbitrary<R> = fc.record({
  hosts: fc.option(fc.uniqueArray(fc.constantFrom(...HOSTS), { minLength: 1, maxLength: 2 }), { nil: null }),
  path: fc.constantFrom(...PATHS),
  methods: fc.option(fc.constant(['GET']), { nil: null }),
  canary: fc.boolean(),
});

function hostOk(hosts: string[] | null, host: string): boolean {
  if (hosts === null) return true;
  return hosts.some((h) => (h === '*' ? true : h.startsWith('*.') ? host.length > h.length - 1 && host.endsWith(h.slice(1)) : h === host));
}

function pathOk(p: R['path'], path: string): boolean {
  if (p === null) return true;
  if ('prefix' in p) return path.startsWith(p.prefix);
  if ('exact' in p) return path === p.exact;
  return new RegExp(`^(?:${p.regex})$`).test(path);
}

function reference(routes: R[], passthrough: boolean, host: string, path: string, method: string, canary: boolean): string {
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    if (!hostOk(r.hosts, host) || !pathOk(r.path, path)) continue;
    if (r.methods !== null && !r.methods.includes(method)) continue;
    if (r.canary && !canary) continue;
    return `r${i}`;
  }
  return passthrough ? 'passthrough' : 'no_route';
}

const metrics = new Metrics(false);
const clusters = new Map<string, Cluster>([
  ['c', { name: 'c', config: { dns: null, endpoints: [{ host: '127.0.0.1', port: 8080 }] } } as unknown as Cluster],
]);

function build(routes: R[], passthrough: boolean): RouteTable {
  const cfg = {
    outbound: {
      listen: '127.0.0.1:0',
      unknownHosts: passthrough ? 'passthrough' : 'reject',
      routes: routes.map((r, i) => {
        const match: Record<string, unknown> = {};
        if (r.hosts !== null) match['host'] = r.hosts;
        if (r.path !== null) match['path'] = r.path;
        if (r.methods !== null) match['methods'] = r.methods;
        if (r.canary) match['headers'] = { 'x-canary': 'true' };
        return { name: `r${i}`, match, cluster: 'c' };
      }),
    },
    clusters: { c: { endpoints: ['127.0.0.1:1'] } },
  };
  const loaded = parseConfig(JSON.stringify(cfg), 'router-test.yaml');
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => p.message).join('\n'));
  return new RouteTable(loaded.config.outbound!, clusters, metrics);
}

test('route() is the first match in file order, for any table (property)', () => {
  fc.assert(
    fc.property(fc.array(route, { minLength: 1, maxLength: 40 }), fc.boolean(), (routes, passthrough) => {
      const t = build(routes, passthrough);
      for (const host of REQ_HOSTS) {
        for (const path of REQ_PATHS) {
          for (const method of ['GET', 'POST']) {
            for (const canary of [false, true]) {
              const raw = canary ? ['Host', host, 'X-Canary', 'true'] : ['Host', host];
              const d = t.route(host, 80, path, method, raw);
              const got = d.kind === 'route' ? d.route.name : d.kind;
              assert.equal(got, reference(routes, passthrough, host, path, method, canary), `${method} ${host}${path} canary=${canary}`);
            }
          }
        }
      }
    }),
    { numRuns: 150 },
  );
});

test('1,000 routes: the first, middle and last match and a miss are all found', () => {
  const routes: R[] = [];
  for (let i = 0; i < 1000; i++) routes.push({ hosts: ['api'], path: { regex: `/v1/r${i}/items/[0-9]+` }, methods: null, canary: false });
  const t = build(routes, false);
  for (const i of [0, 500, 999]) {
    const d = t.route('api', 80, `/v1/r${i}/items/42`, 'GET', []);
    assert.equal(d.kind === 'route' ? d.route.name : d.kind, `r${i}`);
  }
  assert.equal(t.route('api', 80, '/v1/r1000/items/42', 'GET', []).kind, 'no_route');
  assert.equal(t.route('api', 80, '/v1/r5/items/x', 'GET', []).kind, 'no_route');
});

test('regexLiteralPrefix is conservative', () => {
  assert.equal(regexLiteralPrefix('/v1/r5/items/[0-9]+'), '/v1/r5/items/');
  assert.equal(regexLiteralPrefix('/ab?c'), '/a');
  assert.equal(regexLiteralPrefix('/abc*'), '/ab');
  assert.equal(regexLiteralPrefix('/ab{0,2}'), '/a');
  assert.equal(regexLiteralPrefix('/a|/b'), '');
  assert.equal(regexLiteralPrefix('^/z'), '');
  assert.equal(regexLiteralPrefix('/x\\.y'), '/x');
});

test('CONNECT routing: routeForConnect ignores path and method, skips host-less routes, and takes only its ports', () => {
  const t = build(
    [
      { hosts: null, path: null, methods: null, canary: false },
      { hosts: ['*.example.com'], path: { prefix: '/only' }, methods: ['GET'], canary: false },
      { hosts: ['a'], path: null, methods: null, canary: true },
    ],
    false,
  );
  // without match.port a route takes a CONNECT to its cluster's port (8080) only
  assert.equal(t.routeForConnect('x.example.com', 8080)?.name, 'r1');
  assert.equal(t.routeForConnect('a', 8080)?.name, 'r2');
  assert.equal(t.routeForConnect('b', 8080), null);
  assert.equal(t.routeForConnect('x.example.com', 443), null);
  assert.equal(t.routeForConnect('a', 443), null);
});

test('match.port: a route takes the Host ports it names, and CONNECT to exactly those', () => {
  const cfg = {
    outbound: {
      listen: '127.0.0.1:0',
      routes: [
        { name: 'tls', match: { host: 'a', port: [443, 8443] }, cluster: 'c' },
        { name: 'plain', match: { host: 'a', port: 80 }, cluster: 'c' },
      ],
    },
    clusters: { c: { endpoints: ['127.0.0.1:1'] } },
  };
  const loaded = parseConfig(JSON.stringify(cfg), 'router-test.yaml');
  assert.ok(loaded.ok);
  const t = new RouteTable(loaded.config.outbound!, clusters, metrics);
  const name = (port: number): string => {
    const d = t.route('a', port, '/', 'GET', []);
    return d.kind === 'route' ? d.route.name : d.kind;
  };
  assert.equal(name(443), 'tls');
  assert.equal(name(8443), 'tls');
  assert.equal(name(80), 'plain');
  assert.equal(name(8080), 'passthrough');
  assert.equal(t.routeForConnect('a', 443)?.name, 'tls');
  assert.equal(t.routeForConnect('a', 80)?.name, 'plain');
  assert.equal(t.routeForConnect('a', 8080), null);
});
