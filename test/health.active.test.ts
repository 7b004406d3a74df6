// Active health checks against real upstreams (undici Pool per endpoint), and the threshold
// logic on virtual time with a stub probe. Waits for onChange events, never for durations.
import { test, describe, before, after, mock } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { Pool } from 'undici';
import { Endpoint } from '../src/cluster/endpoint.js';
import { HealthChecker, HEALTH_CHECK_USER_AGENT, type HealthProbe } from '../src/cluster/health/active.js';
import type { HealthCheckConfig } from '../src/config/types.js';

const FAST: HealthCheckConfig = { path: '/healthz', interval: 20, timeout: 500, unhealthyThreshold: 2, healthyThreshold: 2 };

/** An upstream whose health answer can be flipped, and which can stop and start listening. */
class Upstream {
  status = 200;
  hang = false;
  readonly seen: http.IncomingMessage[] = [];
  port = 0;
  private server: http.Server | null = null;
  private waiters: (() => void)[] = [];

  async listen(port = 0): Promise<void> {
    const s = http.createServer((req, res) => {
      this.seen.push(req);
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
      if (this.hang) return;
      res.writeHead(this.status, { 'content-type': 'text/plain' }).end('state');
    });
    s.listen(port, '127.0.0.1');
    await once(s, 'listening');
    this.server = s;
    this.port = (s.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s === null) return;
    this.server = null;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** Resolves once `n` more probes arrived. */
  async probes(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await new Promise<void>((r) => this.waiters.push(r));
  }
}

/** Collects onChange calls and lets a test await the next one. */
class Changes {
  readonly log: string[] = [];
  private waiter: ((v: string) => void) | null = null;
  readonly cb = (ep: Endpoint, healthy: boolean): void => {
    const v = `${ep.key} ${healthy ? 'healthy' : 'unhealthy'}`;
    this.log.push(v);
    const w = this.waiter;
    this.waiter = null;
    w?.(v);
  };
  next(): Promise<string> {
    return new Promise((r) => (this.waiter = r));
  }
}

function endpointFor(port: number): Endpoint {
  return new Endpoint({ host: '127.0.0.1', port }, new Pool(`http://127.0.0.1:${port}`, { connectTimeout: 500 }));
}

describe('HealthChecker against real upstreams', () => {
  // The checker's timers are unref'd (they must not keep a draining proxy alive); with the
  // upstream closed nothing else would keep this test's event loop running while it waits.
  let keepAlive: NodeJS.Timeout;
  before(() => {
    keepAlive = setInterval(() => {}, 1000);
  });
  after(() => clearInterval(keepAlive));

  test('200 ↔ 503: marks unhealthy, then healthy again; probe is GET path with host and user-agent', async () => {
    const up = new Upstream();
    await up.listen();
    const ep = endpointFor(up.port);
    const changes = new Changes();
    const hc = new HealthChecker(FAST, () => [ep], changes.cb);
    try {
      hc.start();
      await up.probes(3);
      assert.equal(ep.healthy, true);
      assert.deepEqual(changes.log, []);
      const req = up.seen[0]!;
      assert.equal(req.method, 'GET');
      assert.equal(req.url, '/healthz');
      assert.equal(req.headers.host, ep.key);
      assert.equal(req.headers['user-agent'], HEALTH_CHECK_USER_AGENT);

      up.status = 503;
      assert.equal(await changes.next(), `${ep.key} unhealthy`);
      assert.equal(ep.healthy, false);
      assert.equal(ep.available, false);

      up.status = 204;
      assert.equal(await changes.next(), `${ep.key} healthy`);
      assert.equal(ep.healthy, true);
      assert.deepEqual(changes.log, [`${ep.key} unhealthy`, `${ep.key} healthy`]);
    } finally {
      hc.stop();
      await ep.pool.destroy();
      await up.close();
    }
  });

  test('listening ↔ refused', async () => {
    const up = new Upstream();
    await up.listen();
    const port = up.port;
    const ep = endpointFor(port);
    const changes = new Changes();
    const hc = new HealthChecker(FAST, () => [ep], changes.cb);
    try {
      hc.start();
      await up.probes(2);
      await up.close();
      assert.equal(await changes.next(), `${ep.key} unhealthy`);
      await up.listen(port);
      assert.equal(await changes.next(), `${ep.key} healthy`);
    } finally {
      hc.stop();
      await ep.pool.destroy();
      await up.close();
    }
  });

  test('an upstream that never answers fails by timeout', async () => {
    const up = new Upstream();
    up.hang = true;
    await up.listen();
    const ep = endpointFor(up.port);
    const changes = new Changes();
    const hc = new HealthChecker({ ...FAST, timeout: 50 }, () => [ep], changes.cb);
    try {
      hc.start();
      assert.equal(await changes.next(), `${ep.key} unhealthy`);
    } finally {
      hc.stop();
      await ep.pool.destroy();
      await up.close();
    }
  });

  test('endpoints() is read each round: a new endpoint gets checked', async () => {
    const a = new Upstream();
    const b = new Upstream();
    await a.listen();
    await b.listen();
    b.status = 500;
    const epA = endpointFor(a.port);
    const epB = endpointFor(b.port);
    const list = [epA];
    const changes = new Changes();
    const hc = new HealthChecker(FAST, () => list, changes.cb);
    try {
      hc.start();
      await a.probes(2);
      assert.equal(b.seen.length, 0);
      list.push(epB);
      assert.equal(await changes.next(), `${epB.key} unhealthy`);
      assert.equal(epA.healthy, true);
    } finally {
      hc.stop();
      await epA.pool.destroy();
      await epB.pool.destroy();
      await a.close();
      await b.close();
    }
  });
});

describe('HealthChecker thresholds (virtual time, stub probe)', () => {
  const CFG: HealthCheckConfig = { path: '/hc', interval: 1000, timeout: 100, unhealthyThreshold: 3, healthyThreshold: 2 };
  const pool = new Pool('http://127.0.0.1:9');
  const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

  async function run(answers: (boolean | 'throw' | 'reject')[], cfg = CFG) {
    mock.timers.enable({ apis: ['setTimeout'] });
    const ep = new Endpoint({ host: '127.0.0.1', port: 1 }, pool);
    const changes = new Changes();
    const calls: string[] = [];
    let i = 0;
    const probe: HealthProbe = (e, path, timeout) => {
      calls.push(`${e.key} ${path} ${timeout}`);
      const a = answers[i++];
      if (a === 'throw') throw new Error('sync');
      if (a === 'reject') return Promise.reject(new Error('async'));
      return Promise.resolve(a === true);
    };
    const hc = new HealthChecker(cfg, () => [ep], changes.cb, probe);
    const trace: boolean[] = [];
    try {
      hc.start(); // first round at once
      await flush();
      trace.push(ep.healthy);
      while (i < answers.length) {
        mock.timers.tick(cfg.interval * 1.1); // the most the jitter allows
        await flush();
        trace.push(ep.healthy);
      }
    } finally {
      hc.stop();
      mock.timers.reset();
    }
    return { trace, log: changes.log, calls };
  }

  test('unhealthyThreshold failures in a row, then healthyThreshold passes', async () => {
    const r = await run([false, false, true, false, false, false, true, true]);
    assert.deepEqual(r.trace, [true, true, true, true, true, false, false, true]);
    assert.deepEqual(r.log, ['127.0.0.1:1 unhealthy', '127.0.0.1:1 healthy']);
    assert.equal(r.calls[0], '127.0.0.1:1 /hc 100');
  });

  test('a probe that throws or rejects is a failure', async () => {
    const r = await run(['throw', 'reject', false]);
    assert.deepEqual(r.log, ['127.0.0.1:1 unhealthy']);
  });

  test('a probe still out is not doubled up, and stop() ends the rounds', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const ep = new Endpoint({ host: '127.0.0.1', port: 1 }, pool);
    let calls = 0;
    let release: (v: boolean) => void = () => {};
    const hc = new HealthChecker(
      CFG,
      () => [ep],
      () => {},
      () => {
        calls++;
        return new Promise<boolean>((r) => (release = r));
      },
    );
    try {
      hc.start();
      for (let k = 0; k < 5; k++) mock.timers.tick(1100);
      assert.equal(calls, 1);
      release(true);
      await flush();
      mock.timers.tick(1100);
      assert.equal(calls, 2);
      hc.stop();
      release(false);
      for (let k = 0; k < 5; k++) mock.timers.tick(1100);
      await flush();
      assert.equal(calls, 2);
      assert.equal(ep.healthy, true);
    } finally {
      hc.stop();
      mock.timers.reset();
    }
  });

  test('cleanup', async () => {
    await pool.close();
  });
});
