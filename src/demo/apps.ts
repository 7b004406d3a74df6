/**
 * The demo's sample services: small node http servers on loopback that call each other only
 * through their sidecars' outbound listeners (Host-header routing), as apps in a mesh do.
 *   asset-dashboard-bff  /assetdashboard/*       -> asset-consumer /assetconsumer/items
 *                        /assetdashboard/slow    -> asset-mgr-ms /assetmgrms/slow (1 s; route timeout 300 ms)
 *                        /assetdashboard/reports -> asset-mgr-ms /assetmgrms/reports (always 500)
 *   asset-consumer       /assetconsumer/*        -> asset-mgr-ms /assetmgrms/assets
 *   asset-mgr-ms         /assetmgrms/assets: 200; replica 2 answers 503 to 4 requests in every 8
 */
import http from 'node:http';
import type { Address } from '../config/types.js';

/** A running sample app; `close()` ends it and every connection it has. */
export interface App {
  readonly name: string;
  close(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

// One keep-alive agent for every app-to-sidecar call, like a real app's client pool.
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

/** Calls `host` + `path` through the sidecar's outbound listener and relays the answer. */
function relay(outbound: Address, host: string, path: string, from: string, res: http.ServerResponse): void {
  const req = http.request({ host: outbound.host, port: outbound.port, path, agent, headers: { host } }, (up) => {
    let body = '';
    up.setEncoding('utf8');
    up.on('data', (c: string) => (body += c));
    up.on('end', () => {
      res.writeHead(up.statusCode ?? 502, { 'content-type': 'application/json' });
      res.end(`{"service":"${from}","upstream":${JSON.stringify(body.trim())}}`);
    });
  });
  req.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
    res.end(`{"service":"${from}","error":${JSON.stringify(err.message)}}`);
  });
  req.end();
}

function listen(name: string, at: Address, handler: Handler): Promise<App> {
  const server = http.createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve({
        name,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

export function startBff(at: Address, outbound: Address): Promise<App> {
  return listen('asset-dashboard-bff', at, (req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/assetdashboard/slow')) relay(outbound, 'asset-mgr-ms', '/assetmgrms/slow', 'asset-dashboard-bff', res);
    else if (url.startsWith('/assetdashboard/reports')) relay(outbound, 'asset-mgr-ms', '/assetmgrms/reports', 'asset-dashboard-bff', res);
    else relay(outbound, 'asset-consumer', '/assetconsumer/items', 'asset-dashboard-bff', res);
  });
}

export function startConsumer(at: Address, outbound: Address): Promise<App> {
  return listen('asset-consumer', at, (_req, res) => {
    relay(outbound, 'asset-mgr-ms', '/assetmgrms/assets', 'asset-consumer', res);
  });
}

export async function startAssetMgr(name: string, at: Address, flaky: boolean): Promise<App> {
  let n = 0;
  const timers = new Set<NodeJS.Timeout>();
  const app = await listen(name, at, (req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/assetmgrms/slow')) {
      const t = setTimeout(() => {
        timers.delete(t);
        res.end(`{"service":"${name}","slow":true}`);
      }, 1000);
      timers.add(t);
      res.on('close', () => {
        clearTimeout(t);
        timers.delete(t);
      });
      return;
    }
    if (url.startsWith('/assetmgrms/reports')) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(`{"service":"${name}","error":"reports backend down"}`);
      return;
    }
    // Deterministic bursts of failures (4 in every 8) keep the demo's story the same each run:
    // retries hide them, and the runs of consecutive errors get the replica ejected.
    if (flaky && n++ % 8 < 4) {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(`{"service":"${name}","error":"overloaded"}`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"service":"${name}","assets":[{"id":1},{"id":2}]}`);
  });
  return {
    name,
    close: () => {
      for (const t of timers) clearTimeout(t);
      return app.close();
    },
  };
}

/** Ends the shared client pool (after every app is closed). */
export function closeClients(): void {
  agent.destroy();
}
