// Outlier detection (consecutive errors) on virtual time.
import { test, describe, beforeEach, afterEach, after, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from 'undici';
import { Endpoint } from '../src/cluster/endpoint.js';
import { OutlierDetector, MAX_EJECTION_TIME } from '../src/cluster/health/outlier.js';
import type { OutlierDetectionConfig } from '../src/config/types.js';

// Pools are never used by the detector; one shared pool that never connects.
const pool = new Pool('http://127.0.0.1:9');
after(() => pool.close());

function endpoints(n: number): Endpoint[] {
  const eps: Endpoint[] = [];
  for (let i = 0; i < n; i++) eps.push(new Endpoint({ host: '127.0.0.1', port: 10000 + i }, pool));
  return eps;
}

const CFG: OutlierDetectionConfig = { consecutiveErrors: 3, ejectionTime: 30_000, maxEjectionPercent: 50 };

describe('OutlierDetector', () => {
  let eps: Endpoint[];
  let events: string[];
  let d: OutlierDetector;
  const make = (cfg: OutlierDetectionConfig = CFG, n = 4) => {
    eps = endpoints(n);
    d = new OutlierDetector(
      cfg,
      () => eps,
      (ep, ejected) => events.push(`${ep.key} ${ejected ? 'out' : 'in'}`),
    );
  };
  const fail = (ep: Endpoint, n: number) => {
    for (let i = 0; i < n; i++) d.onFailure(ep);
  };
  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout'] });
    events = [];
  });
  afterEach(() => {
    d.stop();
    mock.timers.reset();
  });

  test('consecutiveErrors failures in a row eject for ejectionTime', () => {
    make();
    const ep = eps[0]!;
    fail(ep, 2);
    assert.equal(ep.ejected, false);
    assert.equal(ep.consecutiveFailures, 2);
    fail(ep, 1);
    assert.equal(ep.ejected, true);
    assert.equal(ep.available, false);
    assert.equal(ep.ejections, 1);
    assert.deepEqual(events, ['127.0.0.1:10000 out']);
    mock.timers.tick(29_999);
    assert.equal(ep.ejected, true);
    mock.timers.tick(1);
    assert.equal(ep.ejected, false);
    assert.equal(ep.available, true);
    assert.deepEqual(events, ['127.0.0.1:10000 out', '127.0.0.1:10000 in']);
  });

  test('a success breaks the run', () => {
    make();
    const ep = eps[0]!;
    fail(ep, 2);
    d.onSuccess(ep);
    assert.equal(ep.consecutiveFailures, 0);
    fail(ep, 2);
    assert.equal(ep.ejected, false);
    fail(ep, 1);
    assert.equal(ep.ejected, true);
  });

  test('each ejection lasts ejectionTime × ejections', () => {
    make();
    const ep = eps[0]!;
    fail(ep, 3);
    mock.timers.tick(30_000);
    assert.equal(ep.ejected, false);
    fail(ep, 3);
    assert.equal(ep.ejections, 2);
    mock.timers.tick(30_000);
    assert.equal(ep.ejected, true, 'second ejection lasts 60 s');
    mock.timers.tick(30_000);
    assert.equal(ep.ejected, false);
  });

  test('ejection time is capped at Envoy max_ejection_time (300 s)', () => {
    make();
    const ep = eps[0]!;
    ep.ejections = 99;
    fail(ep, 3);
    mock.timers.tick(MAX_EJECTION_TIME - 1);
    assert.equal(ep.ejected, true);
    mock.timers.tick(1);
    assert.equal(ep.ejected, false);
  });

  test('never more than maxEjectionPercent of the cluster', () => {
    make(CFG, 4); // 50 % of 4 = 2
    fail(eps[0]!, 3);
    fail(eps[1]!, 3);
    fail(eps[2]!, 3);
    assert.deepEqual(
      eps.map((e) => e.ejected),
      [true, true, false, false],
    );
    assert.equal(eps[2]!.ejections, 0);
    assert.equal(d.ejectedCount, 2);
    mock.timers.tick(30_000); // both come back
    fail(eps[2]!, 2); // the refused run restarted: a full new run is needed
    assert.equal(eps[2]!.ejected, false);
    fail(eps[2]!, 1);
    assert.equal(eps[2]!.ejected, true);
  });

  test('maxEjectionPercent rounds down: the only endpoint is never ejected', () => {
    make(CFG, 1); // floor(1 × 50 %) = 0
    fail(eps[0]!, 30);
    assert.equal(eps[0]!.ejected, false);
    assert.equal(d.ejectedCount, 0);
    assert.deepEqual(events, []);
    make({ ...CFG, maxEjectionPercent: 100 }, 1); // 100 % of one is one
    fail(eps[0]!, 3);
    assert.equal(eps[0]!.ejected, true);
  });

  test('maxEjectionPercent rounds down: 10 % of two ejects none, 50 % of three ejects one', () => {
    make({ ...CFG, maxEjectionPercent: 10 }, 2);
    fail(eps[0]!, 3);
    fail(eps[1]!, 3);
    assert.deepEqual(
      eps.map((e) => e.ejected),
      [false, false],
    );
    d.stop();
    make(CFG, 3);
    fail(eps[0]!, 3);
    fail(eps[1]!, 3);
    assert.deepEqual(
      eps.map((e) => e.ejected),
      [true, false, false],
    );
  });

  test('failures of an endpoint already ejected are not counted', () => {
    make();
    const ep = eps[0]!;
    fail(ep, 3);
    fail(ep, 10);
    assert.equal(ep.ejections, 1);
    assert.equal(ep.consecutiveFailures, 0);
  });

  test('an endpoint that left the cluster comes back silently', () => {
    make();
    const ep = eps[0]!;
    fail(ep, 3);
    eps = eps.slice(1);
    mock.timers.tick(30_000);
    assert.equal(ep.ejected, false);
    assert.deepEqual(events, ['127.0.0.1:10000 out']);
  });

  test('stop() clears ejection timers and ignores later failures', () => {
    make();
    fail(eps[0]!, 3);
    d.stop();
    mock.timers.tick(60_000);
    assert.equal(eps[0]!.ejected, true, 'left as is: the manager drops its endpoints');
    fail(eps[1]!, 5);
    assert.equal(eps[1]!.ejected, false);
    assert.deepEqual(events, ['127.0.0.1:10000 out']);
  });
});
