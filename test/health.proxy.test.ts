// Active health checks and outlier detection through a real proxy: unhealthy and ejected
// endpoints get no traffic, all unhealthy is 503 no_healthy_upstream at once, ejections last
// and come back, maxEjectionPercent holds; outrigger_endpoint_healthy, the ejection counter,
// /clusters and the degraded-mode warnings follow. Short configured intervals, waits that poll.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { closedPort, request, startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy } from './helpers/proxy.js';
import { config, service } from './helpers/config.js';
import { clusters, metrics, metricValue } from './resilience.helpers.js';
import { waitFor } from './helpers/wait.js';

/** An upstream whose /healthz answers `health()` and everything else `status()`. */
async function app(name: string, health: () => number, status: () => number = () => 200): Promise<Upstream & { served: number }> {
  const state = { served: 0 };
  const u = await startUpstream((req, res) => {
    const s = req.url === '/healthz' ? health() : status();
    if (req.url !== '/healthz') state.served++;
    res.writeHead(s, { 'content-length': Buffer.byteLength(name) });
    res.end(name);
  });
  return Object.defineProperty(u, 'served', { get: () => state.served }) as Upstream & { served: number };
}

test('active health checks: unhealthy endpoints get no traffic; none healthy is 503 no_healthy_upstream at once', async () => {
  let aHealth = 200;
  let bHealth = 200;
  const a = await app('a', () => aHealth);
  const b = await app('b', () => bHealth);
  const p = await startProxy(
    config(
      service('h', [a.port, b.port], {
        healthCheck: { path: '/healthz', interval: '30ms', timeout: '500ms', unhealthyThreshold: 2, healthyThreshold: 2 },
      }),
    ),
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const A = `127.0.0.1:${a.port}`;
  const B = `127.0.0.1:${b.port}`;
  const healthy = async (ep: string) => metricValue(await metrics(p.admin), 'outrigger_endpoint_healthy', { cluster: 'h', endpoint: ep });
  try {
    for (let i = 0; i < 4; i++) assert.equal((await request(p.outbound, { headers: { host: 'h' }, agent })).status, 200);
    assert.ok(a.served > 0 && b.served > 0);

    aHealth = 503;
    await waitFor(async () => (await healthy(A)) === 0, { what: 'a unhealthy' });
    const view = (await clusters(p.admin))['h']!;
    assert.deepEqual(
      view.endpoints.map((e) => [e.address, e.healthy, e.available]),
      [
        [A, false, false],
        [B, true, true],
      ],
    );
    const aBefore = a.served;
    for (let i = 0; i < 8; i++) {
      const r = await request(p.outbound, { headers: { host: 'h' }, agent });
      assert.equal(r.body.toString(), 'b');
    }
    assert.equal(a.served, aBefore, 'no traffic to the unhealthy endpoint');

    bHealth = 503;
    await waitFor(async () => (await healthy(B)) === 0, { what: 'b unhealthy' });
    const bBefore = b.served;
    const r = await request(p.outbound, { headers: { host: 'h' }, agent });
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-outrigger-error'], 'no_healthy_upstream');
    assert.equal(b.served, bBefore);
    assert.equal(a.served, aBefore);
    assert.ok(metricValue(await metrics(p.admin), 'outrigger_upstream_errors_total', { cluster: 'h', reason: 'no_healthy_upstream' }) >= 1);

    aHealth = 200;
    await waitFor(async () => (await healthy(A)) === 1, { what: 'a healthy again' });
    assert.equal((await request(p.outbound, { headers: { host: 'h' }, agent })).body.toString(), 'a');
    const warns = p.logs.filter((l) => l['level'] === 'warn').map((l) => l['msg']);
    assert.deepEqual(
      warns.filter((m) => m === 'no healthy endpoint left' || m === 'cluster has healthy endpoints again'),
      ['no healthy endpoint left', 'cluster has healthy endpoints again'],
      'one warning when the outage starts and one when it ends',
    );
    assert.deepEqual(
      warns.filter((m) => m === 'endpoint unhealthy' || m === 'endpoint healthy'),
      ['endpoint unhealthy', 'endpoint unhealthy', 'endpoint healthy'],
    );
  } finally {
    agent.destroy();
    await p.close();
    await Promise.all([a.close(), b.close()]);
  }
});

test('outlier detection: consecutive errors eject for ejectionTime × ejections, then the endpoint comes back', async () => {
  let badStatus = 500;
  const bad = await app(
    'bad',
    () => 200,
    () => badStatus,
  );
  const good = await app('good', () => 200);
  const p = await startProxy(
    config(service('o', [bad.port, good.port], { outlierDetection: { consecutiveErrors: 3, ejectionTime: '1s', maxEjectionPercent: 50 } })),
  );
  const BAD = `127.0.0.1:${bad.port}`;
  const send = () => request(p.outbound, { headers: { host: 'o' } });
  const badView = async () => (await clusters(p.admin))['o']!.endpoints.find((e) => e.address === BAD)!;
  try {
    // round-robin: every other request reaches the bad endpoint; its third 500 ejects it
    while (bad.served < 3) await send();
    let v = await badView();
    assert.equal(v.ejected, true);
    assert.equal(v.ejections, 1);
    let text = await metrics(p.admin);
    assert.equal(metricValue(text, 'outrigger_outlier_ejections_total', { cluster: 'o' }), 1);
    assert.equal(metricValue(text, 'outrigger_endpoint_healthy', { cluster: 'o', endpoint: BAD }), 0);
    const served = bad.served;
    for (let i = 0; i < 6; i++) assert.equal((await send()).body.toString(), 'good');
    assert.equal(bad.served, served, 'an ejected endpoint gets no traffic');

    await waitFor(async () => !(await badView()).ejected, { what: 'back from ejection' });
    assert.ok(p.logs.some((l) => l['msg'] === 'endpoint returned from ejection' && l['endpoint'] === BAD));
    // a second run of errors ejects it again, and the ejection count (the multiplier) grows
    const start = bad.served;
    while (bad.served < start + 3) await send();
    v = await badView();
    assert.equal(v.ejected, true);
    assert.equal(v.ejections, 2);
    // once healthy, it serves again after the (doubled) ejection
    badStatus = 200;
    await waitFor(async () => !(await badView()).ejected, { what: 'back again' });
    const before = bad.served;
    for (let i = 0; i < 4; i++) await send();
    assert.ok(bad.served > before);
    text = await metrics(p.admin);
    assert.equal(metricValue(text, 'outrigger_outlier_ejections_total', { cluster: 'o' }), 2);
    assert.equal(metricValue(text, 'outrigger_endpoint_healthy', { cluster: 'o', endpoint: BAD }), 1);
  } finally {
    await p.close();
    await Promise.all([bad.close(), good.close()]);
  }
});

test('maxEjectionPercent: never ejects more than allowed, so traffic still flows', async () => {
  const x = await app(
    'x',
    () => 200,
    () => 500,
  );
  const y = await app(
    'y',
    () => 200,
    () => 500,
  );
  const p = await startProxy(
    config(service('m', [x.port, y.port], { outlierDetection: { consecutiveErrors: 1, ejectionTime: '1m', maxEjectionPercent: 50 } })),
  );
  try {
    for (let i = 0; i < 10; i++) {
      const r = await request(p.outbound, { headers: { host: 'm' } });
      assert.equal(r.status, 500, 'the upstream answer, never no_healthy_upstream');
    }
    const eps = (await clusters(p.admin))['m']!.endpoints;
    assert.equal(eps.filter((e) => e.ejected).length, 1);
  } finally {
    await p.close();
    await Promise.all([x.close(), y.close()]);
  }
});

test('health checks use a connection of their own: a busy endpoint is not marked unhealthy', async () => {
  const held: http.ServerResponse[] = [];
  let checks = 0;
  const up = await startUpstream((req, res) => {
    if (req.url === '/healthz') {
      checks++;
      res.end('ok');
    } else {
      held.push(res);
    }
  });
  const p = await startProxy(
    config(
      service('busy', up.port, {
        maxConnectionsPerEndpoint: 1,
        healthCheck: { path: '/healthz', interval: '20ms', timeout: '100ms', unhealthyThreshold: 1, healthyThreshold: 1 },
      }),
    ),
  );
  try {
    const pending = request(p.outbound, { headers: { host: 'busy' } });
    await waitFor(() => held.length === 1, { what: 'request held' });
    const from = checks;
    // several rounds pass while the endpoint's only request socket is busy
    await waitFor(() => checks >= from + 4, { what: 'checks answered' });
    assert.equal((await clusters(p.admin))['busy']?.endpoints[0]?.healthy, true);
    assert.ok(!p.logs.some((l) => l['msg'] === 'endpoint unhealthy'));
    held[0]!.end('done');
    assert.equal((await pending).status, 200);
  } finally {
    for (const r of held) r.end();
    await p.close();
    await up.close();
  }
});

test('the only endpoint is never ejected: errors before the upstream is up do not leave the service failing', async () => {
  const port = await closedPort();
  const p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
outbound:
  listen: 127.0.0.1:0
  routes: [ { name: one, match: { host: one }, cluster: one } ]
clusters:
  one:
    endpoints: ["127.0.0.1:${port}"]
    outlierDetection: { consecutiveErrors: 1, ejectionTime: 1m, maxEjectionPercent: 50 }
`);
  let up: http.Server | undefined;
  try {
    for (let i = 0; i < 3; i++) {
      const r = await request(p.outbound, { headers: { host: 'one' } });
      assert.equal(r.status, 502);
      assert.equal(r.headers['x-outrigger-error'], 'upstream_connect_failure');
    }
    const view = (await clusters(p.admin))['one']!;
    assert.equal(view.endpoints[0]!.ejected, false);
    assert.equal(metricValue(await metrics(p.admin), 'outrigger_outlier_ejections_total', { cluster: 'one' }) ?? 0, 0);
    const server = http.createServer((_req, res) => res.end('up'));
    up = server;
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const r = await request(p.outbound, { headers: { host: 'one' } });
    assert.equal(r.status, 200, 'served as soon as the upstream is up');
    assert.equal(r.body.toString(), 'up');
  } finally {
    await p.close();
    if (up !== undefined) await new Promise((resolve) => up!.close(resolve));
  }
});

test('panic threshold: with fewer than panicThreshold % of endpoints healthy, every endpoint takes traffic', async () => {
  let failing = true;
  const apps = [
    await app('a', () => 200),
    await app('b', () => (failing ? 503 : 200)),
    await app('c', () => (failing ? 503 : 200)),
    await app('d', () => (failing ? 503 : 200)),
  ];
  const yaml = (threshold: number) => `
admin: { listen: 127.0.0.1:0 }
outbound:
  listen: 127.0.0.1:0
  routes: [ { name: p, match: { host: p }, cluster: p } ]
clusters:
  p:
    endpoints: [${apps.map((a) => `"127.0.0.1:${a.port}"`).join(', ')}]
    panicThreshold: ${threshold}
    healthCheck: { path: /healthz, interval: 30ms, timeout: 500ms, unhealthyThreshold: 1, healthyThreshold: 1 }
`;
  const served = () => apps.map((a) => a.served);
  // threshold 0: the one healthy endpoint (25 %) takes everything
  let p = await startProxy(yaml(0));
  try {
    await waitFor(async () => (await clusters(p.admin))['p']!.endpoints.filter((e) => e.healthy).length === 1, { what: 'three unhealthy' });
    assert.equal((await clusters(p.admin))['p']!.panic, false);
    const before = served();
    for (let i = 0; i < 8; i++) assert.equal((await request(p.outbound, { headers: { host: 'p' } })).body.toString(), 'a');
    assert.deepEqual(served().slice(1), before.slice(1), 'no traffic to unhealthy endpoints without panic');
  } finally {
    await p.close();
  }
  // default 50: 25 % healthy is panic, and the unhealthy endpoints serve too
  p = await startProxy(yaml(50));
  try {
    await waitFor(async () => (await clusters(p.admin))['p']!.panic === true, { what: 'panic' });
    const view = (await clusters(p.admin))['p']!;
    assert.equal(view.endpoints.filter((e) => e.healthy).length, 1);
    assert.equal(
      metricValue(await metrics(p.admin), 'outrigger_endpoint_healthy', { cluster: 'p', endpoint: `127.0.0.1:${apps[1]!.port}` }),
      0,
      'the metric still says unhealthy',
    );
    const before = served();
    const bodies = new Set<string>();
    for (let i = 0; i < 8; i++) bodies.add((await request(p.outbound, { headers: { host: 'p' } })).body.toString());
    assert.deepEqual([...bodies].sort(), ['a', 'b', 'c', 'd']);
    assert.ok(served().every((n, i) => n > before[i]!));
    assert.ok(p.logs.some((l) => l['msg'] === 'panic mode: balancing across every endpoint, healthy or not'));
    failing = false;
    await waitFor(async () => (await clusters(p.admin))['p']!.panic === false, { what: 'panic over' });
  } finally {
    await p.close();
    await Promise.all(apps.map((a) => a.close()));
  }
});

test('an endpoint a reload removes is no longer exported; the one kept still is', async () => {
  const a = await app('a', () => 200);
  const b = await app('b', () => 200);
  const yaml = (ports: number[]) => `
admin: { listen: 127.0.0.1:0 }
outbound:
  listen: 127.0.0.1:0
  routes: [ { name: r, match: { host: r }, cluster: r } ]
clusters:
  r:
    endpoints: [${ports.map((n) => `"127.0.0.1:${n}"`).join(', ')}]
`;
  const p = await startProxy(yaml([a.port, b.port]));
  const A = { cluster: 'r', endpoint: `127.0.0.1:${a.port}` };
  const B = { cluster: 'r', endpoint: `127.0.0.1:${b.port}` };
  try {
    let text = await metrics(p.admin);
    assert.equal(metricValue(text, 'outrigger_endpoint_healthy', A), 1);
    assert.equal(metricValue(text, 'outrigger_endpoint_healthy', B), 1);
    p.write(yaml([a.port]));
    assert.equal(await p.proxy.reload('test'), true);
    text = await metrics(p.admin);
    assert.equal(metricValue(text, 'outrigger_endpoint_healthy', A), 1);
    assert.ok(
      !text.split('\n').some((l) => l.startsWith('outrigger_endpoint_healthy{') && l.includes(`endpoint="${B.endpoint}"`)),
      'the removed endpoint has no series',
    );
    await new Promise((resolve) => setTimeout(resolve, 50)); // the old cluster retires meanwhile
    assert.equal(metricValue(await metrics(p.admin), 'outrigger_endpoint_healthy', A), 1, 'retiring the old cluster kept the live series');
  } finally {
    await p.close();
    await Promise.all([a.close(), b.close()]);
  }
});
