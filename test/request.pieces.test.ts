// The pipeline's pieces without sockets: the endpoint lease (taken once, released once, outcome
// heard once), the retry state's decision order, and the report (one line and one sample per
// request, the listener's count released).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Lease, takeLease, takeSpareLease } from '../src/cluster/lease.js';
import type { Cluster } from '../src/cluster/cluster.js';
import { parseConfig } from '../src/config/load.js';
import type { ProxyError } from '../src/errors.js';
import { Admission } from '../src/request/admit.js';
import type { Decision, Refusal } from '../src/request/decision.js';
import { Report, type Served } from '../src/request/report.js';
import { compileRetryPolicy, RetryState } from '../src/resilience/retry.js';
import { buildRuntime, type Runtime } from '../src/runtime.js';
import { AccessLog } from '../src/telemetry/access.js';
import { createLogger } from '../src/telemetry/log.js';
import { Metrics } from '../src/telemetry/metrics.js';
import { OwnAddresses } from '../src/request/loop.js';

const metrics = new Metrics(false);
const log = createLogger('info', new Writable({ write: (_c, _e, cb) => cb() }));
const runtimes: Runtime[] = [];
after(async () => {
  for (const rt of runtimes) await Promise.all(rt.allClusters().map((c) => c.destroy()));
});

async function cluster(body: string): Promise<Cluster> {
  const loaded = parseConfig(`clusters:\n  c: { endpoints: ["127.0.0.1:1", "127.0.0.1:2"], ${body} }\n`, 'pieces.yaml');
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => p.message).join('\n'));
  const { runtime } = await buildRuntime(loaded.config, null, { metrics, log });
  runtimes.push(runtime);
  return runtime.clusters.get('c')!;
}

function lease(l: Lease | ProxyError): Lease {
  assert.ok(l instanceof Lease, l instanceof Lease ? '' : `refused: ${l.reason}`);
  return l;
}

test('a lease counts its endpoint from take to release, once; a whole-request lease counts the cluster too', async () => {
  const c = await cluster('maxConnectionsPerEndpoint: 4');
  const a = lease(takeLease(c, undefined, undefined, 'outbound', false));
  assert.equal(a.endpoint.active, 1);
  assert.equal(c.active, 0, 'an exchange holds the cluster itself');
  a.release();
  a.release();
  assert.equal(a.endpoint.active, 0);
  const t = lease(takeLease(c, undefined, undefined, 'outbound', true));
  assert.equal(c.active, 1);
  t.release();
  t.release();
  assert.equal(c.active, 0);
  assert.equal(t.endpoint.active, 0);
});

test('a lease avoids the endpoint a retry moves away from', async () => {
  const c = await cluster('');
  const first = lease(takeLease(c, undefined, undefined, 'outbound', false));
  for (let i = 0; i < 4; i++) {
    const next = lease(takeLease(c, undefined, first.endpoint, 'outbound', false));
    assert.notEqual(next.endpoint, first.endpoint);
    next.release();
  }
  first.release();
});

test('maxPending: a lease that would queue beyond it is refused overflow and counted', async () => {
  const c = await cluster('maxConnectionsPerEndpoint: 1, maxPending: 1');
  const held = [0, 1, 2].map(() => lease(takeLease(c, undefined, undefined, 'inbound', false)));
  const refused = takeLease(c, undefined, undefined, 'inbound', false);
  assert.ok(!(refused instanceof Lease));
  assert.equal(refused.reason, 'overflow');
  assert.equal(refused.status, 503);
  for (const h of held) h.release();
  assert.equal(
    c.endpoints.reduce((n, e) => n + e.active, 0),
    0,
  );
  // a mirror never waits in a full queue: with the queue full there is no spare lease
  const busy = [0, 1, 2].map(() => lease(takeLease(c, undefined, undefined, 'inbound', false)));
  assert.equal(takeSpareLease(c, undefined), null);
  for (const b of busy) b.release();
  const spare = takeSpareLease(c, undefined);
  assert.ok(spare !== null);
  assert.equal(c.active, 1);
  spare.release();
  assert.equal(c.active, 0);
});

test('the outcome is heard once: failed() twice is one failure for outlier detection and the breaker', async () => {
  const c = await cluster('outlierDetection: { consecutiveErrors: 2, ejectionTime: 30s, maxEjectionPercent: 100 }');
  const a = lease(takeLease(c, undefined, undefined, 'outbound', false));
  a.failed();
  a.failed();
  a.succeeded();
  assert.equal(a.endpoint.consecutiveFailures, 1);
  assert.equal(a.outcomeHeard, true);
  a.release();
  // abandoned (client gone): nothing heard either way
  const b = lease(takeLease(c, undefined, undefined, 'outbound', false));
  const before = b.endpoint.consecutiveFailures;
  b.abandoned();
  b.failed();
  assert.equal(b.endpoint.consecutiveFailures, before);
  b.release();
});

test('the breaker: an open circuit refuses the lease with circuit_open', async () => {
  const c = await cluster('circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 1, window: 10s, resetTimeout: 30s }');
  const a = lease(takeLease(c, undefined, undefined, 'outbound', false));
  a.failed();
  a.release();
  await new Promise((r) => setTimeout(r, 10)); // opossum settles the reported call asynchronously
  const r = takeLease(c, undefined, undefined, 'outbound', false);
  assert.ok(!(r instanceof Lease));
  assert.equal(r.reason, 'circuit_open');
});

test('retry state: attempts, then conditions, then the body, then the budget, in that order', async () => {
  const policy = compileRetryPolicy({ attempts: 2, perTryTimeout: 0, on: ['5xx'], backoff: { base: 10, max: 40 }, nonIdempotent: false });
  let asked = 0;
  const budget = (grant: boolean): Cluster => ({ tryRetry: () => (asked++, grant) }) as unknown as Cluster;
  const r = new RetryState(policy);
  r.started(undefined);
  const err = { kind: 'error', error: 'reset' } as const;
  assert.equal(r.decide({ kind: 'response', status: 404 }, 'GET', true, budget(true)), 'no');
  assert.equal(r.decide(err, 'POST', true, budget(true)), 'no', 'POST is not retried on a reset');
  assert.equal(r.decide(err, 'GET', false, budget(true)), 'no', 'a body past the replay buffer');
  assert.equal(asked, 0, 'the budget is asked only for a retry that would be made');
  assert.equal(r.decide(err, 'GET', true, budget(false)), 'budget_exhausted');
  assert.equal(r.decide({ kind: 'response', status: 503 }, 'GET', true, budget(true)), 'retry');
  assert.equal(r.decide({ kind: 'error', error: 'connect_failure' }, 'POST', true, null), 'retry', 'connect failures whatever the method');
  const d1 = r.backoff();
  assert.ok(d1 >= 0 && d1 < 10);
  r.started(undefined);
  r.started(undefined);
  assert.equal(r.attempts, 3);
  assert.equal(r.decide(err, 'GET', true, budget(true)), 'no', 'no attempts left');
});

function report(): { report: Report; admission: Admission; lines: Record<string, unknown>[]; m: Metrics } {
  const m = new Metrics(false);
  const lines: Record<string, unknown>[] = [];
  const access = new AccessLog(log, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  const admission = new Admission(
    'outbound',
    { metrics: m, log, runtime: () => null as unknown as Runtime, principalOf: () => null, ownAddresses: () => OwnAddresses.NONE },
    'http',
  );
  return { report: new Report('outbound', m, access, admission), admission, lines, m };
}

test('report: a served request is one line and one sample, and gives its listener slot back', async () => {
  const { report: r, admission, lines, m } = report();
  admission.active = 1;
  const stats = m.routeStats('outbound', 'web', 'web-v1');
  const served: Served = {
    labels: { route: 'web', clusterName: 'web-v1', stats, host: 'web', path: '/a', requestId: 'r1', traceId: 't1' } as Decision,
    method: 'GET',
    status: 200,
    bytesIn: 3,
    bytesOut: 5,
    upstream: '10.0.0.1:80',
    attempts: 2,
    error: null,
    t0: performance.now(),
  };
  r.served(served);
  assert.equal(admission.active, 0);
  assert.equal(lines.length, 1);
  assert.deepEqual(
    { ...lines[0], time: undefined, duration_ms: undefined },
    {
      level: 'info',
      time: undefined,
      direction: 'outbound',
      method: 'GET',
      path: '/a',
      host: 'web',
      status: 200,
      duration_ms: undefined,
      bytes_in: 3,
      bytes_out: 5,
      route: 'web',
      cluster: 'web-v1',
      upstream: '10.0.0.1:80',
      attempts: 2,
      request_id: 'r1',
      trace_id: 't1',
      msg: 'access',
    },
  );
  const text = await m.registry.metrics();
  assert.match(text, /outrigger_requests_total\{direction="outbound",route="web",cluster="web-v1",code="200"\} 1/);
});

test('report: a refusal before routing is counted under none/none and keeps the listener count', async () => {
  const { report: r, admission, lines, m } = report();
  const refusal: Refusal = {
    admitted: false,
    error: { reason: 'overflow', status: 503 },
    close: false,
    route: 'none',
    clusterName: 'none',
    stats: null,
    host: 'web',
    path: '/b',
    requestId: null,
    traceId: null,
  };
  r.refused('POST', refusal, 'connect');
  assert.equal(admission.active, 0);
  assert.equal(lines[0]?.['error'], 'overflow');
  assert.equal(lines[0]?.['tunnel'], 'connect');
  assert.equal(lines[0]?.['attempts'], 0);
  const text = await m.registry.metrics();
  assert.match(text, /outrigger_requests_total\{direction="outbound",route="none",cluster="none",code="503"\} 1/);
});
