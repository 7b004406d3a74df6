// Credential headers and key material never reach an operational log line: the logger the proxy
// runs (telemetry/log.ts) with the one list of redaction paths (security/redact.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLoggers } from '../src/telemetry/log.js';
import { REDACTED, SECRET_HEADERS } from '../src/security/redact.js';

function capture(): { sink: Writable; lines: () => string } {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return { sink, lines: () => out };
}

test('the credential headers are the four that carry credentials', () => {
  assert.deepEqual([...SECRET_HEADERS].sort(), ['authorization', 'cookie', 'proxy-authorization', 'set-cookie']);
});

test('the proxy logger censors credential headers at the top level and one level down', () => {
  const { sink, lines } = capture();
  const { log } = createLoggers('info', sink as unknown as Parameters<typeof createLoggers>[1]);
  log.info({
    req: { headers: { authorization: 'Bearer s3cret-1', 'proxy-authorization': 'Basic s3cret-2', host: 'svc' } },
    res: { headers: { 'set-cookie': ['sid=s3cret-3'] } },
    headers: { cookie: 's3cret-4' },
  });
  const out = lines();
  assert.ok(!out.includes('s3cret'), out);
  assert.ok(out.includes('"host":"svc"'));
  assert.ok(out.includes(`"authorization":"${REDACTED}"`), out);
});

test('the proxy logger censors key material', () => {
  const { sink, lines } = capture();
  const { log } = createLoggers('info', sink as unknown as Parameters<typeof createLoggers>[1]);
  log.warn({ tls: { key: '-----BEGIN PRIVATE KEY----- s3cret', passphrase: 's3cret-p', cert: 'c' }, key: 's3cret-k' }, 'tls');
  assert.ok(!lines().includes('s3cret'), lines());
});
