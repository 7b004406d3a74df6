// Backoff bounds (stubbed random) and the retry budget under a simulated storm (injected clock).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../src/resilience/backoff.js';
import { RetryBudget } from '../src/resilience/budget.js';

describe('backoffDelay', () => {
  const justUnderOne = () => 0.999999;
  test('full jitter: 0 with random() = 0', () => {
    for (let i = 0; i < 8; i++)
      assert.equal(
        backoffDelay(i, 25, 250, () => 0),
        0,
      );
  });
  test('ceiling doubles from base and is capped at max', () => {
    const ceil = (i: number) => backoffDelay(i, 25, 250, () => 1);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 50].map(ceil), [25, 50, 100, 200, 250, 250, 250]);
  });
  test('stays below the ceiling for random() in [0, 1)', () => {
    for (let i = 0; i < 6; i++) {
      const d = backoffDelay(i, 25, 250, justUnderOne);
      assert.ok(d < Math.min(250, 25 * 2 ** i) && d > 0, `${i}: ${d}`);
    }
  });
  test('scales random() linearly', () => {
    assert.equal(
      backoffDelay(2, 10, 1000, () => 0.5),
      20,
    );
  });
  test('huge and negative indexes stay finite', () => {
    assert.equal(
      backoffDelay(5000, 25, 250, () => 1),
      250,
    );
    assert.equal(
      backoffDelay(-3, 25, 250, () => 1),
      25,
    );
  });
  test('default random is within bounds', () => {
    for (let k = 0; k < 100; k++) {
      const d = backoffDelay(3, 25, 250);
      assert.ok(d >= 0 && d < 200);
    }
  });
});

describe('RetryBudget', () => {
  test('a quiet cluster may still retry minPerSecond in each second, never saved up', () => {
    let now = 0;
    const b = new RetryBudget({ ratio: 0.2, minPerSecond: 3 }, () => now);
    let granted = 0;
    while (b.tryRetry()) granted++;
    assert.equal(granted, 3);
    assert.equal(b.refused, 1);
    // ratio adds on top of the floor: 5 requests × 0.2 = 1 more
    for (let i = 0; i < 5; i++) b.onRequest();
    assert.equal(b.tryRetry(), true);
    assert.equal(b.tryRetry(), false);
    assert.equal(b.refused, 2);
    // the next second brings the floor back, but only one second's worth
    now = 1_000;
    granted = 0;
    while (b.tryRetry()) granted++;
    assert.equal(granted, 3);
    // a quiet spell does not bank floor retries
    now = 9_000;
    granted = 0;
    while (b.tryRetry()) granted++;
    assert.equal(granted, 3);
  });

  test('floor retries are not charged to the ratio', () => {
    const now = 0;
    const b = new RetryBudget({ ratio: 0.5, minPerSecond: 2 }, () => now);
    for (let i = 0; i < 4; i++) b.onRequest();
    let granted = 0;
    while (b.tryRetry()) granted++;
    assert.equal(granted, 2 + 2);
    assert.equal(b.available, 0);
  });

  test('a storm shorter than the window stays within (1 + ratio) × requests + minPerSecond × ⌈seconds + 1⌉', () => {
    let now = 250;
    const ratio = 0.2;
    const minPerSecond = 10;
    const b = new RetryBudget({ ratio, minPerSecond }, () => now);
    let requests = 0;
    let attempts = 0;
    for (; now < 2_250; now += 5) {
      b.onRequest();
      requests++;
      attempts++;
      for (let r = 0; r < 3 && b.tryRetry(); r++) attempts++;
    }
    const bound = (1 + ratio) * requests + minPerSecond * Math.ceil(2 + 1);
    assert.ok(attempts <= bound, `${attempts} attempts > ${bound}`);
  });

  test('ratio only, no floor', () => {
    const now = 0;
    const b = new RetryBudget({ ratio: 0.5, minPerSecond: 0 }, () => now);
    assert.equal(b.tryRetry(), false);
    b.onRequest();
    assert.equal(b.tryRetry(), false, '0.5 of a retry is not a retry');
    b.onRequest();
    assert.equal(b.tryRetry(), true);
    assert.equal(b.tryRetry(), false);
  });

  test('old buckets expire one second at a time', () => {
    let now = 0;
    const b = new RetryBudget({ ratio: 1, minPerSecond: 0 }, () => now);
    for (let i = 0; i < 10; i++) b.onRequest(); // at t=0
    now = 5_000;
    for (let i = 0; i < 10; i++) assert.equal(b.tryRetry(), true); // at t=5s
    assert.equal(b.tryRetry(), false);
    now = 9_999; // t=0 bucket still inside the window
    assert.equal(b.tryRetry(), false);
    now = 10_000; // requests of t=0 left the window, retries of t=5 are still counted
    assert.equal(b.available, 0);
    b.onRequest();
    assert.equal(b.tryRetry(), false, '1 request cannot pay for 10 retries still in the window');
    now = 15_000; // the retries left too
    assert.equal(b.tryRetry(), true);
  });

  test('a retry storm stays within (1 + ratio) × requests + minPerSecond × seconds', () => {
    let now = 0;
    const ratio = 0.2;
    const minPerSecond = 10;
    const b = new RetryBudget({ ratio, minPerSecond }, () => now);
    const seconds = 120;
    const rps = 500;
    const maxRetries = 3;
    let requests = 0;
    let attempts = 0;
    for (let ms = 0; ms < seconds * 1000; ms += 1000 / rps) {
      now = ms;
      // every attempt fails, every request wants all its retries
      b.onRequest();
      requests++;
      attempts++;
      for (let r = 0; r < maxRetries && b.tryRetry(); r++) attempts++;
    }
    const bound = (1 + ratio) * requests + minPerSecond * seconds;
    assert.ok(attempts <= bound, `${attempts} attempts > ${bound}`);
    // and the budget is not stingier than it has to be: it grants the ratio at least
    const retries = attempts - requests;
    assert.ok(retries >= ratio * requests, `${retries} retries < ${ratio * requests}`);
    assert.ok(b.refused > 0);
  });

  test('a long quiet spell clears the window in one step', () => {
    let now = 0;
    const b = new RetryBudget({ ratio: 1, minPerSecond: 1 }, () => now);
    for (let i = 0; i < 10; i++) b.onRequest();
    while (b.tryRetry());
    now = 3_600_000;
    let granted = 0;
    while (b.tryRetry()) granted++;
    assert.equal(granted, 1, "only this second's floor: the old requests are gone");
  });

  test('default clock works', () => {
    const b = new RetryBudget({ ratio: 0.2, minPerSecond: 10 });
    b.onRequest();
    assert.equal(b.tryRetry(), true);
  });
});
