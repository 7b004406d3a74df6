// Back-pressure end to end: a client that stops reading a large response stops the upstream
// from sending (the proxy holds no more than the sockets' kernel buffers), and an upstream that
// stops reading a large upload stops the client's writes. Then both transfers finish whole.
// Stalls are detected by progress stopping, not by time limits.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { config } from './helpers/config.js';
import { waitFor } from './helpers/wait.js';

const MiB = 1024 * 1024;
const TOTAL = 160 * MiB;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** What the kernel may hold in flight: send and receive buffers of both connections, plus slack. */
function kernelBound(): number {
  const max = (file: string): number => {
    try {
      return Number(readFileSync(file, 'utf8').trim().split(/\s+/)[2]);
    } catch {
      return 8 * MiB;
    }
  };
  return 2 * (max('/proc/sys/net/ipv4/tcp_rmem') + max('/proc/sys/net/ipv4/tcp_wmem')) + 16 * MiB;
}

/** Resolves once `count()` stopped changing for `polls` polls in a row (or reached `limit`). */
async function untilStalled(count: () => number, limit: number, polls = 8): Promise<number> {
  let last = -1;
  let still = 0;
  for (;;) {
    const now = count();
    if (now >= limit) return now;
    still = now === last ? still + 1 : 0;
    if (still >= polls) return now;
    last = now;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Bytes handed to a writer so far, and whether all TOTAL were. */
interface Pumped {
  bytes: number;
  done: boolean;
}

/**
 * Writes TOTAL bytes into `w` in CHUNKs, as fast as it takes them and no faster (waits for
 * 'drain' whenever a write reports back-pressure); `then` runs once all were handed over.
 */
function pump(w: { write(b: Buffer): boolean; once(event: 'drain', f: () => void): unknown }, then: () => void = () => {}): Pumped {
  const p: Pumped = { bytes: 0, done: false };
  const more = (): void => {
    while (p.bytes < TOTAL) {
      p.bytes += CHUNK.length;
      if (!w.write(CHUNK)) {
        w.once('drain', more);
        return;
      }
    }
    p.done = true;
    then();
  };
  more();
  return p;
}

let upstream: http.Server;
let upstreamPort = 0;
let sent: Pumped = { bytes: 0, done: false };
let uploadRead = 0;
let releaseUpload: (() => void) | null = null;
let p: TestProxy;

before(async () => {
  upstream = http.createServer((req, res) => {
    if (req.method === 'GET') {
      // an upstream that respects its own socket's back-pressure
      res.writeHead(200, { 'content-length': String(TOTAL) });
      sent = pump(res, () => res.end());
      return;
    }
    // POST: read nothing until released
    uploadRead = 0;
    req.pause();
    releaseUpload = () => {
      req.on('data', (c: Buffer) => (uploadRead += c.length));
      req.on('end', () => res.end(String(uploadRead)));
      req.resume();
    };
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  upstreamPort = (upstream.address() as net.AddressInfo).port;
  p = await startProxy(config({ inbound: upstreamPort }));
});

after(async () => {
  await p.close();
  upstream.closeAllConnections();
  upstream.close();
});

test('a client that stops reading stops the upstream; the body then arrives whole', async () => {
  const socket = net.connect(p.inbound, '127.0.0.1');
  await once(socket, 'connect');
  let received = 0;
  let head = '';
  let bodyStart = -1;
  socket.on('data', (d: Buffer) => {
    if (bodyStart === -1) {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      bodyStart = end + 4;
      received = head.length - bodyStart;
      socket.pause(); // stop reading once the head is here
      return;
    }
    received += d.length;
  });
  socket.write('GET /big HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n');
  await waitFor(() => bodyStart !== -1, { what: 'the response head' });
  const stalledAt = await untilStalled(() => sent.bytes, TOTAL);
  const bound = kernelBound();
  assert.ok(stalledAt < bound, `upstream sent ${stalledAt} bytes to a client reading none (bound ${bound})`);
  assert.ok(stalledAt < TOTAL);
  assert.match(head, /^HTTP\/1\.1 200 /);
  assert.match(head, new RegExp(`content-length: ${TOTAL}\\r\\n`, 'i'));
  // the proxy itself holds little: what it read from the upstream is what the client can't take
  socket.resume();
  await once(socket, 'close');
  assert.equal(received, TOTAL);
  assert.equal(sent.bytes, TOTAL);
});

test('an upstream that stops reading stops the client; the upload then arrives whole', async () => {
  const socket = net.connect(p.inbound, '127.0.0.1');
  await once(socket, 'connect');
  let reply = '';
  socket.on('data', (d: Buffer) => (reply += d.toString('latin1')));
  socket.write(`POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: ${TOTAL}\r\nconnection: close\r\n\r\n`);
  const written = pump(socket);
  const stalledAt = await untilStalled(() => written.bytes, TOTAL);
  const bound = kernelBound();
  assert.ok(!written.done, 'the whole upload was accepted while the upstream read nothing');
  assert.ok(stalledAt < bound, `client wrote ${stalledAt} bytes to an upstream reading none (bound ${bound})`);
  assert.ok(releaseUpload !== null, 'the request reached the upstream');
  releaseUpload();
  await once(socket, 'close');
  assert.equal(written.bytes, TOTAL);
  assert.match(reply, /^HTTP\/1\.1 200 /);
  assert.ok(reply.endsWith(`\r\n\r\n${TOTAL}`), reply.slice(-80));
});
