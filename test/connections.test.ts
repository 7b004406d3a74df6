// Connection tracking and graceful drain (src/listener/connections.ts) over real sockets on
// 127.0.0.1:0: in-flight requests finish with `connection: close`, idle keep-alive sockets close
// at once, new connections are refused, the deadline cuts stragglers and tunnels, the cap holds,
// and the same over TLS.
import { test, mock, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { ConnectionTracker, type ConnectionTrackerOptions } from '../src/listener/connections.js';
import { makePki } from './helpers/certs.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

interface Started {
  server: http.Server;
  tracker: ConnectionTracker;
  port: number;
}

async function start(
  t: TestContext,
  handler: Handler,
  opts: ConnectionTrackerOptions = {},
  server?: http.Server | https.Server,
): Promise<Started> {
  // Once a drain has closed the listening socket, the client's pooled keep-alive sockets are
  // unref'd and nothing else holds the event loop open while a test awaits their FIN; node:test
  // would then cancel the test ("event loop has already resolved"). In the proxy other handles keep
  // the loop alive; here a ref'd interval stands in for them.
  const keepAlive = setInterval(() => {}, 60_000);
  t.after(() => clearInterval(keepAlive));
  const s = (server ?? http.createServer()) as http.Server;
  s.on('request', handler);
  const tracker = new ConnectionTracker(s, opts);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  t.after(() => {
    tracker.destroyAll();
    s.close();
  });
  return { server: s, tracker, port: (s.address() as net.AddressInfo).port };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  socket: net.Socket;
}

/** One request; resolves with the whole response and the client socket it came over. */
function get(port: number, agent: http.Agent | https.Agent, urlPath: string, secure = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const mod = secure ? https : http;
    const req = mod.get({ host: '127.0.0.1', port, path: urlPath, agent }, (res) => {
      const socket = res.socket;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, socket }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function keepAliveAgent(t: TestContext): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  t.after(() => agent.destroy());
  return agent;
}

/** Resolves once the socket has closed (whether or not it errored first). */
function closed(socket: net.Socket): Promise<void> {
  if (socket.destroyed && socket.closed) return Promise.resolve();
  socket.on('error', () => {});
  return once(socket, 'close').then(() => undefined);
}

/** A server handler that parks /slow requests until the test releases them. */
function parking(): { handler: Handler; arrived: () => Promise<http.ServerResponse> } {
  const waiting: Array<(res: http.ServerResponse) => void> = [];
  const parked: http.ServerResponse[] = [];
  return {
    handler: (req, res) => {
      if (req.url === '/slow') {
        const w = waiting.shift();
        if (w) w(res);
        else parked.push(res);
        return;
      }
      res.end('ok');
    },
    arrived: () => {
      const r = parked.shift();
      return r ? Promise.resolve(r) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

test('a request in flight when the drain starts completes with 200 and connection: close', { timeout: 15_000 }, async (t) => {
  const p = parking();
  const { tracker, port } = await start(t, p.handler);
  const agent = keepAliveAgent(t);
  const reply = get(port, agent, '/slow');
  const res = await p.arrived();
  assert.equal(tracker.inFlight, 1);
  const drained = tracker.drain(60_000);
  assert.equal(tracker.draining, true);
  res.end('finished after drain');
  const r = await reply;
  assert.equal(r.status, 200);
  assert.equal(r.body, 'finished after drain');
  assert.equal(r.headers.connection, 'close');
  await closed(r.socket);
  await drained;
  assert.equal(tracker.size, 0);
  assert.equal(tracker.inFlight, 0);
});

test(
  'a response whose head was sent as keep-alive before the drain is completed, then its socket closed',
  { timeout: 15_000 },
  async (t) => {
    const p = parking();
    const { tracker, port } = await start(t, p.handler);
    const agent = keepAliveAgent(t);
    const head = new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/slow', agent }, resolve).on('error', reject);
    });
    const res = await p.arrived();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('part 1, ');
    const msg = await head;
    assert.equal(msg.headers.connection, 'keep-alive');
    const socket = msg.socket;
    const drained = tracker.drain(60_000);
    res.end('part 2');
    let body = '';
    msg.setEncoding('utf8');
    for await (const chunk of msg) body += chunk as string;
    assert.equal(body, 'part 1, part 2');
    await closed(socket);
    await drained;
    assert.equal(tracker.size, 0);
  },
);

test('idle keep-alive sockets are closed as soon as the drain starts', { timeout: 15_000 }, async (t) => {
  const p = parking();
  const { tracker, port } = await start(t, p.handler);
  const agent = keepAliveAgent(t);
  const [a, b] = await Promise.all([get(port, agent, '/a'), get(port, agent, '/b')]);
  assert.equal(a.headers.connection, 'keep-alive');
  assert.notEqual(a.socket, b.socket, 'two idle pooled connections');
  assert.equal(tracker.size, 2);
  assert.equal(tracker.inFlight, 0);
  // The deadline is far away: only closing the idle sockets at once lets this resolve.
  await tracker.drain(60_000);
  await Promise.all([closed(a.socket), closed(b.socket)]);
  assert.equal(tracker.size, 0);
});

test(
  'a connection accepted before the drain but without a request yet is served once, with connection: close',
  { timeout: 15_000 },
  async (t) => {
    const p = parking();
    const { tracker, port } = await start(t, p.handler);
    const socket = net.connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    while (tracker.size < 1) await new Promise((resolve) => setImmediate(resolve));
    const drained = tracker.drain(60_000);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed(socket);
    assert.match(data, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(data, /\r\nConnection: close\r\n/i);
    assert.match(data, /\r\n\r\nok$/);
    await drained;
  },
);

test('new connections are refused once the drain has started', { timeout: 15_000 }, async (t) => {
  const p = parking();
  const { tracker, port } = await start(t, p.handler);
  const agent = keepAliveAgent(t);
  const reply = get(port, agent, '/slow'); // keeps the drain pending
  const res = await p.arrived();
  const drained = tracker.drain(60_000);
  const late = net.connect(port, '127.0.0.1');
  const [err] = (await once(late, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
  res.end('done');
  assert.equal((await reply).status, 200);
  await drained;
});

test('a request that never finishes is cut at the deadline and the drain resolves', { timeout: 15_000 }, async (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const p = parking();
  const { tracker, port } = await start(t, p.handler);
  const agent = keepAliveAgent(t);
  const reply = get(port, agent, '/slow');
  await p.arrived(); // never answered
  let resolved = false;
  const drained = tracker.drain(20_000).then(() => {
    resolved = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(resolved, false, 'the drain waits for the in-flight request');
  assert.equal(tracker.size, 1);
  mock.timers.tick(20_000);
  await drained;
  assert.equal(tracker.size, 0);
  await assert.rejects(reply, (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET');
});

test('maxConnections caps concurrent sockets; excess ones are closed at accept', { timeout: 15_000 }, async (t) => {
  const p = parking();
  const { server, tracker, port } = await start(t, p.handler, { maxConnections: 2 });
  const sockets: net.Socket[] = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  const connect = async (): Promise<net.Socket> => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    sockets.push(s);
    await once(s, 'connect');
    return s;
  };
  for (let i = 1; i <= 2; i++) {
    await connect();
    // Wait for the accept, so the kernel's accept order is the order we connected in.
    while (tracker.size < i) await new Promise((resolve) => setImmediate(resolve));
  }
  const dropped = once(server, 'drop');
  const third = await connect();
  await dropped;
  await closed(third);
  assert.equal(tracker.size, 2);
  assert.equal(tracker.dropped, 1);

  // The two admitted connections still work.
  for (const s of sockets.slice(0, 2)) {
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await closed(s);
    assert.match(data, /^HTTP\/1\.1 200 OK/);
  }

  // Raising the cap at run time admits new connections.
  tracker.setMaxConnections(10);
  const fourth = await connect();
  while (tracker.size < 1) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(tracker.dropped, 1);
  assert.equal(fourth.destroyed, false);
});

test('tracked tunnel sockets stay open through the drain and are destroyed at the deadline', { timeout: 15_000 }, async (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  // An echo "upstream" the tunnel connects to; its socket is tracked as a tunnel too.
  const upstreamSockets: net.Socket[] = [];
  const upstream = net.createServer((s) => s.pipe(s));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  t.after(() => {
    upstreamSockets.forEach((s) => s.destroy());
    upstream.close();
  });
  const upstreamPort = (upstream.address() as net.AddressInfo).port;

  const p = parking();
  const { server, tracker, port } = await start(t, p.handler);
  server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => {
    tracker.trackTunnel(socket);
    const up = net.connect(upstreamPort, '127.0.0.1', () => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      socket.pipe(up).pipe(socket);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    upstreamSockets.push(up);
    tracker.trackTunnel(up);
  });
  const client = await new Promise<net.Socket>((resolve, reject) => {
    http
      .request({ host: '127.0.0.1', port, headers: { connection: 'Upgrade', upgrade: 'echo' } })
      .on('upgrade', (_res, socket: net.Socket) => resolve(socket))
      .on('error', reject)
      .end();
  });
  const echo = async (text: string): Promise<string> => {
    client.write(text);
    const [d] = (await once(client, 'data')) as [Buffer];
    return d.toString();
  };
  assert.equal(await echo('before'), 'before');
  assert.equal(tracker.tunnels, 2);

  const drained = tracker.drain(20_000);
  // The drain does not touch tunnels before the deadline.
  assert.equal(await echo('during drain'), 'during drain');
  const clientClosed = closed(client);
  mock.timers.tick(20_000);
  await drained;
  await clientClosed;
  assert.equal(tracker.tunnels, 0);
  assert.equal(tracker.size, 0);
  assert.equal(upstreamSockets[0]?.destroyed, true);

  // A tunnel tracked after the drain finished is destroyed at once.
  const straggler = net.connect(upstreamPort, '127.0.0.1');
  straggler.on('error', () => {});
  tracker.trackTunnel(straggler);
  assert.equal(straggler.destroyed, true);
});

test(
  'over TLS: the in-flight request gets connection: close; sockets still in the handshake are cut at the deadline',
  { timeout: 15_000 },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-conn-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const pki = await makePki(dir);
    const leaf = await pki.issue('server', { dns: ['localhost'], ips: ['127.0.0.1'] });
    const server = https.createServer({ cert: fs.readFileSync(leaf.cert), key: fs.readFileSync(leaf.key) });
    const p = parking();
    const { tracker, port } = await start(t, p.handler, {}, server);
    const ca = fs.readFileSync(pki.ca);
    // Two agents: one keeps an idle pooled connection, the other carries the slow request (one
    // agent would reuse the idle connection for it).
    const idleAgent = new https.Agent({ keepAlive: true, ca });
    const busyAgent = new https.Agent({ keepAlive: true, ca });
    t.after(() => {
      idleAgent.destroy();
      busyAgent.destroy();
    });

    const idle = await get(port, idleAgent, '/warm', true);
    assert.equal(idle.headers.connection, 'keep-alive');
    const reply = get(port, busyAgent, '/slow', true);
    const res = await p.arrived();
    // A raw TCP connection that never starts TLS: counted, and only the deadline ends it.
    const silent = net.connect(port, '127.0.0.1');
    t.after(() => silent.destroy());
    await once(silent, 'connect');
    while (tracker.size < 3) await new Promise((resolve) => setImmediate(resolve));

    mock.timers.enable({ apis: ['setTimeout'] });
    t.after(() => mock.timers.reset());
    const drained = tracker.drain(20_000);
    await closed(idle.socket); // the idle TLS keep-alive connection goes at once
    res.end('tls done');
    const r = await reply;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'tls done');
    assert.equal(r.headers.connection, 'close');
    await closed(r.socket);
    while (tracker.size > 1) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(silent.destroyed, false, 'a connection without a request is not cut before the deadline');
    mock.timers.tick(20_000);
    await drained;
    await closed(silent);
    assert.equal(tracker.size, 0);
  },
);

test('settled() waits for the requests in flight at the call, not for later ones', { timeout: 15_000 }, async (t) => {
  const p = parking();
  const { tracker, port } = await start(t, p.handler);
  const agent = keepAliveAgent(t);
  await tracker.settled(); // nothing in flight: resolves at once
  const first = get(port, agent, '/slow');
  const firstRes = await p.arrived();
  let settled = false;
  const barrier = tracker.settled().then(() => (settled = true));
  // A request that starts after the barrier and stays open must not hold it.
  const later = get(port, agent, '/slow');
  const laterRes = await p.arrived();
  assert.equal(tracker.inFlight, 2);
  // Still pending: the first request has not finished (checked after a full round trip).
  assert.equal((await get(port, agent, '/fast')).body, 'ok');
  assert.equal(settled, false);
  firstRes.end('one');
  await barrier;
  assert.equal((await first).body, 'one');
  assert.equal(tracker.inFlight, 1);
  laterRes.end('two');
  assert.equal((await later).body, 'two');
});

test('closeConnectionsAfterResponse(): keeps accepting, every response closes its connection', { timeout: 15_000 }, async (t) => {
  const p = parking();
  const { tracker, port } = await start(t, p.handler);
  const agent = keepAliveAgent(t);
  const before = await get(port, agent, '/fast');
  assert.equal(before.headers.connection, 'keep-alive');
  const pending = get(port, agent, '/slow');
  const res = await p.arrived();
  tracker.closeConnectionsAfterResponse();
  res.end('late');
  const r = await pending;
  assert.equal(r.headers.connection, 'close', 'a response started before the call but not yet written');
  await closed(r.socket);
  const fresh = await get(port, agent, '/fast');
  assert.equal(fresh.status, 200, 'still accepting');
  assert.equal(fresh.headers.connection, 'close');
  await closed(fresh.socket);
  assert.equal(tracker.draining, false);
});
