// Upgrades to a TLS (mesh mTLS) cluster: the tunnel dials with the cluster's connect options —
// client certificate, mesh CA, SPIFFE principal check — exactly as the cluster's pools do.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import { once } from 'node:events';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { makePki } from './helpers/certs.js';
import { startProxy, tempDir, type TestProxy } from './helpers/proxy.js';

let server: https.Server;
let wss: WebSocketServer;
let p: TestProxy;
const clientCerts: (string | undefined)[] = [];

before(async () => {
  const pki = await makePki(tempDir('outrigger-tunnel-tls-'));
  const up = await pki.issue('chat', { uris: ['spiffe://cluster.local/ns/shop/sa/chat'] });
  const me = await pki.issue('web', { uris: ['spiffe://cluster.local/ns/shop/sa/web'] });
  server = https.createServer({
    cert: readFileSync(up.cert),
    key: readFileSync(up.key),
    ca: readFileSync(pki.ca),
    requestCert: true,
    rejectUnauthorized: true,
  });
  wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
    clientCerts.push(peer.subjectaltname);
    ws.on('message', (d: RawData, bin: boolean) => ws.send(d as Buffer, { binary: bin }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
outbound:
  listen: 127.0.0.1:0
  routes:
    - { name: chat, match: { host: chat-svc }, cluster: chat }
    - { name: impostor, match: { host: impostor-svc }, cluster: impostor }
clusters:
  chat:
    endpoints: ["127.0.0.1:${port}"]
    tls: { ca: ${pki.ca}, cert: ${me.cert}, key: ${me.key}, principals: ["spiffe://cluster.local/ns/shop/sa/chat"] }
  impostor:
    endpoints: ["127.0.0.1:${port}"]
    tls: { ca: ${pki.ca}, cert: ${me.cert}, key: ${me.key}, principals: ["spiffe://cluster.local/ns/shop/sa/payments"] }
`);
});

after(async () => {
  await p.close();
  for (const c of wss.clients) c.terminate();
  wss.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

test('a WebSocket to an mTLS cluster is tunnelled over TLS with the cluster identity', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${p.outbound}/`, { headers: { host: 'chat-svc' } });
  await once(ws, 'open');
  const got = once(ws, 'message');
  ws.send(Buffer.from([1, 2, 3]), { binary: true });
  const [data, binary] = (await got) as [Buffer, boolean];
  assert.equal(binary, true);
  assert.deepEqual([...data], [1, 2, 3]);
  assert.equal(clientCerts.at(-1), 'URI:spiffe://cluster.local/ns/shop/sa/web');
  const closed = once(ws, 'close');
  ws.close();
  await closed;
});

test("an upstream whose principal is not the cluster's is refused: 502 upstream_connect_failure", async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${p.outbound}/`, { headers: { host: 'impostor-svc' } });
  ws.on('error', () => undefined);
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
  assert.equal(res.statusCode, 502);
  assert.equal(res.headers['x-outrigger-error'], 'upstream_connect_failure');
  res.resume();
  ws.terminate();
});
