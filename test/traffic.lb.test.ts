// Load balancing through the real proxy: each balancer's distribution, ring-hash stickiness and
// its stability when an endpoint goes away (DNS), and endpoints that are unhealthy or ejected
// being skipped. Upstreams are 127.0.0.x servers sharing one port, as a DNS cluster's are.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { startDnsServer, type DnsServer } from './helpers/dns-server.js';
import { startTagged, tally, type Tagged } from './helpers/tagged.js';
import { waitFor } from './helpers/wait.js';

let a: Tagged, b: Tagged, c: Tagged, sick: Tagged, failing: Tagged;
let dns: DnsServer;
let p: TestProxy;
let P = 0;

async function via(host: string, headers: Record<string, string> = {}, path = '/'): Promise<{ status: number; from: string }> {
  const r = await request(p.outbound, { path, headers: { host, ...headers } });
  return { status: r.status, from: String(r.headers['x-upstream'] ?? r.headers['x-outrigger-error'] ?? '') };
}

async function many(n: number, host: string, headers: Record<string, string> = {}): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await via(host, headers)).from);
  return out;
}

async function clusters(): Promise<
  Record<
    string,
    { endpoints: { address: string; healthy: boolean; ejected: boolean; available: boolean }[]; loadBalancer: Record<string, unknown> }
  >
> {
  const r = await request(p.admin, { path: '/clusters' });
  return (JSON.parse(r.body.toString()) as { clusters: never }).clusters;
}

before(async () => {
  a = await startTagged('a', '127.0.0.1', 0);
  P = a.port;
  b = await startTagged('b', '127.0.0.2', P);
  c = await startTagged('c', '127.0.0.3', P);
  sick = await startTagged('sick', '127.0.0.4', P);
  sick.healthStatus = 503;
  failing = await startTagged('failing', '127.0.0.5', P);
  failing.status = 500;
  dns = await startDnsServer();
  dns.set('ring.test', ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  const abc = `["127.0.0.1:${P}", "127.0.0.2:${P}", "127.0.0.3:${P}"]`;
  p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
resolver: { servers: ["127.0.0.1:${dns.port}"] }
outbound:
  listen: 127.0.0.1:0
  unknownHosts: reject
  routes:
    - { name: rr, match: { host: rr-svc }, cluster: rr }
    - { name: random, match: { host: random-svc }, cluster: random }
    - { name: lr, match: { host: lr-svc }, cluster: lr }
    - { name: ring, match: { host: ring-svc }, cluster: ring }
    - { name: ringdns, match: { host: ringdns-svc }, cluster: ringdns }
    - { name: health, match: { host: health-svc }, cluster: health }
    - { name: outlier, match: { host: outlier-svc }, cluster: outlier }
clusters:
  rr: { endpoints: ${abc}, loadBalancer: round-robin }
  random: { endpoints: ${abc}, loadBalancer: random }
  lr: { endpoints: ["127.0.0.1:${P}", "127.0.0.2:${P}"], loadBalancer: least-request }
  ring: { endpoints: ${abc}, loadBalancer: ring-hash, hashOn: { header: x-user-id } }
  ringdns:
    dns: { name: ring.test, port: ${P}, refresh: 100ms }
    loadBalancer: ring-hash
    hashOn: { header: x-user-id }
  health:
    endpoints: ["127.0.0.1:${P}", "127.0.0.2:${P}", "127.0.0.4:${P}"]
    healthCheck: { path: /healthz, interval: 100ms, timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1 }
  outlier:
    endpoints: ["127.0.0.1:${P}", "127.0.0.2:${P}", "127.0.0.5:${P}"]
    outlierDetection: { consecutiveErrors: 2, ejectionTime: 1m, maxEjectionPercent: 50 }
`);
});

after(async () => {
  await p.close();
  await Promise.all([a.close(), b.close(), c.close(), sick.close(), failing.close(), dns.close()]);
});

test('round-robin: exactly even over sequential requests', async () => {
  const t = tally(await many(300, 'rr-svc'));
  assert.deepEqual([...t.entries()].sort(), [
    ['a', 100],
    ['b', 100],
    ['c', 100],
  ]);
});

test('random: every endpoint gets a fair share (wide bounds)', async () => {
  const t = tally(await many(600, 'random-svc'));
  assert.equal(t.size, 3);
  // expected 200 each, sd ≈ 11.5: [120, 280] is about 7 sd either way
  for (const [k, n] of t) assert.ok(n >= 120 && n <= 280, `${k}: ${n}`);
});

test('least-request: requests avoid the endpoint that is holding one', async () => {
  a.hold = true;
  const pending: Promise<unknown>[] = [];
  try {
    // until one request is held by `a`, requests to `b` complete at once
    let sent = 0;
    while (a.held.length === 0 && sent < 50) {
      const r = via('lr-svc');
      pending.push(r);
      sent++;
      await Promise.race([r, waitFor(() => a.held.length > 0)]);
    }
    assert.equal(a.held.length, 1);
    const aBefore = a.hits;
    // with a request in flight on `a` and none on `b`, P2C over two endpoints always picks `b`
    const t = tally(await many(40, 'lr-svc'));
    assert.deepEqual([...t.entries()], [['b', 40]]);
    assert.equal(a.hits, aBefore);
  } finally {
    a.hold = false;
    a.release();
    await Promise.all(pending);
  }
});

test('ring-hash: the same x-user-id always lands on the same endpoint; users spread', async () => {
  const home = new Map<string, string>();
  for (let u = 0; u < 60; u++) {
    const froms = new Set(await many(3, 'ring-svc', { 'x-user-id': `user-${u}` }));
    assert.equal(froms.size, 1, `user-${u} moved: ${[...froms].join(',')}`);
    home.set(`user-${u}`, [...froms][0]!);
  }
  const t = tally([...home.values()]);
  assert.equal(t.size, 3, JSON.stringify([...t]));
  for (const [k, n] of t) assert.ok(n >= 5, `${k}: ${n}`);
});

test('ring-hash: removing an endpoint (DNS) moves only the keys it owned', async () => {
  await waitFor(async () => (await clusters())['ringdns']!.endpoints.length === 3);
  const before = new Map<string, string>();
  for (let u = 0; u < 90; u++) before.set(`k${u}`, (await via('ringdns-svc', { 'x-user-id': `k${u}` })).from);
  assert.equal(new Set(before.values()).size, 3);
  dns.set('ring.test', ['127.0.0.1', '127.0.0.3']); // b goes away
  await waitFor(async () => (await clusters())['ringdns']!.endpoints.length === 2);
  let moved = 0;
  for (const [k, was] of before) {
    const now = (await via('ringdns-svc', { 'x-user-id': k })).from;
    if (was === 'b') {
      assert.notEqual(now, 'b');
      moved++;
    } else {
      assert.equal(now, was, `${k} moved from ${was} to ${now} though its endpoint stayed`);
    }
  }
  assert.ok(moved > 0);
  dns.set('ring.test', ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
});

test('an endpoint failing its health check is skipped, and /clusters shows why', async () => {
  await waitFor(async () => (await clusters())['health']!.endpoints.find((e) => e.address === `127.0.0.4:${P}`)?.healthy === false);
  const sickBefore = sick.hits;
  const t = tally(await many(40, 'health-svc'));
  assert.equal(sick.hits, sickBefore);
  assert.deepEqual([...t.keys()].sort(), ['a', 'b']);
  const metrics = (await request(p.admin, { path: '/metrics' })).body.toString();
  assert.match(metrics, new RegExp(`outrigger_endpoint_healthy\\{cluster="health",endpoint="127.0.0.4:${P}"\\} 0`));
  assert.match(metrics, new RegExp(`outrigger_endpoint_healthy\\{cluster="health",endpoint="127.0.0.1:${P}"\\} 1`));
});

test('an ejected endpoint (outlier detection) is skipped', async () => {
  // round-robin reaches `failing` every third request; two 500s in a row eject it
  await waitFor(async () => {
    await via('outlier-svc');
    return (await clusters())['outlier']!.endpoints.find((e) => e.address === `127.0.0.5:${P}`)?.ejected === true;
  });
  const before = failing.hits;
  const t = tally(await many(30, 'outlier-svc'));
  assert.equal(failing.hits, before);
  assert.deepEqual([...t.entries()].sort(), [
    ['a', 15],
    ['b', 15],
  ]);
});
