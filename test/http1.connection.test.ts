// What the HTTP/1.1 codec does with a connection, judged by the bytes on the wire and by what the
// upstream received, on both listeners: one response per request, in order; nothing processed
// after a refusal or after bytes the parser rejects; a half-closed client still gets its answer;
// responses the proxy writes on the raw socket carry Date; targets and Host values that cannot be
// forwarded faithfully are refused.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rawExchange, startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { config, service } from './helpers/config.js';

let app: Upstream;
let p: TestProxy;

before(async () => {
  app = await startUpstream();
  p = await startProxy(config({ inbound: app.port }, service('a', app.port)), { logLevel: 'warn' });
});

after(async () => {
  await p.close();
  await app.close();
});

/** Status codes of every response in `data`, in order. */
function statuses(data: string): number[] {
  return [...data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/**
 * Requests the upstream saw (reset before each vector), after a moment for anything the proxy
 * might still be forwarding to arrive: what must not reach the upstream is only shown absent so.
 */
async function seen(): Promise<string[]> {
  await new Promise((r) => setTimeout(r, 250));
  return app.requests.map((r) => `${r.method} ${r.url} ${r.body.toString()}`);
}

for (const listener of ['inbound', 'outbound'] as const) {
  describe(`${listener} listener`, () => {
    const port = (): number => (listener === 'inbound' ? p.inbound : p.outbound);

    test('a request pipelined behind a refusal is not processed (RFC 9112 9.6)', async () => {
      // a warm upstream connection, so a forwarded request would go out before the client's close
      assert.deepEqual(statuses((await rawExchange(port(), 'GET /warm HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).data), [200]);
      app.requests.length = 0;
      const r = await rawExchange(
        port(),
        'GET /first HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nPOST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi',
      );
      assert.deepEqual(statuses(r.data), [400], r.data);
      assert.ok(r.closed);
      assert.deepEqual(await seen(), [], 'the upstream received nothing');
    });

    test('bytes the parser rejects after a refusal get no second answer', async () => {
      app.requests.length = 0;
      const r = await rawExchange(port(), 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxyz\r\n\r\n');
      assert.deepEqual(statuses(r.data), [400], r.data);
      assert.ok(r.closed);
      assert.deepEqual(await seen(), []);
    });

    test("a valid request followed by garbage: the request's answer first, then the 400, then the close", async () => {
      app.requests.length = 0;
      const r = await rawExchange(port(), 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloX');
      assert.deepEqual(statuses(r.data), [200, 400], r.data);
      assert.match(r.data.slice(0, r.data.indexOf('HTTP/1.1 400')), /"body":"hello"/);
      assert.ok(r.closed);
      assert.deepEqual(await seen(), ['POST /p hello'], 'the request reached the upstream once, the garbage never');
    });

    test('pipelined valid requests are all answered, in order', async () => {
      app.requests.length = 0;
      const r = await rawExchange(
        port(),
        'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      );
      assert.deepEqual(statuses(r.data), [200, 200, 200], r.data);
      assert.deepEqual(
        [...r.data.matchAll(/"url":"(\/\d)"/g)].map((m) => m[1]),
        ['/1', '/2', '/3'],
      );
    });

    test('a client that half-closes after a whole request gets the whole answer, then the close', async () => {
      app.requests.length = 0;
      const r = await new Promise<{ data: string; closed: boolean }>((resolve) => {
        const s = net.connect(port(), '127.0.0.1');
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('error', () => undefined);
        s.on('close', () => resolve({ data: Buffer.concat(chunks).toString('latin1'), closed: true }));
        s.end('GET /half HTTP/1.1\r\nHost: a\r\n\r\n');
      });
      assert.deepEqual(statuses(r.data), [200], r.data);
      assert.match(r.data, /"url":"\/half"/);
      assert.ok(r.closed);
    });

    test('a request cut off by the FIN is not forwarded as complete', async () => {
      app.requests.length = 0;
      await new Promise<void>((resolve) => {
        const s = net.connect(port(), '127.0.0.1');
        s.on('error', () => undefined);
        s.on('data', () => undefined);
        s.on('close', () => resolve());
        s.end('POST /cut HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc');
      });
      assert.deepEqual(await seen(), [], 'the upstream never completed a request');
    });

    test("the parser's 400 on the raw socket carries Date", async () => {
      const r = await rawExchange(port(), 'GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n');
      assert.deepEqual(statuses(r.data), [400], r.data);
      assert.match(r.data, /\r\ndate: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n/i);
    });

    test('an empty Host is refused, not forwarded', async () => {
      app.requests.length = 0;
      const r = await rawExchange(port(), 'GET / HTTP/1.1\r\nHost:\r\n\r\n');
      assert.deepEqual(statuses(r.data), [400], r.data);
      assert.deepEqual(await seen(), []);
    });

    for (const ch of ['"', '<', '>', '{', '}', '|', '^', '`', '\\', '#', '\u00e9']) {
      test(`a request-target with ${JSON.stringify(ch)} is refused, not forwarded`, async () => {
        app.requests.length = 0;
        const r = await rawExchange(port(), Buffer.from(`GET /x${ch}y HTTP/1.1\r\nHost: a\r\n\r\n`, 'latin1'));
        assert.deepEqual(statuses(r.data), [400], r.data);
        assert.deepEqual(await seen(), []);
      });
    }

    for (const name of ['Content__Length', 'Content-_Length', 'Transfer__Encoding', 'X__Forwarded_For']) {
      test(`${name} (a look-alike of a protected header) is refused`, async () => {
        app.requests.length = 0;
        const r = await rawExchange(port(), `POST / HTTP/1.1\r\nHost: a\r\n${name}: 5\r\nContent-Length: 0\r\n\r\n`);
        assert.deepEqual(statuses(r.data), [400], r.data);
        assert.deepEqual(await seen(), []);
      });
    }
  });
}
