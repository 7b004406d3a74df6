// Certificate rotation under load through the real proxy with its file watcher on: the inbound
// cert/key and the CA bundle are replaced on disk while clients keep sending (fresh handshakes
// and kept-alive connections), and an outbound cluster's client certificate is replaced while the
// app keeps calling through the proxy. New handshakes pick up the new material, an open
// connection keeps the certificate it was set up with, nothing restarts and no request fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makePki, type Pki } from './helpers/certs.js';
import { request as plainRequest, startUpstream, type Upstream } from './helpers/servers.js';
import net from 'node:net';
import { once } from 'node:events';
import { startProxy, tempDir, type TestProxy } from './helpers/proxy.js';
import { waitFor } from './helpers/wait.js';

const NS = 'spiffe://cluster.local/ns/shop/sa';
type Cert = { cert: string; key: string };

let pki: Pki;
let app: Upstream;
let p: TestProxy;
let dir: string;
let serverA: Cert;
let serverB: Cert;
let web: Cert;
let foreign: Cert;
let sideA: Cert;
let sideB: Cert;
const live = { cert: '', key: '', ca: '', sideCert: '', sideKey: '' };
let secure: https.Server;
/** serial of the client certificate on every request the mTLS upstream served */
const upstreamSaw: string[] = [];

function serialOf(file: string): string {
  return new X509Certificate(readFileSync(file)).serialNumber.toUpperCase();
}

/** Replaces a file atomically, as a Secret volume or cert-manager does. */
function replace(target: string, from: string | Buffer): void {
  const tmp = `${target}.tmp`;
  if (typeof from === 'string') copyFileSync(from, tmp);
  else writeFileSync(tmp, from);
  renameSync(tmp, target);
}

interface Result {
  status: number;
  serial: string;
  socket: tls.TLSSocket;
}

function call(client: Cert, agent: https.Agent | false, pathname = '/x'): Promise<Result> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: p.inbound,
        path: pathname,
        ca: readFileSync(pki.ca),
        cert: readFileSync(client.cert),
        key: readFileSync(client.key),
        agent,
        checkServerIdentity: (_h: string, c: tls.PeerCertificate) => tls.checkServerIdentity('127.0.0.1', c),
      },
      (res) => {
        const socket = res.socket as tls.TLSSocket;
        const serial = socket.getPeerCertificate().serialNumber.toUpperCase();
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, serial, socket }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Rotation waits: the file watcher's debounce plus new handshakes can take a few seconds. */
const ROTATION = { timeoutMs: 15_000, intervalMs: 50 } as const;

before(async () => {
  dir = tempDir('outrigger-rotate-');
  pki = await makePki(dir);
  let svc: Cert;
  [serverA, serverB, web, foreign, sideA, sideB, svc] = await Promise.all([
    pki.issue('server-a', { uris: [`${NS}/app`], ips: ['127.0.0.1'] }),
    pki.issue('server-b', { uris: [`${NS}/app`], ips: ['127.0.0.1'] }),
    pki.issue('web', { uris: [`${NS}/web`] }),
    pki.issue('foreign', { uris: [`${NS}/web`], signer: 'other' }),
    pki.issue('side-a', { uris: [`${NS}/web`] }),
    pki.issue('side-b', { uris: [`${NS}/web`] }),
    pki.issue('svc', { uris: [`${NS}/svc`] }),
  ]);
  live.sideCert = path.join(dir, 'side.crt');
  live.sideKey = path.join(dir, 'side.key');
  copyFileSync(sideA.cert, live.sideCert);
  copyFileSync(sideA.key, live.sideKey);
  secure = https.createServer(
    { cert: readFileSync(svc.cert), key: readFileSync(svc.key), ca: readFileSync(pki.ca), requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      upstreamSaw.push((req.socket as tls.TLSSocket).getPeerCertificate().serialNumber.toUpperCase());
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    },
  );
  secure.keepAliveTimeout = 30_000;
  secure.listen(0, '127.0.0.1');
  await once(secure, 'listening');
  const securePort = (secure.address() as net.AddressInfo).port;
  live.cert = path.join(dir, 'live.crt');
  live.key = path.join(dir, 'live.key');
  live.ca = path.join(dir, 'live-ca.crt');
  copyFileSync(serverA.cert, live.cert);
  copyFileSync(serverA.key, live.key);
  copyFileSync(pki.ca, live.ca);
  app = await startUpstream();
  p = await startProxy(
    `
admin: { listen: 127.0.0.1:0 }
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:${app.port}
  tls: { cert: ${live.cert}, key: ${live.key}, ca: ${live.ca}, requireClientCert: true }
outbound:
  listen: 127.0.0.1:0
  routes: [ { name: svc, match: { host: svc }, cluster: svc } ]
clusters:
  svc:
    endpoints: ["127.0.0.1:${securePort}"]
    tls: { ca: ${pki.ca}, cert: ${live.sideCert}, key: ${live.sideKey}, principals: ["${NS}/svc"] }
`,
    { watch: true },
  );
});

after(async () => {
  await p.close();
  await app.close();
  secure.closeAllConnections();
  await new Promise<void>((r) => secure.close(() => r()));
});

test('cert and key rotation under load: new handshakes get the new cert, open connections keep theirs, zero failures', async () => {
  const serialA = serialOf(serverA.cert);
  const serialB = serialOf(serverB.cert);
  assert.notEqual(serialA, serialB);

  // a kept-alive connection set up before the rotation
  const held = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await call(web, held);
  assert.equal(first.serial, serialA);

  let ok = 0;
  const failures: string[] = [];
  const seen = new Set<string>();
  let stop = false;
  const shared = new https.Agent({ keepAlive: true, maxSockets: 2 });
  const worker = async (agent: https.Agent | false): Promise<void> => {
    while (!stop) {
      try {
        const r = await call(web, agent);
        if (r.status === 200) {
          ok++;
          if (agent === false) seen.add(r.serial);
        } else failures.push(`status ${r.status}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const workers = [worker(false), worker(false), worker(shared), worker(shared)];
  try {
    await waitFor(() => ok >= 20, { what: 'load to start', ...ROTATION });
    replace(live.key, serverB.key);
    replace(live.cert, serverB.cert);
    // new handshakes present B within seconds
    await waitFor(() => seen.has(serialB), { what: 'a fresh handshake with the new certificate', ...ROTATION });
    const atSwitch = ok;
    await waitFor(() => ok >= atSwitch + 20, { what: 'more traffic after the switch', ...ROTATION });
    // the connection opened before the rotation is still served, on its old certificate
    const again = await call(web, held);
    assert.equal(again.status, 200);
    assert.equal(again.socket, first.socket, 'the same kept-alive connection');
    assert.equal(again.serial, serialA);
  } finally {
    stop = true;
    await Promise.all(workers);
    held.destroy();
    shared.destroy();
  }
  assert.deepEqual(failures, []);
  assert.ok(seen.has(serialA) && seen.has(serialB));
  // nothing restarted: one bound listener, reloads counted as successes
  assert.ok(p.logs.some((l) => l['msg'] === 'config reloaded'));
  assert.equal(p.logs.filter((l) => l['msg'] === 'outrigger started').length, 1);
});

test('CA rotation: a client of the new CA is refused until the bundle includes it, then accepted', async () => {
  await assert.rejects(call(foreign, false));
  replace(live.ca, Buffer.concat([readFileSync(pki.ca), readFileSync(pki.otherCa)]));
  await waitFor(
    async () => {
      try {
        return (await call(foreign, false)).status === 200;
      } catch {
        return false;
      }
    },
    { what: 'the new CA bundle', ...ROTATION },
  );
  // the old CA's clients still pass
  assert.equal((await call(web, false)).status, 200);
});

test('outbound client certificate rotation under load: the cluster gets a new pool, zero failures', async () => {
  const serialA = serialOf(sideA.cert);
  const serialB = serialOf(sideB.cert);
  let ok = 0;
  const failures: string[] = [];
  let stop = false;
  const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 4 });
  const worker = async (): Promise<void> => {
    while (!stop) {
      try {
        const r = await plainRequest(p.outbound, { path: '/o', headers: { host: 'svc' }, agent });
        if (r.status === 200) ok++;
        else failures.push(`status ${r.status} ${String(r.headers['x-outrigger-error'])}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const workers = [worker(), worker(), worker()];
  try {
    await waitFor(() => ok >= 20, { what: 'load to start', ...ROTATION });
    assert.equal(upstreamSaw.includes(serialA), true);
    replace(live.sideKey, sideB.key);
    replace(live.sideCert, sideB.cert);
    await waitFor(() => upstreamSaw.includes(serialB), { what: 'the upstream to see the new client certificate', ...ROTATION });
    const atSwitch = ok;
    await waitFor(() => ok >= atSwitch + 20, { what: 'more traffic after the switch', ...ROTATION });
  } finally {
    stop = true;
    await Promise.all(workers);
    agent.destroy();
  }
  assert.deepEqual(failures, []);
  // after the switch every new request presents B (the old pool only finished what it had)
  const last = upstreamSaw.slice(-10);
  assert.deepEqual(
    last,
    last.map(() => serialB),
  );
});

test('a TLS session from before a CA is removed cannot be resumed to get past it', async () => {
  // at this point the bundle holds both CAs (previous test); take a session with the foreign CA
  const rawCall = (client: Cert, session?: Buffer): Promise<{ status: number; session: Buffer | undefined; reused: boolean }> =>
    new Promise((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port: p.inbound,
        ca: readFileSync(pki.ca),
        cert: readFileSync(client.cert),
        key: readFileSync(client.key),
        checkServerIdentity: () => undefined,
        maxVersion: 'TLSv1.2', // a 1.2 session is available right after the handshake
        ...(session === undefined ? {} : { session }),
      });
      let data = '';
      let reused = false;
      let got: Buffer | undefined;
      s.on('session', (b: Buffer) => (got = b));
      s.on('secureConnect', () => {
        reused = s.isSessionReused();
        s.write('GET /r HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n');
      });
      s.on('data', (c: Buffer) => (data += c.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), session: got, reused }));
    });
  const first = await rawCall(foreign);
  assert.equal(first.status, 200);
  assert.ok(first.session !== undefined);
  const resumed = await rawCall(foreign, first.session);
  assert.equal(resumed.status, 200);
  assert.equal(resumed.reused, true, 'sessions do resume while the CA is trusted');
  // remove the foreign CA again
  replace(live.ca, pki.ca);
  await waitFor(async () => (await rawCall(foreign)).status !== 200, { what: 'the foreign CA to be dropped', ...ROTATION });
  const after = await rawCall(foreign, first.session);
  assert.notEqual(after.status, 200, 'the old session must not let the foreign client back in');
});
