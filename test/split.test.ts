// WeightedPicker: exact weighted splits from a precomputed smooth schedule.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SCHEDULE, WeightedPicker } from '../src/router/split.js';

function tally<T>(p: WeightedPicker<T>, n: number): Map<T, number> {
  const m = new Map<T, number>();
  for (let i = 0; i < n; i++) {
    const v = p.pick();
    m.set(v, (m.get(v) ?? 0) + 1);
  }
  return m;
}

const w = (pairs: [string, number][]): { value: string; weight: number }[] => pairs.map(([value, weight]) => ({ value, weight }));

describe('WeightedPicker', () => {
  it('90/10 over 10,000 picks is exact', () => {
    const c = tally(
      new WeightedPicker(
        w([
          ['v1', 90],
          ['v2', 10],
        ]),
      ),
      10_000,
    );
    assert.equal(c.get('v1'), 9000);
    assert.equal(c.get('v2'), 1000);
  });

  it('interleaves: 90/10 never sends two v2 requests in a row, exactly 1 in every 10', () => {
    const p = new WeightedPicker(
      w([
        ['v1', 90],
        ['v2', 10],
      ]),
    );
    assert.equal(p.cycle, 10);
    const seq = Array.from({ length: 100 }, () => p.pick());
    for (let i = 0; i + 10 <= seq.length; i += 10) {
      assert.equal(seq.slice(i, i + 10).filter((v) => v === 'v2').length, 1);
    }
    for (let i = 1; i < seq.length; i++) assert.ok(!(seq[i] === 'v2' && seq[i - 1] === 'v2'));
  });

  it('1/1/1 alternates a, b, c', () => {
    const p = new WeightedPicker(
      w([
        ['a', 1],
        ['b', 1],
        ['c', 1],
      ]),
    );
    assert.deepEqual(
      Array.from({ length: 6 }, () => p.pick()),
      ['a', 'b', 'c', 'a', 'b', 'c'],
    );
    const c = tally(p, 9999);
    for (const v of ['a', 'b', 'c']) assert.equal(c.get(v), 3333);
  });

  it('99/1 is exact', () => {
    const c = tally(
      new WeightedPicker(
        w([
          ['main', 99],
          ['canary', 1],
        ]),
      ),
      10_000,
    );
    assert.equal(c.get('main'), 9900);
    assert.equal(c.get('canary'), 100);
  });

  it('33/33/34 is exact', () => {
    const c = tally(
      new WeightedPicker(
        w([
          ['a', 33],
          ['b', 33],
          ['c', 34],
        ]),
      ),
      10_000,
    );
    assert.deepEqual([c.get('a'), c.get('b'), c.get('c')], [3300, 3300, 3400]);
  });

  it('reduces by the gcd (50/50 is a cycle of 2)', () => {
    const p = new WeightedPicker(
      w([
        ['a', 50],
        ['b', 50],
      ]),
    );
    assert.equal(p.cycle, 2);
    assert.deepEqual([p.pick(), p.pick(), p.pick()], ['a', 'b', 'a']);
  });

  it('a single item always wins', () => {
    const p = new WeightedPicker(w([['only', 7]]));
    for (let i = 0; i < 10; i++) assert.equal(p.pick(), 'only');
  });

  it('scales huge weight sums down to at most MAX_SCHEDULE slots, ratios kept closely', () => {
    const p = new WeightedPicker(
      w([
        ['a', 7919],
        ['b', 7907],
        ['c', 1],
      ]),
    );
    assert.ok(p.cycle <= MAX_SCHEDULE, `${p.cycle}`);
    const c = tally(p, p.cycle);
    const total = 7919 + 7907 + 1;
    assert.ok(Math.abs(c.get('a')! / p.cycle - 7919 / total) < 0.0001);
    assert.ok(Math.abs(c.get('b')! / p.cycle - 7907 / total) < 0.0001);
    assert.ok((c.get('c') ?? 0) >= 1, 'a tiny weight keeps at least one slot');
  });

  it('accepts fractional weights', () => {
    const c = tally(
      new WeightedPicker(
        w([
          ['a', 0.5],
          ['b', 1.5],
        ]),
      ),
      4000,
    );
    assert.equal(c.get('a'), 1000);
    assert.equal(c.get('b'), 3000);
  });

  it('start offsets the schedule', () => {
    const p = new WeightedPicker(
      w([
        ['a', 1],
        ['b', 1],
        ['c', 1],
      ]),
      1,
    );
    assert.deepEqual([p.pick(), p.pick(), p.pick()], ['b', 'c', 'a']);
  });

  it('rejects an empty list and non-positive weights', () => {
    assert.throws(() => new WeightedPicker([]), RangeError);
    assert.throws(
      () =>
        new WeightedPicker(
          w([
            ['a', 0],
            ['b', 1],
          ]),
        ),
      RangeError,
    );
    assert.throws(() => new WeightedPicker(w([['a', -1]])), RangeError);
    assert.throws(() => new WeightedPicker(w([['a', Number.NaN]])), RangeError);
    assert.throws(() => new WeightedPicker(w([['a', Infinity]])), RangeError);
  });
});
