/**
 * Shared pieces of the resilience, overflow and health tests that run through a real proxy:
 * fault-injecting upstreams and a metric reader for the admin `/metrics` text (the poll-until is
 * helpers/wait.ts).
 */
import http from 'node:http';
import { request, startRawServer, startUpstream, type Upstream } from './helpers/servers.js';

/** Sum of the samples of `name` whose labels include every pair of `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    let ok = true;
    for (const [k, v] of Object.entries(labels)) {
      if (!line.includes(`${k}="${v}"`)) {
        ok = false;
        break;
      }
    }
    if (ok) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export async function metrics(adminPort: number): Promise<string> {
  return (await request(adminPort, { path: '/metrics' })).body.toString();
}

export interface ClusterView {
  circuitBreaker: string;
  panic: boolean;
  activeRequests: number;
  limits: { queued: number; overflows: number };
  retryBudget: { refused: number };
  endpoints: { address: string; healthy: boolean; ejected: boolean; ejections: number; available: boolean; activeRequests: number }[];
}

export async function clusters(adminPort: number): Promise<Record<string, ClusterView>> {
  const r = await request(adminPort, { path: '/clusters' });
  return (JSON.parse(r.body.toString()) as { clusters: Record<string, ClusterView> }).clusters;
}

/** A raw upstream that counts connections and does `onData` to each on its first bytes. */
export async function faultServer(onFirstData: (s: import('node:net').Socket) => void) {
  const state = { connections: 0 };
  const srv = await startRawServer((s) => {
    state.connections++;
    s.once('data', () => onFirstData(s));
  });
  return Object.assign(srv, { state, address: `127.0.0.1:${srv.port}` });
}

/** Resets (RST) every connection once it has received `bytes` bytes. */
export async function resetAfter(bytes: number) {
  const state = { connections: 0 };
  const srv = await startRawServer((s) => {
    state.connections++;
    let got = 0;
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= bytes) s.resetAndDestroy();
    });
  });
  return Object.assign(srv, { state, address: `127.0.0.1:${srv.port}` });
}

/** An upstream whose answers are held until `release()` (requests are recorded on arrival). */
export async function holdingUpstream(): Promise<Upstream & { release(): void; held: http.ServerResponse[] }> {
  const held: http.ServerResponse[] = [];
  let released = false;
  const u = await startUpstream(
    (_req, res) => {
      if (released) res.end('late');
      else held.push(res);
    },
    { readBody: false },
  );
  return Object.assign(u, {
    held,
    release() {
      released = true;
      for (const r of held.splice(0)) r.end('released');
    },
  });
}

/** An upstream answering `status()` (read per request) with a small body. */
export function statusUpstream(status: () => number): Promise<Upstream> {
  return startUpstream((_req, res) => {
    const s = status();
    res.writeHead(s, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
}

/** A request whose outcome is "complete" only when the whole body arrived. */
export function fetchOutcome(port: number, host: string, path = '/'): Promise<'complete' | 'cut'> {
  return new Promise((resolve) => {
    const req = http.get({ port, host: '127.0.0.1', path, headers: { host }, agent: false }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve(res.complete ? 'complete' : 'cut'));
      res.on('error', () => resolve('cut'));
      res.on('aborted', () => resolve('cut'));
    });
    req.on('error', () => resolve('cut'));
  });
}
