/**
 * Peer program: fast-proxy 2 (fastify's framework-agnostic proxy) on its undici transport, as in
 * the performance issue's table, behind a bare node:http server. `node fast-proxy.js LISTEN_PORT
 * UPSTREAM_PORT`. fast-proxy brings its own undici 5.
 */
import http from 'node:http';
import fastProxy from 'fast-proxy';

const listenPort = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const { proxy } = fastProxy({ base: `http://127.0.0.1:${upstreamPort}`, undici: { connections: 256, pipelining: 1 } });
const server = http.createServer({ keepAliveTimeout: 65_000, noDelay: true }, (req, res) => proxy(req, res, req.url ?? '/', {}));
server.headersTimeout = 70_000;
server.requestTimeout = 0;
server.listen(listenPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
