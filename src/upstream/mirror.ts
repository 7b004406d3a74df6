/**
 * Request mirroring (shadowing): a fire-and-forget copy of a request to another cluster. The
 * copy's answer is read and dropped; its failures, slowness or back-pressure never reach the
 * primary exchange (the body tee is bounded and drops the mirror, never the request). The
 * mirrored Host gets `-shadow` appended, as Envoy does, so shadow traffic is recognisable.
 */
import type { Dispatcher } from 'undici';
import type { Cluster } from '../cluster/cluster.js';
import type { Endpoint } from '../cluster/endpoint.js';
import type { Exchange } from './forward.js';
import type { Logger } from '../telemetry/log.js';

/** A mirror that has not answered in this long is abandoned. */
const MIRROR_TIMEOUT = 30_000;

class MirrorHandler implements Dispatcher.DispatchHandler {
  private finished = false;
  constructor(
    private readonly ep: Endpoint,
    private readonly cluster: Cluster,
    private readonly log: Logger,
  ) {}
  onConnect(): void {}
  onHeaders(): boolean {
    return true;
  }
  onData(): boolean {
    return true;
  }
  onComplete(): void {
    this.end();
  }
  onError(err: Error): void {
    this.log.debug({ cluster: this.cluster.name, err: err.message }, 'mirror request failed');
    this.end();
  }
  private end(): void {
    if (this.finished) return;
    this.finished = true;
    this.ep.active--;
    this.cluster.requestEnded();
  }
}

export function startMirror(x: Exchange, cluster: Cluster, log: Logger): void {
  const ep = cluster.pick(x.hashKey, undefined);
  // a mirror never queues: no free connection, no copy
  if (ep === null || !cluster.admits(ep)) return;
  const src = x.upstreamHeaders;
  const headers: string[] = [];
  for (let i = 0; i < src.length; i += 2) {
    const k = src[i] as string;
    const v = src[i + 1] as string;
    headers.push(k, k.length === 4 && k.toLowerCase() === 'host' ? `${v}-shadow` : v);
  }
  ep.active++;
  cluster.requestStarted();
  const body = x.teeBody();
  body?.on('error', () => undefined);
  try {
    ep.pool.dispatch(
      {
        method: (x.req.method ?? 'GET') as Dispatcher.HttpMethod,
        path: x.upstreamPath,
        headers,
        body,
        headersTimeout: MIRROR_TIMEOUT,
        bodyTimeout: MIRROR_TIMEOUT,
      },
      new MirrorHandler(ep, cluster, log),
    );
  } catch (err) {
    ep.active--;
    cluster.requestEnded();
    log.debug({ cluster: cluster.name, err: (err as Error).message }, 'mirror request not sent');
  }
}
