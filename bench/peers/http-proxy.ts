/**
 * Peer program: `http-proxy` (node-http-proxy), the classic Node reverse proxy, as the baseline.
 * `node http-proxy.js LISTEN_PORT UPSTREAM_PORT`. Upstream connections are kept alive (an agent
 * with keepAlive), as any serious deployment would configure it; no logging.
 */
import http from 'node:http';
import httpProxy from 'http-proxy';

const listenPort = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${upstreamPort}`, agent, xfwd: true });
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) {
    res.writeHead(502, { 'content-length': '0' });
    res.end();
  } else {
    res.destroy();
  }
});
const server = http.createServer({ keepAliveTimeout: 65_000, noDelay: true }, (req, res) => proxy.web(req, res));
server.headersTimeout = 70_000;
server.requestTimeout = 0;
server.listen(listenPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
