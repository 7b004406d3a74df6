// Credential headers never reach a log line: the helper and pino's redact paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { redactHeaders, redactRawHeaders, PINO_REDACT_PATHS, REDACTED, SECRET_HEADERS, isSecretHeader } from '../src/security/redact.js';

test('redactHeaders replaces credential values, keeps the rest, does not mutate', () => {
  const h = { authorization: 'Bearer x', Cookie: 'a=1', 'set-cookie': ['a=1', 'b=2'], host: 'svc', n: 3, gone: undefined };
  const r = redactHeaders(h);
  assert.deepEqual(r, { authorization: REDACTED, Cookie: REDACTED, 'set-cookie': [REDACTED, REDACTED], host: 'svc', n: 3 });
  assert.equal(h.authorization, 'Bearer x');
  assert.deepEqual(SECRET_HEADERS, ['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
  assert.equal(isSecretHeader('Proxy-Authorization'), true);
});

test('redactRawHeaders', () => {
  assert.deepEqual(redactRawHeaders(['Host', 'a', 'Authorization', 's3cret']), ['Host', 'a', 'Authorization', REDACTED]);
});

test('pino with PINO_REDACT_PATHS never prints the secrets', () => {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  const log = pino({ redact: { paths: [...PINO_REDACT_PATHS], censor: REDACTED } }, sink);
  log.info({
    req: { headers: { authorization: 'Bearer s3cret-1', 'proxy-authorization': 'Basic s3cret-2', host: 'svc' } },
    res: { headers: { 'set-cookie': ['sid=s3cret-3'] } },
    headers: { cookie: 's3cret-4' },
  });
  assert.ok(!out.includes('s3cret'), out);
  assert.ok(out.includes('"host":"svc"'));
  assert.ok(out.includes(REDACTED));
});
