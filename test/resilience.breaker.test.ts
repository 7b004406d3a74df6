// Circuit breaker transitions, on virtual time (mock.timers drives opossum's reset timer and
// bucket rotation). No timing assertions: only states and event order.
import { test, describe, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterBreaker, breakerStateValue, type BreakerState } from '../src/resilience/breaker.js';
import type { CircuitBreakerConfig } from '../src/config/types.js';

/** Lets opossum's promise callbacks (where it decides transitions) run. */
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

const CFG: CircuitBreakerConfig = { errorThresholdPercentage: 50, volumeThreshold: 4, window: 10_000, resetTimeout: 1_000 };

describe('ClusterBreaker', () => {
  let states: BreakerState[];
  let b: ClusterBreaker;
  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    states = [];
    b = new ClusterBreaker('c', CFG, (s) => states.push(s));
  });
  afterEach(() => {
    b.shutdown();
    mock.timers.reset();
  });

  async function outcomes(...failures: boolean[]): Promise<void> {
    for (const f of failures) {
      const t = b.admit();
      assert.ok(t, 'admitted');
      t.done(f);
      await flush();
    }
  }

  async function openIt(): Promise<void> {
    await outcomes(true, true, true, true);
    assert.equal(b.state, 'open');
  }

  test('stays closed below volumeThreshold, opens at it', async () => {
    await outcomes(true, true, true);
    assert.equal(b.state, 'closed');
    assert.deepEqual(states, []);
    await outcomes(true);
    assert.equal(b.state, 'open');
    assert.deepEqual(states, ['open']);
  });

  test('opens at the threshold percentage, not below it', async () => {
    await outcomes(false, false, false, true, false, true); // 2 of 6 = 33 %
    assert.equal(b.state, 'closed');
    await outcomes(true); // 3 of 7 = 43 %
    assert.equal(b.state, 'closed');
    await outcomes(true); // 4 of 8 = 50 %
    assert.equal(b.state, 'open');
  });

  test('4xx-style successes never open it', async () => {
    await outcomes(...Array<boolean>(50).fill(false));
    assert.equal(b.state, 'closed');
  });

  test('failures older than the window are forgotten', async () => {
    await outcomes(true, true, true);
    mock.timers.tick(11_000);
    await outcomes(true);
    assert.equal(b.state, 'closed', 'only 1 attempt in the window: below volumeThreshold');
    await outcomes(true, true, true);
    assert.equal(b.state, 'open');
  });

  test('open rejects synchronously, then half-open admits exactly one probe', async () => {
    await openIt();
    for (let i = 0; i < 3; i++) assert.equal(b.admit(), null);
    mock.timers.tick(999);
    assert.equal(b.admit(), null);
    mock.timers.tick(1);
    assert.equal(b.state, 'half-open');
    const probe = b.admit();
    assert.ok(probe);
    assert.equal(b.admit(), null, 'second attempt while the probe is out');
    assert.equal(b.admit(), null);
    probe.done(false);
    await flush();
    assert.equal(b.state, 'closed');
    assert.deepEqual(states, ['open', 'half-open', 'closed']);
    assert.ok(b.admit());
  });

  test('a closed circuit starts a fresh window', async () => {
    await openIt();
    mock.timers.tick(1_000);
    b.admit()!.done(false);
    await flush();
    assert.equal(b.state, 'closed');
    await outcomes(true, true, true);
    assert.equal(b.state, 'closed', 'the failures that opened it no longer count');
  });

  test('a failed probe opens it again, and the cycle repeats', async () => {
    await openIt();
    mock.timers.tick(1_000);
    b.admit()!.done(true);
    await flush();
    assert.equal(b.state, 'open');
    assert.equal(b.admit(), null);
    mock.timers.tick(1_000);
    assert.equal(b.state, 'half-open');
    b.admit()!.done(false);
    await flush();
    assert.deepEqual(states, ['open', 'half-open', 'open', 'half-open', 'closed']);
  });

  test('only the probe decides: stragglers from before opening are ignored', async () => {
    const straggler = b.admit()!;
    await openIt();
    mock.timers.tick(1_000);
    straggler.done(false); // would close a half-open opossum breaker
    await flush();
    assert.equal(b.state, 'half-open');
    const probe = b.admit()!;
    straggler.done(true); // would reopen it
    await flush();
    assert.equal(b.state, 'half-open');
    probe.done(false);
    await flush();
    assert.equal(b.state, 'closed');
    // and after closing, stragglers of the earlier closed period still count for nothing
    for (let i = 0; i < 10; i++) straggler.done(true);
    await flush();
    assert.equal(b.state, 'closed');
  });

  test('a probe reported twice counts once', async () => {
    await openIt();
    mock.timers.tick(1_000);
    const probe = b.admit()!;
    probe.done(false);
    probe.done(true);
    await flush();
    assert.equal(b.state, 'closed');
  });

  test('a cancelled probe puts the circuit back to open', async () => {
    await openIt();
    mock.timers.tick(1_000);
    b.admit()!.cancel();
    await flush();
    assert.equal(b.state, 'open');
    assert.equal(b.admit(), null);
    mock.timers.tick(1_000);
    assert.equal(b.state, 'half-open');
    assert.ok(b.admit());
  });

  test('cancelled attempts count neither way while closed', async () => {
    for (let i = 0; i < 10; i++) b.admit()!.cancel();
    await outcomes(true, true, true);
    assert.equal(b.state, 'closed', 'cancelled attempts do not reach volumeThreshold');
  });

  test('token-less record(): counts while closed, decides the probe while half-open', async () => {
    for (let i = 0; i < 4; i++) {
      assert.ok(b.admit());
      b.record(true);
      await flush();
    }
    assert.equal(b.state, 'open');
    b.record(false); // ignored while open
    await flush();
    assert.equal(b.state, 'open');
    mock.timers.tick(1_000);
    assert.ok(b.admit());
    assert.equal(b.admit(), null);
    b.record(false);
    await flush();
    assert.equal(b.state, 'closed');
  });

  test('after shutdown every attempt is admitted and nothing changes', async () => {
    await openIt();
    b.shutdown();
    const t = b.admit();
    assert.ok(t);
    t.done(true);
    b.record(true);
    await flush();
    mock.timers.tick(5_000);
    assert.deepEqual(states, ['open']);
  });

  test('gauge values', () => {
    assert.equal(breakerStateValue('closed'), 0);
    assert.equal(breakerStateValue('half-open'), 1);
    assert.equal(breakerStateValue('open'), 2);
  });
});
