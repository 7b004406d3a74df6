// Readiness and graceful drain through a real proxy (issue 4): /ready waits for DNS and turns 503
// at once on shutdown; traffic keeps flowing during drain.delay; then the listeners stop
// accepting, idle keep-alive sockets close, in-flight requests finish with Connection: close (the
// outbound listener staying up while inbound requests finish), drain.timeout cuts the rest;
// POST /shutdown only from loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { request, startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { config, route, service } from './helpers/config.js';
import { startDnsServer } from './helpers/dns-server.js';
import { waitFor } from './helpers/wait.js';

/** An upstream whose requests to `/slow` wait for `release()`; everything else answers at once. */
async function gated(): Promise<Upstream & { release(): void }> {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const u = await startUpstream((req, res) => {
    const send = (): void => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    };
    if (req.url === '/slow') void gate.then(send);
    else send();
  });
  return Object.assign(u, { release: () => open() });
}

/** The app behind inbound, `svc` behind outbound, and the drain settings under test. */
function drainConfig(app: number, svc: number, drain: { delay: string; timeout: string }): string {
  return config({ inbound: app, drain }, service('svc', svc));
}

/** Whether a new TCP connection to `port` is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', (err: Error & { code?: string }) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** A raw keep-alive connection that has finished one request and now sits idle. */
async function idleKeepAlive(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  let data = '';
  const answered = new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      if (data.includes('\r\n\r\nok')) resolve();
    });
  });
  socket.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
  await answered;
  assert.match(data, /^HTTP\/1\.1 200/);
  assert.doesNotMatch(data, /connection: close/i);
  return { socket, closed };
}

test('/ready: 503 until every DNS cluster answered once, then 200', async (t) => {
  const dns = await startDnsServer();
  const up = await startUpstream();
  dns.fail(true, 'drop');
  const p = await startProxy(
    config({ routes: [route('d')], clusters: { d: { dns: { name: 'd.test', port: up.port, refresh: '5s' } } }, resolver: dns.port }),
  );
  t.after(async () => {
    await p.close();
    await Promise.all([dns.close(), up.close()]);
  });
  await waitFor(() => dns.queries > 0, { what: 'the first DNS query' });
  // Listeners are bound (the outbound port answers), yet DNS has not answered: not ready.
  assert.equal((await request(p.admin, { path: '/ready' })).status, 503);
  assert.equal((await request(p.admin, { path: '/live' })).status, 200);
  dns.set('d.test', ['127.0.0.1']);
  dns.fail(false);
  await waitFor(async () => (await request(p.admin, { path: '/ready' })).status === 200, { what: '/ready 200' });
  assert.equal((await request(p.outbound, { headers: { host: 'd' } })).status, 200);
});

test('/ready: a DNS cluster that failed its first resolution does not hold readiness', async (t) => {
  const dns = await startDnsServer();
  dns.fail(true, 'servfail');
  const p = await startProxy(
    config({ routes: [route('d')], clusters: { d: { dns: { name: 'd.test', port: 80, refresh: '5s' } } }, resolver: dns.port }),
  );
  t.after(async () => {
    await p.close();
    await dns.close();
  });
  // The answer is a failure, but it is an answer: ready (the cluster answers 503 until DNS works).
  await waitFor(async () => (await request(p.admin, { path: '/ready' })).status === 200, { what: '/ready 200' });
  assert.ok(dns.queries > 0);
  assert.equal((await request(p.outbound, { headers: { host: 'd' } })).status, 503);
});

test('shutdown: /ready 503 at once; both listeners keep serving during drain.delay, inbound with Connection: close', async (t) => {
  const app = await gated();
  const svc = await startUpstream();
  const p = await startProxy(drainConfig(app.port, svc.port, { delay: '60s', timeout: '5s' }));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(async () => {
    agent.destroy();
    app.release();
    await p.close();
    await Promise.all([app.close(), svc.close()]);
  });
  assert.equal((await request(p.admin, { path: '/ready' })).status, 200);
  // Outbound, keep-alive: stays keep-alive during the delay (it is the local app's own traffic).
  assert.equal((await request(p.outbound, { headers: { host: 'svc' }, agent })).status, 200);

  p.proxy.shutdown('test');
  assert.equal(p.proxy.isDraining, true);
  assert.equal((await request(p.admin, { path: '/ready' })).status, 503);
  const inbound = await request(p.inbound, { headers: { host: 'app' } });
  assert.equal(inbound.status, 200);
  assert.equal(inbound.headers['connection'], 'close', 'inbound callers are moved off during the delay');
  const outbound = await request(p.outbound, { headers: { host: 'svc' }, agent });
  assert.equal(outbound.status, 200);
  assert.notEqual(outbound.headers['connection'], 'close');
  assert.equal(await refused(p.inbound), false);
  // A second shutdown (a second POST /shutdown, SIGTERM after /shutdown) changes nothing.
  p.proxy.shutdown('again');
  assert.equal(p.logs.filter((l) => l['msg'] === 'draining').length, 1);
  assert.equal(
    p.logs.some((l) => l['msg'] === 'drain: listeners closing'),
    false,
    'still in the delay',
  );
});

test('after the delay: stop accepting, close idle keep-alive, finish the slow in-flight request with Connection: close', async (t) => {
  const app = await gated();
  const svc = await startUpstream();
  const p: TestProxy = await startProxy(drainConfig(app.port, svc.port, { delay: '0s', timeout: '10s' }));
  t.after(async () => {
    app.release();
    await p.close();
    await Promise.all([app.close(), svc.close()]);
  });
  const idle = await idleKeepAlive(p.inbound);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  let slowSocket: net.Socket | null = null;
  const slow = new Promise<http.IncomingMessage & { text: string }>((resolve, reject) => {
    const req = http.request({ port: p.inbound, host: '127.0.0.1', path: '/slow', headers: { host: 'app' }, agent }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve(Object.assign(res, { text })));
    });
    req.on('socket', (s) => (slowSocket = s));
    req.on('error', reject);
    req.end();
  });
  await waitFor(() => app.requests.some((r) => r.url === '/slow'), { what: 'the slow request upstream' });

  let closedSettled = false;
  void p.proxy.closed.then(() => (closedSettled = true));
  p.proxy.shutdown('test');
  // Inbound stops accepting; its idle keep-alive connection is closed.
  await waitFor(() => refused(p.inbound), { what: 'inbound to refuse connections' });
  await idle.closed;
  // The slow request is still in flight: the app may still call out, so outbound still serves.
  assert.equal((await request(p.outbound, { headers: { host: 'svc' } })).status, 200);
  assert.equal((await request(p.admin, { path: '/ready' })).status, 503);
  assert.equal(closedSettled, false);

  app.release();
  const res = await slow;
  assert.equal(res.statusCode, 200);
  assert.equal(res.text, 'ok');
  assert.equal(res.headers['connection'], 'close');
  await waitFor(() => slowSocket?.destroyed === true || slowSocket?.readyState === 'closed', { what: 'the slow socket to close' });
  await p.proxy.closed;
  assert.equal(await refused(p.outbound), true);
  const msgs = p.logs.map((l) => l['msg']);
  assert.ok(msgs.indexOf('draining') < msgs.indexOf('drained'));
});

test('drain.timeout cuts a request that does not finish; closed still settles', async (t) => {
  const hang = await startUpstream(() => undefined); // never answers
  const svc = await startUpstream();
  const p = await startProxy(drainConfig(hang.port, svc.port, { delay: '0s', timeout: '200ms' }));
  t.after(async () => {
    await p.close();
    await Promise.all([hang.close(), svc.close()]);
  });
  const stuck = request(p.inbound, { headers: { host: 'app' } });
  await waitFor(() => hang.requests.length === 1, { what: 'the request upstream' });
  p.proxy.shutdown('test');
  await assert.rejects(stuck, /socket hang up|ECONNRESET/);
  await p.proxy.closed;
});

/** A non-loopback IPv4 address of this machine, to reach the admin server from "outside". */
const external = Object.values(os.networkInterfaces())
  .flat()
  .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal && !i.address.startsWith('127.'));

async function adminOnAllInterfaces(t: import('node:test').TestContext): Promise<TestProxy> {
  const app = await startUpstream();
  const p = await startProxy(config({ admin: { listen: '0.0.0.0:0' }, inbound: app.port, drain: { delay: '60s', timeout: '1s' } }));
  t.after(async () => {
    await p.close();
    await app.close();
  });
  return p;
}

test(
  'POST /shutdown is refused from a non-loopback address',
  { skip: external === undefined ? 'this machine has no non-loopback IPv4 address to connect from' : false },
  async (t) => {
    const p = await adminOnAllInterfaces(t);
    const r = await request(p.admin, { method: 'POST', path: '/shutdown', host: external!.address });
    assert.equal(r.status, 403, `from ${external!.address}`);
    assert.equal((JSON.parse(r.body.toString()) as { error: string }).error, 'forbidden');
    assert.equal(p.proxy.isDraining, false);
    // The same address reaches the other endpoints: it is the peer that is refused, not the path.
    assert.equal((await request(p.admin, { path: '/ready', host: external!.address })).status, 200);
  },
);

test('POST /shutdown from loopback drains; GET is not a shutdown', async (t) => {
  const p = await adminOnAllInterfaces(t);
  assert.equal((await request(p.admin, { path: '/shutdown' })).status, 405);
  assert.equal(p.proxy.isDraining, false);
  const ok = await request(p.admin, { method: 'POST', path: '/shutdown' });
  assert.equal(ok.status, 202);
  assert.equal(p.proxy.isDraining, true);
  assert.equal((await request(p.admin, { path: '/ready' })).status, 503);
  assert.equal(p.logs.find((l) => l['msg'] === 'draining')?.['reason'], 'admin /shutdown');
});

test('a request that arrives once the listener is shutting down gets 503 draining and a close', async (t) => {
  const app = await gated();
  const svc = await startUpstream();
  const p: TestProxy = await startProxy(drainConfig(app.port, svc.port, { delay: '0s', timeout: '5s' }));
  t.after(async () => {
    app.release();
    await p.close();
    await Promise.all([app.close(), svc.close()]);
  });
  // Connected before the shutdown, but no request yet: not idle to Node, so it stays open.
  const socket = net.connect(p.inbound, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise<void>((r) => socket.once('connect', () => r()));
  // A slow request keeps the drain going while the late one arrives.
  const slow = request(p.inbound, { path: '/slow', headers: { host: 'app' } });
  await waitFor(() => app.requests.some((r) => r.url === '/slow'), { what: 'the slow request upstream' });
  p.proxy.shutdown('test');
  await waitFor(() => refused(p.inbound), { what: 'inbound to refuse connections' });
  const before = app.requests.length;
  let data = '';
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  socket.write('GET /late HTTP/1.1\r\nHost: app\r\n\r\n');
  await closed;
  assert.match(data, /^HTTP\/1\.1 503/);
  assert.match(data, /x-outrigger-error: draining/i);
  assert.match(data, /\{"error":"draining"\}/);
  assert.equal(app.requests.length, before, 'the late request never reached the app');
  app.release();
  assert.equal((await slow).status, 200);
});
