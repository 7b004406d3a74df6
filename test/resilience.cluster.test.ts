// The cluster's own resilience bookkeeping, without a proxy: overflow admission, retirement
// that waits for requests in flight, metric series that survive a rebuild under the same name,
// and degraded-mode episodes on virtual time.
import { test, describe, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Cluster } from '../src/cluster/cluster.js';
import type { ClusterConfig } from '../src/config/types.js';
import { DegradedEpisode } from '../src/resilience/degraded.js';
import { createLogger } from '../src/telemetry/log.js';
import { Metrics } from '../src/telemetry/metrics.js';

function cfg(over: Partial<ClusterConfig> = {}): ClusterConfig {
  return {
    name: 'c',
    endpoints: [
      { host: '127.0.0.1', port: 9 },
      { host: '127.0.0.1', port: 10 },
    ],
    dns: null,
    loadBalancer: 'round-robin',
    hashOn: null,
    connectTimeout: 1000,
    maxConnectionsPerEndpoint: 2,
    maxPending: 1,
    healthCheck: null,
    outlierDetection: null,
    panicThreshold: 50,
    circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, window: 10_000, resetTimeout: 30_000 },
    retryBudget: { ratio: 0.2, minPerSecond: 10 },
    tls: null,
    ...over,
  };
}

function make(metrics = new Metrics(false), over: Partial<ClusterConfig> = {}) {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const c = new Cluster(cfg(over), { metrics, log: createLogger('info', dest), resolvers: null, tls: null, tlsFingerprint: '' });
  return { c, metrics, lines };
}

describe('Cluster overflow admission', () => {
  test('an attempt with a free connection is admitted; one that must queue only while the queue has room', async () => {
    const { c } = make();
    const [a, b] = c.endpoints as [(typeof c.endpoints)[0], (typeof c.endpoints)[0]];
    a.active = 2; // both sockets busy
    assert.equal(c.queued(), 0);
    assert.equal(c.admits(a), true, 'queue empty: may wait');
    a.active = 3; // one waiting
    assert.equal(c.queued(), 1);
    assert.equal(c.admits(a), false, 'queue full');
    assert.equal(c.overflowing(), true);
    assert.equal(c.admits(b), true, 'another endpoint with a free socket');
    b.active = 2;
    assert.equal(c.admits(b), false, 'b would queue too, and the queue is cluster-wide');
    a.active = 0;
    b.active = 0;
    await c.destroy();
  });
});

describe('Cluster.retire', () => {
  test('keeps the pools open until requests in flight are done', async () => {
    const { c } = make();
    const pool = c.endpoints[0]!.pool as unknown as { closed: boolean };
    c.requestStarted();
    let done = false;
    const retired = c.retire().then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false);
    assert.equal(pool.closed, false, 'a retry of the request in flight may still use the pool');
    c.requestEnded();
    await retired;
    assert.equal(pool.closed, true);
  });

  test('is bounded', async () => {
    const { c } = make();
    c.requestStarted();
    // the grace timer is unref'd (it must not hold a process open): keep the loop alive here
    const keep = setInterval(() => undefined, 1000);
    await c.retire(20);
    clearInterval(keep);
    assert.equal((c.endpoints[0]!.pool as unknown as { closed: boolean }).closed, true);
  });

  test('notices requests counted by hand (tunnels bump active directly)', async () => {
    const { c } = make();
    c.active++;
    const keep = setInterval(() => undefined, 1000);
    const retired = c.retire(60_000);
    c.active--;
    await retired; // hangs (test timeout) if only requestEnded() could end the wait
    clearInterval(keep);
    assert.equal((c.endpoints[0]!.pool as unknown as { closed: boolean }).closed, true);
  });

  test('a rebuilt cluster of the same name keeps its metric series when the old one retires', async () => {
    const metrics = new Metrics(false);
    const old = make(metrics).c;
    const fresh = make(metrics, { connectTimeout: 2000 }).c;
    await old.retire();
    let text = await metrics.registry.metrics();
    assert.match(text, /^outrigger_circuit_breaker_state\{cluster="c"\} 0$/m);
    assert.match(text, /^outrigger_endpoint_healthy\{cluster="c",endpoint="127.0.0.1:9"\} 1$/m);
    await fresh.retire();
    text = await metrics.registry.metrics();
    assert.doesNotMatch(text, /outrigger_circuit_breaker_state\{/);
    assert.doesNotMatch(text, /outrigger_endpoint_healthy\{/);
  });
});

describe('DegradedEpisode', () => {
  test('one start and one end per episode, with the count', () => {
    mock.timers.enable({ apis: ['setInterval', 'Date'] });
    try {
      const events: string[] = [];
      const e = new DegradedEpisode(
        () => events.push('start'),
        (n) => events.push(`end ${n}`),
        1000,
      );
      for (let i = 0; i < 5; i++) {
        e.hit();
        mock.timers.tick(300);
      }
      assert.deepEqual(events, ['start']);
      assert.equal(e.active, true);
      mock.timers.tick(1000); // first check sees a hit 0.5 s ago... or ends; either way at most one end
      mock.timers.tick(1000);
      assert.deepEqual(events, ['start', 'end 5']);
      assert.equal(e.active, false);
      e.hit();
      assert.deepEqual(events, ['start', 'end 5', 'start']);
      e.stop();
      mock.timers.tick(5000);
      assert.deepEqual(events, ['start', 'end 5', 'start'], 'stop() ends silently');
    } finally {
      mock.timers.reset();
    }
  });
});
