/**
 * Peer program: the featureless floor the performance issue names, "a 40-line node:http + undici
 * Pool proxy with no features": no routing, no metrics, no log, no header policy beyond dropping
 * hop-by-hop headers. `node floor.js LISTEN_PORT UPSTREAM_PORT`. What node:http and undici cost by
 * themselves; outrigger is measured against it to see what its features cost.
 */
import http from 'node:http';
import { Pool } from 'undici';

const listenPort = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 256, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

const server = http.createServer({ keepAliveTimeout: 65_000, noDelay: true }, (req, res) => {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
  pool.request(
    { path: req.url ?? '/', method: req.method ?? 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req },
    (err, data) => {
      if (err !== null) {
        res.writeHead(502, { 'content-length': '0' }).end();
        return;
      }
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(data.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
      res.writeHead(data.statusCode, out);
      data.body.pipe(res);
    },
  );
});
server.headersTimeout = 70_000;
server.requestTimeout = 0;
server.listen(listenPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
