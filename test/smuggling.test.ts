// Request smuggling and edge hardening against the REAL proxy, on raw sockets, on both
// listeners. Oracle: a recording upstream counts every request its (strict) parser completes and
// every request line that appears anywhere in the bytes it receives; a rejected vector must get a
// 4xx and a closed connection and add nothing upstream, an accepted one exactly one request.
// Response side: a raw upstream answers broken framing; the client gets 502
// upstream_protocol_error and the proxy drops that upstream connection.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { REQUEST_VECTORS, RESPONSE_VECTORS, VECTOR_LIMITS, type Vector } from './smuggling.vectors.js';
import { startRawServer } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { cluster, config, service } from './helpers/config.js';

/** A strict node:http upstream that also keeps every byte it was sent. */
interface Recorder {
  port: number;
  /** requests whose body arrived in full */
  completed: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  /** request heads parsed (a request whose body was cut off counts here, not in `completed`) */
  started: number;
  /** requests its parser refused: the proxy must never produce one */
  parseErrors: string[];
  raw: Buffer[];
  close(): Promise<void>;
}

async function startRecorder(): Promise<Recorder> {
  const rec: Recorder = { port: 0, completed: [], started: 0, parseErrors: [], raw: [], close: async () => undefined };
  const server = http.createServer((req, res) => {
    rec.started++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('end', () => {
      rec.completed.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('latin1'),
      });
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    });
  });
  server.on('connection', (s: net.Socket) => s.on('data', (c: Buffer) => rec.raw.push(c)));
  server.on('clientError', (err: Error & { code?: string }, s: net.Socket) => {
    if (err.code !== 'ECONNRESET') rec.parseErrors.push(`${err.code ?? ''} ${err.message}`);
    s.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  rec.port = (server.address() as net.AddressInfo).port;
  rec.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return rec;
}

/** Request lines anywhere in the upstream's bytes: a smuggled request shows up here. */
function requestLines(raw: Buffer[]): number {
  const text = Buffer.concat(raw).toString('latin1');
  return (text.match(/[A-Z]{3,7} [^ \r\n]+ HTTP\/1\.[01]\r\n/g) ?? []).length;
}

interface RawReply {
  status: number;
  head: string;
  closed: boolean;
}

/**
 * Sends raw bytes; resolves on close, or as soon as one complete success response is read (the
 * proxy keeps accepted connections open). Error responses wait for the close that must follow.
 */
function sendRaw(port: number, bytes: string, ms = 3000, errorsClose = true): Promise<RawReply> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      const text = buf.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const end = text.indexOf('\r\n\r\n');
      resolve({ status: m === null ? 0 : Number(m[1]), head: end === -1 ? text : text.slice(0, end), closed });
    };
    const t = setTimeout(() => finish(false), ms);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const cl = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, end));
      const complete =
        cl !== null
          ? buf.length >= end + 4 + Number(cl[1])
          : /\r\ntransfer-encoding: chunked/i.test(text.slice(0, end)) && text.endsWith('\r\n0\r\n\r\n');
      if (status > 0 && (status < 400 || !errorsClose) && complete) finish(false);
    });
    s.on('error', () => undefined);
    s.on('close', () => finish(true));
    s.write(Buffer.from(bytes, 'latin1'));
  });
}

let rec: Recorder;
let p: TestProxy;

before(async () => {
  rec = await startRecorder();
  const limits = { maxHeaders: VECTOR_LIMITS.maxHeaders, maxUrlLength: VECTOR_LIMITS.maxUrlLength };
  p = await startProxy(
    config(
      { inbound: { app: rec.port, limits }, outbound: { unknownHosts: 'reject', limits } },
      { routes: [{ name: 'any', match: { path: { prefix: '/' } }, cluster: 'rec' }], clusters: { rec: cluster(rec.port) } },
    ),
    { logLevel: 'warn' },
  );
});

after(async () => {
  await p.close();
  await rec.close();
});

const OK_PATHS: Record<string, string> = {
  'ok: encoded path that normalises': '/api/y',
  'ok: absolute-form with matching Host': '/path?q=1',
};

let sentOk = 0;

async function runVector(port: number, v: Vector): Promise<void> {
  const before = rec.completed.length;
  const r = await sendRaw(port, v.raw);
  if (v.expect === 'reject') {
    assert.ok(r.status >= 400 && r.status < 500, `${v.name}: want a 4xx, got ${r.status} ${JSON.stringify(r.head.slice(0, 120))}`);
    assert.equal(r.closed, true, `${v.name}: the connection must be closed after a refusal`);
    assert.match(r.head, /\r\nx-outrigger-error: bad_request/i, `${v.name}: proxy-made error`);
    assert.equal(rec.completed.length, before, `${v.name}: nothing may reach the upstream`);
  } else {
    sentOk++;
    assert.ok(r.status >= 200 && r.status < 300, `${v.name}: want 2xx, got ${r.status} ${JSON.stringify(r.head.slice(0, 120))}`);
    assert.equal(rec.completed.length, before + 1, `${v.name}: exactly one request upstream`);
    const want = OK_PATHS[v.name];
    if (want !== undefined) assert.equal(rec.completed[before]?.url, want, `${v.name}: forwarded target`);
  }
}

for (const dir of ['inbound', 'outbound'] as const) {
  describe(`request vectors on the ${dir} listener`, () => {
    for (const v of REQUEST_VECTORS) {
      // OPTIONS * passes the edge; no outbound route matches the path `*` (404 no_route).
      test(v.name, async () => {
        if (v.name === 'ok: OPTIONS *') {
          const r = await sendRaw(dir === 'inbound' ? p.inbound : p.outbound, v.raw, 3000, false);
          assert.doesNotMatch(r.head, /x-outrigger-error: bad_request/i, 'OPTIONS * is not refused at the edge');
          if (r.status < 300) sentOk++;
          return;
        }
        await runVector(dir === 'inbound' ? p.inbound : p.outbound, v);
      });
    }
  });
}

// Upgrade and CONNECT heads go through the listener's 'upgrade' / 'connect' handlers (tunnel.ts),
// which run the same edge check; a refused one must not open anything upstream.
const WS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const TUNNEL_VECTORS: readonly (Vector & { outboundOnly?: true })[] = [
  { name: 'upgrade: Content_Length alias', raw: `GET /ws HTTP/1.1\r\nHost: svc\r\n${WS}Content_Length: 5\r\n\r\n`, expect: 'reject' },
  { name: 'upgrade: two Host headers', raw: `GET /ws HTTP/1.1\r\nHost: svc\r\nHost: admin\r\n${WS}\r\n`, expect: 'reject' },
  {
    name: 'upgrade: Transfer-Encoding gzip',
    raw: `GET /ws HTTP/1.1\r\nHost: svc\r\n${WS}Transfer-Encoding: gzip, chunked\r\n\r\n`,
    expect: 'reject',
  },
  { name: 'upgrade: encoded slash in path', raw: `GET /ws%2F..%2Fadmin HTTP/1.1\r\nHost: svc\r\n${WS}\r\n`, expect: 'reject' },
  { name: 'upgrade: URL over maxUrlLength', raw: `GET /${'w'.repeat(9000)} HTTP/1.1\r\nHost: svc\r\n${WS}\r\n`, expect: 'reject' },
  { name: 'CONNECT: no port', raw: 'CONNECT svc HTTP/1.1\r\nHost: svc\r\n\r\n', expect: 'reject', outboundOnly: true },
  { name: 'CONNECT: userinfo', raw: 'CONNECT u@svc:80 HTTP/1.1\r\nHost: svc:80\r\n\r\n', expect: 'reject', outboundOnly: true },
  {
    name: 'CONNECT: X_Forwarded_For alias',
    raw: `CONNECT 127.0.0.1:${'1'} HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n`,
    expect: 'reject',
    outboundOnly: true,
  },
  {
    name: 'CONNECT: two Host headers',
    raw: 'CONNECT svc:80 HTTP/1.1\r\nHost: svc:80\r\nHost: admin:80\r\n\r\n',
    expect: 'reject',
    outboundOnly: true,
  },
];

for (const dir of ['inbound', 'outbound'] as const) {
  describe(`upgrade and CONNECT vectors on the ${dir} listener`, () => {
    for (const v of TUNNEL_VECTORS) {
      if (v.outboundOnly === true && dir === 'inbound') continue;
      test(v.name, async () => {
        const bytes = rec.raw.reduce((n, b) => n + b.length, 0);
        const r = await sendRaw(dir === 'inbound' ? p.inbound : p.outbound, v.raw);
        assert.ok(r.status >= 400 && r.status < 500, `${v.name}: want a 4xx, got ${r.status} ${JSON.stringify(r.head.slice(0, 120))}`);
        assert.equal(r.closed, true);
        assert.equal(
          rec.raw.reduce((n, b) => n + b.length, 0),
          bytes,
          'not a byte upstream',
        );
      });
    }
  });
}

test('a pipelined smuggled request after a refused one never reaches the upstream', async () => {
  const before = rec.completed.length;
  const raw =
    'POST /a HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' +
    'GET /smuggled HTTP/1.1\r\nHost: svc\r\n\r\n';
  for (const port of [p.inbound, p.outbound]) {
    const r = await sendRaw(port, raw);
    assert.equal(r.status, 400);
    assert.equal(r.closed, true);
  }
  assert.equal(rec.completed.length, before);
});

test('a well-formed pipelined pair is forwarded as exactly two requests', async () => {
  const before = rec.completed.length;
  const raw = 'GET /one HTTP/1.1\r\nHost: svc\r\n\r\nGET /two HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n';
  const r = await sendRaw(p.outbound, raw);
  assert.equal(r.status, 200);
  // the first response may resolve sendRaw before the second request is forwarded
  const end = Date.now() + 3000;
  while (rec.completed.length < before + 2 && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
  // forwarded concurrently on pooled connections, so in either order
  assert.deepEqual(
    rec.completed
      .slice(before)
      .map((c) => c.url)
      .sort(),
    ['/one', '/two'],
  );
  sentOk += 2;
});

test('headersTimeout: a head that never completes gets 408 and a closed connection, nothing upstream', async () => {
  const q = await startProxy(config({ inbound: { app: rec.port, limits: { headersTimeout: '300ms' } } }), { logLevel: 'warn' });
  try {
    const before = rec.completed.length;
    const r = await sendRaw(q.inbound, 'GET / HTTP/1.1\r\nHost: svc\r\nX-Slow: ', 5000);
    assert.equal(r.closed, true);
    assert.ok(r.status === 408 || r.status === 0, `408 or a bare close, got ${r.status}`);
    assert.equal(rec.completed.length, before);
  } finally {
    await q.close();
  }
});

test('maxConnections: a connection over the cap is closed without being served', async () => {
  const q = await startProxy(
    config({
      outbound: { limits: { maxConnections: 2 } },
      routes: [{ name: 'any', match: { path: { prefix: '/' } }, cluster: 'rec' }],
      clusters: { rec: cluster(rec.port) },
    }),
    { logLevel: 'warn' },
  );
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const s = net.connect(q.outbound, '127.0.0.1');
      await once(s, 'connect');
      held.push(s);
    }
    // the tracker counts the held two; the third is refused
    const r = await sendRaw(q.outbound, 'GET /third HTTP/1.1\r\nHost: svc\r\n\r\n');
    assert.notEqual(r.status, 200);
    assert.equal(r.closed, true);
    assert.equal(
      rec.completed.some((c) => c.url === '/third'),
      false,
    );
  } finally {
    for (const s of held) s.destroy();
    await q.close();
  }
});

test('global oracle: the upstream parsed only what was deliberately forwarded', async () => {
  // let anything still in flight land before counting
  await new Promise((r) => setTimeout(r, 200));
  // Bodies stream: a request whose head was fine is forwarded at once, so when its chunked body
  // turns out malformed the proxy can only abort the upstream request mid-body. The upstream
  // then sees a connection closed inside a message (HPE_INVALID_EOF_STATE), never a complete
  // request, and never anything it failed to parse.
  const aborted = rec.parseErrors.filter((e) => e.startsWith('HPE_INVALID_EOF_STATE')).length;
  assert.deepEqual(
    rec.parseErrors.filter((e) => !e.startsWith('HPE_INVALID_EOF_STATE')),
    [],
  );
  assert.equal(rec.completed.length, sentOk);
  assert.equal(rec.started, rec.completed.length + aborted, 'every head without its body was an abort');
  assert.equal(requestLines(rec.raw), rec.started, 'no request line hidden inside a forwarded body');
});

// ---------------------------------------------------------------------------------------------
// Response side

describe('response vectors from a raw upstream', () => {
  for (const v of RESPONSE_VECTORS) {
    test(v.name, async () => {
      let requests = 0;
      // the connections that carried a request (undici may open a spare one afterwards)
      const served = new Set<net.Socket>();
      const closed: Promise<void>[] = [];
      const raw = await startRawServer((sock) => {
        const gone = once(sock, 'close').then(() => undefined);
        let seen = '';
        sock.on('data', (c: Buffer) => {
          seen += c.toString('latin1');
          if (seen.includes('\r\n\r\n')) {
            seen = '';
            requests++;
            served.add(sock);
            closed.push(gone);
            // keeps the socket open (only the proxy may close it) unless the vector says close
            if (/\r\nConnection: close\r\n/i.test(v.raw)) sock.end(v.raw);
            else sock.write(v.raw);
          }
        });
      });
      const q = await startProxy(config(service('raw', raw.port, {}, { retries: { attempts: 0 } })), { logLevel: 'warn' });
      try {
        const r = await sendRaw(q.outbound, 'GET /r HTTP/1.1\r\nHost: raw\r\n\r\n', 3000, false);
        if (v.expect === 'ok') {
          assert.equal(r.status, 200);
          assert.equal(
            [...served].every((s) => !s.destroyed),
            true,
            'a good upstream connection is kept for reuse',
          );
        } else if (v.stage === 'head') {
          assert.equal(r.status, 502, `${v.name}: ${r.head}`);
          assert.match(r.head, /\r\nx-outrigger-error: upstream_protocol_error/i);
          await Promise.all(closed);
          assert.equal(
            [...served].every((s) => s.destroyed),
            true,
            'the upstream connection is discarded',
          );
        } else {
          // head relayed, body broken: the client's response is cut short, the upstream dropped
          // (0: the proxy had not flushed the head yet and reset the client connection)
          assert.ok(r.status === 200 || r.status === 502 || r.status === 0, `${v.name}: ${r.status}`);
          assert.equal(r.closed, true, 'the client connection is not left waiting');
          await Promise.all(closed);
        }
        assert.equal(requests, 1, 'no retry of a protocol error on a GET without a retry policy');
      } finally {
        await q.close();
        await raw.close();
      }
    });
  }
});
