/**
 * The admin server (docs/operations.md, "Admin API"): liveness, readiness, Prometheus metrics, the
 * config in force, cluster state, and a loopback-only shutdown. It binds to loopback by default
 * and is deliberately plain: no routing library, no body parsing.
 */
import http from 'node:http';
import type { Address } from '../config/types.js';
import { renderConfig } from '../config/render.js';
import { listenerChanged } from '../config/diff.js';
import { formatAddress } from '../config/address.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { Runtime } from '../runtime.js';
import { listenOn } from '../listener/bind.js';

export interface AdminState {
  readonly metrics: Metrics;
  runtime(): Runtime;
  /** config loaded and listeners bound and DNS answered once, and not draining */
  ready(): boolean;
  /** starts the drain sequence (idempotent) */
  shutdown(reason: string): void;
}

function isLoopback(addr: string | undefined): boolean {
  if (addr === undefined) return false;
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json', JSON.stringify(value, null, 2) + '\n');
}

export class AdminServer {
  readonly server: http.Server;
  private bound: Address | null = null;

  constructor(
    private readonly address: Address,
    private readonly state: AdminState,
  ) {
    this.server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) json(res, 500, { error: err.message });
        else res.destroy();
      });
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (path === '/shutdown') {
      if (method !== 'POST') return json(res, 405, { error: 'method_not_allowed' });
      if (!isLoopback(req.socket.remoteAddress)) return json(res, 403, { error: 'forbidden' });
      json(res, 202, { status: 'draining' });
      this.state.shutdown('admin /shutdown');
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') return json(res, 405, { error: 'method_not_allowed' });
    switch (path) {
      case '/live':
        return send(res, 200, 'text/plain', 'live\n');
      case '/ready':
        return this.state.ready() ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', 'not ready\n');
      case '/metrics': {
        const reg = this.state.metrics.registry;
        return send(res, 200, reg.contentType, await reg.metrics());
      }
      case '/config': {
        const config = this.state.runtime().config;
        const body = renderConfig(config) as Record<string, unknown>;
        // The admin socket is bound once: a reloaded admin.listen waits for a restart, and the
        // answer says so rather than showing an address nobody listens on.
        if (listenerChanged(this.address, config.admin.listen)) {
          body['restartRequired'] = [
            {
              key: 'admin.listen',
              configured: formatAddress(config.admin.listen),
              running: formatAddress(this.address),
              note: 'takes effect on restart',
            },
          ];
        }
        return json(res, 200, body);
      }
      case '/clusters': {
        const rt = this.state.runtime();
        const out: Record<string, unknown> = {};
        for (const c of rt.allClusters()) out[c.name] = c.describe();
        return json(res, 200, { clusters: out });
      }
      case '/':
        return json(res, 200, { endpoints: ['/live', '/ready', '/metrics', '/config', '/clusters', 'POST /shutdown'] });
      default:
        return json(res, 404, { error: 'not_found' });
    }
  }

  async listen(): Promise<Address> {
    this.bound = await listenOn(this.server, this.address);
    return this.bound;
  }

  get boundAddress(): Address | null {
    return this.bound;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
