/**
 * One upstream endpoint of a cluster: its address, its connection pool, and the mutable state
 * that balancers, health checking and outlier detection share. The cluster manager creates
 * endpoints and their pools; everything else only reads or flips these fields.
 */
import type { Dispatcher } from 'undici';
import { formatAddress } from '../config/address.js';
import type { Address } from '../config/types.js';
import type { LbEndpoint } from './lb/types.js';

/**
 * The cluster's panic mode, shared by its endpoints: while `on`, balancers treat every endpoint as
 * available (Envoy's healthy panic threshold), so a few survivors are not buried under all the load.
 */
export interface PanicMode {
  on: boolean;
}

const NEVER_PANIC: PanicMode = Object.freeze({ on: false });

export class Endpoint implements LbEndpoint {
  readonly key: string;
  /** requests in flight (incremented by the forwarder around each attempt) */
  active = 0;
  /** set by the active health checker; true until a check says otherwise */
  healthy = true;
  /** set by outlier detection while the endpoint is ejected */
  ejected = false;
  /** how many times outlier detection ejected it (the ejection time multiplier) */
  ejections = 0;
  /** consecutive failed attempts (outlier detection) */
  consecutiveFailures = 0;

  constructor(
    readonly address: Address,
    /** the endpoint's undici Pool (or any Dispatcher in tests) */
    readonly pool: Dispatcher,
    private readonly panic: PanicMode = NEVER_PANIC,
  ) {
    this.key = formatAddress(address);
  }

  /** healthy (active checks) and not ejected (outlier detection) */
  get up(): boolean {
    return this.healthy && !this.ejected;
  }

  /** what balancers read: up, or any endpoint while the cluster is in panic mode */
  get available(): boolean {
    return this.panic.on || (this.healthy && !this.ejected);
  }
}
