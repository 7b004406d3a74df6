/**
 * Request mirroring (shadowing): a fire-and-forget copy of an admitted request to another
 * cluster. Admission rolled the mirror's percent and named the cluster (decision.ts); this sends
 * the copy on a spare endpoint lease (cluster/lease.ts: a mirror never queues and never probes a
 * breaker). The copy's answer is read and dropped; its failures, slowness or back-pressure never
 * reach the primary exchange (the body tee is bounded and drops the mirror, never the request).
 * The mirrored Host gets `-shadow` appended, as Envoy does, so shadow traffic is recognisable.
 */
import type { Dispatcher } from 'undici';
import type { Cluster } from '../cluster/cluster.js';
import { takeSpareLease, type Lease } from '../cluster/lease.js';
import type { BodySource } from './body.js';
import type { Decision } from './decision.js';

/** A mirror that has not answered in this long is abandoned. */
const MIRROR_TIMEOUT = 30_000;

class MirrorHandler implements Dispatcher.DispatchHandler {
  constructor(private readonly lease: Lease) {}
  onConnect(): void {}
  onHeaders(): boolean {
    return true;
  }
  onData(): boolean {
    return true;
  }
  onComplete(): void {
    this.lease.release();
  }
  onError(): void {
    this.lease.release();
  }
}

/** The upstream headers with `-shadow` appended to Host. */
function shadowHeaders(src: readonly string[]): string[] {
  const headers: string[] = [];
  for (let i = 0; i < src.length; i += 2) {
    const k = src[i] as string;
    const v = src[i + 1] as string;
    headers.push(k, k.length === 4 && k.toLowerCase() === 'host' ? `${v}-shadow` : v);
  }
  return headers;
}

/** Sends the copy of the request `d` describes (its body teed from `source`) to `cluster`. */
export function startMirror(d: Decision, method: string, source: BodySource | null, cluster: Cluster): void {
  const lease = takeSpareLease(cluster, d.hashKey);
  if (lease === null) return; // no free connection: no copy
  const body = source === null ? null : source.tee();
  body?.on('error', () => undefined);
  try {
    lease.endpoint.pool.dispatch(
      {
        method: method as Dispatcher.HttpMethod,
        path: d.upstreamPath,
        headers: shadowHeaders(d.upstreamHeaders),
        body,
        headersTimeout: MIRROR_TIMEOUT,
        bodyTimeout: MIRROR_TIMEOUT,
      },
      new MirrorHandler(lease),
    );
  } catch {
    lease.release();
  }
}
