/**
 * What changed between two config snapshots, for hot reload: a cluster whose config is equal
 * keeps its pools, health state and breaker; a listener whose address is equal keeps its socket.
 */
import type { Address, ClusterConfig } from './types.js';

/** Structural equality of JSON-like values (what a Config is made of). */
function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
    // NaN never appears in a validated config, so `===` is enough for scalars.
    return false;
  }
  const aArr = Array.isArray(a);
  if (aArr !== Array.isArray(b)) return false;
  if (aArr) {
    const x = a as readonly unknown[];
    const y = b as readonly unknown[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!equal(x[i], y[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const kx = Object.keys(x);
  if (kx.length !== Object.keys(y).length) return false;
  for (let i = 0; i < kx.length; i++) {
    const k = kx[i]!;
    if (!Object.hasOwn(y, k) || !equal(x[k], y[k])) return false;
  }
  return true;
}

/**
 * True when the two cluster configs differ in anything (name, discovery, balancing, limits,
 * health checking, breaker, budget, TLS file paths). TLS *contents* changing under the same
 * paths is not seen here; the file watcher handles that.
 */
export function clusterChanged(a: ClusterConfig, b: ClusterConfig): boolean {
  return !equal(a, b);
}

/** True when a listener must be re-bound: its host or port differs. */
export function listenerChanged(a: Address, b: Address): boolean {
  return a.host !== b.host || a.port !== b.port;
}
