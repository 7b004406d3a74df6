/**
 * Upstreams that answer with their own name, on a chosen loopback address and port (several
 * 127.0.0.x / ::1 servers share one port, as the endpoints of one DNS cluster do), plus the
 * counting helper the traffic tests share.
 */
import http from 'node:http';
import type net from 'node:net';
import { once } from 'node:events';

export interface Tagged {
  readonly name: string;
  readonly host: string;
  port: number;
  /** requests answered, by path */
  hits: number;
  /** TCP connections accepted */
  connections: number;
  /** requests held (not answered) while `hold` is on; `release()` answers them */
  held: http.ServerResponse[];
  hold: boolean;
  /** status for every answer (default 200); `/healthz` uses `healthStatus` */
  status: number;
  healthStatus: number;
  release(): void;
  server: http.Server;
  close(): Promise<void>;
}

/** A server on `host:port` (port 0 = any) answering `name` as the body. */
export async function startTagged(name: string, host = '127.0.0.1', port = 0): Promise<Tagged> {
  const t: Tagged = {
    name,
    host,
    port,
    hits: 0,
    connections: 0,
    held: [],
    hold: false,
    status: 200,
    healthStatus: 200,
    release: () => {
      const h = t.held.splice(0);
      for (const r of h) r.end(name);
    },
    server: undefined as unknown as http.Server,
    close: async () => {
      t.release();
      t.server.closeAllConnections();
      await new Promise<void>((r) => t.server.close(() => r()));
    },
  };
  t.server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/healthz') {
        res.writeHead(t.healthStatus).end();
        return;
      }
      t.hits++;
      res.writeHead(t.status, { 'content-type': 'text/plain', 'x-upstream': name });
      if (t.hold) t.held.push(res);
      else res.end(name);
    });
  });
  t.server.keepAliveTimeout = 30_000;
  t.server.on('connection', () => t.connections++);
  t.server.listen(port, host);
  await once(t.server, 'listening');
  t.port = (t.server.address() as net.AddressInfo).port;
  return t;
}

/** Counts values. */
export function tally(values: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}
