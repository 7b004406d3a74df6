// The admin endpoints (docs/operations.md, "Admin API") on a real proxy: what each path answers,
// methods refused, and that /config never carries secret file contents.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { request, startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, tempDir, type TestProxy } from './helpers/proxy.js';
import { config, service } from './helpers/config.js';

let up: Upstream;
let p: TestProxy;
/** a private temp dir for the test PKI */
let pkiDir: string;

before(async () => {
  up = await startUpstream();
  pkiDir = tempDir();
  p = await startProxy(
    config(
      { inbound: up.port },
      service(
        'svc',
        up.port,
        { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, window: '10s', resetTimeout: '30s' } },
        { name: 'r' },
      ),
    ),
  );
});

after(async () => {
  await p.close();
  await up.close();
  fs.rmSync(pkiDir, { recursive: true, force: true });
});

test('/live and /ready answer 200 on a started proxy; HEAD works too', async () => {
  assert.equal((await request(p.admin, { path: '/live' })).status, 200);
  const ready = await request(p.admin, { path: '/ready' });
  assert.equal(ready.status, 200);
  assert.equal(ready.headers['cache-control'], 'no-store');
  const head = await request(p.admin, { method: 'HEAD', path: '/ready' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
});

test('/metrics is Prometheus text with the reload metrics', async () => {
  const r = await request(p.admin, { path: '/metrics' });
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const text = r.body.toString();
  assert.match(text, /^# TYPE outrigger_config_reloads_total counter$/m);
  assert.match(text, /^outrigger_config_reloads_total\{result="success"\} 1$/m);
  assert.match(text, /^outrigger_config_last_reload_successful 1$/m);
});

test('/config is the config in force as JSON; /clusters shows endpoints and breaker state', async () => {
  const cfg = JSON.parse((await request(p.admin, { path: '/config' })).body.toString()) as Record<string, unknown>;
  assert.ok('clusters' in cfg && 'outbound' in cfg && 'drain' in cfg);
  const cl = JSON.parse((await request(p.admin, { path: '/clusters' })).body.toString()) as {
    clusters: Record<string, { circuitBreaker: string; endpoints: { address: string; healthy: boolean }[] }>;
  };
  assert.equal(cl.clusters['svc']?.circuitBreaker, 'closed');
  assert.deepEqual(
    cl.clusters['svc']?.endpoints.map((e) => e.address),
    [`127.0.0.1:${up.port}`],
  );
  assert.ok(cl.clusters['app'], 'the inbound app is listed as a cluster');
});

test('/config after a reload naming TLS files shows their paths, never their contents', async () => {
  const { makePki } = await import('./helpers/certs.js');
  const pki = await makePki(pkiDir);
  const leaf = await pki.issue('client', { uris: ['spiffe://cluster.local/ns/t/sa/client'] });
  const keyText = fs.readFileSync(leaf.key, 'utf8');
  const yaml = fs.readFileSync(p.file, 'utf8');
  p.write(
    yaml.replace(
      'clusters:\n',
      `clusters:\n  tlsc: { endpoints: ["127.0.0.1:1"], tls: { ca: ${pki.ca}, cert: ${leaf.cert}, key: ${leaf.key} } }\n`,
    ),
  );
  assert.equal(await p.proxy.reload('test'), true);
  const text = (await request(p.admin, { path: '/config' })).body.toString();
  assert.ok(text.includes(JSON.stringify(leaf.key)), 'the key path is shown');
  assert.equal(text.includes('PRIVATE KEY'), false);
  assert.equal(text.includes(keyText.split('\n')[1]!), false);
  p.write(yaml);
  assert.equal(await p.proxy.reload('test'), true);
});

test('/config says when a reloaded admin.listen waits for a restart', async () => {
  const yaml = fs.readFileSync(p.file, 'utf8');
  const before = JSON.parse((await request(p.admin, { path: '/config' })).body.toString()) as Record<string, unknown>;
  assert.equal('restartRequired' in before, false);
  p.write(yaml.replace(/admin: \{ listen: 127\.0\.0\.1:0 \}|admin:\n {2}listen: 127\.0\.0\.1:0/, 'admin: { listen: "127.0.0.1:15999" }'));
  assert.equal(await p.proxy.reload('test'), true);
  const after = JSON.parse((await request(p.admin, { path: '/config' })).body.toString()) as Record<string, any>;
  assert.deepEqual(after['admin'], { listen: '127.0.0.1:15999' });
  assert.deepEqual(after['restartRequired'], [
    { key: 'admin.listen', configured: '127.0.0.1:15999', running: '127.0.0.1:0', note: 'takes effect on restart' },
  ]);
  p.write(yaml);
  assert.equal(await p.proxy.reload('test'), true);
  assert.equal('restartRequired' in JSON.parse((await request(p.admin, { path: '/config' })).body.toString()), false);
});

test('unknown paths are 404; wrong methods are 405', async () => {
  assert.equal((await request(p.admin, { path: '/nope' })).status, 404);
  assert.equal((await request(p.admin, { method: 'POST', path: '/ready' })).status, 405);
  assert.equal((await request(p.admin, { method: 'GET', path: '/shutdown' })).status, 405);
  assert.equal(p.proxy.isDraining, false);
});
