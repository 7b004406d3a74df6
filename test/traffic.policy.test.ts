// Route policies through the real proxy: header set/remove both ways, request mirroring (and
// that a slow, failing or non-reading shadow never touches the primary), fault injection at its
// percentages, local rate limits on routes and on inbound, and the exact weighted split.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes, createHash } from 'node:crypto';
import { closedPort, request, startRawServer, startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { startTagged, tally, type Tagged } from './helpers/tagged.js';
import { waitFor } from './helpers/wait.js';

let primary: Upstream;
let shadow: Upstream;
let slowShadow: Tagged;
let failShadow: Tagged;
let stuckShadow: Awaited<ReturnType<typeof startRawServer>>;
let s1: Tagged, s2: Tagged, s3: Tagged;
let app: Tagged;
let deadPort: number;
let p: TestProxy;
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

function get(host: string, opts: { path?: string; method?: string; body?: Buffer | string; headers?: Record<string, string> } = {}) {
  return request(p.outbound, {
    path: opts.path ?? '/',
    method: opts.method ?? 'GET',
    body: opts.body ?? '',
    headers: { host, ...(opts.headers ?? {}) },
    agent,
  });
}

before(async () => {
  primary = await startUpstream((req, res, body) => {
    const out = JSON.stringify({ url: req.url, headers: req.headers, bodySha: createHash('sha256').update(body).digest('hex') });
    res.writeHead(200, { 'content-type': 'application/json', server: 'upstream/1.0', 'x-internal': 'secret' });
    res.end(out);
  });
  shadow = await startUpstream();
  slowShadow = await startTagged('slow');
  slowShadow.hold = true;
  failShadow = await startTagged('fail');
  failShadow.status = 500;
  // accepts connections and never reads a byte: a body sent to it backs up at once
  stuckShadow = await startRawServer((s) => s.pause());
  s1 = await startTagged('s1');
  s2 = await startTagged('s2');
  s3 = await startTagged('s3');
  app = await startTagged('app');
  deadPort = await closedPort();
  p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:${app.port}
  rateLimit: { requestsPerSecond: 0.01, burst: 3 }
outbound:
  listen: 127.0.0.1:0
  unknownHosts: reject
  routes:
    - name: headers
      match: { host: headers-svc }
      cluster: primary
      headers:
        request: { set: { x-env: prod, x-tenant: blue }, remove: [x-debug, cookie] }
        response: { set: { x-served-by: outrigger }, remove: [server, x-internal] }
    - { name: mirrored, match: { host: mirrored-svc }, cluster: primary, mirror: { cluster: shadow, percent: 100 } }
    - { name: mirror-half, match: { host: mirror-half-svc }, cluster: primary, mirror: { cluster: shadow, percent: 50 } }
    - { name: mirror-slow, match: { host: mirror-slow-svc }, cluster: primary, mirror: { cluster: slow, percent: 100 } }
    - { name: mirror-fail, match: { host: mirror-fail-svc }, cluster: primary, mirror: { cluster: fail, percent: 100 } }
    - { name: mirror-dead, match: { host: mirror-dead-svc }, cluster: primary, mirror: { cluster: dead, percent: 100 } }
    - { name: mirror-stuck, match: { host: mirror-stuck-svc }, cluster: primary, mirror: { cluster: stuck, percent: 100 } }
    - { name: abort-all, match: { host: abort-all-svc }, cluster: primary, fault: { abort: { percent: 100, status: 418 } } }
    - { name: abort-none, match: { host: abort-none-svc }, cluster: primary, fault: { abort: { percent: 0, status: 503 } } }
    - { name: abort-half, match: { host: abort-half-svc }, cluster: primary, fault: { abort: { percent: 50, status: 503 } } }
    - { name: delay-all, match: { host: delay-all-svc }, cluster: primary, fault: { delay: { percent: 100, duration: 2s } } }
    - { name: delay-half, match: { host: delay-half-svc }, cluster: primary, fault: { delay: { percent: 50, duration: 3s } } }
    - { name: limited, match: { host: limited-svc }, cluster: primary, rateLimit: { requestsPerSecond: 0.01, burst: 5 } }
    - { name: split3, match: { host: split-svc }, split: [ { cluster: s1, weight: 70 }, { cluster: s2, weight: 20 }, { cluster: s3, weight: 10 } ] }
    - { name: fast, match: { host: fast-svc }, cluster: primary }
clusters:
  primary: { endpoints: ["127.0.0.1:${primary.port}"] }
  shadow: { endpoints: ["127.0.0.1:${shadow.port}"] }
  slow: { endpoints: ["127.0.0.1:${slowShadow.port}"] }
  fail: { endpoints: ["127.0.0.1:${failShadow.port}"] }
  dead: { endpoints: ["127.0.0.1:${deadPort}"] }
  stuck: { endpoints: ["127.0.0.1:${stuckShadow.port}"] }
  s1: { endpoints: ["127.0.0.1:${s1.port}"] }
  s2: { endpoints: ["127.0.0.1:${s2.port}"] }
  s3: { endpoints: ["127.0.0.1:${s3.port}"] }
`);
});

after(async () => {
  agent.destroy();
  await p.close();
  await Promise.all([primary, shadow, slowShadow, failShadow, stuckShadow, s1, s2, s3, app].map((u) => u.close()));
});

test('request and response headers: set replaces, remove drops', async () => {
  const r = await get('headers-svc', { headers: { 'x-env': 'dev', 'x-debug': '1', cookie: 'a=b', 'x-keep': 'yes' } });
  assert.equal(r.status, 200);
  const seen = (JSON.parse(r.body.toString()) as { headers: http.IncomingHttpHeaders }).headers;
  assert.equal(seen['x-env'], 'prod');
  assert.equal(seen['x-tenant'], 'blue');
  assert.equal(seen['x-debug'], undefined);
  assert.equal(seen['cookie'], undefined);
  assert.equal(seen['x-keep'], 'yes');
  assert.equal(r.headers['x-served-by'], 'outrigger');
  assert.equal(r.headers['server'], undefined);
  assert.equal(r.headers['x-internal'], undefined);
});

test('mirror: the shadow cluster gets a copy (same method, path, body; Host with -shadow)', async () => {
  const before = shadow.requests.length;
  const body = randomBytes(100_000);
  const r = await get('mirrored-svc', { method: 'POST', path: '/orders?id=7', body });
  assert.equal(r.status, 200);
  const copy = await waitFor(() => shadow.requests[before]);
  assert.equal(copy.method, 'POST');
  assert.equal(copy.url, '/orders?id=7');
  assert.equal(copy.headers.host, 'mirrored-svc-shadow');
  assert.ok(copy.body.equals(body));
  const primarySeen = JSON.parse(r.body.toString()) as { bodySha: string };
  assert.equal(primarySeen.bodySha, createHash('sha256').update(body).digest('hex'));
});

test('mirror percent: about half the requests are copied (wide bounds)', async () => {
  const before = shadow.requests.length;
  for (let i = 0; i < 200; i++) assert.equal((await get('mirror-half-svc')).status, 200);
  await new Promise((r) => setTimeout(r, 200)); // copies are fire-and-forget: let the last ones land
  const copied = shadow.requests.length - before;
  assert.ok(copied >= 60 && copied <= 140, `copied ${copied} of 200`);
});

test('a slow shadow never delays the primary answer', async () => {
  const r = await get('mirror-slow-svc');
  assert.equal(r.status, 200);
  // the primary answered while the shadow still holds its copy
  await waitFor(() => slowShadow.held.length > 0);
  assert.equal(slowShadow.held.length, 1);
  slowShadow.release();
});

test('a failing or unreachable shadow leaves the primary status untouched', async () => {
  const before = failShadow.hits;
  for (let i = 0; i < 3; i++) {
    assert.equal((await get('mirror-fail-svc')).status, 200);
    assert.equal((await get('mirror-dead-svc')).status, 200);
  }
  await waitFor(() => failShadow.hits >= before + 3);
});

test('a shadow that never reads its body does not hold back a large primary upload', async () => {
  const body = randomBytes(4 * 1024 * 1024);
  const r = await get('mirror-stuck-svc', { method: 'PUT', body });
  assert.equal(r.status, 200);
  assert.equal((JSON.parse(r.body.toString()) as { bodySha: string }).bodySha, createHash('sha256').update(body).digest('hex'));
});

test('fault abort at 100 % answers its status without touching the upstream; 0 % never aborts', async () => {
  const before = primary.requests.length;
  for (let i = 0; i < 5; i++) {
    const r = await get('abort-all-svc');
    assert.equal(r.status, 418);
    assert.equal(r.headers['x-outrigger-error'], 'fault_injected');
    assert.equal(r.body.toString(), '{"error":"fault_injected"}');
  }
  assert.equal(primary.requests.length, before);
  for (let i = 0; i < 20; i++) assert.equal((await get('abort-none-svc')).status, 200);
});

test('fault abort at 50 % aborts about half (wide bounds)', async () => {
  const codes = [];
  for (let i = 0; i < 200; i++) codes.push(String((await get('abort-half-svc')).status));
  const t = tally(codes);
  const aborted = t.get('503') ?? 0;
  assert.equal(aborted + (t.get('200') ?? 0), 200);
  assert.ok(aborted >= 60 && aborted <= 140, `aborted ${aborted} of 200`);
});

test('fault delay at 100 % holds the request back (a later undelayed request overtakes it)', async () => {
  const order: string[] = [];
  const delayed = get('delay-all-svc').then((r) => {
    order.push('delayed');
    return r;
  });
  await new Promise((r) => setTimeout(r, 50));
  const fast = await get('fast-svc');
  order.push('fast');
  assert.equal(fast.status, 200);
  assert.equal((await delayed).status, 200);
  assert.deepEqual(order, ['fast', 'delayed']);
});

test('fault delay at 50 % delays about half (wide bounds)', async () => {
  const took = await Promise.all(
    Array.from({ length: 40 }, async () => {
      const t0 = performance.now();
      // a connection each: on a shared agent, requests would queue behind the delayed ones
      const r = await request(p.outbound, { headers: { host: 'delay-half-svc' }, agent: false });
      assert.equal(r.status, 200);
      return performance.now() - t0;
    }),
  );
  // a delayed request cannot take under 3 s; an undelayed one on loopback takes far less
  const delayedCount = took.filter((ms) => ms >= 3000).length;
  assert.ok(delayedCount >= 8 && delayedCount <= 32, `delayed ${delayedCount} of 40`);
});

test('route rate limit: the burst passes, then 429 rate_limited', async () => {
  const codes: number[] = [];
  const reasons: string[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await get('limited-svc');
    codes.push(r.status);
    reasons.push(String(r.headers['x-outrigger-error'] ?? ''));
  }
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
  assert.deepEqual(reasons.slice(5), Array(5).fill('rate_limited'));
  const m = (await request(p.admin, { path: '/metrics' })).body.toString();
  assert.match(m, /outrigger_requests_total\{direction="outbound",route="limited",cluster="primary",code="429"\} 5/);
});

test('inbound rate limit protects the app the same way', async () => {
  const before = app.hits;
  const codes: number[] = [];
  for (let i = 0; i < 6; i++) codes.push((await request(p.inbound, { headers: { host: 'me' } })).status);
  assert.deepEqual(codes, [200, 200, 200, 429, 429, 429]);
  assert.equal(app.hits - before, 3);
});

test('weighted split 70/20/10 is exact per 10 requests and interleaved', async () => {
  const froms: string[] = [];
  for (let i = 0; i < 100; i++) froms.push(String((await get('split-svc')).headers['x-upstream']));
  assert.deepEqual([...tally(froms).entries()].sort(), [
    ['s1', 70],
    ['s2', 20],
    ['s3', 10],
  ]);
  for (let w = 0; w < 100; w += 10) {
    const t = tally(froms.slice(w, w + 10));
    assert.deepEqual([t.get('s1'), t.get('s2'), t.get('s3')], [7, 2, 1], `window ${w}`);
  }
});
