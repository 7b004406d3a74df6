// mTLS with SPIFFE identities over real sockets: the inbound options refuse absent, foreign-CA,
// multi-URI and CA-leaf client certificates and extract the principal of a good one; the
// outbound connect options accept only listed server principals (through a real undici Pool).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { makePki, type Pki } from './helpers/certs.js';
import {
  readTlsMaterial,
  principalOf,
  uriSans,
  inboundServerOptions,
  verifyClientSocket,
  clusterConnectOptions,
  HandshakeFailureLog,
  handshakeFailureReason,
  TlsMaterialError,
  type TlsMaterial,
} from '../src/security/tls.js';

const NS = 'spiffe://cluster.local/ns/shop/sa/';
const WEB = NS + 'web';
const BACKEND = NS + 'backend';

describe('uriSans / principalOf (unit)', () => {
  test('parses Node subjectaltname strings, honouring quoted values', () => {
    assert.deepEqual(uriSans('DNS:a.svc, URI:spiffe://td/ns/x/sa/y, IP Address:10.0.0.1'), ['spiffe://td/ns/x/sa/y']);
    assert.deepEqual(uriSans('URI:"spiffe://td/a, URI:spiffe://evil", DNS:x'), ['spiffe://td/a, URI:spiffe://evil']);
    assert.deepEqual(uriSans('URI:spiffe://a, URI:spiffe://b'), ['spiffe://a', 'spiffe://b']);
    assert.deepEqual(uriSans('DNS:"a\\"b", URI:u'), ['u']);
    assert.deepEqual(uriSans(undefined), []);
    assert.deepEqual(uriSans(''), []);
  });
  test('principalOf refuses CA leaves and multiple URI SANs', () => {
    const c = (subjectaltname: string | undefined, ca = false) => ({ subjectaltname, ca }) as unknown as tls.PeerCertificate;
    assert.deepEqual(principalOf(c('URI:spiffe://a')), { ok: true, principal: 'spiffe://a' });
    assert.deepEqual(principalOf(c('URI:spiffe://a', true)), { ok: false, reason: 'ca_leaf' });
    assert.deepEqual(principalOf(c('URI:spiffe://a, URI:spiffe://b')), { ok: false, reason: 'multiple_uri_sans' });
    assert.deepEqual(principalOf(c('DNS:a')), { ok: false, reason: 'no_uri_san' });
    assert.deepEqual(principalOf(c(undefined)), { ok: false, reason: 'no_uri_san' });
    // a quoted value with a comma is one SAN, not two
    assert.deepEqual(principalOf(c('URI:"spiffe://a,b"')), { ok: true, principal: 'spiffe://a,b' });
  });
});

describe('HandshakeFailureLog', () => {
  test('logs once per reason per interval, carrying the suppressed count', () => {
    let now = 1_000_000;
    const logged: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = new HandshakeFailureLog(
      (obj, msg) => logged.push({ obj: obj as Record<string, unknown>, msg }),
      () => now,
    );
    log.record('ECONNRESET');
    log.record('ECONNRESET');
    log.record('alert_bad_certificate');
    now += 59_999;
    log.record('ECONNRESET');
    assert.equal(logged.length, 2);
    now += 1;
    log.record('ECONNRESET');
    assert.equal(logged.length, 3);
    assert.deepEqual(logged[2]?.obj, { reason: 'ECONNRESET', count: 3, total: 4 });
    assert.deepEqual(log.counts(), { ECONNRESET: 4, alert_bad_certificate: 1 });
    log.record('protocol', '10.0.0.1:5555');
    assert.deepEqual(logged[3]?.obj, { reason: 'protocol', count: 1, total: 1, remote: '10.0.0.1:5555' });
  });

  test('handshakeFailureReason: a bounded label whatever the error', () => {
    const e = (code: string, message = 'x') => Object.assign(new Error(message), { code });
    assert.equal(handshakeFailureReason(e('ECONNRESET')), 'reset');
    assert.equal(handshakeFailureReason(e('ERR_TLS_HANDSHAKE_TIMEOUT')), 'timeout');
    assert.equal(handshakeFailureReason(e('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE')), 'no_client_cert');
    assert.equal(handshakeFailureReason(e('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')), 'no_client_cert');
    assert.equal(handshakeFailureReason(e('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE')), 'bad_certificate');
    assert.equal(handshakeFailureReason(e('ERR_SSL_HTTP_REQUEST')), 'protocol');
    assert.equal(handshakeFailureReason(e('ERR_SSL_WRONG_VERSION_NUMBER')), 'protocol');
    assert.equal(handshakeFailureReason(e('ERR_SSL_SOMETHING_ELSE', "a scanner's bytes")), 'handshake');
    // a failed client certificate makes Node reset quietly; the socket still knows why
    assert.equal(handshakeFailureReason(e('ECONNRESET'), { authorizationError: new Error('expired') } as never), 'bad_certificate');
  });
});

let dir = '';
let pki: Pki;
const certs: Record<string, { cert: string; key: string }> = {};
let mesh: TlsMaterial;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'outrigger-sec-'));
  pki = await makePki(dir);
  const specs: [string, Parameters<Pki['issue']>[1]][] = [
    ['server', { uris: [NS + 'app'], dns: ['localhost'], ips: ['127.0.0.1'] }],
    ['web', { uris: [WEB] }],
    ['foreign', { uris: [WEB], signer: 'other' }],
    ['twouris', { uris: [WEB, NS + 'admin'] }],
    ['caleaf', { uris: [WEB], isCa: true }],
    ['nouri', { dns: ['web.shop.svc'] }],
    ['backend', { uris: [BACKEND], dns: ['backend.shop.svc'] }],
    ['evil', { uris: [NS + 'evil'], dns: ['backend.shop.svc'] }],
    ['foreignserver', { uris: [BACKEND], signer: 'other' }],
  ];
  await Promise.all(
    specs.map(async ([name, o]) => {
      certs[name] = await pki.issue(name, o);
    }),
  );
  mesh = await readTlsMaterial({ cert: certs['server']!.cert, key: certs['server']!.key, ca: pki.ca });
});
after(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('readTlsMaterial', () => {
  test('reads the named files and skips nulls', async () => {
    const m = await readTlsMaterial({ cert: certs['web']!.cert, key: null, ca: pki.ca });
    assert.ok(m.cert?.includes('BEGIN CERTIFICATE'));
    assert.equal(m.key, undefined);
    assert.ok(m.ca !== undefined);
  });
  test('errors name the role and path, never the contents', async () => {
    const missing = path.join(dir, 'nope.key');
    await assert.rejects(readTlsMaterial({ cert: certs['web']!.cert, key: missing, ca: null }), (e: unknown) => {
      assert.ok(e instanceof TlsMaterialError);
      assert.equal(e.which, 'key');
      assert.match(e.message, /key file .*nope\.key: ENOENT/);
      return true;
    });
    const junk = path.join(dir, 'junk.pem');
    await writeFile(junk, 'TOP-SECRET-BYTES not a pem');
    await assert.rejects(readTlsMaterial({ cert: null, key: null, ca: junk }), (e: unknown) => {
      assert.ok(e instanceof TlsMaterialError);
      assert.equal(e.which, 'ca');
      assert.ok(!e.message.includes('TOP-SECRET'), e.message);
      return true;
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Inbound

interface ClientOutcome {
  data: string;
  error: string | null;
}

function connectTls(port: number, opts: tls.ConnectionOptions): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | null = null;
    const s = tls.connect({ host: '127.0.0.1', port, ca: mesh.ca, ...opts });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    s.on('close', () => resolve({ data: Buffer.concat(chunks).toString(), error }));
  });
}

async function clientMaterial(name: string): Promise<{ cert: Buffer; key: Buffer }> {
  const m = await readTlsMaterial({ cert: certs[name]!.cert, key: certs[name]!.key, ca: null });
  return { cert: m.cert as Buffer, key: m.key as Buffer };
}

describe('inbound mTLS (tls.createServer with inboundServerOptions)', () => {
  let server: tls.Server;
  let port = 0;
  const handshakeFailures: string[] = [];

  before(async () => {
    const opts = inboundServerOptions({ cert: 'x', key: 'y', ca: 'z', requireClientCert: true }, mesh);
    server = tls.createServer(opts, (sock) => {
      const v = verifyClientSocket(sock);
      sock.on('error', () => {});
      if (v.ok) sock.end(`principal:${v.principal ?? 'null'}`);
      else sock.end(`refused:${v.reason}`);
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException) => handshakeFailures.push(err.code ?? err.message));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('options: TLS 1.2+, client cert requested and required', () => {
    const o = inboundServerOptions({ cert: 'x', key: 'y', ca: 'z', requireClientCert: true }, mesh);
    assert.equal(o.minVersion, 'TLSv1.2');
    assert.equal(o.requestCert, true);
    assert.equal(o.rejectUnauthorized, true);
    assert.throws(
      () =>
        inboundServerOptions(
          { cert: 'x', key: 'y', ca: null, requireClientCert: true },
          { cert: mesh.cert as Buffer, key: mesh.key as Buffer },
        ),
      /needs a ca/,
    );
  });

  test('good SPIFFE leaf → principal extracted', async () => {
    const r = await connectTls(port, await clientMaterial('web'));
    assert.equal(r.data, `principal:${WEB}`);
  });

  test('client without certificate is refused at the handshake', async () => {
    const before = handshakeFailures.length;
    const r = await connectTls(port, {});
    // (whether the client also sees an error depends on TLS 1.3 alert timing; the server side
    // and the absence of any application data are what matter)
    assert.equal(r.data, '');
    assert.ok(handshakeFailures.length > before, 'server saw a handshake failure');
  });

  test('certificate from another CA is refused at the handshake', async () => {
    const before = handshakeFailures.length;
    const r = await connectTls(port, await clientMaterial('foreign'));
    assert.equal(r.data, '');
    assert.ok(handshakeFailures.length > before, 'server saw a handshake failure');
  });

  test('leaf with two URI SANs is refused', async () => {
    const r = await connectTls(port, await clientMaterial('twouris'));
    assert.equal(r.data, 'refused:multiple_uri_sans');
  });

  test('CA certificate used as a leaf is refused', async () => {
    const r = await connectTls(port, await clientMaterial('caleaf'));
    // OpenSSL accepts a CA:TRUE end-entity cert; our check must refuse it.
    assert.equal(r.data, 'refused:ca_leaf');
  });

  test('verified leaf without URI SAN is authenticated without principal', async () => {
    const r = await connectTls(port, await clientMaterial('nouri'));
    assert.equal(r.data, 'principal:null');
  });

  test('TLS 1.1 clients are refused', async () => {
    const r = await connectTls(port, { ...(await clientMaterial('web')), maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
    assert.equal(r.data, '');
    assert.notEqual(r.error, null);
  });
});

describe('inbound with optional client certificates', () => {
  let server: tls.Server;
  let port = 0;
  before(async () => {
    const opts = inboundServerOptions({ cert: 'x', key: 'y', ca: 'z', requireClientCert: false }, mesh);
    assert.equal(opts.requestCert, true);
    assert.equal(opts.rejectUnauthorized, false);
    server = tls.createServer(opts, (sock) => {
      const v = verifyClientSocket(sock);
      sock.on('error', () => {});
      sock.end(v.ok ? `principal:${v.principal ?? 'null'}` : `refused:${v.reason.split(':')[0]}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('no certificate → unauthenticated (principal null)', async () => {
    assert.equal((await connectTls(port, {})).data, 'principal:null');
  });
  test('good certificate → principal', async () => {
    assert.equal((await connectTls(port, await clientMaterial('web'))).data, `principal:${WEB}`);
  });
  test('a presented but untrusted certificate is refused, not downgraded to anonymous', async () => {
    assert.equal((await connectTls(port, await clientMaterial('foreign'))).data, 'refused:untrusted_client_cert');
  });
});

describe('inbound over https with an undici client', () => {
  test('the request handler sees the principal of req.socket', async () => {
    const opts = inboundServerOptions({ cert: 'x', key: 'y', ca: 'z', requireClientCert: true }, mesh);
    const server = https.createServer(opts, (req, res) => {
      const v = verifyClientSocket(req.socket as tls.TLSSocket);
      assert.equal(verifyClientSocket(req.socket as tls.TLSSocket), v, 'one verdict per connection');
      res.end(v.ok ? String(v.principal) : `refused:${v.reason}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const pool = new Pool(`https://127.0.0.1:${port}`, { connect: { ca: mesh.ca as Buffer, ...(await clientMaterial('web')) } });
    try {
      const r = await pool.request({ method: 'GET', path: '/' });
      assert.equal(r.statusCode, 200);
      assert.equal(await r.body.text(), WEB);
    } finally {
      await pool.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Outbound

describe('outbound clusterConnectOptions through an undici Pool', () => {
  const servers: https.Server[] = [];
  const ports: Record<string, number> = {};

  before(async () => {
    for (const name of ['backend', 'evil', 'foreignserver']) {
      const m = await readTlsMaterial({ cert: certs[name]!.cert, key: certs[name]!.key, ca: pki.ca });
      // upstream requires the sidecar's client certificate (mTLS both ways)
      const s = https.createServer(
        { cert: m.cert as Buffer, key: m.key as Buffer, ca: m.ca as Buffer, requestCert: true, rejectUnauthorized: true },
        (req, res) => {
          const v = verifyClientSocket(req.socket as tls.TLSSocket);
          res.end(`${name}:${v.ok ? String(v.principal) : v.reason}`);
        },
      );
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      servers.push(s);
      ports[name] = (s.address() as AddressInfo).port;
    }
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  async function call(
    target: string,
    t: { serverName: string | null; principals: string[] | null },
  ): Promise<{ body: string } | { error: NodeJS.ErrnoException }> {
    const material = await readTlsMaterial({ cert: certs['web']!.cert, key: certs['web']!.key, ca: pki.ca });
    const pool = new Pool(`https://127.0.0.1:${ports[target]}`, {
      connect: clusterConnectOptions({ ca: 'x', cert: 'y', key: 'z', ...t }, material),
    });
    try {
      const r = await pool.request({ method: 'GET', path: '/' });
      return { body: await r.body.text() };
    } catch (error) {
      return { error: error as NodeJS.ErrnoException };
    } finally {
      await pool.destroy();
    }
  }

  test('options shape', () => {
    const o = clusterConnectOptions({ ca: 'x', cert: null, key: null, serverName: 'a.svc', principals: null }, { ca: mesh.ca as Buffer });
    assert.equal(o.rejectUnauthorized, true);
    assert.equal(o.servername, 'a.svc');
    assert.equal(o.minVersion, 'TLSv1.2');
    assert.equal(o.cert, undefined);
  });

  test('listed SPIFFE principal is accepted, and the upstream sees ours', async () => {
    const r = await call('backend', { serverName: 'backend.shop.svc', principals: [BACKEND] });
    assert.deepEqual(r, { body: `backend:${WEB}` });
  });

  test('principal check does not depend on the hostname (pod IP endpoints)', async () => {
    const r = await call('backend', { serverName: null, principals: [BACKEND] });
    assert.deepEqual(r, { body: `backend:${WEB}` });
  });

  test('an unlisted principal is refused even with a matching DNS name', async () => {
    const r = await call('evil', { serverName: 'backend.shop.svc', principals: [BACKEND] });
    assert.ok('error' in r, 'must fail');
    assert.equal(r.error.code, 'ERR_TLS_PEER_IDENTITY');
    assert.match(r.error.message, /evil/);
  });

  test('a server from another CA is refused', async () => {
    const r = await call('foreignserver', { serverName: null, principals: [BACKEND] });
    assert.ok('error' in r, 'must fail');
    assert.match(String(r.error.code), /UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
  });

  test('without principals, serverName is checked as a hostname', async () => {
    assert.deepEqual(await call('evil', { serverName: 'backend.shop.svc', principals: null }), { body: `evil:${WEB}` });
    const r = await call('backend', { serverName: 'other.shop.svc', principals: null });
    assert.ok('error' in r, 'must fail');
    assert.equal(r.error.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });
});
