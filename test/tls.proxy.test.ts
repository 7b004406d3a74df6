// mTLS and authorization through the real proxy: a CA and SPIFFE certificates made with openssl
// at run time; inbound handshake refusals (counted and logged once per reason), principals
// accepted and refused, authorization rules with the path-normalisation bypass attempts
// (asserting what the app receives), and outbound SPIFFE principal checks.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { makePki, type Pki } from './helpers/certs.js';
import { startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, tempDir, type TestProxy } from './helpers/proxy.js';

const NS = 'spiffe://cluster.local/ns/shop/sa';
type Cert = { cert: string; key: string };

let pki: Pki;
let app: Upstream;
let p: TestProxy;
const certs: Record<string, Cert> = {};

interface Reply {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

/** One HTTPS request to the inbound listener with an optional client certificate. */
function call(port: number, path: string, client: Cert | null, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        ca: readFileSync(pki.ca),
        ...(client === null ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
        agent: false,
        headers: { host: 'app' },
        // the Host header would become the name checked; the server cert names 127.0.0.1
        checkServerIdentity: (_h: string, c: tls.PeerCertificate) => tls.checkServerIdentity('127.0.0.1', c),
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function metric(port: number, line: RegExp): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    net
      .connect(port, '127.0.0.1')
      .on('error', reject)
      .end('GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
      .on('data', function (this: net.Socket, c: Buffer) {
        (this as net.Socket & { buf?: string }).buf = ((this as net.Socket & { buf?: string }).buf ?? '') + c.toString();
      })
      .on('close', function (this: net.Socket) {
        resolve((this as net.Socket & { buf?: string }).buf ?? '');
      });
  });
  const m = text.split('\n').find((l) => line.test(l));
  return m === undefined ? 0 : Number(m.split(' ').pop());
}

before(async () => {
  const dir = tempDir('outrigger-pki-');
  pki = await makePki(dir);
  const issued = await Promise.all([
    pki.issue('server', { uris: [`${NS}/app`], ips: ['127.0.0.1'] }),
    pki.issue('web', { uris: [`${NS}/web`] }),
    pki.issue('ops', { uris: [`${NS}/ops`] }),
    pki.issue('nouri', { dns: ['legacy.local'] }),
    pki.issue('foreign', { uris: [`${NS}/web`], signer: 'other' }),
    pki.issue('twouris', { uris: [`${NS}/web`, `${NS}/ops`] }),
    pki.issue('caleaf', { uris: [`${NS}/web`], isCa: true }),
  ]);
  for (const [i, n] of ['server', 'web', 'ops', 'nouri', 'foreign', 'twouris', 'caleaf'].entries()) certs[n] = issued[i] as Cert;
  app = await startUpstream();
  const s = certs['server'] as Cert;
  p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:${app.port}
  tls: { cert: ${s.cert}, key: ${s.key}, ca: ${pki.ca}, requireClientCert: true }
  authorization:
    default: deny
    rules:
      - action: deny
        principals: ["${NS}/web"]
        paths: ["/api/admin", "/api/admin/*"]
      - action: allow
        principals: ["${NS}/web"]
        paths: ["/api", "/api/*"]
        methods: [GET, HEAD]
      - action: allow
        principals: ["*"]
        paths: ["/public/*"]
`);
});

after(async () => {
  await p.close();
  await app.close();
});

describe('inbound mTLS handshake', () => {
  test('a client certificate from the mesh CA is accepted and its URI SAN is the principal', async () => {
    const r = await call(p.inbound, '/api/items', certs['web'] as Cert);
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/api/items');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
  });

  const refusals: [string, string | null, string][] = [
    ['no client certificate', null, 'no_client_cert'],
    ['a certificate from another CA', 'foreign', 'bad_certificate'],
    ['a leaf with two URI SANs', 'twouris', 'multiple_uri_sans'],
    ['a CA certificate used as a leaf', 'caleaf', 'ca_leaf'],
  ];
  for (const [name, who, reason] of refusals) {
    test(`${name} fails the handshake (reason ${reason}), nothing reaches the app`, async () => {
      const before = app.requests.length;
      const counted = await metric(p.admin, new RegExp(`^outrigger_tls_handshake_errors_total\\{reason="${reason}"\\}`));
      for (let i = 0; i < 2; i++) {
        await assert.rejects(call(p.inbound, '/public/x', who === null ? null : (certs[who] as Cert)));
      }
      assert.equal(app.requests.length, before);
      assert.equal(
        await metric(p.admin, new RegExp(`^outrigger_tls_handshake_errors_total\\{reason="${reason}"\\}`)),
        counted + 2,
        JSON.stringify(p.logs.filter((l) => l['level'] === 'warn')),
      );
      // two failures, one warning: logged once per reason per minute
      const warns = p.logs.filter((l) => l['reason'] === reason && l['level'] === 'warn');
      assert.equal(warns.length, 1, JSON.stringify(warns));
    });
  }

  test('plaintext HTTP on the TLS port gets no HTTP answer (no plaintext fallback)', async () => {
    const before = app.requests.length;
    const s = net.connect(p.inbound, '127.0.0.1');
    let data = '';
    s.on('data', (c: Buffer) => (data += c.toString('latin1')));
    s.on('error', () => undefined);
    s.write('GET /public/x HTTP/1.1\r\nHost: app\r\n\r\n');
    await once(s, 'close');
    assert.doesNotMatch(data, /^HTTP\/1\.1 /);
    assert.equal(app.requests.length, before);
    assert.ok((await metric(p.admin, /^outrigger_tls_handshake_errors_total\{reason="protocol"\}/)) >= 1);
  });

  test('TLS below 1.2 is refused', async () => {
    const s = tls.connect({ host: '127.0.0.1', port: p.inbound, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', rejectUnauthorized: false });
    const [err] = (await once(s, 'error').catch((e: unknown) => [e])) as [Error];
    assert.ok(err instanceof Error);
    s.destroy();
  });
});

describe('inbound authorization (default deny, first match wins)', () => {
  const web = (): Cert => certs['web'] as Cert;

  test('allowed path and method reach the app', async () => {
    const r = await call(p.inbound, '/api/items?q=1', web());
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { url: string }).url, '/api/items?q=1');
  });

  test('a method outside the rule falls to default deny: 403 forbidden, nothing forwarded', async () => {
    const before = app.requests.length;
    const r = await call(p.inbound, '/api/items', web(), 'POST');
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-outrigger-error'], 'forbidden');
    assert.deepEqual(JSON.parse(r.body), { error: 'forbidden' });
    assert.equal(app.requests.length, before);
  });

  test('the earlier deny rule wins over the later allow', async () => {
    for (const path of ['/api/admin', '/api/admin/users']) {
      assert.equal((await call(p.inbound, path, web())).status, 403, path);
    }
  });

  for (const path of [
    '/%61pi/admin',
    '//api/admin',
    '/x/../api/admin',
    '/api/./admin',
    '/api//admin/',
    '/api/%61dmin/users',
    '/%2e%2e/api/admin',
    '/api/x/%2E%2E/admin',
  ]) {
    test(`normalisation: ${path} cannot slip past the deny rule on /api/admin`, async () => {
      const before = app.requests.length;
      const r = await call(p.inbound, path, web());
      assert.equal(r.status, 403, path);
      assert.equal(app.requests.length, before);
    });
  }

  test('encoded slashes and backslashes are refused outright (400), never forwarded', async () => {
    const before = app.requests.length;
    for (const path of ['/api%2Fadmin', '/api%2fadmin', '/api%5Cadmin']) {
      assert.equal((await call(p.inbound, path, web())).status, 400, path);
    }
    assert.equal(app.requests.length, before);
  });

  const forwarded: [string, string][] = [
    ['/%61pi/items', '/api/items'],
    ['//api//items', '/api/items'],
    ['/x/../api/items?z=%2F', '/api/items?z=%2F'],
    ['/api/./v1/../items', '/api/items'],
  ];
  for (const [sent, seen] of forwarded) {
    test(`the normalised path is what the app receives: ${sent} → ${seen}`, async () => {
      const r = await call(p.inbound, sent, web());
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as { url: string }).url, seen);
    });
  }

  test('principals: another identity is refused where web is allowed, "*" admits any authenticated caller', async () => {
    const ops = certs['ops'] as Cert;
    assert.equal((await call(p.inbound, '/api/items', ops)).status, 403);
    assert.equal((await call(p.inbound, '/public/a', ops)).status, 200);
    assert.equal((await call(p.inbound, '/public/a', certs['web'] as Cert)).status, 200);
  });

  test('an Upgrade (WebSocket) request is authorized like any other, after normalisation', async () => {
    const before = app.requests.length;
    const web = certs['web'] as Cert;
    for (const path of ['/api/admin/ws', '/%61pi/admin/ws', '//api/admin/ws']) {
      const s = tls.connect({
        host: '127.0.0.1',
        port: p.inbound,
        ca: readFileSync(pki.ca),
        cert: readFileSync(web.cert),
        key: readFileSync(web.key),
        checkServerIdentity: () => undefined,
      });
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString('latin1')));
      s.on('error', () => undefined);
      await once(s, 'secureConnect');
      s.write(
        `GET ${path} HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      );
      await once(s, 'close');
      assert.match(data, /^HTTP\/1\.1 403 /, path);
      assert.match(data, /x-outrigger-error: forbidden/i);
    }
    assert.equal(app.requests.length, before);
  });

  test('a verified certificate without URI SAN is not authenticated for "*"', async () => {
    assert.equal((await call(p.inbound, '/public/a', certs['nouri'] as Cert)).status, 403);
  });
});

describe('inbound mTLS with optional client certificates (requireClientCert: false)', () => {
  let q: TestProxy;
  before(async () => {
    const s = certs['server'] as Cert;
    q = await startProxy(`
admin: { listen: 127.0.0.1:0 }
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:${app.port}
  tls: { cert: ${s.cert}, key: ${s.key}, ca: ${pki.ca}, requireClientCert: false }
  authorization:
    default: deny
    rules:
      - { action: allow, principals: ["*"], paths: ["/private/*"] }
      - { action: allow, paths: ["/open/*"] }
`);
  });
  after(async () => {
    await q.close();
  });

  test('no certificate: served as unauthenticated (open paths only)', async () => {
    assert.equal((await call(q.inbound, '/open/a', null)).status, 200);
    assert.equal((await call(q.inbound, '/private/a', null)).status, 403);
  });

  test('a presented certificate that does not verify is refused, not downgraded to anonymous', async () => {
    const before = app.requests.length;
    await assert.rejects(call(q.inbound, '/open/a', certs['foreign'] as Cert));
    assert.equal(app.requests.length, before);
    assert.equal(await metric(q.admin, /^outrigger_tls_handshake_errors_total\{reason="untrusted_client_cert"\}/), 1);
  });

  test('a verified certificate authenticates', async () => {
    assert.equal((await call(q.inbound, '/private/a', certs['ops'] as Cert)).status, 200);
  });
});

describe('outbound mTLS to a cluster', () => {
  let upstream: https.Server;
  let upstreamPort = 0;
  let q: TestProxy;
  const seen: string[] = [];

  before(async () => {
    const srv = await pki.issue('svc', { uris: [`${NS}/svc`], dns: ['svc.shop.svc'] });
    const side = certs['web'] as Cert;
    upstream = https.createServer(
      { cert: readFileSync(srv.cert), key: readFileSync(srv.key), ca: readFileSync(pki.ca), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const peer = (req.socket as tls.TLSSocket).getPeerCertificate();
        seen.push(`${req.url ?? ''} ${peer.subjectaltname ?? ''}`);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('secure');
      },
    );
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    upstreamPort = (upstream.address() as net.AddressInfo).port;
    const tlsBlock = (principals: string, withCert = true): string =>
      `{ ca: ${pki.ca}${withCert ? `, cert: ${side.cert}, key: ${side.key}` : ''}, serverName: svc.shop.svc${principals} }`;
    q = await startProxy(`
admin: { listen: 127.0.0.1:0 }
outbound:
  listen: 127.0.0.1:0
  routes:
    - { name: good, match: { host: good }, cluster: good }
    - { name: wrong, match: { host: wrong }, cluster: wrong }
    - { name: anon, match: { host: anon }, cluster: anon }
    - { name: byname, match: { host: byname }, cluster: byname }
    - { name: badname, match: { host: badname }, cluster: badname }
clusters:
  good: { endpoints: ["127.0.0.1:${upstreamPort}"], tls: ${tlsBlock(`, principals: ["${NS}/svc"]`)} }
  wrong: { endpoints: ["127.0.0.1:${upstreamPort}"], tls: ${tlsBlock(`, principals: ["${NS}/other"]`)} }
  anon: { endpoints: ["127.0.0.1:${upstreamPort}"], tls: ${tlsBlock(`, principals: ["${NS}/svc"]`, false)} }
  byname: { endpoints: ["127.0.0.1:${upstreamPort}"], tls: ${tlsBlock('')} }
  badname: { endpoints: ["127.0.0.1:${upstreamPort}"], tls: { ca: ${pki.ca}, cert: ${side.cert}, key: ${side.key}, serverName: evil.example } }
`);
  });

  after(async () => {
    await q.close();
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  const plain = (host: string): Promise<{ status: number; error: string | undefined; body: string }> =>
    new Promise((resolve, reject) => {
      const s = net.connect(q.outbound, '127.0.0.1');
      let buf = '';
      s.on('data', (c: Buffer) => (buf += c.toString()));
      s.on('error', reject);
      s.on('close', () => {
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0);
        resolve({ status, error: /\r\nx-outrigger-error: ([a-z_]+)/i.exec(buf)?.[1], body: buf.slice(buf.indexOf('\r\n\r\n') + 4) });
      });
      // write, not end: a half-closed client counts as gone (499)
      s.write(`GET /hello HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });

  test('presents the sidecar certificate and accepts a server whose URI SAN is listed', async () => {
    const r = await plain('good');
    assert.equal(r.status, 200, JSON.stringify(r) + JSON.stringify(q.logs.slice(-3)));
    assert.match(r.body, /secure/);
    assert.ok(
      seen.some((s) => s === `/hello URI:${NS}/web`),
      seen.join('|'),
    );
  });

  test('a server whose principal is not listed is refused before any request is sent', async () => {
    const before = seen.length;
    const r = await plain('wrong');
    assert.equal(r.status, 502);
    assert.equal(r.error, 'upstream_connect_failure');
    assert.equal(seen.length, before);
  });

  test('without a client certificate the upstream refuses the handshake: 502', async () => {
    const before = seen.length;
    const r = await plain('anon');
    assert.equal(r.status, 502);
    assert.equal(seen.length, before);
  });

  test('without principals, serverName is verified against the certificate', async () => {
    assert.equal((await plain('byname')).status, 200);
    const before = seen.length;
    assert.equal((await plain('badname')).status, 502);
    assert.equal(seen.length, before);
  });
});
