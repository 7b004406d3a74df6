// DNS service discovery through the real proxy, against a small DNS server on loopback: A and
// AAAA, changes picked up on refresh without dropping in-flight requests or kept pools, failed
// re-resolution keeping the last endpoints, a name that never resolved answering 503 at once,
// and passthrough traffic resolving through the same resolver.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { request } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { startDnsServer, type DnsServer } from './helpers/dns-server.js';
import { startTagged, tally, type Tagged } from './helpers/tagged.js';
import { waitFor } from './helpers/wait.js';

let one: Tagged, two: Tagged, three: Tagged, six: Tagged;
let dns: DnsServer;
let p: TestProxy;
let P = 0;
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

async function via(host: string, path = '/'): Promise<{ status: number; from: string; reason: string }> {
  const r = await request(p.outbound, { path, headers: { host }, agent });
  return { status: r.status, from: String(r.headers['x-upstream'] ?? ''), reason: String(r.headers['x-outrigger-error'] ?? '') };
}

async function endpointsOf(cluster: string): Promise<string[]> {
  const r = await request(p.admin, { path: '/clusters' });
  const c = (JSON.parse(r.body.toString()) as { clusters: Record<string, { endpoints: { address: string }[] }> }).clusters[cluster]!;
  return c.endpoints.map((e) => e.address).sort();
}

async function metrics(): Promise<string> {
  return (await request(p.admin, { path: '/metrics' })).body.toString();
}

before(async () => {
  one = await startTagged('one', '127.0.0.1', 0);
  P = one.port;
  two = await startTagged('two', '127.0.0.2', P);
  three = await startTagged('three', '127.0.0.3', P);
  six = await startTagged('six', '::1', P);
  dns = await startDnsServer();
  dns.set('dual.svc.test', ['127.0.0.1'], ['::1']);
  dns.set('moving.svc.test', ['127.0.0.1', '127.0.0.2']);
  dns.set('flaky.svc.test', ['127.0.0.3']);
  dns.set('outside.example.test', ['127.0.0.2']);
  p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
resolver: { servers: ["127.0.0.1:${dns.port}"] }
outbound:
  listen: 127.0.0.1:0
  unknownHosts: passthrough
  routes:
    - { name: dual, match: { host: dual-svc }, cluster: dual }
    - { name: moving, match: { host: moving-svc }, cluster: moving }
    - { name: flaky, match: { host: flaky-svc }, cluster: flaky }
    - { name: never, match: { host: never-svc }, cluster: never }
clusters:
  dual: { dns: { name: dual.svc.test, port: ${P}, refresh: 1m } }
  moving: { dns: { name: moving.svc.test, port: ${P}, refresh: 200ms } }
  flaky: { dns: { name: flaky.svc.test, port: ${P}, refresh: 100ms } }
  never: { dns: { name: never.svc.test, port: ${P}, refresh: 100ms } }
`);
  await waitFor(async () => (await endpointsOf('moving')).length === 2);
});

after(async () => {
  agent.destroy();
  await p.close();
  await Promise.all([one.close(), two.close(), three.close(), six.close(), dns.close()]);
});

test('A and AAAA records both become endpoints; /clusters and metrics list them with the balancer state', async () => {
  await waitFor(async () => (await endpointsOf('dual')).length === 2);
  assert.deepEqual(await endpointsOf('dual'), [`127.0.0.1:${P}`, `[::1]:${P}`].sort());
  const t = tally(await Promise.all(Array.from({ length: 6 }, async () => (await via('dual-svc')).from)));
  assert.deepEqual([...t.entries()].sort(), [
    ['one', 3],
    ['six', 3],
  ]);
  const r = await request(p.admin, { path: '/clusters' });
  const dual = (JSON.parse(r.body.toString()) as { clusters: Record<string, Record<string, unknown>> }).clusters['dual']!;
  assert.equal(dual['discovery'], `dns:dual.svc.test:${P}`);
  assert.equal((dual['loadBalancer'] as { kind: string }).kind, 'round-robin');
  assert.equal((dual['loadBalancer'] as { endpoints: number }).endpoints, 2);
  const m = await metrics();
  assert.match(m, new RegExp(`outrigger_endpoint_healthy\\{cluster="dual",endpoint="\\[::1\\]:${P}"\\} 1`));
});

test('a DNS change is picked up on refresh; in-flight requests and the pools of kept endpoints survive it', async () => {
  // warm both pools, then hold one request in flight on `two`
  for (let i = 0; i < 4; i++) assert.equal((await via('moving-svc')).status, 200);
  const oneConns = one.connections;
  two.hold = true;
  let inflight: Promise<{ status: number; from: string; reason: string }> | undefined;
  for (let i = 0; i < 4 && inflight === undefined; i++) {
    const r = via('moving-svc');
    const landed = await Promise.race([
      r.then(() => 'done'),
      waitFor(() => two.held.length > 0).then(
        () => 'held',
        () => 'timeout',
      ),
    ]);
    if (landed === 'held') inflight = r;
  }
  assert.ok(inflight !== undefined, 'no request reached `two`');
  // `two` leaves, `three` arrives, `one` stays
  dns.set('moving.svc.test', ['127.0.0.1', '127.0.0.3']);
  await waitFor(async () => (await endpointsOf('moving')).includes(`127.0.0.3:${P}`));
  assert.deepEqual(await endpointsOf('moving'), [`127.0.0.1:${P}`, `127.0.0.3:${P}`]);
  const froms: string[] = [];
  for (let i = 0; i < 6; i++) froms.push((await via('moving-svc')).from); // sequential: one connection per pool suffices
  assert.deepEqual([...tally(froms).keys()].sort(), ['one', 'three']);
  // the held request on the retired endpoint still completes
  two.hold = false;
  two.release();
  const done = await inflight;
  assert.deepEqual(done, { status: 200, from: 'two', reason: '' });
  // `one` kept its endpoint object and pool: no new connection was needed for it
  assert.equal(one.connections, oneConns, 'the pool of `one` was rebuilt');
  const logs = p.logs.filter((l) => l['msg'] === 'endpoints updated' && l['cluster'] === 'moving');
  assert.ok(logs.length >= 2);
});

test('a failed re-resolution keeps the last endpoints, and is logged and counted', async () => {
  await waitFor(async () => (await endpointsOf('flaky')).length === 1);
  dns.fail(true, 'servfail');
  try {
    await waitFor(async () => /outrigger_dns_resolution_failures_total\{cluster="flaky"\} [1-9]/.test(await metrics()));
    assert.deepEqual(await endpointsOf('flaky'), [`127.0.0.3:${P}`]);
    assert.deepEqual(await via('flaky-svc'), { status: 200, from: 'three', reason: '' });
    assert.ok(p.logs.some((l) => l['msg'] === 'dns resolution failed; keeping last endpoints' && l['cluster'] === 'flaky'));
  } finally {
    dns.fail(false);
  }
});

test('a name that never resolved answers 503 no_healthy_upstream at once', async () => {
  const r = await via('never-svc');
  assert.equal(r.status, 503);
  assert.equal(r.reason, 'no_healthy_upstream');
  assert.deepEqual(await endpointsOf('never'), []);
  // and once the name appears, it is used
  dns.set('never.svc.test', ['127.0.0.2']);
  try {
    await waitFor(async () => (await endpointsOf('never')).length === 1);
    assert.equal((await via('never-svc')).from, 'two');
  } finally {
    dns.delete('never.svc.test');
  }
});

test('passthrough traffic to an unknown host resolves through the configured resolver', async () => {
  const r = await via(`outside.example.test:${P}`);
  assert.deepEqual(r, { status: 200, from: 'two', reason: '' });
  const missing = await via(`missing.example.test:${P}`);
  assert.equal(missing.status, 502);
  assert.equal(missing.reason, 'upstream_connect_failure');
});
