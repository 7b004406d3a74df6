// The config loader: every fixture under test/fixtures/config (valid ones load, invalid ones give
// exactly the problems in NAME.expected, with FILE standing for the path), defaults, TLS path
// resolution, the bundled example, and the duration/address/render/diff helpers.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { FIXTURES, ROOT } from './helpers/paths.js';
import { formatProblem, loadConfigFile, parseConfig } from '../src/config/load.js';
import { formatDuration, parseDuration } from '../src/config/duration.js';
import { formatAddress, parseAddress } from '../src/config/address.js';
import { renderConfig } from '../src/config/render.js';
import { clusterChanged, listenerChanged } from '../src/config/diff.js';
import type { ClusterConfig, Config, LoadResult, RouteConfig } from '../src/config/types.js';

const VALID = path.join(FIXTURES, 'config', 'valid');
const INVALID = path.join(FIXTURES, 'config', 'invalid');

function ok(r: LoadResult): Extract<LoadResult, { ok: true }> {
  if (!r.ok) assert.fail(`expected a valid config, got:\n${r.problems.map(formatProblem).join('\n')}`);
  return r;
}

function config(text: string, file = '/etc/outrigger/outrigger.yaml'): Config {
  return ok(parseConfig(text, file)).config;
}

/** The problems of an invalid text, formatted, with the file shown as FILE. */
function problems(text: string): string[] {
  const r = parseConfig(text, '/x/c.yaml');
  assert.equal(r.ok, false, 'expected problems');
  if (r.ok) return [];
  return r.problems.map((p) => formatProblem({ ...p, file: 'FILE' }));
}

function isDeepFrozen(v: unknown, seen = new Set<unknown>()): boolean {
  if (v === null || typeof v !== 'object' || seen.has(v)) return true;
  seen.add(v);
  if (!Object.isFrozen(v)) return false;
  return Object.values(v).every((x) => isDeepFrozen(x, seen));
}

describe('invalid fixtures', async () => {
  const names = (await readdir(INVALID)).filter((f) => f.endsWith('.yaml')).sort();
  const expectedFiles = (await readdir(INVALID)).filter((f) => f.endsWith('.expected')).sort();

  test('every fixture has its .expected file and vice versa, and there are enough of them', () => {
    assert.deepEqual(
      names.map((n) => n.replace(/\.yaml$/, '')),
      expectedFiles.map((n) => n.replace(/\.expected$/, '')),
    );
    assert.ok(names.length >= 25, `only ${names.length} invalid fixtures`);
  });

  for (const name of names) {
    test(name, async () => {
      const file = path.join(INVALID, name);
      const expected = (await readFile(file.replace(/\.yaml$/, '.expected'), 'utf8')).trimEnd().split('\n');
      const r = await loadConfigFile(file);
      assert.equal(r.ok, false);
      if (r.ok) return;
      for (const p of r.problems) {
        assert.equal(p.file, file);
        assert.ok(p.line >= 1 && p.col >= 1);
        assert.ok(formatProblem(p).startsWith(`${file}:${p.line}:${p.col}: `));
      }
      assert.deepEqual(
        r.problems.map((p) => formatProblem(p).replace(file, 'FILE')),
        expected,
      );
      // Sorted by position.
      for (let i = 1; i < r.problems.length; i++) {
        const a = r.problems[i - 1]!;
        const b = r.problems[i]!;
        assert.ok(a.line < b.line || (a.line === b.line && a.col <= b.col), `${formatProblem(a)} before ${formatProblem(b)}`);
      }
    });
  }
});

describe('valid fixtures', async () => {
  const names = (await readdir(VALID)).filter((f) => f.endsWith('.yaml')).sort();

  for (const name of names) {
    test(`${name} loads, deep-frozen, with the hash of its bytes`, async () => {
      const file = path.join(VALID, name);
      const r = ok(await loadConfigFile(file));
      assert.ok(isDeepFrozen(r.config));
      assert.ok(Object.isFrozen(r.files));
      const bytes = await readFile(file);
      assert.equal(r.hash, createHash('sha256').update(bytes).digest('hex'));
      assert.equal(ok(parseConfig(bytes.toString('utf8'), file)).hash, r.hash);
    });
  }

  test('{}: every default, admin only', async () => {
    const r = ok(await loadConfigFile(path.join(VALID, 'defaults.yaml')));
    assert.deepEqual(r.config, {
      admin: { listen: { host: '127.0.0.1', port: 15000 } },
      inbound: null,
      outbound: null,
      clusters: {},
      resolver: { servers: null },
      drain: { delay: 5000, timeout: 20000 },
    });
    assert.deepEqual(r.files, []);
    assert.deepEqual(config('{}'), r.config);
    assert.equal(parseConfig('', 'f.yaml').ok, false, 'a file with no document is refused');
    assert.equal(parseConfig('# only a comment\n\n', 'f.yaml').ok, false);
    assert.deepEqual(config('---\n'), r.config);
    assert.deepEqual(config('~\n'), r.config);
  });

  test('minimal: outbound with every default', async () => {
    const r = ok(await loadConfigFile(path.join(VALID, 'minimal.yaml')));
    assert.deepEqual(r.config.outbound, {
      listen: { host: '127.0.0.1', port: 15001 },
      unknownHosts: 'passthrough',
      timeout: 15000,
      maxConcurrent: 10000,
      routes: [],
      limits: {
        maxConnections: 10000,
        headersTimeout: 10000,
        maxHeaderBytes: 16384,
        maxHeaders: 100,
        maxUrlLength: 8192,
        idleTimeout: 300000,
        keepAliveTimeout: 60000,
      },
    });
    assert.equal(r.config.inbound, null);
  });

  test('reference example: values as written, TLS paths resolved against the config directory', async () => {
    const r = ok(await loadConfigFile(path.join(VALID, 'contract.yaml')));
    const c = r.config;
    const tls = (f: string): string => path.join(VALID, 'tls', f);
    assert.deepEqual(c.inbound?.tls, { cert: tls('server.crt'), key: tls('server.key'), ca: tls('ca.crt'), requireClientCert: true });
    assert.deepEqual(r.files, [tls('server.crt'), tls('server.key'), tls('ca.crt'), tls('client.crt'), tls('client.key')]);
    assert.deepEqual(c.clusters['asset-mgr']?.tls, {
      ca: tls('ca.crt'),
      cert: tls('client.crt'),
      key: tls('client.key'),
      serverName: 'asset-mgr-ms-svc.shop.svc.cluster.local',
      principals: ['spiffe://cluster.local/ns/shop/sa/asset-mgr'],
    });
    const route = c.outbound?.routes[0];
    assert.equal(route?.name, 'assets');
    assert.deepEqual(route?.match, {
      ports: null,
      host: ['asset-mgr-ms-svc'],
      path: { prefix: '/assetmgrms' },
      methods: ['GET', 'POST'],
      headers: { 'x-canary': 'true' },
    });
    assert.deepEqual(route?.retries, {
      attempts: 2,
      perTryTimeout: 1000,
      on: ['connect-failure', 'reset', 502, 503, 504],
      backoff: { base: 25, max: 250 },
      nonIdempotent: false,
    });
    assert.deepEqual(route?.fault, { delay: { percent: 5, duration: 2000 }, abort: { percent: 1, status: 503 } });
    assert.deepEqual(c.clusters['asset-mgr-shadow']?.dns, { name: 'asset-mgr-ms-svc.shop.svc.cluster.local', port: 8080, refresh: 5000 });
    assert.deepEqual(c.resolver.servers, [{ host: '10.96.0.10', port: 53 }]);
    assert.deepEqual(Object.keys(c.clusters), ['asset-mgr', 'asset-mgr-shadow']);
  });

  test('every-key: the whole Config, pinning every normalization', async () => {
    const r = ok(await loadConfigFile(path.join(VALID, 'every-key.yaml')));
    const noOps = { set: {}, remove: [] };
    const expected: Config = {
      admin: { listen: { host: '::1', port: 15100 } },
      inbound: {
        listen: { host: '0.0.0.0', port: 0 },
        app: { host: 'localhost', port: 9090 },
        timeout: 90000,
        maxConcurrent: 50,
        rateLimit: { requestsPerSecond: 2.5, burst: 2.5 },
        tls: { cert: '/etc/outrigger/tls/cert.pem', key: '/etc/outrigger/tls/key.pem', ca: null, requireClientCert: false },
        authorization: {
          default: 'deny',
          ignoreCase: false,
          rules: [
            { action: 'deny', principals: null, paths: ['/admin', '/internal/*'], methods: null },
            { action: 'allow', principals: ['*'], paths: null, methods: ['GET', 'POST'] },
          ],
        },
        limits: {
          maxConnections: 100,
          headersTimeout: 5000,
          maxHeaderBytes: 8192,
          maxHeaders: 50,
          maxUrlLength: 2048,
          idleTimeout: 60000,
          keepAliveTimeout: 5000,
        },
      },
      outbound: {
        listen: { host: '127.0.0.1', port: 0 },
        unknownHosts: 'reject',
        timeout: 30000,
        maxConcurrent: 200,
        routes: [
          {
            name: 'api',
            match: {
              host: ['api.example.com', '*.api.example.com'],
              ports: null,
              path: { exact: '/v1/items' },
              methods: ['GET', 'DELETE'],
              headers: { 'x-tenant': 'acme', 'x-version': '1.10' },
            },
            rewrite: { prefix: '/items' },
            cluster: null,
            split: [
              { cluster: 'api-v1', weight: 3 },
              { cluster: 'api-v2', weight: 1 },
            ],
            timeout: 0,
            retries: {
              attempts: 10,
              perTryTimeout: 250,
              on: ['5xx', 'gateway-error', 429, 503],
              backoff: { base: 0, max: 1000 },
              nonIdempotent: true,
            },
            headers: {
              request: { set: { authorization: 'Bearer s3cret', 'x-env': 'staging' }, remove: ['x-debug'] },
              response: { set: { 'set-cookie': 'a=b' }, remove: ['server'] },
            },
            mirror: { cluster: 'shadow', percent: 100 },
            fault: { delay: { percent: 100, duration: 100 }, abort: { percent: 0.5, status: 429 } },
            rateLimit: { requestsPerSecond: 0.5, burst: 3 },
          },
          {
            name: 'regex',
            match: { host: null, ports: null, path: { regex: '^/users/[0-9]+$' }, methods: null, headers: null },
            rewrite: null,
            cluster: 'shadow',
            split: null,
            timeout: 30000,
            retries: {
              attempts: 2,
              perTryTimeout: 0,
              on: ['connect-failure', 'reset', 502, 503, 504],
              backoff: { base: 25, max: 250 },
              nonIdempotent: false,
            },
            headers: { request: noOps, response: noOps },
            mirror: null,
            fault: null,
            rateLimit: null,
          },
        ],
        limits: {
          maxConnections: 10,
          headersTimeout: 10000,
          maxHeaderBytes: 16384,
          maxHeaders: 100,
          maxUrlLength: 8192,
          idleTimeout: 300000,
          keepAliveTimeout: 60000,
        },
      },
      clusters: {
        'api-v1': {
          name: 'api-v1',
          endpoints: [
            { host: '10.0.0.1', port: 80 },
            { host: 'fd00::1', port: 80 },
            { host: 'api-v1.local', port: 8080 },
          ],
          dns: null,
          loadBalancer: 'least-request',
          hashOn: null,
          connectTimeout: 250,
          maxConnectionsPerEndpoint: 1,
          maxPending: 1,
          healthCheck: { path: '/healthz', interval: 5000, timeout: 1000, unhealthyThreshold: 3, healthyThreshold: 2 },
          outlierDetection: { consecutiveErrors: 1, ejectionTime: 1000, maxEjectionPercent: 100 },
          panicThreshold: 50,
          circuitBreaker: { errorThresholdPercentage: 0, volumeThreshold: 1, window: 1000, resetTimeout: 1000 },
          retryBudget: { ratio: 1, minPerSecond: 0 },
          tls: { ca: null, cert: null, key: null, serverName: null, principals: null },
        },
        'api-v2': {
          name: 'api-v2',
          endpoints: null,
          dns: { name: 'api-v2.shop.svc.cluster.local', port: 443, refresh: 1000 },
          loadBalancer: 'random',
          hashOn: null,
          connectTimeout: 1000,
          maxConnectionsPerEndpoint: 128,
          maxPending: 1024,
          healthCheck: { path: '/ready', interval: 2000, timeout: 500, unhealthyThreshold: 1, healthyThreshold: 1 },
          outlierDetection: null,
          panicThreshold: 50,
          circuitBreaker: null,
          retryBudget: { ratio: 0.2, minPerSecond: 10 },
          tls: {
            ca: path.join(FIXTURES, 'config', 'ca.pem'),
            cert: null,
            key: null,
            serverName: 'api-v2.shop.svc.cluster.local',
            principals: null,
          },
        },
        shadow: {
          name: 'shadow',
          endpoints: [{ host: '127.0.0.1', port: 9999 }],
          dns: null,
          loadBalancer: 'ring-hash',
          hashOn: null,
          connectTimeout: 1000,
          maxConnectionsPerEndpoint: 128,
          maxPending: 1024,
          healthCheck: null,
          outlierDetection: null,
          panicThreshold: 50,
          circuitBreaker: null,
          retryBudget: { ratio: 0.2, minPerSecond: 10 },
          tls: null,
        },
      },
      resolver: {
        servers: [
          { host: '10.96.0.10', port: 53 },
          { host: '10.96.0.11', port: 5353 },
          { host: '::1', port: 53 },
          { host: 'fd00::53', port: 53 },
        ],
      },
      drain: { delay: 0, timeout: 3600000 },
    };
    assert.deepEqual(r.config, expected);
    assert.deepEqual(r.files, ['/etc/outrigger/tls/cert.pem', '/etc/outrigger/tls/key.pem', path.join(FIXTURES, 'config', 'ca.pem')]);
  });

  test('the bundled config/outrigger.yaml is valid and matches the documented example', async () => {
    const r = ok(await loadConfigFile(path.join(ROOT, 'config', 'outrigger.yaml')));
    const c = r.config;
    assert.deepEqual(c.admin.listen, { host: '127.0.0.1', port: 15000 });
    assert.deepEqual(c.inbound?.listen, { host: '127.0.0.1', port: 15006 });
    assert.deepEqual(c.inbound?.app, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(c.outbound?.listen, { host: '127.0.0.1', port: 15001 });
    assert.equal(c.outbound?.unknownHosts, 'passthrough');
    const route = c.outbound?.routes[0];
    assert.deepEqual(route?.match.host, ['asset-mgr-ms-svc']);
    assert.deepEqual(route?.match.path, { prefix: '/assetmgrms' });
    assert.deepEqual(route?.rewrite, { prefix: '/' });
    assert.equal(route?.cluster, 'asset-mgr');
    assert.deepEqual(c.clusters['asset-mgr']?.endpoints, [{ host: '127.0.0.1', port: 8081 }]);
  });
});

describe('loading', () => {
  test('a missing file is one problem at 1:1, never a throw', async () => {
    const file = path.join(os.tmpdir(), `outrigger-missing-${process.pid}.yaml`);
    const r = await loadConfigFile(file);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.problems.length, 1);
    const p = r.problems[0]!;
    assert.equal(p.file, file);
    assert.equal(p.line, 1);
    assert.equal(p.col, 1);
    assert.match(p.message, /^cannot read config: ENOENT/);
    assert.equal(formatProblem(p), `${file}:1:1: ${p.message}`);
  });

  test('a directory is one problem at 1:1', async () => {
    const r = await loadConfigFile(os.tmpdir());
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.problems[0]!.message, /^cannot read config: EISDIR/);
  });

  test('relative TLS paths resolve against the directory of the file as given', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'outrigger-config-'));
    try {
      const file = path.join(dir, 'o.yaml');
      await writeFile(
        file,
        'inbound:\n  app: 127.0.0.1:1\n  tls: { cert: certs/a.pem, key: /abs/k.pem, ca: ../ca.pem }\n' +
          'clusters:\n  c:\n    endpoints: ["127.0.0.1:2"]\n    tls: { ca: certs/a.pem }\n',
      );
      const r = ok(await loadConfigFile(file));
      assert.deepEqual(r.files, [path.join(dir, 'certs/a.pem'), '/abs/k.pem', path.join(path.dirname(dir), 'ca.pem')]);
      assert.equal(r.config.inbound?.tls?.cert, path.join(dir, 'certs/a.pem'));
      assert.equal(r.config.clusters['c']?.tls?.ca, path.join(dir, 'certs/a.pem'));
      // A relative config path resolves against the working directory.
      const rel = ok(parseConfig('inbound: { app: "127.0.0.1:1", tls: { cert: a, key: b, requireClientCert: false } }', 'sub/o.yaml'));
      assert.deepEqual(rel.files, [path.resolve('sub/a'), path.resolve('sub/b')]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('parseConfig hashes the text (sha256 hex)', () => {
    const text = 'outbound: {}\n';
    assert.equal(ok(parseConfig(text, 'f')).hash, createHash('sha256').update(text).digest('hex'));
    assert.notEqual(ok(parseConfig(text, 'f')).hash, ok(parseConfig(`${text}# changed\n`, 'f')).hash);
  });

  test('problems use the file name exactly as given', () => {
    const r = parseConfig('bogus: 1\n', 'relative/dir/x.yaml');
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(formatProblem(r.problems[0]!), 'relative/dir/x.yaml:1:1: unknown key "bogus" at top level');
  });

  test('YAML errors carry the parser position and suppress schema noise', () => {
    assert.deepEqual(problems('outbound:\n  timeout: [1\nbogus: 1\n'), [
      'FILE:3:1: flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    assert.deepEqual(problems('a: "unterminated\n'), ['FILE:2:1: missing closing "quote']);
  });

  test('a trailing or leading empty document is not a second document', () => {
    config('outbound: {}\n---\n');
    config('---\noutbound: {}\n');
    assert.deepEqual(problems('outbound: {}\n---\nadmin: {}\n---\ndrain: {}\n'), ['FILE:2:1: expected one YAML document, found 3']);
  });

  test('aliases are followed; billion-laughs style expansion is bounded', () => {
    const c = config('clusters:\n  a: &c { endpoints: ["10.0.0.1:80"] }\n  b: *c\n');
    assert.deepEqual(c.clusters['b']?.endpoints, [{ host: '10.0.0.1', port: 80 }]);
    // Every use of an alias costs a walk of what it names; the number of uses is capped.
    let text = 'outbound:\n  routes:\n    - &r { name: r, cluster: c }\n';
    for (let i = 0; i < 120; i++) text += '    - *r\n';
    text += 'clusters: { c: { endpoints: ["a:1"] } }\n';
    const r = parseConfig(text, 'f');
    assert.equal(r.ok, false);
    if (!r.ok) assert.ok(r.problems.some((p) => p.message === 'too many aliases (at most 100)'));
  });
});

describe('defaults and normalization', () => {
  const route = (yaml: string): RouteConfig => {
    const c = config(`outbound:\n  routes:\n    - name: r\n      cluster: c\n${yaml}clusters:\n  c: { endpoints: ["10.0.0.1:80"] }\n`);
    return c.outbound!.routes[0]!;
  };

  test('a route without a timeout takes outbound.timeout; 0 means none', () => {
    assert.equal(route('').timeout, 15000);
    const c = config(
      'outbound:\n  timeout: 2s\n  routes: [{ name: r, cluster: c }, { name: s, cluster: c, timeout: 0 }]\nclusters: { c: { endpoints: ["a:1"] } }\n',
    );
    assert.equal(c.outbound?.routes[0]?.timeout, 2000);
    assert.equal(c.outbound?.routes[1]?.timeout, 0);
  });

  test('absent optional blocks are null; a block written empty gets its defaults', () => {
    const r = route('');
    assert.equal(r.retries, null);
    assert.equal(r.mirror, null);
    assert.equal(r.fault, null);
    assert.equal(r.rateLimit, null);
    assert.equal(r.rewrite, null);
    assert.deepEqual(r.match, { host: null, ports: null, path: null, methods: null, headers: null });
    assert.deepEqual(r.headers, { request: { set: {}, remove: [] }, response: { set: {}, remove: [] } });
    assert.deepEqual(route('      retries:\n').retries, {
      attempts: 2,
      perTryTimeout: 0,
      on: ['connect-failure', 'reset', 502, 503, 504],
      backoff: { base: 25, max: 250 },
      nonIdempotent: false,
    });
    const c = config(
      'outbound:\nclusters:\n  c:\n    endpoints: ["a:1"]\n    healthCheck:\n    outlierDetection: {}\n    circuitBreaker: {}\n',
    );
    assert.notEqual(c.outbound, null);
    const cl = c.clusters['c']!;
    assert.deepEqual(cl.healthCheck, { path: '/healthz', interval: 5000, timeout: 1000, unhealthyThreshold: 3, healthyThreshold: 2 });
    assert.deepEqual(cl.outlierDetection, { consecutiveErrors: 5, ejectionTime: 30000, maxEjectionPercent: 50 });
    assert.deepEqual(cl.circuitBreaker, { errorThresholdPercentage: 50, volumeThreshold: 20, window: 10000, resetTimeout: 30000 });
    assert.deepEqual(cl.retryBudget, { ratio: 0.2, minPerSecond: 10 });
    assert.equal(cl.loadBalancer, 'round-robin');
    assert.equal(cl.connectTimeout, 1000);
    assert.equal(cl.maxConnectionsPerEndpoint, 128);
    assert.equal(cl.maxPending, 1024);
    assert.equal(cl.tls, null);
  });

  test('inbound defaults; requireClientCert defaults to true', () => {
    const c = config('inbound:\n  app: 127.0.0.1:8080\n  tls: { cert: c, key: k, ca: ca }\n', '/cfg/o.yaml');
    assert.deepEqual(c.inbound?.listen, { host: '0.0.0.0', port: 15006 });
    assert.equal(c.inbound?.timeout, 15000);
    assert.equal(c.inbound?.maxConcurrent, 10000);
    assert.equal(c.inbound?.rateLimit, null);
    assert.equal(c.inbound?.authorization, null);
    assert.deepEqual(c.inbound?.tls, { cert: '/cfg/c', key: '/cfg/k', ca: '/cfg/ca', requireClientCert: true });
    assert.deepEqual(config('inbound: { app: "a:1", authorization: {} }').inbound?.authorization, {
      default: 'allow',
      ignoreCase: false,
      rules: [],
    });
  });

  test('rate limit burst defaults to max(1, requestsPerSecond)', () => {
    assert.deepEqual(route('      rateLimit: { requestsPerSecond: 100 }\n').rateLimit, { requestsPerSecond: 100, burst: 100 });
    assert.deepEqual(route('      rateLimit: { requestsPerSecond: 0.2 }\n').rateLimit, { requestsPerSecond: 0.2, burst: 1 });
  });

  test('fault and mirror percents default to 100', () => {
    const r = route('      fault: { delay: { duration: 1s }, abort: { status: 503 } }\n      mirror: { cluster: c }\n');
    assert.deepEqual(r.fault, { delay: { percent: 100, duration: 1000 }, abort: { percent: 100, status: 503 } });
    assert.deepEqual(r.mirror, { cluster: 'c', percent: 100 });
    assert.deepEqual(route('      fault: {}\n').fault, { delay: null, abort: null });
  });

  test('hosts lower-cased, methods upper-cased, header names lower-cased, values as written', () => {
    const r = route(
      '      match: { host: Example.COM, methods: [get], headers: { X-A: 1.10, X-B: true, X-C: "" } }\n' +
        '      headers: { request: { set: { X-Env: 0x1F }, remove: [X-Debug] } }\n',
    );
    assert.deepEqual(r.match.host, ['example.com']);
    assert.deepEqual(r.match.methods, ['GET']);
    assert.deepEqual(r.match.headers, { 'x-a': '1.10', 'x-b': 'true', 'x-c': '' });
    assert.deepEqual(r.headers.request, { set: { 'x-env': '0x1F' }, remove: ['x-debug'] });
  });

  test('retry conditions: names, numbers and numeric strings from 400 to 599', () => {
    assert.deepEqual(route('      retries: { on: [reset, 429, "503", 599, 400] }\n').retries?.on, ['reset', 429, 503, 599, 400]);
    assert.deepEqual(route('      retries: { on: [] }\n').retries?.on, []);
  });

  test('an empty endpoint list item and a null list are reported, not skipped', () => {
    assert.deepEqual(problems('clusters:\n  c:\n    endpoints:\n      -\n'), [
      'FILE:4:8: clusters.c.endpoints[0]: expected an address (host:port), got nothing',
    ]);
  });

  test('odd names stay own properties (no prototype pollution)', () => {
    const c = config(
      'outbound:\n  routes: [{ name: r, cluster: __proto__, match: { headers: { __proto__: x } } }]\nclusters:\n  __proto__: { endpoints: ["a:1"] }\n  constructor: { endpoints: ["a:2"] }\n',
    );
    assert.ok(Object.hasOwn(c.clusters, '__proto__'));
    assert.equal(Object.getPrototypeOf(c.clusters), Object.prototype);
    assert.deepEqual(Object.keys(c.clusters), ['__proto__', 'constructor']);
    assert.ok(Object.hasOwn(c.outbound!.routes[0]!.match.headers!, '__proto__'));
    assert.deepEqual(problems('outbound:\n  routes: [{ name: r, cluster: toString }]\n'), [
      'FILE:2:32: outbound.routes[0].cluster: unknown cluster "toString"',
    ]);
  });

  test('listeners: port 0 never conflicts; 0.0.0.0 takes the port on IPv4 addresses, :: on all', () => {
    config('admin: { listen: "127.0.0.1:0" }\ninbound: { listen: "127.0.0.1:0", app: "a:1" }\noutbound: { listen: "127.0.0.1:0" }\n');
    config('admin: { listen: "127.0.0.1:9000" }\noutbound: { listen: "127.0.0.2:9000" }\n');
    config('admin: { listen: "0.0.0.0:9000" }\noutbound: { listen: "[::1]:9000" }\n');
    assert.deepEqual(problems('admin: { listen: "[::]:9000" }\noutbound: { listen: "127.0.0.1:9000" }\n'), [
      'FILE:2:21: outbound.listen: port 9000 is already used by admin.listen ([::]:9000)',
    ]);
    // Reported at the listener written later in the file, whatever the section order.
    assert.deepEqual(problems('outbound: { listen: "127.0.0.1:9000" }\nadmin: { listen: "127.0.0.1:9000" }\n'), [
      'FILE:2:18: admin.listen: port 9000 is already used by outbound.listen (127.0.0.1:9000)',
    ]);
  });
});

describe('parseDuration / formatDuration', () => {
  test('parses the documented forms', () => {
    const cases: [string | number, number | null][] = [
      ['250ms', 250],
      ['1.5s', 1500],
      ['5s', 5000],
      ['1m', 60000],
      ['1h', 3600000],
      ['1m30s', 90000],
      ['1h2m3s4ms', 3723004],
      ['.5s', 500],
      ['0', 0],
      [0, 0],
      ['0s', 0],
      ['0ms', 0],
      ['1.1s', 1100],
      ['5', null],
      [5, null],
      ['5 s', null],
      [' 5s', null],
      ['5S', null],
      ['-1s', null],
      ['1d', null],
      ['0.5ms', null],
      ['1.0001s', null],
      ['', null],
      ['s', null],
      ['1.s', null],
      ['1e3ms', null],
      ['Infinity', null],
      ['9'.repeat(100) + 's', null],
      ['99999999999999999h', null],
    ];
    for (const [input, want] of cases) assert.equal(parseDuration(input), want, JSON.stringify(input));
  });

  test('formats Go-style without zero components', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [1, '1ms'],
      [250, '250ms'],
      [1000, '1s'],
      [1500, '1.5s'],
      [1001, '1.001s'],
      [60000, '1m'],
      [90000, '1m30s'],
      [90250, '1m30.25s'],
      [3600000, '1h'],
      [3601000, '1h1s'],
      [5400000, '1h30m'],
    ];
    for (const [ms, want] of cases) assert.equal(formatDuration(ms), want, String(ms));
  });

  test('round-trips', () => {
    for (const ms of [0, 1, 7, 999, 1000, 1234, 59999, 60001, 3599999, 3600000, 86400000, 2 ** 31 - 1]) {
      assert.equal(parseDuration(formatDuration(ms)), ms, String(ms));
    }
  });
});

describe('parseAddress / formatAddress', () => {
  test('parses host:port and [ipv6]:port', () => {
    assert.deepEqual(parseAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseAddress('[::1]:15000'), { host: '::1', port: 15000 });
    assert.deepEqual(parseAddress('[fd00::1:2]:0'), { host: 'fd00::1:2', port: 0 });
    assert.deepEqual(parseAddress('asset-mgr.shop.svc.cluster.local:65535'), { host: 'asset-mgr.shop.svc.cluster.local', port: 65535 });
    assert.deepEqual(parseAddress('localhost:1'), { host: 'localhost', port: 1 });
    assert.deepEqual(parseAddress('my_host:1'), { host: 'my_host', port: 1 });
  });

  test('rejects everything else', () => {
    for (const s of [
      '',
      'localhost',
      ':80',
      'host:',
      'host:65536',
      'host:-1',
      'host:8o',
      'host:+80',
      '::1:80',
      '[::1]',
      '[::1]80',
      '[zz::1]:80',
      '[1.2.3.4]:80',
      '999.1.1.1:80',
      'a b:80',
      '-a:80',
      'a.:80',
      'a..b:80',
      'http://a:80',
      'a:80/x',
      'a:123456',
    ]) {
      assert.equal(parseAddress(s), null, s);
    }
  });

  test('formats with brackets for IPv6 and round-trips', () => {
    assert.equal(formatAddress({ host: '::1', port: 80 }), '[::1]:80');
    assert.equal(formatAddress({ host: '10.0.0.1', port: 0 }), '10.0.0.1:0');
    for (const s of ['127.0.0.1:8080', '[::1]:15000', 'svc.ns:443']) assert.equal(formatAddress(parseAddress(s)!), s);
  });
});

describe('renderConfig', () => {
  test('file-shaped JSON: durations and addresses as written, absent blocks left out', async () => {
    const c = ok(await loadConfigFile(path.join(VALID, 'contract.yaml'))).config;
    const j = renderConfig(c) as Record<string, any>;
    assert.deepEqual(j['admin'], { listen: '127.0.0.1:15000' });
    assert.equal(j['inbound'].timeout, '15s');
    assert.equal(j['inbound'].app, '127.0.0.1:8080');
    assert.equal(j['inbound'].tls.cert, path.join(VALID, 'tls', 'server.crt'));
    assert.equal(j['inbound'].limits.idleTimeout, '5m');
    assert.deepEqual(j['outbound'].routes[0].retries.backoff, { base: '25ms', max: '250ms' });
    assert.deepEqual(j['outbound'].routes[0].fault.delay, { percent: 5, duration: '2s' });
    assert.equal(j['outbound'].routes[0].split, undefined);
    assert.deepEqual(j['clusters']['asset-mgr'].endpoints, ['10.0.0.7:8080', '10.0.0.8:8080']);
    assert.equal(j['clusters']['asset-mgr'].name, undefined);
    assert.deepEqual(j['clusters']['asset-mgr-shadow'].dns, { name: 'asset-mgr-ms-svc.shop.svc.cluster.local', port: 8080, refresh: '5s' });
    assert.deepEqual(j['resolver'], { servers: ['10.96.0.10:53'] });
    assert.deepEqual(j['drain'], { delay: '5s', timeout: '20s' });
    assert.equal('inbound' in (renderConfig(config('{}')) as object), false);
    // Plain JSON, no prototype tricks.
    assert.deepEqual(JSON.parse(JSON.stringify(j)), j);
  });

  test('credential header values are redacted, others shown', () => {
    const c = config(
      'outbound:\n  routes:\n    - name: r\n      cluster: c\n' +
        '      match: { headers: { authorization: "Bearer match-secret", x-a: b } }\n' +
        '      headers:\n' +
        '        request: { set: { Authorization: "Bearer s3cret", Proxy-Authorization: "Basic eA==", Cookie: "sid=1", x-env: prod } }\n' +
        '        response: { set: { Set-Cookie: "sid=2", x-served-by: outrigger } }\n' +
        'clusters: { c: { endpoints: ["a:1"] } }\n',
    );
    const text = JSON.stringify(renderConfig(c));
    for (const secret of ['s3cret', 'eA==', 'sid=1', 'sid=2', 'match-secret']) assert.equal(text.includes(secret), false, secret);
    const r = (renderConfig(c) as any).outbound.routes[0];
    assert.deepEqual(r.headers.request.set, {
      authorization: '[redacted]',
      'proxy-authorization': '[redacted]',
      cookie: '[redacted]',
      'x-env': 'prod',
    });
    assert.deepEqual(r.headers.response.set, { 'set-cookie': '[redacted]', 'x-served-by': 'outrigger' });
    assert.deepEqual(r.match.headers, { authorization: '[redacted]', 'x-a': 'b' });
  });

  test('rendered config written back as YAML loads to the same Config', async () => {
    for (const file of [
      path.join(VALID, 'contract.yaml'),
      path.join(VALID, 'every-key.yaml'),
      path.join(ROOT, 'config', 'outrigger.yaml'),
    ]) {
      const c = ok(await loadConfigFile(file)).config;
      const again = config(stringify(renderConfig(c)), file);
      // Redaction is the one lossy step: compare with the secrets replaced.
      const redacted = JSON.parse(JSON.stringify(c)) as { outbound: { routes: RouteConfig[] } | null };
      for (const r of redacted.outbound?.routes ?? []) {
        for (const h of [r.headers.request.set, r.headers.response.set, r.match.headers ?? {}] as Record<string, string>[]) {
          for (const k of Object.keys(h))
            if (['authorization', 'proxy-authorization', 'cookie', 'set-cookie'].includes(k)) h[k] = '[redacted]';
        }
      }
      assert.deepEqual(again, redacted, file);
    }
  });
});

describe('clusterChanged / listenerChanged', () => {
  const base =
    'clusters:\n  c:\n    endpoints: ["10.0.0.1:80", "10.0.0.2:80"]\n    healthCheck: { interval: 5s }\n    tls: { ca: ca.pem, principals: [a] }\n';
  const cluster = (text: string): ClusterConfig => config(text).clusters['c']!;

  test('equal configs from separate loads are unchanged', () => {
    assert.equal(clusterChanged(cluster(base), cluster(base)), false);
    assert.equal(clusterChanged(cluster(base), cluster(`${base}    loadBalancer: round-robin\n`)), false);
  });

  test('any difference is a change', () => {
    const variants = [
      base.replace('"10.0.0.2:80"', '"10.0.0.3:80"'),
      base.replace(', "10.0.0.2:80"', ''),
      base.replace('"10.0.0.1:80", "10.0.0.2:80"', '"10.0.0.2:80", "10.0.0.1:80"'),
      base.replace('interval: 5s', 'interval: 6s'),
      base.replace('ca: ca.pem', 'ca: ca2.pem'),
      base.replace('principals: [a]', 'principals: [a, b]'),
      base.replace('    healthCheck: { interval: 5s }\n', ''),
      `${base}    loadBalancer: random\n`,
      `${base}    retryBudget: { ratio: 0.3 }\n`,
      `${base}    connectTimeout: 2s\n`,
    ];
    const a = cluster(base);
    for (const v of variants) assert.equal(clusterChanged(a, cluster(v)), true, v);
    assert.equal(clusterChanged(a, { ...a, name: 'd' }), true);
  });

  test('listenerChanged compares host and port', () => {
    assert.equal(listenerChanged({ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 1 }), false);
    assert.equal(listenerChanged({ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 2 }), true);
    assert.equal(listenerChanged({ host: '127.0.0.1', port: 1 }, { host: '0.0.0.0', port: 1 }), true);
  });
});
