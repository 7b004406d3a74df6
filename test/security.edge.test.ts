// The HTTP/1.1 edge: unit checks of checkRequestHead / checkResponseHead, then every raw vector
// of test/smuggling.vectors.ts over a real socket. Requests go to a plain node:http server whose
// handler does what the listener will do (checkRequestHead, then normalizePath); responses come
// from a raw TCP upstream through a real undici Client. Later the same vectors are pointed at the
// running proxy.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Client } from 'undici';
import { checkRequestHead, checkResponseHead, checkResponseHeaders } from '../src/security/edge.js';
import { normalizePath } from '../src/security/normalize.js';
import { REQUEST_VECTORS, RESPONSE_VECTORS, VECTOR_LIMITS } from './smuggling.vectors.js';

const LIMITS = VECTOR_LIMITS;

describe('checkRequestHead (unit)', () => {
  const ok = (raw: string[], method = 'GET', url = '/', minor = 1, major = 1) => checkRequestHead(raw, method, url, minor, LIMITS, major);

  test('origin-form success is a shared object with no authority', () => {
    const a = ok(['Host', 'svc']);
    const b = ok(['host', 'other'], 'POST', '/x');
    assert.deepEqual(a, { ok: true, authority: null, target: null });
    assert.equal(a, b, 'no allocation on the common path');
  });

  test('absolute-form returns authority and origin-form target', () => {
    assert.deepEqual(ok(['Host', 'Svc:8080'], 'GET', 'http://Svc:8080/a?b=1'), {
      ok: true,
      authority: 'svc:8080',
      target: '/a?b=1',
    });
    assert.deepEqual(ok(['Host', 'svc'], 'GET', 'HTTP://svc'), { ok: true, authority: 'svc', target: '/' });
    assert.deepEqual(ok(['Host', 'svc'], 'GET', 'http://svc?x'), { ok: true, authority: 'svc', target: '/?x' });
    assert.deepEqual(ok(['Host', 'svc'], 'GET', 'http://svc:80/'), { ok: true, authority: 'svc:80', target: '/' });
    // RFC 9112 3.2.2: the target's authority wins over a different Host (the listener replaces it)
    assert.deepEqual(ok(['Host', 'other'], 'GET', 'http://svc/x'), { ok: true, authority: 'svc', target: '/x' });
    assert.deepEqual(ok(['Host', '[::1]:8080'], 'GET', 'http://[::1]:8080/'), {
      ok: true,
      authority: '[::1]:8080',
      target: '/',
    });
  });

  test('CONNECT returns its authority-form target', () => {
    assert.deepEqual(ok(['Host', 'db:5432'], 'CONNECT', 'db:5432'), { ok: true, authority: 'db:5432', target: null });
    assert.equal(ok(['Host', 'db'], 'CONNECT', 'db').ok, false);
    assert.equal(ok(['Host', 'db'], 'CONNECT', '/x').ok, false);
    assert.equal(ok(['Host', 'db'], 'CONNECT', 'u@db:1').ok, false);
  });

  const rejects: [string, string[], string?, string?, number?][] = [
    ['duplicate host', ['Host', 'a', 'host', 'a']],
    ['missing host', ['X', 'y']],
    ['duplicate CL', ['Host', 'a', 'Content-Length', '1', 'content-length', '1']],
    ['signed CL', ['Host', 'a', 'Content-Length', '+1']],
    ['empty CL', ['Host', 'a', 'Content-Length', '']],
    ['TE not chunked', ['Host', 'a', 'Transfer-Encoding', 'gzip']],
    ['TE list', ['Host', 'a', 'Transfer-Encoding', 'gzip, chunked']],
    ['two TE', ['Host', 'a', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked']],
    ['CL and TE', ['Host', 'a', 'Content-Length', '1', 'Transfer-Encoding', 'chunked']],
    ['Content_Length', ['Host', 'a', 'Content_Length', '1']],
    ['TRANSFER_ENCODING', ['Host', 'a', 'TRANSFER_ENCODING', 'chunked']],
    ['x_forwarded_for', ['Host', 'a', 'x_forwarded_for', '1.2.3.4']],
    ['TE on 1.0', ['Host', 'a', 'Transfer-Encoding', 'chunked'], 'POST', '/', 0],
    ['host with space', ['Host', 'a b']],
    ['host with @', ['Host', 'u@a']],
    ['absolute-form https', ['Host', 'a'], 'GET', 'https://a/'],
    ['absolute-form empty authority', ['Host', 'a'], 'GET', 'http:///x'],
    ['absolute-form no slashes', ['Host', 'a'], 'GET', 'http:a/x'],
    ['absolute-form percent in authority', ['Host', 'a'], 'GET', 'http://a%2e/x'],
    ['asterisk on GET', ['Host', 'a'], 'GET', '*'],
    ['Connection names Content-Length', ['Host', 'a', 'Connection', 'close,  CONTENT-LENGTH ']],
    ['Connection names host', ['Host', 'a', 'connection', 'Host']],
    ['Upgrade h2c', ['Host', 'a', 'Connection', 'upgrade', 'Upgrade', 'foo, H2C']],
    ['relative target', ['Host', 'a'], 'GET', 'x/y'],
  ];
  for (const [name, raw, method, url, minor] of rejects) {
    test(`400: ${name}`, () => {
      const r = ok(raw, method ?? 'GET', url ?? '/', minor ?? 1);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.status, 400);
    });
  }

  test('versions other than 1.0 and 1.1', () => {
    assert.equal(ok(['Host', 'a'], 'GET', '/', 0, 2).ok, false, 'HTTP/2.0');
    assert.equal(ok(['Host', 'a'], 'GET', '/', 9, 0).ok, false, 'HTTP/0.9');
    assert.equal(ok(['Host', 'a'], 'GET', '/', 2, 1).ok, false, 'HTTP/1.2');
    assert.equal(ok(['Host', 'a'], 'GET', '/', 1, 1).ok, true);
  });

  test('accepted look-alikes', () => {
    assert.equal(ok(['Host', 'a', 'Transfer-Encoding', 'Chunked']).ok, true);
    assert.equal(ok(['Host', 'a', 'X-Content_Type', 'v', 'x_custom', 'v']).ok, true, 'unrelated _ names pass');
    assert.equal(ok(['Host', 'a', 'Content-Length', '0']).ok, true);
    assert.equal(ok([], 'GET', '/', 0).ok, true, 'HTTP/1.0 without Host');
    assert.equal(ok(['Host', ''], 'GET', 'http://a/').ok, true, 'empty Host with an absolute-form target (Host is ignored)');
    assert.equal(ok(['Host', '']).ok, false, 'empty Host names no authority to route by');
    assert.equal(ok(['Host', 'a', 'Connection', 'keep-alive, content-lengthx, x-host']).ok, true);
    assert.equal(ok(['Host', 'a', 'Connection', 'Upgrade', 'Upgrade', 'websocket']).ok, true);
    assert.equal(ok(['Host', 'a', 'Connection', ',,']).ok, true);
  });

  test('limits: 414 and 431', () => {
    const long = '/' + 'a'.repeat(LIMITS.maxUrlLength);
    const r1 = ok(['Host', 'a'], 'GET', long);
    assert.equal(!r1.ok && r1.status, 414);
    assert.equal(ok(['Host', 'a'], 'GET', long.slice(0, -1)).ok, true, 'exactly maxUrlLength passes');
    const raw = ['Host', 'a'];
    for (let i = 1; i < LIMITS.maxHeaders; i++) raw.push(`x-${i}`, 'v');
    assert.equal(ok(raw).ok, true, 'exactly maxHeaders passes');
    raw.push('x-last', 'v');
    const r2 = ok(raw);
    assert.equal(!r2.ok && r2.status, 431);
  });
});

describe('checkResponseHead (unit)', () => {
  test('accepts plain framing', () => {
    assert.equal(checkResponseHead(['Content-Length', '5', 'X', 'y']), null);
    assert.equal(checkResponseHead(['transfer-encoding', 'chunked']), null);
    assert.equal(checkResponseHead([]), null);
    assert.equal(checkResponseHead([Buffer.from('Content-Length'), Buffer.from('5')]), null);
  });
  test('refuses bad framing', () => {
    const bad: (string | Buffer)[][] = [
      ['Content-Length', '5', 'Transfer-Encoding', 'chunked'],
      ['Content-Length', '5', 'content-length', '5'],
      ['Content-Length', '5', 'content-length', '6'],
      ['Content-Length', '-5'],
      ['Transfer-Encoding', 'gzip'],
      ['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'],
      ['Content_Length', '5'],
      [Buffer.from('Transfer-Encoding'), Buffer.from('gzip, chunked')],
    ];
    for (const raw of bad) assert.notEqual(checkResponseHead(raw), null, JSON.stringify(raw.map(String)));
  });
  test('object form agrees', () => {
    assert.equal(checkResponseHeaders({ 'content-length': '5' }), null);
    assert.notEqual(checkResponseHeaders({ 'content-length': ['5', '5'] }), null);
    assert.notEqual(checkResponseHeaders({ 'content-length': '5', 'transfer-encoding': 'chunked' }), null);
    assert.notEqual(checkResponseHeaders({ 'transfer-encoding': 'gzip' }), null);
    assert.notEqual(checkResponseHeaders({ content_length: '5' }), null);
  });
});

// ---------------------------------------------------------------------------------------------
// Request vectors over the wire

interface Exchange {
  /** everything the server wrote back */
  response: string;
  /** the server closed the connection */
  closed: boolean;
}

function exchange(port: number, raw: string): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      // a reset after the server answered still counts as closed
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
      reject(err);
    });
    sock.on('close', () => resolve({ response: Buffer.concat(chunks).toString('latin1'), closed: true }));
    sock.write(Buffer.from(raw, 'latin1'));
  });
}

describe('request vectors against node:http + edge checks', () => {
  let server: http.Server;
  let port = 0;
  /** vector name (sent in a header? no: keyed by connection) → accepted */
  const accepted = new Set<string>();
  const current = new Map<number, string>();

  before(async () => {
    server = http.createServer((req, res) => {
      const name = current.get(req.socket.remotePort ?? -1) ?? '?';
      const deny = (status: number) => {
        res.writeHead(status, { connection: 'close', 'x-outrigger-error': 'bad_request' });
        res.end();
        res.on('finish', () => req.socket.destroy());
      };
      const v = checkRequestHead(req.rawHeaders, req.method ?? '', req.url ?? '', req.httpVersionMinor, LIMITS, req.httpVersionMajor);
      if (!v.ok) return deny(v.status);
      const target = v.target ?? (req.url as string);
      if (req.method !== 'CONNECT' && target !== '*' && normalizePath(target) === null) return deny(400);
      req.resume();
      req.on('end', () => {
        accepted.add(name);
        res.writeHead(200, { connection: 'close', 'content-length': '2' });
        res.end('ok');
      });
    });
    // Node truncates rawHeaders at maxHeadersCount; one more than the limit lets us see overflow.
    server.maxHeadersCount = LIMITS.maxHeaders + 1;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test(`at least 45 request vectors`, () => {
    assert.ok(REQUEST_VECTORS.filter((v) => v.expect === 'reject').length >= 45);
  });

  for (const v of REQUEST_VECTORS) {
    test(`${v.expect}: ${v.name}`, { timeout: 10_000 }, async () => {
      // Register the client's port before sending so the handler can attribute the request.
      const result = await new Promise<Exchange>((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1');
        const chunks: Buffer[] = [];
        sock.on('connect', () => {
          current.set(sock.localPort as number, v.name);
          sock.write(Buffer.from(v.raw, 'latin1'));
        });
        sock.on('data', (c: Buffer) => chunks.push(c));
        sock.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
          reject(err);
        });
        sock.on('close', () => resolve({ response: Buffer.concat(chunks).toString('latin1'), closed: true }));
      });
      const statusLine = result.response.slice(0, result.response.indexOf('\r\n'));
      if (v.expect === 'ok') {
        assert.match(statusLine, /^HTTP\/1\.[01] 200 /, `answer was: ${JSON.stringify(result.response.slice(0, 200))}`);
        assert.ok(accepted.has(v.name), 'the handler accepted it');
      } else {
        assert.ok(!accepted.has(v.name), 'the handler never accepted it');
        assert.match(statusLine, /^HTTP\/1\.[01] 4\d\d /, `answer was: ${JSON.stringify(result.response.slice(0, 200))}`);
        assert.ok(!/HTTP\/1\.[01] 200 /.test(result.response), 'no smuggled request was answered');
        assert.ok(result.closed);
      }
    });
  }

  test('exchange helper: keep-alive request is answered', async () => {
    const r = await exchange(port, 'GET / HTTP/1.1\r\nHost: svc\r\n\r\n');
    assert.match(r.response, /^HTTP\/1\.1 200 /);
  });
});

// ---------------------------------------------------------------------------------------------
// Response vectors through undici

/** undici-style header object from raw buffers: lower-case names, repeats as arrays. */
function toObject(raw: Buffer[]): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = (raw[i] as Buffer).toString('latin1').toLowerCase();
    const val = (raw[i + 1] as Buffer).toString('latin1');
    const prev = o[k];
    if (prev === undefined) o[k] = val;
    else if (typeof prev === 'string') o[k] = [prev, val];
    else prev.push(val);
  }
  return o;
}

describe('response vectors from a raw upstream through undici', () => {
  let upstream: net.Server;
  let port = 0;
  let nextRaw = '';
  const sockets = new Set<net.Socket>();

  before(async () => {
    upstream = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => {});
      let head = '';
      sock.on('data', (c: Buffer) => {
        head += c.toString('latin1');
        if (head.includes('\r\n\r\n')) sock.end(Buffer.from(nextRaw, 'latin1'));
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    port = (upstream.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  test('at least 8 response vectors', () => {
    assert.ok(RESPONSE_VECTORS.length >= 8);
  });

  for (const v of RESPONSE_VECTORS) {
    test(`${v.expect}: ${v.name}`, { timeout: 10_000 }, async () => {
      nextRaw = v.raw;
      const client = new Client(`http://127.0.0.1:${port}`);
      try {
        const outcome = await new Promise<{
          error: Error | null;
          raw: Buffer[] | null;
          body: string;
          check: string | null;
        }>((resolve) => {
          let raw: Buffer[] | null = null;
          let check: string | null = null;
          const body: Buffer[] = [];
          client.dispatch(
            { method: 'GET', path: '/', origin: `http://127.0.0.1:${port}` },
            {
              onConnect() {},
              onHeaders(_status: number, headers: Buffer[]) {
                raw = headers;
                check = checkResponseHead(headers);
                return true;
              },
              onData(chunk: Buffer) {
                body.push(chunk);
                return true;
              },
              onComplete() {
                resolve({ error: null, raw, body: Buffer.concat(body).toString(), check });
              },
              onError(err: Error) {
                resolve({ error: err, raw, body: Buffer.concat(body).toString(), check });
              },
            },
          );
        });
        if (outcome.raw !== null) {
          assert.equal(checkResponseHeaders(toObject(outcome.raw)) === null, outcome.check === null, 'raw and object checks agree');
        }
        const refusedAtHead = (outcome.raw === null && outcome.error !== null) || outcome.check !== null;
        if (v.expect === 'ok') {
          assert.equal(outcome.error, null);
          assert.equal(outcome.check, null);
          assert.equal(outcome.body, 'hello');
        } else if (v.stage === 'head') {
          assert.ok(refusedAtHead, `must be refused before relaying: error=${String(outcome.error)}`);
        } else {
          assert.ok(!refusedAtHead, 'a body-stage vector has a fine head');
          assert.notEqual(outcome.error, null, 'undici must fail the body');
        }
      } finally {
        await client.destroy();
      }
    });
  }
});
