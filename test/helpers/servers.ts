/**
 * Real upstreams for integration tests: node:http servers on 127.0.0.1 port 0 that record what
 * crossed the wire and answer as each test tells them.
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

export interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface Upstream {
  port: number;
  address: string;
  requests: Recorded[];
  /** connections accepted so far */
  connections: number;
  server: http.Server;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

/** An upstream that reads the whole request, records it, then calls `handler` (default: echo JSON). */
export async function startUpstream(handler?: Handler, opts: { readBody?: boolean } = {}): Promise<Upstream> {
  const requests: Recorded[] = [];
  const u: Upstream = {
    port: 0,
    address: '',
    requests,
    connections: 0,
    server: undefined as unknown as http.Server,
    close: async () => {
      u.server.closeAllConnections();
      await new Promise<void>((r) => u.server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    if (opts.readBody === false) {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.alloc(0),
      });
      (handler ?? echo)(req, res, Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      (handler ?? echo)(req, res, body);
    });
  });
  server.on('connection', () => u.connections++);
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  u.server = server;
  u.port = (server.address() as net.AddressInfo).port;
  u.address = `127.0.0.1:${u.port}`;
  return u;
}

export const echo: Handler = (req, res, body) => {
  const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString() });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
  res.end(out);
};

/** A port with nothing listening on it (connect → ECONNREFUSED). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A raw TCP server: `onSocket` gets each connection (for broken-upstream tests). */
export async function startRawServer(
  onSocket: (s: net.Socket) => void,
): Promise<{ port: number; close(): Promise<void>; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const s = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    onSocket(sock);
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return {
    port: (s.address() as net.AddressInfo).port,
    sockets,
    close: async () => {
      for (const x of sockets) x.destroy();
      await new Promise<void>((r) => s.close(() => r()));
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request with node:http (no keep-alive unless an agent is given). */
export function request(
  port: number,
  opts: {
    method?: string;
    path?: string;
    headers?: Record<string, string | string[]>;
    body?: string | Buffer;
    agent?: http.Agent | false;
    host?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: opts.host ?? '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers ?? {},
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Sends raw bytes and collects everything until the peer closes (or `ms` passes). */
export function rawExchange(port: number, bytes: string | Buffer, ms = 3000): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const t = setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks).toString('latin1'), closed });
    }, ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      closed = true;
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks).toString('latin1'), closed });
    });
    s.write(bytes);
  });
}
