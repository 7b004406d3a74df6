/**
 * Loop protection, two ways:
 *
 * - A request whose target is one of this proxy's own listeners (`curl 127.0.0.1:15001/` with no
 *   Host, Node's fetch through the proxy, which sends Host = the proxy) would be forwarded to
 *   itself until a timeout. `OwnAddresses` recognises such a target before anything is dialled.
 * - A loop through other proxies (a cluster that points back at us, two sidecars routing to each
 *   other) is caught by a `Via` entry (RFC 9110 7.6.3), as nginx and Envoy users know it: each
 *   listener adds `via: 1.1 outrigger-<id>` to what it forwards, `<id>` random per listener, and
 *   refuses a request that already carries its own entry. Per listener, not per process, so a
 *   pod that calls its own Service (outbound, then its own inbound) is not a loop.
 *
 * Both refusals answer 508 `loop_detected` at once.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Address } from '../config/types.js';

/** The `via` entry a listener adds (`received-protocol received-by`, the pseudonym unique to it). */
export function viaEntry(): string {
  return `1.1 outrigger-${randomBytes(4).toString('hex')}`;
}

/** Whether a `via` field value (a comma-separated list) holds `entry`'s pseudonym. */
export function viaHolds(value: string, entry: string): boolean {
  const at = value.indexOf(entry.slice(4));
  if (at === -1) return false;
  // the pseudonym must end there (a longer token is another proxy's)
  const end = at + entry.length - 4;
  return end === value.length || value.charCodeAt(end) === 44 /* , */ || value.charCodeAt(end) === 32;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/**
 * The addresses this proxy listens on, to tell a self-targeted request. Built when listeners bind
 * (and rebind on reload); the request path asks `has()` only for passthrough and CONNECT targets,
 * and a port none of our listeners holds answers at the first comparison.
 */
export class OwnAddresses {
  private readonly bound: readonly Address[];
  /** this machine's interface addresses, for listeners bound to a wildcard */
  private readonly local: ReadonlySet<string>;

  constructor(bound: readonly Address[]) {
    this.bound = bound;
    const local = new Set<string>();
    if (bound.some((a) => isWildcard(a.host))) {
      for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) local.add(i.address);
    }
    this.local = local;
  }

  static readonly NONE = new OwnAddresses([]);

  /** Whether `host:port` (host without brackets, any case) reaches one of our listeners. */
  has(host: string, port: number): boolean {
    const b = this.bound;
    for (let i = 0; i < b.length; i++) {
      const a = b[i] as Address;
      if (a.port !== port) continue;
      const h = host.toLowerCase();
      if (h === a.host.toLowerCase()) return true;
      if (isLoopback(h) && (isLoopback(a.host) || isWildcard(a.host))) return true;
      if (isWildcard(a.host) && (isWildcard(h) || this.local.has(h))) return true;
    }
    return false;
  }
}
