// The one pipeline over real sockets: loops refused at once, tunnels under the same limits as
// plain requests, and tunnel errors counted as exchanges count them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { closedPort, echo, request, startRawServer, startUpstream } from './helpers/servers.js';
import { startProxy } from './helpers/proxy.js';
import { cluster, config, loopback, route, service } from './helpers/config.js';
import { metrics, metricValue } from './resilience.helpers.js';
import { waitFor } from './helpers/wait.js';

/** Opens `CONNECT authority` on `port`; resolves with the status and the socket once the head is in. */
function connectVia(port: number, authority: string): Promise<{ status: number; head: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    s.on('error', reject);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      s.off('data', onData);
      resolve({
        status: Number(buf.subarray(0, end).toString('latin1').split(' ')[1]),
        head: buf.subarray(0, end).toString('latin1'),
        socket: s,
      });
    };
    s.on('data', onData);
    s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });
}

test('a request whose target is the proxy itself is refused at once with 508 loop_detected', async () => {
  const p = await startProxy(config({ outbound: { unknownHosts: 'passthrough', timeout: '30s' } }));
  try {
    const self = `127.0.0.1:${p.outbound}`;
    // curl 127.0.0.1:15001/ (Host is the proxy), an HTTP_PROXY client's absolute-form, the admin port
    for (const [path, host] of [
      ['/', self],
      [`http://${self}/x`, self],
      ['/', `localhost:${p.outbound}`],
      ['/', `127.0.0.1:${p.admin}`],
    ] as const) {
      const r = await request(p.outbound, { path, headers: { host } });
      assert.equal(r.status, 508, `${host} ${path}`);
      assert.equal(r.headers['x-outrigger-error'], 'loop_detected');
      assert.deepEqual(JSON.parse(r.body.toString()), { error: 'loop_detected' });
    }
    const c = await connectVia(p.outbound, self);
    assert.equal(c.status, 508);
    c.socket.destroy();
    // each refused once: nothing was forwarded to ourselves
    const lines = p.access().filter((l) => l['error'] === 'loop_detected');
    assert.equal(lines.length, 5);
    assert.ok(lines.every((l) => l['route'] === 'passthrough' && l['attempts'] === 0));
  } finally {
    await p.close();
  }
});

test('a loop through other listeners is caught by the via entry; the upstream sees the entry', async () => {
  const app = await startUpstream(echo);
  const inPort = await closedPort();
  const outPort = await closedPort();
  // outbound routes `loop` to our own inbound, whose app is our own outbound: a cycle
  const p = await startProxy(
    config(
      { inbound: { listen: loopback(inPort), app: outPort }, outbound: { listen: loopback(outPort) } },
      { routes: [route('loop', { cluster: 'me' })], clusters: { me: cluster(inPort) } },
      service('app', app.port),
    ),
  );
  try {
    const r = await request(p.outbound, { headers: { host: 'loop' } });
    assert.equal(r.status, 508);
    assert.equal(r.headers['x-outrigger-error'], 'loop_detected');
    // outbound → inbound → outbound again, refused there: two forwarded, one refusal
    const lines = p.access();
    assert.equal(lines.filter((l) => l['error'] === 'loop_detected').length, 1);
    assert.equal(lines.length, 3);
    // a normal request carries one via entry per listener it crossed
    const ok = await request(p.outbound, { headers: { host: 'app', via: '1.0 fred' } });
    assert.equal(ok.status, 200);
    assert.match(String(app.requests.at(-1)?.headers['via']), /^1\.0 fred, 1\.1 outrigger-[0-9a-f]{8}$/);
  } finally {
    await p.close();
    await app.close();
  }
});

test('CONNECT tunnels count against maxConcurrent and are refused 503 overflow beyond it', async () => {
  const tcp = await startRawServer((s) => s.pipe(s));
  const p = await startProxy(config({ outbound: { maxConcurrent: 1 } }));
  try {
    const first = await connectVia(p.outbound, `127.0.0.1:${tcp.port}`);
    assert.equal(first.status, 200);
    const second = await connectVia(p.outbound, `127.0.0.1:${tcp.port}`);
    assert.equal(second.status, 503);
    assert.match(second.head, /x-outrigger-error: overflow/i);
    second.socket.destroy();
    // a plain request too, while the tunnel is open
    const plain = await request(p.outbound, { headers: { host: `127.0.0.1:${tcp.port}` } });
    assert.equal(plain.status, 503);
    const closed = once(first.socket, 'close');
    first.socket.end();
    await closed;
    await waitFor(() => p.access().find((l) => l['tunnel'] === 'connect' && l['status'] === 200), { what: 'the tunnel reported' });
    const third = await connectVia(p.outbound, `127.0.0.1:${tcp.port}`);
    assert.equal(third.status, 200, 'the closed tunnel gave its slot back');
    third.socket.destroy();
    assert.equal(metricValue(await metrics(p.admin), 'outrigger_overflow_total', { direction: 'outbound', limit: 'maxConcurrent' }), 2);
  } finally {
    await p.close();
    await tcp.close();
  }
});

test('a CONNECT whose cluster refuses the connection counts upstream_connect_failure, as a plain request does', async () => {
  const dead = await closedPort();
  const p = await startProxy(config(service('db', dead, {}, { match: { host: 'db', port: 5432 } })));
  try {
    const c = await connectVia(p.outbound, 'db:5432');
    assert.equal(c.status, 502);
    assert.match(c.head, /x-outrigger-error: upstream_connect_failure/i);
    c.socket.destroy();
    const text = await metrics(p.admin);
    // the first try and its retry (once, as for plain requests), under the exchange's label
    assert.equal(metricValue(text, 'outrigger_upstream_errors_total', { cluster: 'db', reason: 'upstream_connect_failure' }), 2);
    assert.equal(metricValue(text, 'outrigger_upstream_errors_total', { cluster: 'db', reason: 'connect_failure' }), 0);
    const line = await waitFor(() => p.access().find((l) => l['tunnel'] === 'connect'), { what: 'the tunnel line' });
    assert.equal(line['attempts'], 2);
    assert.equal(line['error'], 'upstream_connect_failure');
  } finally {
    await p.close();
  }
});
