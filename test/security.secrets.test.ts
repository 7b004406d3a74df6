// Secrets stay secret, through the real proxy: credentials sent in requests and responses
// (Authorization, Proxy-Authorization, Cookie, Set-Cookie) and TLS key material never appear in
// the captured log lines (debug level, so every log site is on) or in the admin /config output;
// the admin server binds to loopback unless told otherwise.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { makePki } from './helpers/certs.js';
import { rawExchange, request, startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, tempDir, type TestProxy } from './helpers/proxy.js';
import { parseConfig } from '../src/config/load.js';

const SECRETS = {
  authorization: 'Bearer sekrit-token-AAAA1111',
  'proxy-authorization': 'Basic cHJveHktc2Vrcml0LUJCQkIyMjIy',
  cookie: 'session=sekrit-cookie-CCCC3333',
  setCookie: 'sid=sekrit-setcookie-DDDD4444; HttpOnly',
};
const NEEDLES = ['sekrit-token-AAAA1111', 'cHJveHktc2Vrcml0LUJCQkIyMjIy', 'sekrit-cookie-CCCC3333', 'sekrit-setcookie-DDDD4444'];

let app: Upstream;
let p: TestProxy;
let keyBodies: string[] = [];

before(async () => {
  const dir = tempDir('outrigger-secrets-');
  const pki = await makePki(dir);
  const server = await pki.issue('server', { uris: ['spiffe://cluster.local/ns/shop/sa/app'], ips: ['127.0.0.1'] });
  const side = await pki.issue('side', { uris: ['spiffe://cluster.local/ns/shop/sa/web'] });
  // the base64 lines of each private key: none may show up anywhere
  keyBodies = [server.key, side.key, pki.caKey].flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l.length > 20 && !l.startsWith('-----')),
  );
  app = await startUpstream((req, res) => {
    res.writeHead(200, { 'set-cookie': SECRETS.setCookie, 'content-type': 'text/plain' });
    res.end(`seen:${String(req.headers.authorization)}`);
  });
  p = await startProxy(
    `
admin: { listen: 127.0.0.1:0 }
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:${app.port}
  tls: { cert: ${server.cert}, key: ${server.key}, ca: ${pki.ca}, requireClientCert: false }
outbound:
  listen: 127.0.0.1:0
  routes:
    - { name: app, match: { host: app }, cluster: plain }
    - { name: mtls, match: { host: mtls }, cluster: mtls }
clusters:
  plain: { endpoints: ["127.0.0.1:${app.port}"] }
  mtls: { endpoints: ["127.0.0.1:${app.port}"], tls: { ca: ${pki.ca}, cert: ${side.cert}, key: ${side.key}, serverName: app } }
`,
    { logLevel: 'debug' },
  );
});

after(async () => {
  await p.close();
  await app.close();
});

const creds = { authorization: SECRETS.authorization, 'proxy-authorization': SECRETS['proxy-authorization'], cookie: SECRETS.cookie };

function assertClean(text: string, where: string): void {
  for (const n of NEEDLES) assert.equal(text.includes(n), false, `${where} leaks ${n}`);
  for (const k of keyBodies) assert.equal(text.includes(k), false, `${where} leaks private key material`);
  assert.doesNotMatch(text, /PRIVATE KEY/, `${where} holds a PEM key`);
}

test('credentials in requests and responses never reach the log', async () => {
  // forwarded: the app gets Authorization (end-to-end), the client gets Set-Cookie
  const ok = await request(p.outbound, { path: '/x', headers: { host: 'app', ...creds } });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.toString(), `seen:${SECRETS.authorization}`);
  assert.equal(ok.headers['set-cookie']?.[0], SECRETS.setCookie);
  // refused at the edge, no route, upstream TLS failure (the app speaks plaintext): every
  // error path logs something at debug level
  await rawExchange(
    p.outbound,
    `GET /x?access_token=${NEEDLES[0]} HTTP/1.1\r\nHost: app\r\nAuthorization: ${SECRETS.authorization}\r\nCookie: ${SECRETS.cookie}\r\nContent_Length: 1\r\n\r\n`,
    2000,
  );
  await rawExchange(
    p.outbound,
    `GET /x HTTP/1.1\r\nHost: app\r\nHost: b\r\nProxy-Authorization: ${SECRETS['proxy-authorization']}\r\n\r\n`,
    2000,
  );
  // passthrough to a name that does not resolve (.invalid, RFC 6761)
  assert.ok((await request(p.outbound, { path: '/x', headers: { host: 'nowhere.invalid', ...creds } })).status >= 400);
  assert.equal((await request(p.outbound, { path: '/x', headers: { host: 'mtls', ...creds } })).status, 502);
  // a reload failure names files, never their contents
  const cfg = readFileSync(p.file, 'utf8');
  p.write(cfg.replace(/cert: ([^,]*side\.crt)/, 'cert: $1.missing'));
  assert.equal(await p.proxy.reload('test'), false);
  p.write(cfg);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(p.logs.length > 5);
  assert.ok(p.access().length >= 3);
  assertClean(JSON.stringify(p.logs), 'the log');
});

test('/config shows file paths, never key material or credentials', async () => {
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: p.admin, path: '/config' }, (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c.toString()));
        res.on('end', () => resolve(b));
      })
      .on('error', reject);
  });
  const cfg = JSON.parse(body) as { inbound: { tls: { key: string } }; clusters: Record<string, { tls?: { key: string } }> };
  assert.match(cfg.inbound.tls.key, /server\.key$/);
  assert.match(cfg.clusters['mtls']?.tls?.key ?? '', /side\.key$/);
  assertClean(body, '/config');
});

test('the admin server binds to loopback by default', () => {
  const r = parseConfig('inbound: { app: 127.0.0.1:8080 }\n', 'x.yaml');
  assert.ok(r.ok);
  if (r.ok) assert.deepEqual({ ...r.config.admin.listen }, { host: '127.0.0.1', port: 15000 });
});
