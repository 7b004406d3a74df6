/**
 * Pools for outbound traffic to hosts no route names (`unknownHosts: passthrough`): one small
 * keep-alive pool per `host:port`, created on first use, resolved through the configured
 * resolver, and capped so a chatty app cannot make the proxy hold unbounded sockets.
 */
import { Pool } from 'undici';
import type { Address } from '../config/types.js';
import { createLookup } from '../cluster/dns.js';

const MAX_ORIGINS = 256;

export class PassthroughPools {
  private readonly pools = new Map<string, Pool>();
  /** The resolver's lookup (also used by upgrade and CONNECT tunnels to unknown hosts). */
  readonly lookup: ReturnType<typeof createLookup>;

  constructor(
    servers: readonly Address[] | null,
    readonly connectTimeout = 5_000,
  ) {
    this.lookup = createLookup(servers);
  }

  /** `hostport` is `host:port` as the client named it (brackets kept for IPv6). */
  get(hostport: string): Pool {
    let p = this.pools.get(hostport);
    if (p !== undefined) {
      // most recently used last, so eviction takes the least recently used
      this.pools.delete(hostport);
      this.pools.set(hostport, p);
      return p;
    }
    if (this.pools.size >= MAX_ORIGINS) {
      const [oldestKey, oldest] = this.pools.entries().next().value as [string, Pool];
      this.pools.delete(oldestKey);
      void oldest.close().catch(() => undefined);
    }
    p = new Pool(`http://${hostport}`, {
      connections: 64,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: 0,
      bodyTimeout: 0,
      strictContentLength: true,
      connect: { timeout: this.connectTimeout, noDelay: true, keepAlive: true, lookup: this.lookup },
    });
    this.pools.set(hostport, p);
    return p;
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.close().catch(() => undefined)));
  }

  async destroy(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => undefined)));
  }
}
