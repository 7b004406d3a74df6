// Property tests of the config loader: no input makes parseConfig throw; every rejection carries
// at least one well-formed FILE:LINE:COL problem; generated valid configs load, and their
// rendering (the admin /config view) loads back to the same Config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { formatProblem, parseConfig } from '../src/config/load.js';
import { formatDuration, parseDuration } from '../src/config/duration.js';
import { formatAddress, parseAddress } from '../src/config/address.js';
import { renderConfig } from '../src/config/render.js';
import type { LoadResult } from '../src/config/types.js';

const FILE = '/etc/outrigger/outrigger.yaml';

/** Runs parseConfig and checks the invariants every result must keep; returns the result. */
function checked(text: string): LoadResult {
  const r = parseConfig(text, FILE);
  if (r.ok) {
    assert.equal(typeof r.hash, 'string');
    assert.ok(Object.isFrozen(r.config));
    return r;
  }
  assert.ok(r.problems.length >= 1, 'a rejection has at least one problem');
  const lines = text.split(/\r\n|\r|\n/).length;
  for (const p of r.problems) {
    assert.equal(p.file, FILE);
    assert.ok(Number.isInteger(p.line) && p.line >= 1 && p.line <= lines + 1, `line ${p.line} of ${lines}`);
    assert.ok(Number.isInteger(p.col) && p.col >= 1, `col ${p.col}`);
    assert.ok(p.message.length > 0 && !p.message.includes('\n'), JSON.stringify(p.message));
    assert.ok(!p.message.startsWith('internal error'), formatProblem(p));
  }
  return r;
}

const codeUnits = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 200 }).map((cs) => String.fromCharCode(...cs));

test('arbitrary strings never throw and are reported well-formed', () => {
  fc.assert(
    // UTF-16 code units (lone surrogates included) rather than unit 'binary', which is ~50x
    // slower to generate; plus printable ASCII, which reaches deeper into the YAML grammar.
    fc.property(fc.oneof(codeUnits, fc.string({ maxLength: 200 })), (s) => {
      checked(s);
    }),
    { numRuns: 1000 },
  );
});

const YAML_TOKENS = [
  'admin:',
  'inbound:',
  'outbound:',
  'clusters:',
  'resolver:',
  'drain:',
  'listen:',
  'app:',
  'routes:',
  'name:',
  'cluster:',
  'split:',
  'endpoints:',
  'dns:',
  'tls:',
  'match:',
  'path:',
  'prefix:',
  'regex:',
  'host:',
  'retries:',
  'on:',
  'weight:',
  'servers:',
  'timeout:',
  'headers:',
  'set:',
  'x-a:',
  '<<:',
  'c:',
  '\n',
  '\n  ',
  '\n    ',
  '  ',
  ' ',
  '- ',
  '-',
  ':',
  ': ',
  '{',
  '}',
  '[',
  ']',
  ',',
  '"',
  "'",
  '&a ',
  '*a',
  '!!str ',
  '!!map ',
  '!x ',
  '---\n',
  '...\n',
  '# c',
  '~',
  'null',
  'true',
  '0',
  '-1',
  '1.5',
  '5s',
  '1m30s',
  '127.0.0.1:15000',
  '[::1]:1',
  'a:1',
  '/x',
  '(',
  '\\',
  '\t',
  '\r',
  '\0',
  '? ',
  '|\n',
  '>\n',
  '%YAML 1.2\n',
  'é',
  '€',
];

test('YAML-ish token soup never throws and is reported well-formed', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...YAML_TOKENS), { maxLength: 60 }), (tokens) => {
      checked(tokens.join(''));
    }),
    { numRuns: 1000 },
  );
});

test('arbitrary JSON values as YAML never throw', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => {
      checked(stringify(v));
    }),
    { numRuns: 500 },
  );
});

// ---- generators of valid configs (plain objects in the file's shape) ----

// Built from small alphabets rather than fc.domain() or fc.stringMatching(): just as valid for these
// properties, and several times cheaper to generate, which keeps the file fast on a busy machine.
const label = fc.constantFrom('a', 'svc', 'shop', 'api-v2', 'x1', 'cluster', 'local', 'e_x');
const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
const name = fc.tuple(fc.constantFrom('a', 'svc', 'api', 'shop-v1'), fc.nat(99)).map(([a, n]) => `${a}-${n}`);
const durationMs = (min: number): fc.Arbitrary<number> => fc.integer({ min, max: 86_400_000 });
const dur = (min = 0): fc.Arbitrary<string> => durationMs(min).map(formatDuration);
const host = fc.oneof(fc.ipV4(), domain, fc.constant('localhost'));
const address = fc.tuple(host, fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`);
const absPath = fc
  .array(fc.constantFrom('api', 'v1', 'users', 'a.b', '_x', 'assetmgrms'), { maxLength: 3 })
  .map((parts) => `/${parts.join('/')}`);
const headerName = fc.constantFrom('x-a', 'x-b', 'x-env', 'x-user-id', 'x-tenant', 'x-debug', 'server');
const headerValue = fc.string({ maxLength: 16 }); // printable ASCII
const method = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'get');
const percent = fc.integer({ min: 0, max: 100 });
const filePath = fc.constantFrom('cert.pem', 'tls/key.pem', '/etc/tls/ca.pem', '../ca.pem');
const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

/** Drops undefined values so that stringify writes absent keys, not nulls. */
function clean(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clean);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = clean(x);
    return out;
  }
  return v;
}

const rateLimit = fc.record(
  { requestsPerSecond: fc.integer({ min: 1, max: 10000 }), burst: fc.integer({ min: 1, max: 20000 }) },
  { requiredKeys: ['requestsPerSecond'] },
);

const limits = fc.record(
  {
    maxConnections: fc.integer({ min: 1, max: 100000 }),
    headersTimeout: dur(),
    maxHeaderBytes: fc.integer({ min: 1, max: 65536 }),
    maxHeaders: fc.integer({ min: 1, max: 1000 }),
    maxUrlLength: fc.integer({ min: 1, max: 65536 }),
    idleTimeout: dur(),
    keepAliveTimeout: dur(),
  },
  { requiredKeys: [] },
);

const healthCheck = fc.record(
  {
    path: absPath,
    interval: dur(1),
    timeout: dur(1),
    unhealthyThreshold: fc.integer({ min: 1, max: 10 }),
    healthyThreshold: fc.integer({ min: 1, max: 10 }),
  },
  { requiredKeys: [] },
);

const clusterTls = fc
  .record(
    {
      ca: opt(filePath),
      pair: opt(fc.tuple(filePath, filePath)),
      serverName: opt(domain),
      principals: opt(fc.array(fc.constantFrom('spiffe://cluster.local/ns/a/sa/b', '*'), { minLength: 1, maxLength: 2 })),
    },
    { requiredKeys: [] },
  )
  .map(({ pair, ...rest }) => (pair === undefined ? rest : { ...rest, cert: pair[0], key: pair[1] }));

const cluster = fc
  .record(
    {
      discovery: fc.oneof(
        fc.record({ endpoints: fc.uniqueArray(address, { minLength: 1, maxLength: 4 }) }),
        fc.record({ dns: fc.record({ name: domain, port: fc.integer({ min: 1, max: 65535 }), refresh: opt(dur(1)) }) }),
      ),
      balancing: fc.oneof(
        fc.record({ loadBalancer: fc.constant('ring-hash'), hashOn: opt(fc.record({ header: headerName })) }),
        fc.record({ loadBalancer: opt(fc.constantFrom('round-robin', 'least-request', 'random')) }),
      ),
      connectTimeout: opt(dur()),
      maxConnectionsPerEndpoint: opt(fc.integer({ min: 1, max: 1024 })),
      maxPending: opt(fc.integer({ min: 1, max: 100000 })),
      healthCheck: opt(healthCheck),
      outlierDetection: opt(
        fc.record(
          { consecutiveErrors: fc.integer({ min: 1, max: 100 }), ejectionTime: dur(1), maxEjectionPercent: percent },
          { requiredKeys: [] },
        ),
      ),
      circuitBreaker: opt(
        fc.record(
          { errorThresholdPercentage: percent, volumeThreshold: fc.integer({ min: 1, max: 100 }), window: dur(1), resetTimeout: dur(1) },
          { requiredKeys: [] },
        ),
      ),
      retryBudget: opt(
        fc.record({ ratio: fc.integer({ min: 0, max: 100 }).map((x) => x / 100), minPerSecond: fc.nat(100) }, { requiredKeys: [] }),
      ),
      tls: opt(clusterTls),
    },
    { requiredKeys: ['discovery', 'balancing'] },
  )
  .map(({ discovery, balancing, ...rest }) => ({ ...discovery, ...balancing, ...rest }));

function route(clusters: readonly string[], index: number): fc.Arbitrary<Record<string, unknown>> {
  const clusterName = fc.constantFrom(...clusters);
  const pathMatch = fc.oneof(
    absPath.map((p) => ({ prefix: p })),
    absPath.map((p) => ({ exact: p })),
    fc.constantFrom('^/a/[0-9]+$', '/users/.*', '(/x|/y)', '[a-z]+').map((r) => ({ regex: r })),
  );
  const backoff = fc.tuple(durationMs(0), durationMs(0)).map(([a, b]) => ({
    base: formatDuration(Math.min(a, b)),
    max: formatDuration(Math.max(a, b)),
  }));
  const headerOps = fc.record(
    { set: fc.dictionary(headerName, headerValue, { maxKeys: 3 }), remove: fc.array(headerName, { maxLength: 3 }) },
    { requiredKeys: [] },
  );
  return fc
    .record(
      {
        match: opt(
          fc.record(
            {
              host: opt(
                fc.oneof(
                  domain,
                  fc.array(
                    fc.oneof(
                      domain,
                      domain.map((d) => `*.${d}`),
                    ),
                    { minLength: 1, maxLength: 3 },
                  ),
                ),
              ),
              path: opt(pathMatch),
              methods: opt(fc.array(method, { minLength: 1, maxLength: 3 })),
              headers: opt(fc.dictionary(headerName, headerValue, { maxKeys: 3 })),
            },
            { requiredKeys: [] },
          ),
        ),
        rewrite: opt(absPath.map((p) => ({ prefix: p }))),
        target: fc.oneof(
          clusterName.map((c) => ({ cluster: c })),
          fc
            .uniqueArray(clusterName, { minLength: 1, maxLength: clusters.length })
            .chain((cs) => fc.tuple(...cs.map((c) => fc.integer({ min: 1, max: 100 }).map((w) => ({ cluster: c, weight: w })))))
            .map((split) => ({ split })),
        ),
        timeout: opt(dur()),
        retries: opt(
          fc.record(
            {
              attempts: fc.integer({ min: 0, max: 10 }),
              perTryTimeout: dur(),
              on: fc.subarray(['connect-failure', 'reset', '5xx', 'gateway-error', 429, 502, 503, 504] as (string | number)[]),
              backoff,
              nonIdempotent: fc.boolean(),
            },
            { requiredKeys: [] },
          ),
        ),
        headers: opt(fc.record({ request: headerOps, response: headerOps }, { requiredKeys: [] })),
        mirror: opt(fc.record({ cluster: clusterName, percent }, { requiredKeys: ['cluster'] })),
        fault: opt(
          fc.record(
            {
              delay: fc.record({ percent, duration: dur(1) }, { requiredKeys: ['duration'] }),
              abort: fc.record({ percent, status: fc.integer({ min: 400, max: 599 }) }, { requiredKeys: ['status'] }),
            },
            { requiredKeys: [] },
          ),
        ),
        rateLimit: opt(rateLimit),
      },
      { requiredKeys: ['target'] },
    )
    .map(({ target, rewrite, ...rest }) => {
      const r: Record<string, unknown> = { name: `route-${index}`, ...rest, ...target };
      // A rewrite replaces a matched prefix; a regex match has none.
      const m = rest.match as { path?: { regex?: string } } | undefined;
      if (rewrite !== undefined && m?.path?.regex === undefined) r['rewrite'] = rewrite;
      return r;
    });
}

const inbound = fc.record(
  {
    listen: fc.constantFrom('0.0.0.0:15006', '127.0.0.1:0', '[::]:15006'),
    app: address,
    timeout: dur(),
    maxConcurrent: fc.integer({ min: 1, max: 100000 }),
    rateLimit,
    tls: fc.oneof(
      fc.record(
        { cert: filePath, key: filePath, ca: filePath, requireClientCert: fc.constant(true) },
        { requiredKeys: ['cert', 'key', 'ca'] },
      ),
      fc.record({ cert: filePath, key: filePath, requireClientCert: fc.constant(false) }),
    ),
    authorization: fc.record(
      {
        default: fc.constantFrom('allow', 'deny'),
        ignoreCase: fc.boolean(),
        rules: fc.array(
          fc.record(
            {
              action: fc.constantFrom('allow', 'deny'),
              principals: fc.array(fc.constantFrom('*', 'spiffe://cluster.local/ns/shop/sa/web'), { minLength: 1, maxLength: 2 }),
              paths: fc.array(
                fc.oneof(
                  absPath,
                  absPath.map((p) => `${p}*`),
                ),
                { minLength: 1, maxLength: 2 },
              ),
              methods: fc.array(method, { minLength: 1, maxLength: 2 }),
            },
            { requiredKeys: ['action'] },
          ),
          { maxLength: 3 },
        ),
      },
      { requiredKeys: [] },
    ),
    limits,
  },
  { requiredKeys: ['app'] },
);

const validConfig = fc
  .uniqueArray(name, { minLength: 1, maxLength: 4 })
  .chain((names) =>
    fc.record(
      {
        admin: fc.record({ listen: fc.constantFrom('127.0.0.1:15000', '127.0.0.1:0', '[::1]:15000') }, { requiredKeys: [] }),
        inbound: opt(inbound),
        outbound: opt(
          fc.record(
            {
              listen: fc.constantFrom('127.0.0.1:15001', '127.0.0.1:0'),
              unknownHosts: fc.constantFrom('passthrough', 'reject'),
              timeout: dur(),
              maxConcurrent: fc.integer({ min: 1, max: 100000 }),
              routes: fc.integer({ min: 0, max: 4 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => route(names, i)))),
              limits,
            },
            { requiredKeys: [] },
          ),
        ),
        clusters: fc.tuple(...names.map(() => cluster)).map((cs) => Object.fromEntries(names.map((n, i) => [n, cs[i]]))),
        resolver: opt(
          fc.record({
            servers: fc.array(
              fc.oneof(
                fc.ipV4(),
                fc.ipV4().map((ip) => `${ip}:53`),
              ),
              { minLength: 1, maxLength: 3 },
            ),
          }),
        ),
        drain: opt(fc.record({ delay: dur(), timeout: dur() }, { requiredKeys: [] })),
      },
      { requiredKeys: ['clusters'] },
    ),
  )
  .map(clean);

test('generated valid configs load, and their rendering loads back to the same Config', () => {
  fc.assert(
    fc.property(validConfig, (obj) => {
      const text = stringify(obj);
      const r = checked(text);
      if (!r.ok) assert.fail(`${r.problems.map(formatProblem).join('\n')}\n---\n${text}`);
      const again = checked(stringify(renderConfig(r.config)));
      if (!again.ok) assert.fail(again.problems.map(formatProblem).join('\n'));
      assert.deepEqual(again.config, r.config);
    }),
    { numRuns: 200 },
  );
});

/** Every container (map or list) in a value, with a way to mutate it. */
function containers(v: unknown, out: unknown[] = []): unknown[] {
  if (v !== null && typeof v === 'object') {
    out.push(v);
    for (const x of Object.values(v)) containers(x, out);
  }
  return out;
}

test('mutated valid configs never throw and are reported well-formed', () => {
  const mutation = fc.record({
    at: fc.nat(),
    kind: fc.constantFrom('replace', 'delete', 'add'),
    key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('listen', 'timeout', 'cluster', 'name', 'split', 'dns', 'tls')),
    value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('5s', '0', 0, -1, '127.0.0.1:0', '', null, [], {}, 'x'.repeat(300))),
  });
  fc.assert(
    fc.property(validConfig, mutation, (obj, m) => {
      const cs = containers(obj);
      const target = cs[m.at % cs.length] as Record<string, unknown>;
      const keys = Object.keys(target);
      const key = m.kind === 'add' || keys.length === 0 ? m.key : keys[m.at % keys.length]!;
      if (m.kind === 'delete') {
        if (Array.isArray(target)) target.splice(Number(key), 1);
        else delete target[key];
      } else if (Array.isArray(target)) target.push(m.value);
      else Object.defineProperty(target, key, { value: m.value, enumerable: true, writable: true, configurable: true });
      checked(stringify(obj));
    }),
    { numRuns: 300 },
  );
});

test('an unknown top-level key always fails, naming the key', () => {
  const top = new Set(['admin', 'inbound', 'outbound', 'clusters', 'resolver', 'drain', '<<']);
  fc.assert(
    fc.property(
      validConfig,
      fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !top.has(k)),
      (obj, key) => {
        const withKey = { ...(obj as object) };
        Object.defineProperty(withKey, key, { value: 1, enumerable: true, writable: true, configurable: true });
        const r = checked(stringify(withKey));
        assert.equal(r.ok, false);
        if (!r.ok)
          assert.ok(
            r.problems.some((p) => p.message.startsWith(`unknown key ${JSON.stringify(key)} at top level`)),
            formatProblem(r.problems[0]!),
          );
      },
    ),
    { numRuns: 100 },
  );
});

test('durations round-trip through formatDuration, and parseDuration never throws', () => {
  fc.assert(
    fc.property(fc.nat({ max: 2 ** 40 }), (ms) => {
      assert.equal(parseDuration(formatDuration(ms)), ms);
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (s) => {
      const v = parseDuration(s);
      assert.ok(v === null || (Number.isSafeInteger(v) && v >= 0));
    }),
    { numRuns: 1000 },
  );
});

test('addresses round-trip through formatAddress', () => {
  const a = fc.record({
    host: fc.oneof(fc.ipV4(), fc.ipV6(), domain),
    port: fc.integer({ min: 0, max: 65535 }),
  });
  fc.assert(
    fc.property(a, (addr) => {
      const parsed = parseAddress(formatAddress(addr));
      assert.deepEqual(parsed, { host: addr.host, port: addr.port });
    }),
    { numRuns: 1000 },
  );
});
