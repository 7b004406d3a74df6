/**
 * The benchmark upstream: a keep-alive Node HTTP server (a stand-in for the app behind the
 * sidecar). Run as its own process: `node upstream.js PORT`.
 *
 *   GET  /small              13 bytes ("Hello, World!")
 *   GET  /large              64 KiB
 *   GET  /download?bytes=N   N bytes streamed in 64 KiB writes with backpressure
 *   POST /upload             reads and discards the body; answers {"bytes":N}
 *   ANY  /status/CODE        answers CODE (used by the retry storm: 100% 503)
 *   GET  /__upstream/stats   {"requests":{path:count}} counted since start or last reset
 *   POST /__upstream/reset   zeroes the counters
 *
 * Why Node and not nginx as upstream: it is always present, it can verify uploads byte-for-byte
 * and count attempts per path (the retry storm needs that), and it streams arbitrary sizes
 * without temp files. It runs on the load core, so it is in the direct baseline too.
 */
import http from 'node:http';

const SMALL = Buffer.from('Hello, World!');
const LARGE = Buffer.alloc(64 * 1024, 0x62);
const CHUNK = Buffer.alloc(64 * 1024, 0x63);
const SMALL_HEADERS = { 'content-type': 'text/plain', 'content-length': String(SMALL.length) };
const LARGE_HEADERS = { 'content-type': 'application/octet-stream', 'content-length': String(LARGE.length) };

const counts = new Map<string, number>();

function count(path: string): void {
  counts.set(path, (counts.get(path) ?? 0) + 1);
}

function download(res: http.ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

const server = http.createServer({ keepAliveTimeout: 65_000, noDelay: true, highWaterMark: 64 * 1024 }, (req, res) => {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path === '/small') {
    count(path);
    res.writeHead(200, SMALL_HEADERS);
    res.end(SMALL);
    return;
  }
  if (path === '/large') {
    count(path);
    res.writeHead(200, LARGE_HEADERS);
    res.end(LARGE);
    return;
  }
  if (path === '/download') {
    count(path);
    const bytes = Number(new URLSearchParams(url.slice(q + 1)).get('bytes') ?? '0');
    download(res, Number.isFinite(bytes) && bytes > 0 ? bytes : 0);
    return;
  }
  if (path === '/upload') {
    count(path);
    let n = 0;
    req.on('data', (chunk: Buffer) => {
      n += chunk.length;
    });
    req.on('end', () => {
      const body = JSON.stringify({ bytes: n });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
      res.end(body);
    });
    return;
  }
  if (path.startsWith('/status/')) {
    count(path);
    req.resume();
    const code = Number(path.slice('/status/'.length));
    const body = `{"status":${code}}`;
    res.writeHead(code >= 200 && code <= 599 ? code : 500, { 'content-type': 'application/json', 'content-length': String(body.length) });
    res.end(body);
    return;
  }
  if (path === '/__upstream/stats') {
    const body = JSON.stringify({ requests: Object.fromEntries(counts) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    res.end(body);
    return;
  }
  if (path === '/__upstream/reset') {
    counts.clear();
    res.writeHead(204);
    res.end();
    return;
  }
  count(path);
  req.resume();
  res.writeHead(404, { 'content-length': '0' });
  res.end();
});
// Idle keep-alive clients (the 1,000-connection scenario) must not be timed out by the server.
server.headersTimeout = 70_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

const port = Number(process.argv[2] ?? '0');
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
