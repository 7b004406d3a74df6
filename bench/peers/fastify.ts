/**
 * Peer program: fastify 5 with `@fastify/http-proxy` (undici underneath), logger off.
 * `node fastify.js LISTEN_PORT UPSTREAM_PORT`.
 */
import fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const listenPort = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const app = fastify({ logger: false, keepAliveTimeout: 65_000, requestTimeout: 0, bodyLimit: 1024 * 1024 * 1024 });
await app.register(proxy, { upstream: `http://127.0.0.1:${upstreamPort}` });
await app.listen({ port: listenPort, host: '127.0.0.1' });
process.on('SIGTERM', () => process.exit(0));
