// Upgrade and CONNECT tunnels end to end: real WebSocket servers and clients (the `ws` package),
// a TCP echo server, the proxy in between on both listeners.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { closedPort, request, startRawServer } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { config, service } from './helpers/config.js';
import { waitFor } from './helpers/wait.js';

interface WsEcho {
  port: number;
  wss: WebSocketServer;
  /** the upgrade requests' headers, in arrival order */
  heads: http.IncomingHttpHeaders[];
  /** server-side sockets, in arrival order */
  peers: WebSocket[];
  close(): Promise<void>;
}

/** A WebSocket server on loopback that echoes every message with its text/binary kind. */
async function startWsEcho(): Promise<WsEcho> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const e: WsEcho = {
    port: (wss.address() as net.AddressInfo).port,
    wss,
    heads: [],
    peers: [],
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
  wss.on('connection', (ws, req) => {
    e.heads.push(req.headers);
    e.peers.push(ws);
    ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data as Buffer, { binary: isBinary }));
  });
  return e;
}

function openWs(port: number, path: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const err = Object.assign(new Error(`unexpected ${res.statusCode}`), {
          status: res.statusCode,
          reason: res.headers['x-outrigger-error'],
          body: Buffer.concat(chunks).toString(),
        });
        reject(err);
      });
    });
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: RawData, binary: boolean) => resolve({ data: data as Buffer, binary })));
}

async function echoRoundTrip(ws: WebSocket): Promise<void> {
  const m1 = nextMessage(ws);
  ws.send('hello through the mesh');
  const r1 = await m1;
  assert.equal(r1.binary, false);
  assert.equal(r1.data.toString(), 'hello through the mesh');
  const bin = Buffer.from([0, 1, 2, 250, 255, 0, 13, 10]);
  const big = Buffer.alloc(300_000, 7); // spans many TCP segments
  const m2 = nextMessage(ws);
  ws.send(bin, { binary: true });
  const r2 = await m2;
  assert.equal(r2.binary, true);
  assert.deepEqual(r2.data, bin);
  const m3 = nextMessage(ws);
  ws.send(big, { binary: true });
  const r3 = await m3;
  assert.equal(r3.data.length, big.length);
  assert.ok(r3.data.equals(big));
}

async function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = once(ws, 'close');
  ws.close();
  await closed;
}

/** CONNECT through the proxy; resolves with the status line and the socket (tunnel on 200). */
function connectVia(port: number, authority: string): Promise<{ status: number; head: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    s.on('error', reject);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      s.off('data', onData);
      const head = buf.subarray(0, end).toString('latin1');
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) s.unshift(rest);
      resolve({ status: Number(head.split(' ')[1]), head, socket: s });
    };
    s.on('data', onData);
    s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });
}

function readN(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= n) {
        s.off('data', onData);
        resolve(buf);
      }
    };
    s.on('data', onData);
  });
}

let wsRouted: WsEcho;
let wsApp: WsEcho;
let tcpEcho: Awaited<ReturnType<typeof startRawServer>>;
let silent: Awaited<ReturnType<typeof startRawServer>>;
let deadPort: number;
let p: TestProxy;
let strict: TestProxy;

before(async () => {
  wsRouted = await startWsEcho();
  wsApp = await startWsEcho();
  tcpEcho = await startRawServer((s) => s.pipe(s));
  silent = await startRawServer((s) => s.resume()); // reads the upgrade request, never answers
  deadPort = await closedPort();
  p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:${wsApp.port}
  authorization:
    default: allow
    rules:
      - { action: deny, paths: ["/private/*"] }
outbound:
  listen: 127.0.0.1:0
  unknownHosts: passthrough
  routes:
    - name: chat
      match: { host: chat-svc, path: { prefix: /chat } }
      rewrite: { prefix: /ws }
      cluster: chat
      timeout: 200ms
      headers:
        request: { set: { x-env: prod }, remove: [x-debug] }
        response: { set: { x-served-by: outrigger } }
    - name: dead
      match: { host: dead-svc }
      cluster: dead
    - name: raw-tcp
      match: { host: tcp-svc, port: 443 }
      cluster: tcp
    - name: hang
      match: { host: hang-svc }
      cluster: silent
      timeout: 200ms
clusters:
  silent: { endpoints: ["127.0.0.1:${silent.port}"] }
  chat: { endpoints: ["127.0.0.1:${wsRouted.port}"] }
  dead: { endpoints: ["127.0.0.1:${deadPort}"] }
  tcp: { endpoints: ["127.0.0.1:${tcpEcho.port}"] }
`);
  strict = await startProxy(
    config(
      { outbound: { unknownHosts: 'reject', limits: { idleTimeout: '300ms' } } },
      service('chat', wsRouted.port, {}, { match: { host: 'chat-svc' } }),
    ),
  );
});

after(async () => {
  await Promise.all([p.close(), strict.close()]);
  await Promise.all([wsRouted.close(), wsApp.close(), tcpEcho.close(), silent.close()]);
});

test('WebSocket echo (text, binary, 300 kB) through a routed outbound upgrade; headers as on plain requests', async () => {
  const before = wsRouted.heads.length;
  const ws = await openWs(p.outbound, '/chat/room?id=1', {
    host: 'chat-svc',
    'x-debug': '1',
    'x-forwarded-for': '10.9.9.9',
    'proxy-connection': 'keep-alive',
    'keep-alive': 'timeout=5',
    te: 'trailers',
  });
  await echoRoundTrip(ws);
  const h = wsRouted.heads[before]!;
  assert.equal(h['x-env'], 'prod');
  assert.equal(h['x-debug'], undefined);
  assert.equal(h['x-forwarded-for'], '10.9.9.9, 127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.match(String(h['x-request-id']), /.+/);
  assert.match(String(h['traceparent']), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.equal(String(h['upgrade']).toLowerCase(), 'websocket');
  assert.equal(String(h['connection']).toLowerCase(), 'upgrade');
  for (const hop of ['proxy-connection', 'keep-alive', 'te']) assert.equal(h[hop], undefined, hop);
  assert.match(String(h['sec-websocket-key']), /.+/); // end-to-end WebSocket headers pass
  await closeWs(ws);
});

test('the route prefix rewrite and response header policy apply to the upgrade', async () => {
  const paths: string[] = [];
  const onHead = (req: http.IncomingMessage): void => void paths.push(req.url ?? '');
  wsRouted.wss.on('headers', (_h, req) => onHead(req));
  const got = new Promise<http.IncomingHttpHeaders>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${p.outbound}/chat/room`, { headers: { host: 'chat-svc' } });
    let h: http.IncomingHttpHeaders = {};
    ws.once('upgrade', (res) => (h = res.headers));
    ws.once('open', () => {
      ws.close();
      resolve(h);
    });
  });
  const headers = await got;
  wsRouted.wss.off('headers', onHead);
  assert.deepEqual(paths, ['/ws/room']);
  assert.equal(headers['x-served-by'], 'outrigger');
});

test('an absolute-form upgrade (HTTP_PROXY style) routes on the target and sends its authority as Host', async () => {
  const n = wsRouted.heads.length;
  const s = net.connect(p.outbound, '127.0.0.1');
  s.on('error', () => undefined);
  const head = new Promise<string>((resolve) => {
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (buf.includes('\r\n\r\n')) resolve(buf);
    });
  });
  s.write(
    'GET http://chat-svc/chat/abs HTTP/1.1\r\nHost: somewhere-else\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  assert.match(await head, /^HTTP\/1\.1 101 /);
  assert.equal(wsRouted.heads[n]!.host, 'chat-svc');
  s.destroy();
});

test('WebSocket echo through passthrough (unknown host) and through the inbound listener', async () => {
  const a = await openWs(p.outbound, '/x', { host: `127.0.0.1:${wsRouted.port}` });
  await echoRoundTrip(a);
  await closeWs(a);
  const before = wsApp.heads.length;
  const b = await openWs(p.inbound, '/socket', { host: 'my-app' });
  await echoRoundTrip(b);
  assert.equal(wsApp.heads[before]!['x-forwarded-for'], '127.0.0.1');
  await closeWs(b);
});

test('inbound upgrades pass the same authorization and edge checks as plain requests', async () => {
  await assert.rejects(
    openWs(p.inbound, '/private/x'),
    (e: { status: number; reason: string }) => e.status === 403 && e.reason === 'forbidden',
  );
  // h2c upgrade is refused at the edge (request smuggling vector), on both listeners
  for (const port of [p.inbound, p.outbound]) {
    const r = await request(port, {
      headers: { host: 'chat-svc', connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQAAP__' },
    });
    assert.equal(r.status, 400);
    assert.equal(r.headers['x-outrigger-error'], 'bad_request');
  }
});

test('a close on either side closes the other', async () => {
  // client closes: the server's socket sees it
  const n = wsRouted.peers.length;
  const a = await openWs(p.outbound, '/chat', { host: 'chat-svc' });
  const peerA = await waitFor(() => wsRouted.peers[n]);
  const peerClosed = once(peerA, 'close');
  a.terminate(); // TCP close without a close frame
  await peerClosed;
  // server closes: the client sees it
  const b = await openWs(p.outbound, '/chat', { host: 'chat-svc' });
  const peerB = await waitFor(() => wsRouted.peers[n + 1]);
  const clientClosed = once(b, 'close');
  peerB.terminate();
  await clientClosed;
});

test('a tunnel outlives the route timeout; an idle tunnel is closed at limits.idleTimeout', async () => {
  // `chat` has timeout 200ms: the tunnel keeps working after it
  const ws = await openWs(p.outbound, '/chat', { host: 'chat-svc' });
  await new Promise((r) => setTimeout(r, 400));
  await echoRoundTrip(ws);
  await closeWs(ws);
  // `strict` has idleTimeout 300ms: a silent tunnel is closed by the proxy (no timing assertion)
  const idle = await openWs(strict.outbound, '/', { host: 'chat-svc' });
  await once(idle, 'close');
});

test('upstream unreachable before the 101 → 502 upstream_connect_failure; unknown host under reject → 404', async () => {
  await assert.rejects(openWs(p.outbound, '/', { host: 'dead-svc' }), (e: { status: number; reason: string; body: string }) => {
    assert.equal(e.status, 502);
    assert.equal(e.reason, 'upstream_connect_failure');
    assert.equal(e.body, '{"error":"upstream_connect_failure"}');
    return true;
  });
  await assert.rejects(
    openWs(strict.outbound, '/', { host: 'nowhere-svc' }),
    (e: { status: number; reason: string }) => e.status === 404 && e.reason === 'no_route',
  );
});

test('an upstream that never answers the upgrade → 504 upstream_timeout at the route timeout', async () => {
  await assert.rejects(
    openWs(p.outbound, '/', { host: 'hang-svc' }),
    (e: { status: number; reason: string }) => e.status === 504 && e.reason === 'upstream_timeout',
  );
});

test('an upgrade the upstream refuses is relayed as its plain response', async () => {
  const plain = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required: nope');
  });
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  try {
    const port = (plain.address() as net.AddressInfo).port;
    await assert.rejects(openWs(p.outbound, '/', { host: `127.0.0.1:${port}` }), (e: { status: number; body: string }) => {
      assert.equal(e.status, 426);
      assert.equal(e.body, 'upgrade required: nope');
      return true;
    });
  } finally {
    plain.closeAllConnections();
    await new Promise<void>((r) => plain.close(() => r()));
  }
});

test('CONNECT opens a TCP tunnel (passthrough and routed host); bytes flow both ways', async () => {
  for (const authority of [`127.0.0.1:${tcpEcho.port}`, 'tcp-svc:443']) {
    const c = await connectVia(p.outbound, authority);
    assert.equal(c.status, 200, c.head);
    const payload = Buffer.from('\x16\x03\x01 not really TLS, any bytes at all \x00\xff');
    const echoed = readN(c.socket, payload.length);
    c.socket.write(payload);
    assert.deepEqual(await echoed, payload);
    const closed = once(c.socket, 'close');
    c.socket.end();
    await closed;
  }
});

test('CONNECT to a host no route names is refused under unknownHosts: reject', async () => {
  const c = await connectVia(strict.outbound, `127.0.0.1:${tcpEcho.port}`);
  assert.equal(c.status, 404);
  assert.match(c.head, /x-outrigger-error: no_route/i);
  c.socket.destroy();
  // a routed host is allowed, to the port its cluster serves
  const ok = await connectVia(strict.outbound, `chat-svc:${wsRouted.port}`);
  assert.equal(ok.status, 200);
  ok.socket.destroy();
});

test('a route takes CONNECT only to the port it serves: another port of its host is not its traffic', async () => {
  // chat's cluster listens on wsRouted.port; a TLS tunnel to chat-svc:443 must not land on it
  const other = await connectVia(strict.outbound, 'chat-svc:443');
  assert.equal(other.status, 404);
  assert.match(other.head, /x-outrigger-error: no_route/i);
  other.socket.destroy();
  // match.port names the ports a route takes: raw-tcp takes tcp-svc:443 to its echo cluster...
  const routed = await connectVia(p.outbound, 'tcp-svc:443');
  assert.equal(routed.status, 200, routed.head);
  routed.socket.destroy();
  // ...and the tunnel's line names the route
  const line = await waitFor(() => p.access().find((l) => l['tunnel'] === 'connect' && l['route'] === 'raw-tcp'));
  assert.equal(line['cluster'], 'tcp');
});

test('tunnels are logged once when they close, with bytes both ways, and counted with 101 / 200', async () => {
  const ws = await openWs(p.outbound, '/chat/log', { host: 'chat-svc' });
  const m = nextMessage(ws);
  ws.send('0123456789');
  await m;
  await closeWs(ws);
  const line = await waitFor(() => p.access().find((l) => l['tunnel'] === 'upgrade' && l['path'] === '/chat/log'));
  assert.equal(line['status'], 101);
  assert.equal(line['route'], 'chat');
  assert.equal(line['cluster'], 'chat');
  assert.equal(line['direction'], 'outbound');
  assert.ok((line['bytes_in'] as number) >= 10, JSON.stringify(line));
  assert.ok((line['bytes_out'] as number) >= 10, JSON.stringify(line));
  const conn = await waitFor(() => p.access().find((l) => l['tunnel'] === 'connect' && l['status'] === 200));
  assert.ok((conn['bytes_in'] as number) > 0 && (conn['bytes_out'] as number) > 0);
  const metrics = (await request(p.admin, { path: '/metrics' })).body.toString();
  assert.match(metrics, /outrigger_requests_total\{direction="outbound",route="chat",cluster="chat",code="101"\} [1-9]/);
  assert.match(metrics, /outrigger_requests_total\{direction="outbound",route="raw-tcp",cluster="tcp",code="200"\} [1-9]/);
  assert.match(metrics, /outrigger_requests_total\{direction="inbound",route="app",cluster="app",code="101"\} [1-9]/);
});

test('a drain closes open tunnels (upgrade and CONNECT) at its deadline', async () => {
  const q = await startProxy(config(service('chat', wsRouted.port, {}, { match: { host: 'chat-svc' } })));
  const ws = await openWs(q.outbound, '/', { host: 'chat-svc' });
  const c = await connectVia(q.outbound, `127.0.0.1:${tcpEcho.port}`);
  assert.equal(c.status, 200);
  const wsClosed = once(ws, 'close');
  const tcpClosed = once(c.socket, 'close');
  await q.close(); // drain with a zero deadline
  await Promise.all([wsClosed, tcpClosed]);
});
