// Classification of real undici failures against real sockets, and the retry decision table.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Pool } from 'undici';
import {
  classifyError,
  errorReason,
  isFailure,
  UPSTREAM_TIMEOUT,
  type AttemptOutcome,
  type FailureKind,
} from '../src/resilience/classify.js';
import { compileRetryPolicy, DEFAULT_RETRY_POLICY, isIdempotent, shouldRetry } from '../src/resilience/retry.js';
import type { RetryConfig } from '../src/config/types.js';

/** A raw TCP server whose behaviour per connection is `onConn`. */
async function rawServer(onConn: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** Runs one GET through a fresh Pool and returns the error it ends with (body included). */
async function failureOf(
  port: number,
  opts: { headersTimeout?: number; bodyTimeout?: number; signal?: AbortSignal } = {},
): Promise<unknown> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connectTimeout: 2000 });
  try {
    const res = await pool.request({
      method: 'GET',
      path: '/',
      headersTimeout: opts.headersTimeout ?? 10_000,
      bodyTimeout: opts.bodyTimeout ?? 10_000,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await res.body.text();
    return null;
  } catch (err) {
    return err;
  } finally {
    await pool.destroy();
  }
}

/** Waits for the first chunk of a request head on `s`. */
function onRequest(s: net.Socket, fn: () => void): void {
  s.once('data', fn);
}

describe('classifyError against real sockets (undici Pool)', () => {
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of closers) await c();
  });

  test('connection refused is connect_failure', async () => {
    const srv = await rawServer(() => {});
    const port = srv.port;
    await srv.close(); // nothing listens on the port any more
    const err = await failureOf(port);
    assert.equal((err as { code?: string }).code, 'ECONNREFUSED');
    assert.equal(classifyError(err), 'connect_failure');
  });

  test('server closing the connection (FIN) before answering is reset', async () => {
    const srv = await rawServer((s) => onRequest(s, () => s.destroy()));
    closers.push(srv.close);
    const err = await failureOf(srv.port);
    assert.equal((err as { code?: string }).code, 'UND_ERR_SOCKET');
    assert.equal(classifyError(err), 'reset');
  });

  test('server resetting the connection (RST) before answering is reset', async () => {
    const srv = await rawServer((s) => onRequest(s, () => s.resetAndDestroy()));
    closers.push(srv.close);
    const err = await failureOf(srv.port);
    assert.ok(err instanceof Error, 'request must fail');
    assert.equal(classifyError(err), 'reset');
  });

  test('server closing mid-body is reset', async () => {
    const srv = await rawServer((s) =>
      onRequest(s, () => {
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc', () => s.destroy());
      }),
    );
    closers.push(srv.close);
    const err = await failureOf(srv.port);
    assert.ok(err instanceof Error, 'request must fail');
    assert.equal(classifyError(err), 'reset');
  });

  test('headers timeout is timeout', async () => {
    const srv = await rawServer(() => {}); // reads the request, never answers
    closers.push(srv.close);
    const err = await failureOf(srv.port, { headersTimeout: 50 });
    assert.equal((err as { code?: string }).code, 'UND_ERR_HEADERS_TIMEOUT');
    assert.equal(classifyError(err), 'timeout');
  });

  test('body timeout is timeout', async () => {
    const srv = await rawServer((s) => onRequest(s, () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab')));
    closers.push(srv.close);
    const err = await failureOf(srv.port, { bodyTimeout: 50 });
    assert.equal((err as { code?: string }).code, 'UND_ERR_BODY_TIMEOUT');
    assert.equal(classifyError(err), 'timeout');
  });

  test('our own per-try abort is timeout', async () => {
    const srv = await rawServer(() => {});
    closers.push(srv.close);
    const ac = new AbortController();
    setTimeout(() => ac.abort(UPSTREAM_TIMEOUT), 30).unref();
    const err = await failureOf(srv.port, { signal: ac.signal });
    assert.equal(err, UPSTREAM_TIMEOUT);
    assert.equal(classifyError(err), 'timeout');
  });

  test('AbortSignal.timeout() is timeout', async () => {
    const srv = await rawServer(() => {});
    closers.push(srv.close);
    const err = await failureOf(srv.port, { signal: AbortSignal.timeout(30) });
    assert.equal((err as { name?: string }).name, 'TimeoutError');
    assert.equal(classifyError(err), 'timeout');
  });

  test('a malformed status line is protocol_error', async () => {
    const srv = await rawServer((s) => onRequest(s, () => s.write('HELLO WORLD\r\n\r\n')));
    closers.push(srv.close);
    const err = await failureOf(srv.port);
    assert.equal((err as { name?: string }).name, 'HTTPParserError');
    assert.equal(classifyError(err), 'protocol_error');
  });

  test('an invalid header is protocol_error', async () => {
    const srv = await rawServer((s) => onRequest(s, () => s.write('HTTP/1.1 200 OK\r\nbad header\r\ncontent-length: 0\r\n\r\n')));
    closers.push(srv.close);
    const err = await failureOf(srv.port);
    assert.equal((err as { name?: string }).name, 'HTTPParserError');
    assert.equal(classifyError(err), 'protocol_error');
  });

  test('a short body on a closing connection is protocol_error', async () => {
    const srv = await rawServer((s) => onRequest(s, () => s.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 10\r\n\r\nabc')));
    closers.push(srv.close);
    const err = await failureOf(srv.port);
    assert.equal((err as { code?: string }).code, 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH');
    assert.equal(classifyError(err), 'protocol_error');
  });

  test('a response nobody asked for is protocol_error', async () => {
    // Answers with a 100 Continue to a request that sent no Expect: undici calls it 'bad response'.
    const srv = await rawServer((s) => onRequest(s, () => s.write('HTTP/1.1 100 Continue\r\n\r\n')));
    closers.push(srv.close);
    const err = await failureOf(srv.port);
    assert.equal((err as { code?: string }).code, 'UND_ERR_SOCKET');
    assert.equal(classifyError(err), 'protocol_error');
  });
});

describe('classifyError by code', () => {
  const cases: [unknown, FailureKind][] = [
    [Object.assign(new Error('x'), { code: 'ENOTFOUND', syscall: 'getaddrinfo' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'EAI_AGAIN' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'EHOSTUNREACH' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'ENETUNREACH' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'ETIMEDOUT', syscall: 'connect' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'ETIMEDOUT' }), 'timeout'],
    [Object.assign(new Error('x'), { code: 'UND_ERR_CLOSED' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'connect_failure'],
    [Object.assign(new Error('x'), { code: 'ECONNRESET' }), 'reset'],
    [Object.assign(new Error('x'), { code: 'EPIPE' }), 'reset'],
    [Object.assign(new Error('x'), { code: 'UND_ERR_DESTROYED' }), 'reset'],
    [Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_OVERFLOW' }), 'protocol_error'],
    [Object.assign(new Error('x'), { code: 'HPE_INVALID_CHUNK_SIZE' }), 'protocol_error'],
    [Object.assign(new Error('x'), { code: 'UND_ERR_INVALID_ARG' }), 'protocol_error'],
    [new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), 'connect_failure'],
    [new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' }) }), 'timeout'],
    [new Error('no code at all'), 'reset'],
    ['a string', 'reset'],
    [null, 'reset'],
  ];
  for (const [err, kind] of cases) {
    test(`${String((err as { code?: string } | null)?.code ?? (err as Error | null)?.message ?? err)} → ${kind}`, () => {
      assert.equal(classifyError(err), kind);
    });
  }
});

describe('errorReason, isFailure', () => {
  test('documented reasons (docs/metrics.md)', () => {
    assert.equal(errorReason('connect_failure'), 'upstream_connect_failure');
    assert.equal(errorReason('reset'), 'upstream_reset');
    assert.equal(errorReason('timeout'), 'upstream_timeout');
    assert.equal(errorReason('protocol_error'), 'upstream_protocol_error');
  });
  test('errors and 5xx are failures, the rest is not', () => {
    assert.equal(isFailure({ kind: 'error', error: 'reset' }), true);
    assert.equal(isFailure({ kind: 'response', status: 500 }), true);
    assert.equal(isFailure({ kind: 'response', status: 503 }), true);
    assert.equal(isFailure({ kind: 'response', status: 404 }), false);
    assert.equal(isFailure({ kind: 'response', status: 429 }), false);
    assert.equal(isFailure({ kind: 'response', status: 200 }), false);
    assert.equal(isFailure({ kind: 'response', status: 304 }), false);
  });
});

function cfg(on: (string | number)[], nonIdempotent = false): RetryConfig {
  return { attempts: 2, perTryTimeout: 1000, on, backoff: { base: 10, max: 100 }, nonIdempotent };
}
const err = (e: FailureKind): AttemptOutcome => ({ kind: 'error', error: e });
const res = (status: number): AttemptOutcome => ({ kind: 'response', status });

describe('compileRetryPolicy / shouldRetry', () => {
  test('no retries block: one retry on connect failure only, any method', () => {
    const p = compileRetryPolicy(null);
    assert.equal(p, DEFAULT_RETRY_POLICY);
    assert.equal(p.attempts, 1);
    assert.equal(p.backoffBase, 25);
    assert.equal(p.backoffMax, 250);
    assert.equal(shouldRetry(p, err('connect_failure'), 'GET'), true);
    assert.equal(shouldRetry(p, err('connect_failure'), 'POST'), true);
    for (const e of ['reset', 'timeout', 'protocol_error'] as const) {
      assert.equal(shouldRetry(p, err(e), 'GET'), false, e);
    }
    for (const s of [500, 502, 503, 504]) assert.equal(shouldRetry(p, res(s), 'GET'), false);
  });

  test('compiles fields', () => {
    const p = compileRetryPolicy(cfg(['connect-failure', 'reset', 502, '503'], true));
    assert.equal(p.attempts, 2);
    assert.equal(p.perTryTimeout, 1000);
    assert.equal(p.onConnectFailure, true);
    assert.equal(p.onReset, true);
    assert.equal(p.on5xx, false);
    assert.equal(p.onGatewayError, false);
    assert.deepEqual([...p.statuses].sort(), [502, 503]);
    assert.equal(p.backoffBase, 10);
    assert.equal(p.backoffMax, 100);
    assert.equal(p.nonIdempotent, true);
  });

  test('unknown conditions are a bug, not a silent no-op', () => {
    assert.throws(() => compileRetryPolicy(cfg(['retriable-4xx'])), TypeError);
    assert.throws(() => compileRetryPolicy(cfg([999])), TypeError);
  });

  test('the documented default list: connect-failure, reset, 502, 503, 504', () => {
    const p = compileRetryPolicy(cfg(['connect-failure', 'reset', 502, 503, 504]));
    assert.equal(shouldRetry(p, err('connect_failure'), 'POST'), true);
    assert.equal(shouldRetry(p, err('reset'), 'GET'), true);
    assert.equal(shouldRetry(p, err('timeout'), 'GET'), true, 'per-try timeout is a local reset');
    assert.equal(shouldRetry(p, err('protocol_error'), 'GET'), true);
    assert.equal(shouldRetry(p, err('reset'), 'POST'), false, 'POST only on connect failure');
    assert.equal(shouldRetry(p, err('reset'), 'PATCH'), false);
    assert.equal(shouldRetry(p, res(503), 'PUT'), true);
    assert.equal(shouldRetry(p, res(503), 'POST'), false);
    assert.equal(shouldRetry(p, res(500), 'GET'), false, '500 is not listed');
    assert.equal(shouldRetry(p, res(404), 'GET'), false);
  });

  test('connect-failure alone does not retry resets or timeouts', () => {
    const p = compileRetryPolicy(cfg(['connect-failure']));
    assert.equal(shouldRetry(p, err('connect_failure'), 'POST'), true);
    assert.equal(shouldRetry(p, err('reset'), 'GET'), false);
    assert.equal(shouldRetry(p, err('timeout'), 'GET'), false);
  });

  test('5xx: any 5xx and every error kind (Envoy)', () => {
    const p = compileRetryPolicy(cfg(['5xx']));
    for (const s of [500, 501, 502, 503, 504, 599]) assert.equal(shouldRetry(p, res(s), 'GET'), true, String(s));
    assert.equal(shouldRetry(p, res(499), 'GET'), false);
    for (const e of ['connect_failure', 'reset', 'timeout', 'protocol_error'] as const) {
      assert.equal(shouldRetry(p, err(e), 'GET'), true, e);
    }
    assert.equal(shouldRetry(p, res(500), 'POST'), false);
    assert.equal(shouldRetry(p, err('connect_failure'), 'POST'), true);
  });

  test('gateway-error: 502/503/504 and every error kind (Envoy)', () => {
    const p = compileRetryPolicy(cfg(['gateway-error']));
    for (const s of [502, 503, 504]) assert.equal(shouldRetry(p, res(s), 'DELETE'), true, String(s));
    for (const s of [500, 501, 505]) assert.equal(shouldRetry(p, res(s), 'GET'), false, String(s));
    assert.equal(shouldRetry(p, err('timeout'), 'GET'), true);
    assert.equal(shouldRetry(p, err('reset'), 'HEAD'), true);
  });

  test('nonIdempotent lets POST retry everything the conditions name', () => {
    const p = compileRetryPolicy(cfg(['reset', 503], true));
    assert.equal(shouldRetry(p, err('reset'), 'POST'), true);
    assert.equal(shouldRetry(p, res(503), 'PATCH'), true);
    assert.equal(shouldRetry(p, res(502), 'POST'), false);
  });

  test('idempotent methods', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']) assert.equal(isIdempotent(m), true, m);
    for (const m of ['POST', 'PATCH', 'CONNECT', 'get']) assert.equal(isIdempotent(m), false, m);
  });
});
