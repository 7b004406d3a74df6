// Property-based tests (fast-check) over header handling at the boundary: the edge checks
// (checkRequestHead, checkResponseHead) and the forwarding transforms (upstreamRequestHeaders,
// clientResponseHeaders). No input crashes them; hop-by-hop headers, and whatever Connection
// names, are never forwarded; an accepted request head has unambiguous framing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkRequestHead, checkResponseHead } from '../src/security/edge.js';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardingInfo } from '../src/request/headers.js';

const HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
];
const OTHER = [
  'host',
  'content-length',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-request-id',
  'traceparent',
  'x-custom',
  'authorization',
  'cookie',
  'content_length',
  'transfer_encoding',
  'x_forwarded_for',
  'expect',
];

/** A header name: a known one in random case, sometimes with `_` for `-`, or arbitrary text. */
const name = fc.oneof(
  fc
    .tuple(fc.constantFrom(...HOP, ...OTHER), fc.array(fc.boolean(), { maxLength: 20 }))
    .map(([n, up]) => [...n].map((c, i) => (up[i] === true ? c.toUpperCase() : c)).join('')),
  fc.string({ minLength: 1, maxLength: 12 }),
);
/** A value: tokens that matter to framing and Connection, lists of them, or arbitrary text. */
const value = fc.oneof(
  fc.constantFrom(
    'chunked',
    'CHUNKED',
    'gzip, chunked',
    'identity',
    '5',
    '+5',
    '5, 5',
    '0',
    '',
    'close',
    'keep-alive',
    'upgrade',
    'h2c',
    'websocket',
  ),
  fc.array(fc.constantFrom(...HOP, ...OTHER, 'x-custom', 'close', ' ', ''), { maxLength: 4 }).map((a) => a.join(', ')),
  fc.string({ maxLength: 30 }),
);
const rawHeaders = fc.array(fc.tuple(name, value), { maxLength: 24 }).map((pairs) => pairs.flat());

function info(upgrade = false): ForwardingInfo {
  return { clientIp: '10.0.0.9', proto: 'http', hostOverride: null, upgrade, via: '', requestId: '', traceId: '', loop: false };
}

/** Lower-cased tokens of every Connection header in a raw list. */
function connectionNamed(raw: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() !== 'connection') continue;
    for (const t of (raw[i + 1] as string).split(',')) {
      const tok = t.trim().toLowerCase();
      if (tok !== '' && tok !== 'close' && tok !== 'keep-alive') out.add(tok);
    }
  }
  return out;
}

const RUNS = { numRuns: 2000 };

test('upstreamRequestHeaders: never throws, never forwards hop-by-hop or Connection-named headers', () => {
  fc.assert(
    fc.property(rawHeaders, fc.boolean(), (raw, upgrade) => {
      const inf = info(upgrade);
      const out = upstreamRequestHeaders(raw, inf, null);
      assert.equal(out.length % 2, 0);
      const named = connectionNamed(raw);
      const names = out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      for (let i = 0; i < names.length; i++) {
        const n = names[i] as string;
        if (upgrade && n === 'upgrade') continue;
        if (upgrade && n === 'connection') {
          assert.equal(out[i * 2 + 1], 'upgrade');
          continue;
        }
        assert.equal(HOP.includes(n), false, `hop-by-hop ${n} forwarded`);
        if (n !== 'x-forwarded-for' && n !== 'x-forwarded-proto' && n !== 'x-request-id' && n !== 'traceparent') {
          assert.equal(named.has(n), false, `${n} is named by Connection yet forwarded`);
        }
      }
      // exactly one of each forwarding header, and a valid trace id
      for (const h of ['x-forwarded-for', 'x-forwarded-proto', 'x-request-id', 'traceparent']) {
        assert.equal(names.filter((n) => n === h).length, 1, h);
      }
      assert.ok(out[names.indexOf('x-forwarded-for') * 2 + 1]?.endsWith('10.0.0.9'));
      assert.match(inf.traceId, /^[0-9a-f]{32}$/);
    }),
    RUNS,
  );
});

test('clientResponseHeaders: never throws, never relays hop-by-hop or Connection-named headers', () => {
  fc.assert(
    fc.property(rawHeaders, (raw) => {
      const out = clientResponseHeaders(
        raw.map((s) => Buffer.from(s, 'latin1')),
        null,
      );
      assert.equal(out.length % 2, 0);
      const named = connectionNamed(raw);
      for (let i = 0; i < out.length; i += 2) {
        const n = (out[i] as string).toLowerCase();
        assert.equal(HOP.includes(n), false, `hop-by-hop ${n} relayed`);
        assert.equal(named.has(n), false, `${n} is named by Connection yet relayed`);
      }
    }),
    RUNS,
  );
});

const method = fc.constantFrom('GET', 'POST', 'PUT', 'CONNECT', 'OPTIONS', 'HEAD');
const url = fc.oneof(
  fc.constantFrom('/', '/a?b', '*', 'http://svc/x', 'http://SVC:80/', 'https://svc/', 'svc:443', 'http://u@svc/', '[::1]:80'),
  fc.string({ maxLength: 40 }),
);

test('checkRequestHead: never throws; what it accepts has unambiguous framing and no `_` aliases', () => {
  fc.assert(
    fc.property(rawHeaders, method, url, fc.constantFrom(0, 1, 2), fc.constantFrom(0, 1, 2), (raw, m, u, minor, major) => {
      const v = checkRequestHead(raw, m, u, minor, { maxHeaders: 16, maxUrlLength: 64 }, major);
      if (!v.ok) {
        assert.ok([400, 414, 431].includes(v.status));
        return;
      }
      assert.equal(major, 1);
      assert.ok(raw.length <= 32 && u.length <= 64);
      let cl = 0;
      let te = 0;
      let hosts = 0;
      for (let i = 0; i < raw.length; i += 2) {
        const n = (raw[i] as string).toLowerCase();
        const val = raw[i + 1] as string;
        assert.ok(!['content_length', 'transfer_encoding', 'x_forwarded_for'].includes(n), `alias ${n} accepted`);
        if (n === 'content-length') {
          cl++;
          assert.match(val, /^\d+$/);
        }
        if (n === 'transfer-encoding') {
          te++;
          assert.equal(val.toLowerCase(), 'chunked');
        }
        if (n === 'host') hosts++;
        if (n === 'connection') {
          for (const t of val.split(',')) assert.ok(!['content-length', 'transfer-encoding', 'host'].includes(t.trim().toLowerCase()));
        }
      }
      assert.ok(cl <= 1 && te <= 1 && !(cl === 1 && te === 1), 'framing is unambiguous');
      assert.ok(hosts <= 1);
      // and what is then forwarded carries no Transfer-Encoding of the client's
      const out = upstreamRequestHeaders(raw, info(), null);
      for (let i = 0; i < out.length; i += 2) assert.notEqual((out[i] as string).toLowerCase(), 'transfer-encoding');
    }),
    RUNS,
  );
});

test('checkResponseHead: never throws on strings or bytes; what it accepts has at most one CL, TE only "chunked", never both', () => {
  fc.assert(
    fc.property(rawHeaders, fc.boolean(), (raw, asBytes) => {
      const list = asBytes ? raw.map((s) => Buffer.from(s, 'latin1')) : raw;
      const r = checkResponseHead(list);
      if (r !== null) {
        assert.equal(typeof r, 'string');
        return;
      }
      const cls = new Set<string>();
      let cl = 0;
      let te = 0;
      for (let i = 0; i < raw.length; i += 2) {
        const n = (raw[i] as string).toLowerCase();
        const val = (raw[i + 1] as string).trim();
        assert.ok(n !== 'content_length' && n !== 'transfer_encoding');
        if (n === 'content-length') {
          cl++;
          cls.add(val);
        }
        if (n === 'transfer-encoding') {
          te++;
          assert.equal(val.toLowerCase(), 'chunked');
        }
      }
      assert.ok(cl <= 1 && te <= 1 && !(cl > 0 && te > 0));
    }),
    RUNS,
  );
});
