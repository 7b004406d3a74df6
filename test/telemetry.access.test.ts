// The access log's own serialiser (src/telemetry/access.ts) against the line pino wrote for the
// same record with the options outrigger used before it (base null, isoTime, level label,
// messageKey msg): byte for byte, for any strings (quotes, control characters, lone surrogates)
// and any optional field left out. And its cached timestamp against Date#toISOString.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import pino from 'pino';
import { AccessLog, isoNow, type AccessRecord } from '../src/telemetry/access.js';
import { createLoggers } from '../src/telemetry/log.js';

/** Collects what is written, line by line, synchronously. */
class Lines extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(chunk.toString());
    cb();
  }
}

const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('/a"b', 'x\\y', 'tab\there', 'nl\n', '\u2028', '\ud800', 'é/ü'),
);
const record: fc.Arbitrary<AccessRecord> = fc.record({
  direction: fc.constantFrom('inbound', 'outbound'),
  method: fc.option(text, { nil: undefined }),
  path: text,
  host: fc.option(text, { nil: undefined }),
  status: fc.integer({ min: 100, max: 599 }),
  duration_ms: fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: 10_000_000 }).map((n) => n / 1e3),
  ),
  bytes_in: fc.nat(),
  bytes_out: fc.nat(),
  route: text,
  cluster: text,
  upstream: fc.option(text, { nil: null }),
  attempts: fc.nat({ max: 10 }),
  request_id: fc.option(text, { nil: null }),
  trace_id: fc.option(text, { nil: null }),
  tunnel: fc.option(fc.constantFrom('websocket', 'connect'), { nil: undefined }),
  error: fc.option(text, { nil: undefined }),
});

const SURROGATE = /[\ud800-\udfff]/;

/** The line pino wrote for a record, with its time replaced by the given one. */
function pinoLine(r: AccessRecord, time: string): string {
  const out = new Lines();
  const logger = pino(
    {
      level: 'info',
      base: null,
      messageKey: 'msg',
      timestamp: () => `,"time":"${time}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    out,
  );
  logger.info({ ...r }, 'access');
  return out.lines.join('');
}

test('access lines are what pino wrote for the same record', () => {
  fc.assert(
    fc.property(record, (r) => {
      const out = new Lines();
      const log = pino({ level: 'info' }, new Lines());
      new AccessLog(log, out).write(r);
      assert.equal(out.lines.length, 1);
      const line = out.lines[0] as string;
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (Object.values(r).some((v) => typeof v === 'string' && SURROGATE.test(v))) {
        // pino writes a lone surrogate raw (it reaches the file as U+FFFD); ours escapes it as
        // JSON.stringify does, so the line says exactly what the record held
        const expected: Record<string, unknown> = { level: 'info', time: parsed.time };
        for (const [k, v] of Object.entries(r)) if (v !== undefined) expected[k] = v;
        expected.msg = 'access';
        assert.deepEqual(parsed, expected);
        assert.deepEqual(Object.keys(parsed), Object.keys(expected));
        return;
      }
      assert.equal(line, pinoLine(r, parsed.time as string));
    }),
    { numRuns: 500 },
  );
});

test('access lines follow the log level: written at info and debug, not at warn', () => {
  const r: AccessRecord = {
    direction: 'inbound',
    method: 'GET',
    path: '/',
    host: 'h',
    status: 200,
    duration_ms: 1.5,
    bytes_in: 0,
    bytes_out: 2,
    route: 'r',
    cluster: 'c',
    upstream: '127.0.0.1:1',
    attempts: 1,
    request_id: 'id',
    trace_id: 't',
    error: undefined,
  };
  for (const [level, expected] of [
    ['debug', 1],
    ['info', 1],
    ['warn', 0],
    ['silent', 0],
  ] as const) {
    const out = new Lines();
    createLoggers(level, out).access.write(r);
    assert.equal(out.lines.length, expected, level);
  }
  // the operational log and the access log share one destination, in order
  const out = new Lines();
  const { log, access } = createLoggers('info', out);
  log.info('before');
  access.write(r);
  log.info('after');
  assert.deepEqual(
    out.lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
    ['before', 'access', 'after'],
  );
});

test('isoNow is Date#toISOString, whatever the millisecond and across seconds', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4_102_444_800_000 }), (now) => {
      assert.equal(isoNow(now), new Date(now).toISOString());
      assert.equal(isoNow(now + 1), new Date(now + 1).toISOString());
      assert.equal(isoNow(now + 999), new Date(now + 999).toISOString());
    }),
    { numRuns: 2000 },
  );
});
