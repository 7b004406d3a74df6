// The core data plane end to end: real upstreams, a real proxy, assertions on the wire.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { closedPort, rawExchange, request, startRawServer, startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { config, service } from './helpers/config.js';
import { waitFor } from './helpers/wait.js';

let app: Upstream;
let svc: Upstream;
let other: Upstream;
let p: TestProxy;
let deadPort: number;

before(async () => {
  app = await startUpstream();
  svc = await startUpstream();
  other = await startUpstream();
  deadPort = await closedPort();
  p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:${app.port}
outbound:
  listen: 127.0.0.1:0
  unknownHosts: passthrough
  routes:
    - name: assets
      match: { host: asset-mgr-ms-svc, path: { prefix: /assetmgrms } }
      rewrite: { prefix: / }
      cluster: assets
      headers:
        request: { set: { x-env: prod }, remove: [x-debug] }
        response: { set: { x-served-by: outrigger }, remove: [server] }
    - name: dead
      match: { host: dead-svc }
      cluster: dead
      timeout: 2s
    - name: slow
      match: { host: slow-svc }
      cluster: assets
      timeout: 300ms
    - name: wild
      match: { host: "*.example.com", methods: [GET] }
      cluster: other
    - name: canary
      match: { host: canary, headers: { x-canary: "true" } }
      cluster: other
    - name: split
      match: { host: split }
      split: [ { cluster: assets, weight: 3 }, { cluster: other, weight: 1 } ]
clusters:
  assets: { endpoints: ["127.0.0.1:${svc.port}"] }
  other: { endpoints: ["127.0.0.1:${other.port}"] }
  dead: { endpoints: ["127.0.0.1:${deadPort}"] }
`);
});

after(async () => {
  await p.close();
  await Promise.all([app.close(), svc.close(), other.close()]);
});

test('outbound routes by Host, rewrites the prefix and applies header policy', async () => {
  const r = await request(p.outbound, {
    path: '/assetmgrms/items?x=1',
    headers: { host: 'asset-mgr-ms-svc:8080', 'x-debug': '1', 'x-forwarded-for': '10.1.1.1' },
  });
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.body.toString()) as { url: string; headers: Record<string, string> };
  assert.equal(seen.url, '/items?x=1');
  assert.equal(seen.headers['x-env'], 'prod');
  assert.equal(seen.headers['x-debug'], undefined);
  assert.equal(seen.headers['host'], 'asset-mgr-ms-svc:8080');
  assert.equal(seen.headers['x-forwarded-for'], '10.1.1.1, 127.0.0.1');
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
  assert.match(seen.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
  assert.match(seen.headers['traceparent'] ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.equal(r.headers['x-served-by'], 'outrigger');
});

test('request id and a valid traceparent are kept; an invalid traceparent is replaced', async () => {
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  let r = await request(p.outbound, {
    path: '/assetmgrms/',
    headers: { host: 'asset-mgr-ms-svc', 'x-request-id': 'abc-123', traceparent: tp },
  });
  let seen = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
  assert.equal(seen.headers['x-request-id'], 'abc-123');
  assert.equal(seen.headers['traceparent'], tp);
  r = await request(p.outbound, { path: '/assetmgrms/', headers: { host: 'asset-mgr-ms-svc', traceparent: 'garbage' } });
  seen = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
  assert.notEqual(seen.headers['traceparent'], 'garbage');
  assert.match(seen.headers['traceparent'] ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const line = p.access().find((l) => l['request_id'] === 'abc-123');
  assert.ok(line, 'access log line with the request id');
  assert.equal(line['trace_id'], '4bf92f3577b34da6a3ce929d0e0e4736');
});

test('hop-by-hop headers and those named in Connection are not forwarded, either way', async () => {
  const up = await startUpstream((_req, res) => {
    res.writeHead(200, { connection: 'x-up-hop', 'x-up-hop': '1', 'keep-alive': 'timeout=5', 'x-kept': 'yes', 'content-length': '2' });
    res.end('ok');
  });
  const q = await startProxy(config({ inbound: up.port }));
  try {
    const r = await rawExchange(
      q.inbound,
      'GET / HTTP/1.1\r\nHost: a\r\nConnection: close, x-secret-hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Normal: 1\r\n\r\n',
    );
    assert.match(r.data, /^HTTP\/1\.1 200/);
    assert.match(r.data, /x-kept: yes/i);
    assert.doesNotMatch(r.data, /x-up-hop/i);
    const h = up.requests[0]!.headers;
    assert.equal(h['x-secret-hop'], undefined);
    assert.equal(h['keep-alive'], undefined);
    assert.equal(h['proxy-connection'], undefined);
    assert.equal(h['te'], undefined);
    assert.equal(h['x-normal'], '1');
  } finally {
    await q.close();
    await up.close();
  }
});

test('absolute-form requests (HTTP_PROXY) route on the authority', async () => {
  const r = await rawExchange(
    p.outbound,
    'GET http://asset-mgr-ms-svc/assetmgrms/abs HTTP/1.1\r\nHost: asset-mgr-ms-svc\r\nConnection: close\r\n\r\n',
  );
  assert.match(r.data, /^HTTP\/1\.1 200/);
  assert.match(r.data, /"url":"\/abs"/);
});

test('wildcard hosts, methods and header matches', async () => {
  let r = await request(p.outbound, { path: '/w', headers: { host: 'api.example.com' } });
  assert.equal(r.status, 200);
  assert.equal(other.requests.at(-1)?.url, '/w');
  // POST does not match the GET-only route, and nothing else does: passthrough to api.example.com fails
  r = await request(p.outbound, { path: '/c', headers: { host: 'canary', 'x-canary': 'true' } });
  assert.equal(r.status, 200);
  assert.equal(other.requests.at(-1)?.url, '/c');
});

test('weighted split sends traffic in proportion', async () => {
  const before = { s: svc.requests.length, o: other.requests.length };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  for (let i = 0; i < 40; i++) await request(p.outbound, { path: '/s', headers: { host: 'split' }, agent });
  agent.destroy();
  assert.equal(svc.requests.length - before.s, 30);
  assert.equal(other.requests.length - before.o, 10);
});

test('passthrough forwards unknown hosts as given', async () => {
  const r = await request(p.outbound, { path: '/pt', headers: { host: `127.0.0.1:${other.port}` } });
  assert.equal(r.status, 200);
  assert.equal(other.requests.at(-1)?.url, '/pt');
  const line = p.access().at(-1)!;
  assert.equal(line['route'], 'passthrough');
  assert.equal(line['cluster'], 'passthrough');
});

test('unknownHosts: reject answers 404 no_route', async () => {
  const q = await startProxy(config({ outbound: { unknownHosts: 'reject' } }));
  try {
    const r = await request(q.outbound, { headers: { host: 'nowhere' } });
    assert.equal(r.status, 404);
    assert.equal(r.headers['x-outrigger-error'], 'no_route');
    assert.deepEqual(JSON.parse(r.body.toString()), { error: 'no_route' });
  } finally {
    await q.close();
  }
});

test('inbound forwards to the app', async () => {
  const r = await request(p.inbound, { method: 'POST', path: '/in', headers: { host: 'me' }, body: 'hello' });
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.body.toString()) as { body: string; url: string };
  assert.equal(seen.body, 'hello');
  assert.equal(seen.url, '/in');
  const line = p.access().at(-1)!;
  assert.equal(line['direction'], 'inbound');
  assert.equal(line['route'], 'app');
  assert.equal(line['bytes_in'], 5);
});

test('connect failure is retried once, then 502 upstream_connect_failure', async () => {
  const r = await request(p.outbound, { headers: { host: 'dead-svc' } });
  assert.equal(r.status, 502);
  assert.equal(r.headers['x-outrigger-error'], 'upstream_connect_failure');
  assert.deepEqual(JSON.parse(r.body.toString()), { error: 'upstream_connect_failure' });
  const line = p.access().at(-1)!;
  assert.equal(line['attempts'], 2);
  assert.equal(line['error'], 'upstream_connect_failure');
});

test('route timeout answers 504 upstream_timeout', async () => {
  const slow = await startUpstream(() => undefined); // never answers
  const q = await startProxy(config(service('slow', slow.port, {}, { timeout: '200ms' })));
  try {
    const r = await request(q.outbound, { headers: { host: 'slow' } });
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-outrigger-error'], 'upstream_timeout');
  } finally {
    await q.close();
    await slow.close();
  }
});

test('bodies stream intact both ways (8 MiB up, 8 MiB down)', async () => {
  const big = randomBytes(8 * 1024 * 1024);
  const digest = createHash('sha256').update(big).digest('hex');
  const up = await startUpstream((req, res, body) => {
    if (req.method === 'POST') {
      res.end(createHash('sha256').update(body).digest('hex'));
    } else {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(big);
    }
  });
  const q = await startProxy(config({ inbound: up.port }));
  try {
    const put = await request(q.inbound, { method: 'POST', body: big });
    assert.equal(put.body.toString(), digest);
    const get = await request(q.inbound);
    assert.equal(createHash('sha256').update(get.body).digest('hex'), digest);
  } finally {
    await q.close();
    await up.close();
  }
});

test('HEAD, 204 and 304 carry no body', async () => {
  const up = await startUpstream((req, res) => {
    if (req.url === '/204') {
      res.writeHead(204);
      res.end();
    } else if (req.url === '/304') {
      res.writeHead(304, { etag: '"x"' });
      res.end();
    } else {
      res.writeHead(200, { 'content-length': '5' });
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    }
  });
  const q = await startProxy(config({ inbound: up.port }));
  try {
    const r = await rawExchange(
      q.inbound,
      'HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const parts = r.data.split('HTTP/1.1 ');
    assert.equal(parts.length, 4, r.data);
    assert.match(parts[1]!, /^200/);
    assert.match(parts[1]!, /content-length: 5\r\n/i);
    assert.ok(parts[1]!.endsWith('\r\n\r\n'), 'HEAD response has no body');
    assert.match(parts[2]!, /^204/);
    assert.ok(parts[2]!.endsWith('\r\n\r\n'));
    assert.match(parts[3]!, /^304/);
    assert.ok(parts[3]!.endsWith('\r\n\r\n'));
  } finally {
    await q.close();
    await up.close();
  }
});

test('an upstream cut off mid-body reaches the client as a cut-off', async () => {
  const raw = await startRawServer((s) => {
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
      setTimeout(() => s.destroy(), 50);
    });
  });
  const rawChunked = await startRawServer((s) => {
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n');
      setTimeout(() => s.destroy(), 50);
    });
  });
  const q = await startProxy(config(service('cl', raw.port), service('ch', rawChunked.port)));
  try {
    for (const host of ['cl', 'ch']) {
      const outcome = await new Promise<string>((resolve) => {
        const req = http.get({ port: q.outbound, host: '127.0.0.1', headers: { host }, agent: false }, (res) => {
          res.on('data', () => undefined);
          res.on('end', () => resolve('complete'));
          res.on('error', () => resolve('error'));
          res.on('aborted', () => resolve('aborted'));
        });
        req.on('error', () => resolve('error'));
      });
      assert.notEqual(outcome, 'complete', `${host}: a truncated response must not look complete`);
    }
  } finally {
    await q.close();
    await raw.close();
    await rawChunked.close();
  }
});

test('a client that aborts aborts the upstream request', async () => {
  let upstreamClosed: () => void;
  const closedP = new Promise<void>((r) => (upstreamClosed = r));
  const up = await startUpstream(
    (req, res) => {
      res.writeHead(200);
      res.write('first');
      req.socket.on('close', () => upstreamClosed());
    },
    { readBody: false },
  );
  const q = await startProxy(config({ inbound: up.port }));
  try {
    await new Promise<void>((resolve) => {
      const req = http.get({ port: q.inbound, host: '127.0.0.1', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
    });
    await closedP; // hangs (test timeout) if the upstream request is never aborted
    const line = await waitFor(() => q.access().at(-1));
    assert.equal(line['bytes_out'], 5);
  } finally {
    await q.close();
    await up.close();
  }
});

test('malformed requests get 400 and a closed connection and are never forwarded', async () => {
  const before = app.requests.length;
  const vectors = [
    'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
    'GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET / HTTP/1.1\r\n\r\n',
  ];
  for (const v of vectors) {
    const r = await rawExchange(p.inbound, v);
    assert.match(r.data, /^HTTP\/1\.1 4\d\d/, JSON.stringify(v));
    assert.ok(r.closed, 'connection closed');
  }
  assert.equal(app.requests.length, before);
});

test('admin: live, ready, metrics, config, clusters', async () => {
  let r = await request(p.admin, { path: '/live' });
  assert.equal(r.status, 200);
  r = await request(p.admin, { path: '/ready' });
  assert.equal(r.status, 200);
  r = await request(p.admin, { path: '/metrics' });
  assert.equal(r.status, 200);
  const text = r.body.toString();
  for (const name of [
    'outrigger_requests_total',
    'outrigger_request_duration_seconds',
    'outrigger_upstream_errors_total',
    'outrigger_active_requests',
    'outrigger_config_reloads_total',
    'outrigger_config_last_reload_successful',
    'outrigger_circuit_breaker_state',
    'outrigger_endpoint_healthy',
  ]) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.match(text, /outrigger_requests_total\{direction="outbound",route="assets",cluster="assets",code="200"\} \d+/);
  assert.match(text, /outrigger_upstream_errors_total\{cluster="dead",reason="upstream_connect_failure"\} [1-9]/);
  r = await request(p.admin, { path: '/config' });
  const cfg = JSON.parse(r.body.toString()) as { outbound: { routes: { name: string }[] } };
  assert.equal(cfg.outbound.routes[0]?.name, 'assets');
  r = await request(p.admin, { path: '/clusters' });
  const cl = JSON.parse(r.body.toString()) as { clusters: Record<string, { endpoints: { address: string; healthy: boolean }[] }> };
  assert.equal(cl.clusters['assets']?.endpoints[0]?.address, `127.0.0.1:${svc.port}`);
  assert.equal(cl.clusters['assets']?.endpoints[0]?.healthy, true);
  r = await request(p.admin, { path: '/shutdown' });
  assert.equal(r.status, 405);
});

test('access log lines carry the documented fields (docs/operations.md)', async () => {
  await request(p.outbound, { path: '/assetmgrms/log', headers: { host: 'asset-mgr-ms-svc' } });
  const line = p.access().at(-1)!;
  for (const k of [
    'direction',
    'method',
    'path',
    'host',
    'status',
    'duration_ms',
    'bytes_in',
    'bytes_out',
    'route',
    'cluster',
    'upstream',
    'attempts',
    'request_id',
    'trace_id',
  ]) {
    assert.ok(k in line, k);
  }
  assert.equal(line['path'], '/assetmgrms/log');
  assert.equal(line['host'], 'asset-mgr-ms-svc');
  assert.equal(line['status'], 200);
  assert.equal(line['upstream'], `127.0.0.1:${svc.port}`);
});

test('absolute-form wins over a different Host, which is replaced (RFC 9112 3.2.2)', async () => {
  const r = await rawExchange(
    p.outbound,
    'GET http://asset-mgr-ms-svc/assetmgrms/rfc HTTP/1.1\r\nHost: somewhere-else\r\nConnection: close\r\n\r\n',
  );
  assert.match(r.data, /^HTTP\/1\.1 200/);
  const seen = svc.requests.at(-1)!;
  assert.equal(seen.url, '/rfc');
  assert.equal(seen.headers['host'], 'asset-mgr-ms-svc');
});

test('outrigger_active_requests counts requests in flight', async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const up = await startUpstream((_req, res) => {
    void held.then(() => res.end('done'));
  });
  const q = await startProxy(config({ inbound: up.port }));
  try {
    const pending = request(q.inbound);
    await waitFor(() => up.requests.length > 0);
    let m = (await request(q.admin, { path: '/metrics' })).body.toString();
    assert.match(m, /^outrigger_active_requests\{direction="inbound"\} 1$/m);
    release();
    assert.equal((await pending).status, 200);
    m = (await request(q.admin, { path: '/metrics' })).body.toString();
    assert.match(m, /^outrigger_active_requests\{direction="inbound"\} 0$/m);
  } finally {
    await q.close();
    await up.close();
  }
});
