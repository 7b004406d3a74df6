// Certificate rotation under load through the real proxy with its file watcher on: the inbound
// cert/key and the CA bundle are replaced on disk while clients keep sending (fresh handshakes
// and kept-alive connections). New handshakes pick up the new material, an open connection keeps
// the certificate it was set up with, nothing restarts and no request fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makePki, type Pki } from './helpers/certs.js';
import { startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, tempDir, type TestProxy } from './helpers/proxy.js';

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
const live = { cert: '', key: '', ca: '' };

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

async function until(what: string, f: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  dir = tempDir('outrigger-rotate-');
  pki = await makePki(dir);
  [serverA, serverB, web, foreign] = await Promise.all([
    pki.issue('server-a', { uris: [`${NS}/app`], ips: ['127.0.0.1'] }),
    pki.issue('server-b', { uris: [`${NS}/app`], ips: ['127.0.0.1'] }),
    pki.issue('web', { uris: [`${NS}/web`] }),
    pki.issue('foreign', { uris: [`${NS}/web`], signer: 'other' }),
  ]);
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
`,
    { watch: true },
  );
});

after(async () => {
  await p.close();
  await app.close();
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
    await until('load to start', async () => ok >= 20);
    replace(live.key, serverB.key);
    replace(live.cert, serverB.cert);
    // new handshakes present B within seconds
    await until('a fresh handshake with the new certificate', async () => seen.has(serialB));
    const atSwitch = ok;
    await until('more traffic after the switch', async () => ok >= atSwitch + 20);
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
  await until('the new CA bundle', async () => {
    try {
      return (await call(foreign, false)).status === 200;
    } catch {
      return false;
    }
  });
  // the old CA's clients still pass
  assert.equal((await call(web, false)).status, 200);
});
