// Admission without sockets: every request kind (plain, Upgrade, CONNECT) gets the same front
// half. A runtime snapshot built from a real config, request heads as a codec hands them over.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { parseConfig } from '../src/config/load.js';
import { buildRuntime, type Runtime } from '../src/runtime.js';
import { Admission, type AdmissionContext, type RequestHead } from '../src/request/admit.js';
import type { Admitted, Decision, Refusal, RequestKind } from '../src/request/decision.js';
import { OwnAddresses } from '../src/request/loop.js';
import { createLogger } from '../src/telemetry/log.js';
import { Metrics } from '../src/telemetry/metrics.js';

const metrics = new Metrics(false);
const log = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
const runtimes: Runtime[] = [];

after(async () => {
  for (const rt of runtimes) await Promise.all(rt.allClusters().map((c) => c.destroy()));
});

async function admission(direction: 'inbound' | 'outbound', yaml: string, opts: { principal?: string | null } = {}): Promise<Admission> {
  const loaded = parseConfig(yaml, 'admit-test.yaml');
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => p.message).join('\n'));
  const { runtime } = await buildRuntime(loaded.config, null, { metrics, log });
  runtimes.push(runtime);
  const own = new OwnAddresses([
    { host: '127.0.0.1', port: 15001 },
    { host: '0.0.0.0', port: 15006 },
  ]);
  const ctx: AdmissionContext = {
    metrics,
    log,
    runtime: () => runtime,
    principalOf: () => opts.principal ?? null,
    ownAddresses: () => own,
  };
  return new Admission(direction, ctx, 'http');
}

function head(method: string, url: string, headers: [string, string][] = []): RequestHead {
  const rawHeaders: string[] = [];
  const h: Record<string, string> = {};
  for (const [k, v] of headers) {
    rawHeaders.push(k, v);
    h[k.toLowerCase()] = v;
  }
  return { method, url, rawHeaders, headers: h, httpVersionMajor: 1, httpVersionMinor: 1 };
}

const CONN = { remoteAddress: '10.1.2.3' };

/** One head of each kind for `host` (the CONNECT target gets `port`). */
function kinds(host: string, port = 8080): [RequestKind, RequestHead][] {
  return [
    ['http', head('GET', '/x', [['Host', host]])],
    [
      'upgrade',
      head('GET', '/x', [
        ['Host', host],
        ['Connection', 'Upgrade'],
        ['Upgrade', 'websocket'],
      ]),
    ],
    ['connect', head('CONNECT', `${host}:${port}`, [['Host', `${host}:${port}`]])],
  ];
}

function refused(a: Admitted): Refusal {
  assert.equal(a.admitted, false, 'refused');
  return a as Refusal;
}

function decided(a: Admitted): Decision {
  assert.equal(a.admitted, true, a.admitted ? '' : `refused: ${a.error.reason}`);
  return a as Decision;
}

const OUTBOUND = `
outbound:
  listen: 127.0.0.1:0
  maxConcurrent: 2
  routes:
    - { name: svc, match: { host: svc }, cluster: svc }
    - { name: limited, match: { host: limited }, cluster: svc, rateLimit: { requestsPerSecond: 1, burst: 1 } }
    - { name: broken, match: { host: broken }, cluster: svc, fault: { abort: { percent: 100, status: 418 } } }
    - { name: tls, match: { host: tls, port: 443 }, cluster: svc }
clusters:
  svc: { endpoints: ["127.0.0.1:8080"] }
`;

test('every kind is refused 503 draining while the listener shuts down, and the connection closes', async () => {
  const a = await admission('outbound', OUTBOUND);
  a.refusing = true;
  for (const [kind, h] of kinds('svc')) {
    const r = refused(a.admit(h, CONN, kind));
    assert.equal(r.error.reason, 'draining', kind);
    assert.equal(r.error.status, 503);
    assert.equal(r.close, true);
  }
  assert.equal(a.active, 0);
});

test('every kind counts against maxConcurrent until its report releases it', async () => {
  const a = await admission('outbound', OUTBOUND);
  for (const [kind, h] of kinds('svc')) {
    const one = decided(a.admit(h, CONN, kind));
    const two = decided(a.admit(h, CONN, kind));
    assert.equal(one.kind, kind);
    assert.equal(two.route, 'svc');
    assert.equal(a.active, 2);
    const r = refused(a.admit(h, CONN, kind));
    assert.equal(r.error.reason, 'overflow', kind);
    assert.equal(r.error.status, 503);
    a.release();
    decided(a.admit(h, CONN, kind));
    a.release();
    a.release();
    assert.equal(a.active, 0);
  }
});

test('route rate limits and fault aborts apply to Upgrade and CONNECT as to plain requests', async () => {
  for (const [kind, h] of kinds('limited')) {
    const a = await admission('outbound', OUTBOUND); // a fresh bucket per kind
    decided(a.admit(h, CONN, kind));
    const r = refused(a.admit(h, CONN, kind));
    assert.equal(r.error.reason, 'rate_limited', kind);
    assert.equal(r.route, 'limited');
  }
  const a = await admission('outbound', OUTBOUND);
  for (const [kind, h] of kinds('broken')) {
    const r = refused(a.admit(h, CONN, kind));
    assert.equal(r.error.reason, 'fault_injected', kind);
    assert.equal(r.error.status, 418);
  }
});

test('inbound authorization applies to Upgrade requests', async () => {
  const yaml = `
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:8080
  authorization: { default: deny, rules: [ { action: allow, principals: ["spiffe://td/ns/a/sa/web"] } ] }
`;
  const denied = await admission('inbound', yaml, { principal: 'spiffe://td/ns/a/sa/other' });
  const allowed = await admission('inbound', yaml, { principal: 'spiffe://td/ns/a/sa/web' });
  for (const [kind, h] of kinds('app').slice(0, 2)) {
    assert.equal(refused(denied.admit(h, CONN, kind)).error.reason, 'forbidden', kind);
    const d = decided(allowed.admit(h, CONN, kind));
    assert.equal(d.route, 'app');
    assert.equal(d.cluster?.name, 'app');
  }
});

/** OUTBOUND without the low maxConcurrent, for tests that admit many requests. */
const ROOMY = OUTBOUND.replace('maxConcurrent: 2', 'maxConcurrent: 1000');

test('a route takes CONNECT only to the port it serves; other ports pass through', async () => {
  const a = await admission('outbound', ROOMY);
  const c = (target: string): Admitted => a.admit(head('CONNECT', target, [['Host', target]]), CONN, 'connect');
  assert.equal(decided(c('svc:8080')).route, 'svc');
  const other = decided(c('svc:443'));
  assert.equal(other.route, 'passthrough');
  assert.equal(other.cluster, null);
  assert.equal(other.origin, 'svc:443');
  assert.equal(decided(c('tls:443')).route, 'tls');
  assert.equal(decided(c('tls:8080')).route, 'passthrough');
  // plain requests: a Host without a port means 80, which `tls` (port 443) does not take
  assert.equal(decided(a.admit(head('GET', '/', [['Host', 'tls']]), CONN, 'http')).route, 'passthrough');
  assert.equal(decided(a.admit(head('GET', '/', [['Host', 'tls:443']]), CONN, 'http')).route, 'tls');
});

test('a target that is one of our own listeners is refused 508 loop_detected, whatever the spelling', async () => {
  const a = await admission('outbound', ROOMY);
  const targets = ['127.0.0.1:15001', 'localhost:15001', 'LOCALHOST:15001', '127.0.0.1:15006', '[::1]:15006'];
  for (const t of targets) {
    const plain = refused(a.admit(head('GET', '/', [['Host', t]]), CONN, 'http'));
    assert.equal(plain.error.reason, 'loop_detected', t);
    assert.equal(plain.error.status, 508);
    // absolute-form, as HTTP_PROXY clients send
    assert.equal(refused(a.admit(head('GET', `http://${t}/x`, [['Host', t]]), CONN, 'http')).error.reason, 'loop_detected', t);
    assert.equal(refused(a.admit(head('CONNECT', t, [['Host', t]]), CONN, 'connect')).error.reason, 'loop_detected', t);
  }
  // another port of the same host is somebody else's
  assert.equal(decided(a.admit(head('GET', '/', [['Host', '127.0.0.1:15002']]), CONN, 'http')).route, 'passthrough');
  assert.equal(a.active, 1);
});

test("a request that carries this listener's via entry is a loop; another proxy's entry is kept and ours added", async () => {
  const a = await admission('outbound', ROOMY);
  const b = await admission('outbound', ROOMY);
  const d = decided(
    a.admit(
      head('GET', '/', [
        ['Host', 'svc'],
        ['Via', '1.1 envoy'],
      ]),
      CONN,
      'http',
    ),
  );
  const vias = d.upstreamHeaders.filter((_v, i, all) => i % 2 === 1 && (all[i - 1] as string).toLowerCase() === 'via');
  assert.deepEqual(vias, ['1.1 envoy', a.via]);
  assert.match(a.via, /^1\.1 outrigger-[0-9a-f]{8}$/);
  // came back to a: refused; b (another listener) lets it through
  const back = head('GET', '/', [
    ['Host', 'svc'],
    ['Via', `1.1 envoy, ${a.via}`],
  ]);
  assert.equal(refused(a.admit(back, CONN, 'http')).error.reason, 'loop_detected');
  assert.equal(decided(b.admit(back, CONN, 'http')).route, 'svc');
  // a longer pseudonym that starts like ours is not ours
  assert.equal(
    decided(
      a.admit(
        head('GET', '/', [
          ['Host', 'svc'],
          ['Via', `${a.via}0`],
        ]),
        CONN,
        'http',
      ),
    ).route,
    'svc',
  );
  // upgrades too
  const up = head('GET', '/', [
    ['Host', 'svc'],
    ['Connection', 'Upgrade'],
    ['Upgrade', 'websocket'],
    ['Via', a.via],
  ]);
  assert.equal(refused(a.admit(up, CONN, 'upgrade')).error.reason, 'loop_detected');
});

test('refusals before routing carry none/none labels; after routing, the route, cluster and ids', async () => {
  const a = await admission('outbound', OUTBOUND);
  const edge = refused(
    a.admit(
      head('GET', '/x?token=1', [
        ['Host', 'svc'],
        ['Content-Length', '1'],
        ['Transfer-Encoding', 'chunked'],
      ]),
      CONN,
      'http',
    ),
  );
  assert.equal(edge.error.reason, 'bad_request');
  assert.equal(edge.close, true);
  assert.equal(edge.route, 'none');
  assert.equal(edge.stats, null);
  assert.equal(edge.path, '/x');
  const limited = await admission('outbound', OUTBOUND);
  decided(limited.admit(head('GET', '/', [['Host', 'limited']]), CONN, 'http'));
  const r = refused(
    limited.admit(
      head('GET', '/y?q', [
        ['Host', 'limited'],
        ['x-request-id', 'rid-1'],
      ]),
      CONN,
      'http',
    ),
  );
  assert.equal(r.route, 'limited');
  assert.equal(r.clusterName, 'svc');
  assert.equal(r.path, '/y');
  assert.equal(r.requestId, 'rid-1');
  assert.match(r.traceId ?? '', /^[0-9a-f]{32}$/);
  assert.equal(r.close, false, 'a plain request refused after routing keeps its connection');
});
