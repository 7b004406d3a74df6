// Overflow limits, Envoy style, through a real proxy: maxConnectionsPerEndpoint caps sockets,
// maxPending caps the requests waiting for one, inbound.maxConcurrent caps requests in flight;
// beyond them the answer is 503 overflow at once (asserted while the admitted requests are
// still held by the upstream), counted in outrigger_overflow_total and logged once per episode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type Reply } from './helpers/servers.js';
import { startProxy } from './helpers/proxy.js';
import { config, service } from './helpers/config.js';
import { clusters, holdingUpstream, metrics, metricValue } from './resilience.helpers.js';
import { waitFor } from './helpers/wait.js';

test('maxConnectionsPerEndpoint caps sockets, maxPending caps the queue, the rest is 503 overflow at once', async () => {
  const up = await holdingUpstream();
  const p = await startProxy(config(service('o', up.port, { maxConnectionsPerEndpoint: 2, maxPending: 1 })));
  try {
    const admitted: Promise<Reply>[] = [];
    for (let i = 0; i < 3; i++) admitted.push(request(p.outbound, { path: `/a${i}`, headers: { host: 'o' } }));
    // two reach the upstream on two sockets; the third waits in the pool's queue
    await waitFor(() => up.requests.length === 2, { what: 'two requests at the upstream' });
    await waitFor(async () => (await clusters(p.admin))['o']?.limits.queued === 1, { what: 'one queued' });
    const view = (await clusters(p.admin))['o']!;
    assert.equal(view.endpoints[0]?.activeRequests, 3);
    assert.equal(view.activeRequests, 3);

    // the queue is full: refused at once, while the others are still held
    const r = await request(p.outbound, { path: '/over', headers: { host: 'o' } });
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-outrigger-error'], 'overflow');
    assert.deepEqual(JSON.parse(r.body.toString()), { error: 'overflow' });
    assert.equal(up.requests.length, 2, 'never more sockets than maxConnectionsPerEndpoint');
    assert.equal(up.connections, 2);

    up.release();
    const replies = await Promise.all(admitted);
    assert.deepEqual(
      replies.map((x) => x.status),
      [200, 200, 200],
    );
    assert.equal(up.connections, 2, 'the queued request reused a socket');

    const text = await metrics(p.admin);
    assert.equal(metricValue(text, 'outrigger_overflow_total', { direction: 'outbound', limit: 'maxPending' }), 1);
    assert.equal(metricValue(text, 'outrigger_upstream_errors_total', { cluster: 'o', reason: 'overflow' }), 1);
    assert.equal((await clusters(p.admin))['o']?.limits.overflows, 1);
    assert.equal(p.logs.filter((l) => l['msg'] === 'cluster overflowing: requests refused with 503 overflow').length, 1);
    await waitFor(() => p.logs.find((l) => l['msg'] === 'cluster no longer overflowing'), { what: 'episode end' });
    // accounting went back to zero once the bodies were done
    const after = (await clusters(p.admin))['o']!;
    assert.equal(after.activeRequests, 0);
    assert.equal(after.endpoints[0]?.activeRequests, 0);
  } finally {
    up.release();
    await p.close();
    await up.close();
  }
});

test('a streaming response holds its endpoint slot until its body ends', async () => {
  const up = await holdingUpstream();
  // the upstream answers the head at once but holds the body
  up.server.removeAllListeners('request');
  const bodies: import('node:http').ServerResponse[] = [];
  up.server.on('request', (_req, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('head-sent ');
    bodies.push(res);
  });
  const p = await startProxy(config(service('s', up.port, { maxConnectionsPerEndpoint: 1, maxPending: 1 })));
  try {
    const first = request(p.outbound, { headers: { host: 's' } });
    await waitFor(() => bodies.length === 1, { what: 'first response streaming' });
    const second = request(p.outbound, { headers: { host: 's' } });
    await waitFor(async () => (await clusters(p.admin))['s']?.limits.queued === 1, { what: 'second queued' });
    const third = await request(p.outbound, { headers: { host: 's' } });
    assert.equal(third.headers['x-outrigger-error'], 'overflow');
    bodies[0]!.end('done');
    assert.equal((await first).body.toString(), 'head-sent done');
    await waitFor(() => bodies.length === 2, { what: 'second response streaming' });
    bodies[1]!.end('done');
    assert.equal((await second).status, 200);
  } finally {
    for (const b of bodies) b.end();
    await p.close();
    await up.close();
  }
});

test('inbound.maxConcurrent: over it 503 overflow at once', async () => {
  const app = await holdingUpstream();
  const p = await startProxy(config({ inbound: { app: app.port, maxConcurrent: 2 } }));
  try {
    const admitted = [request(p.inbound, { path: '/1' }), request(p.inbound, { path: '/2' })];
    await waitFor(() => app.requests.length === 2, { what: 'two at the app' });
    const r = await request(p.inbound, { path: '/3' });
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-outrigger-error'], 'overflow');
    assert.equal(app.requests.length, 2);
    app.release();
    assert.deepEqual(
      (await Promise.all(admitted)).map((x) => x.status),
      [200, 200],
    );
    const text = await metrics(p.admin);
    assert.equal(metricValue(text, 'outrigger_overflow_total', { direction: 'inbound', limit: 'maxConcurrent' }), 1);
    // the app's own cluster went back to idle
    assert.equal((await clusters(p.admin))['app']?.activeRequests, 0);
  } finally {
    app.release();
    await p.close();
    await app.close();
  }
});
