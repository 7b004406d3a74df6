// TokenBucket with an injected clock: burst first, then the sustained rate.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from '../src/resilience/ratelimit.js';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function takeAll(b: TokenBucket, max = 1_000_000): number {
  let n = 0;
  while (n < max && b.tryTake()) n++;
  return n;
}

describe('TokenBucket', () => {
  it('allows the burst at once, then refuses', () => {
    const c = clock();
    const b = new TokenBucket(10, 5, c.now);
    assert.equal(takeAll(b), 5);
    assert.equal(b.tryTake(), false);
  });

  it('refills at the rate, capped at the burst', () => {
    const c = clock();
    const b = new TokenBucket(10, 5, c.now);
    takeAll(b);
    c.advance(99);
    assert.equal(b.tryTake(), false);
    c.advance(1);
    assert.equal(b.tryTake(), true);
    assert.equal(b.tryTake(), false);
    c.advance(10_000);
    assert.equal(takeAll(b), 5);
  });

  it('honours the rate over simulated seconds of constant pressure', () => {
    const c = clock();
    const b = new TokenBucket(100, 20, c.now);
    let allowed = takeAll(b);
    for (let ms = 0; ms < 10_000; ms++) {
      c.advance(1);
      while (b.tryTake()) allowed++;
    }
    // the initial burst plus 100/s for 10 s, exactly (float error must not lose a token)
    assert.equal(allowed, 20 + 1000);
  });

  it('works with fractional rates', () => {
    const c = clock();
    const b = new TokenBucket(0.5, 1, c.now);
    assert.equal(b.tryTake(), true);
    c.advance(1999);
    assert.equal(b.tryTake(), false);
    c.advance(1);
    assert.equal(b.tryTake(), true);
  });

  it('raises a burst below 1 to 1', () => {
    const c = clock();
    const b = new TokenBucket(0.5, 0.5, c.now);
    assert.equal(b.tryTake(), true);
    assert.equal(b.tryTake(), false);
  });

  it('a clock going backwards mints no tokens', () => {
    const c = clock();
    const b = new TokenBucket(10, 1, c.now);
    assert.equal(b.tryTake(), true);
    c.advance(-5000);
    assert.equal(b.tryTake(), false);
    c.advance(5000);
    assert.equal(b.tryTake(), false);
    c.advance(100);
    assert.equal(b.tryTake(), true);
  });

  it('waitMs says when the next token arrives', () => {
    const c = clock();
    const b = new TokenBucket(10, 1, c.now);
    assert.equal(b.waitMs(), 0);
    b.tryTake();
    assert.ok(Math.abs(b.waitMs() - 100) < 1e-6);
    c.advance(40);
    assert.ok(Math.abs(b.waitMs() - 60) < 1e-6);
  });

  it('rejects a non-positive rate', () => {
    assert.throws(() => new TokenBucket(0, 1), RangeError);
    assert.throws(() => new TokenBucket(-1, 1), RangeError);
  });

  it('uses a monotonic clock by default', () => {
    const b = new TokenBucket(1, 2);
    assert.equal(b.tryTake(), true);
    assert.equal(b.tryTake(), true);
    assert.equal(b.tryTake(), false);
  });
});
