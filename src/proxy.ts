/**
 * The composition root: loads the config, builds a runtime snapshot, binds the listeners and the
 * admin server, watches the config (and the files it names) for changes, swaps snapshots on
 * reload without dropping a request, and drains on shutdown.
 */
import type { DestinationStream } from 'pino';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { AdminServer } from './admin/server.js';
import { formatAddress } from './config/address.js';
import { formatProblem, loadConfigFile } from './config/load.js';
import type { Address, Config, ConfigProblem, InboundConfig } from './config/types.js';
import { listenerChanged } from './config/diff.js';
import { watchFiles, type FileWatcher } from './config/watch.js';
import { Listener, principals, type ListenerContext, type TlsServerOptions } from './listener/listener.js';
import type { ClientConnection } from './request/admit.js';
import { OwnAddresses } from './request/loop.js';
import { buildRuntime, type BuildResult, type Runtime } from './runtime.js';
import type { Cluster } from './cluster/cluster.js';
import type { PassthroughPools } from './cluster/passthrough.js';
import { HandshakeFailureLog, inboundServerOptions, readTlsMaterial, verifyClientSocket } from './security/tls.js';
import { createLoggers, flushLogger, type Logger } from './telemetry/log.js';
import type { AccessLog } from './telemetry/access.js';
import { Metrics } from './telemetry/metrics.js';

export interface ProxyOptions {
  readonly configFile: string;
  readonly logLevel?: string;
  readonly logDestination?: DestinationStream;
  /** watch the config file and the files it names (default true) */
  readonly watch?: boolean;
  /** export prom-client's default process metrics (default true) */
  readonly defaultMetrics?: boolean;
}

/** The first config was invalid: every problem, each printable as `FILE:LINE:COL: message`. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export interface BoundAddresses {
  readonly admin: Address;
  readonly inbound: Address | null;
  readonly outbound: Address | null;
}

export class Proxy implements ListenerContext {
  readonly metrics: Metrics;
  readonly log: Logger;
  private rt: Runtime;
  private admin: AdminServer;
  private inbound: Listener | null = null;
  private outbound: Listener | null = null;
  private watcher: FileWatcher | null = null;
  private dnsReady = false;
  private bound = false;
  private draining = false;
  private reloadChain: Promise<unknown> = Promise.resolve();
  /** the reload the watcher started last (SIGHUP waits for it instead of reloading twice) */
  private watchReload: Promise<boolean> = Promise.resolve(false);
  private drainTimer: NodeJS.Timeout | null = null;
  /** see ownAddresses(); null when a listener changed since it was made */
  private own: OwnAddresses | null = null;
  /** removed clusters and replaced passthrough pools waiting for their in-flight requests */
  private readonly retiring = new Set<Cluster | PassthroughPools>();
  /** inbound handshake refusals: one warning per reason per minute, with the suppressed count */
  private readonly tlsFailures = new HandshakeFailureLog((obj, msg) =>
    this.log.warn(obj, `inbound ${msg}; logged once a minute per reason`),
  );
  private resolveClosed!: () => void;
  /** settles once a drain (shutdown) or close finished */
  readonly closed: Promise<void> = new Promise((r) => (this.resolveClosed = r));

  private constructor(
    private readonly opts: ProxyOptions,
    config: Config,
    runtime: Runtime,
    metrics: Metrics,
    log: Logger,
    readonly accessLog: AccessLog,
  ) {
    this.metrics = metrics;
    this.log = log;
    metrics.activeSource = () => ({
      inbound: this.inbound?.admission.active ?? 0,
      outbound: this.outbound?.admission.active ?? 0,
    });
    this.rt = runtime;
    this.admin = new AdminServer(config.admin.listen, {
      metrics,
      runtime: () => this.rt,
      ready: () => this.bound && this.dnsReady && !this.draining,
      shutdown: (reason) => this.shutdown(reason),
    });
  }

  /** Loads the config and starts serving. Throws ConfigError when the config is invalid. */
  static async start(opts: ProxyOptions): Promise<Proxy> {
    const metrics = new Metrics(opts.defaultMetrics ?? true);
    const loggers = createLoggers(opts.logLevel ?? 'info', opts.logDestination);
    const log = loggers.log;
    // The watcher exists before the first read, so a write that lands while we load and bind is
    // seen as a change (one extra reload) instead of being missed until the next edit.
    let target: Proxy | null = null;
    let missed = false;
    const watcher =
      (opts.watch ?? true)
        ? watchFiles(
            [opts.configFile],
            () => {
              if (target === null) missed = true;
              else target.watchReload = target.reload('file changed');
            },
            { onWarning: (message, err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, message) },
          )
        : null;
    const loaded = await loadConfigFile(opts.configFile);
    if (!loaded.ok) {
      watcher?.close();
      metrics.configReloads.labels('failure').inc();
      throw new ConfigError(loaded.problems);
    }
    let built;
    try {
      built = await buildRuntime(loaded.config, null, { metrics, log });
    } catch (err) {
      watcher?.close();
      throw err;
    }
    const p = new Proxy(opts, loaded.config, built.runtime, metrics, log, loggers.access);
    try {
      for (const c of built.created) c.start();
      await p.bindListeners(loaded.config);
      await p.admin.listen();
      p.own = null;
    } catch (err) {
      watcher?.close();
      await p.close();
      throw err;
    }
    p.bound = true;
    metrics.configReloads.labels('success').inc();
    metrics.configLastReloadOk.set(1);
    p.awaitDns(built.runtime);
    if (watcher !== null) {
      // The certificate files are read by now: their content is the baseline.
      watcher.setFiles([opts.configFile, ...loaded.files]);
      p.watcher = watcher;
      target = p;
      if (missed) p.watchReload = p.reload('file changed during startup');
    }
    const a = p.addresses();
    log.info(
      {
        admin: formatAddress(a.admin),
        inbound: a.inbound === null ? null : formatAddress(a.inbound),
        outbound: a.outbound === null ? null : formatAddress(a.outbound),
        config: opts.configFile,
      },
      'outrigger started',
    );
    return p;
  }

  runtime(): Runtime {
    return this.rt;
  }

  principalOf(conn: ClientConnection): string | null {
    return principals.get(conn) ?? null;
  }

  /** The addresses our listeners hold now (made again when a listener binds or moves). */
  ownAddresses(): OwnAddresses {
    if (this.own === null) {
      const a = this.addresses();
      const bound: Address[] = [];
      for (const x of [a.admin, a.inbound, a.outbound]) if (x != null) bound.push(x);
      this.own = new OwnAddresses(bound);
    }
    return this.own;
  }

  addresses(): BoundAddresses {
    return {
      admin: this.admin.boundAddress as Address,
      inbound: this.inbound?.server.listening === true ? this.inbound.boundAddress : null,
      outbound: this.outbound?.server.listening === true ? this.outbound.boundAddress : null,
    };
  }

  get isDraining(): boolean {
    return this.draining;
  }

  private async inboundTls(inbound: InboundConfig): Promise<TlsServerOptions | null> {
    if (inbound.tls === null) return null;
    const material = await readTlsMaterial({ cert: inbound.tls.cert, key: inbound.tls.key, ca: inbound.tls.ca });
    return {
      options: inboundServerOptions(inbound.tls, material),
      verify: (s: TLSSocket) => verifyClientSocket(s),
    };
  }

  /** Every refused inbound handshake: counted by (bounded) reason, logged rate-limited. Never a plaintext fallback: the socket is gone. */
  private onTlsError = (reason: string, socket: Socket): void => {
    this.metrics.tlsHandshakeErrors.labels(reason).inc();
    this.tlsFailures.record(reason, socket.remoteAddress === undefined ? undefined : `${socket.remoteAddress}:${socket.remotePort ?? 0}`);
  };

  private async makeListener(direction: 'inbound' | 'outbound', config: Config): Promise<Listener> {
    if (direction === 'inbound') {
      const c = config.inbound as InboundConfig;
      const l = new Listener('inbound', c.listen, c.limits, this, await this.inboundTls(c), this.onTlsError);
      await l.listen();
      return l;
    }
    const c = config.outbound!;
    const l = new Listener('outbound', c.listen, c.limits, this, null, this.onTlsError);
    await l.listen();
    return l;
  }

  private async bindListeners(config: Config): Promise<void> {
    if (config.inbound !== null) this.inbound = await this.makeListener('inbound', config);
    if (config.outbound !== null) this.outbound = await this.makeListener('outbound', config);
    this.own = null;
  }

  /**
   * Marks the proxy ready once every DNS cluster of `rt` answered (or failed) once. Readiness
   * gates the *first* snapshot only: once ready, a reload that adds a DNS cluster must not take
   * the pod out of its Services while that name resolves.
   */
  private awaitDns(rt: Runtime): void {
    if (this.dnsReady) return;
    void rt.ready().then(() => {
      if (this.rt === rt) this.dnsReady = true;
    });
  }

  /** Re-reads the config; a valid one replaces the snapshot, an invalid one is logged and ignored. */
  reload(reason: string): Promise<boolean> {
    const run = this.reloadChain.then(() => this.doReload(reason));
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  /**
   * SIGHUP: re-read now. When the watcher finds changed content it has already started a reload
   * (its `check()` calls onChange), so that one is awaited instead of reloading twice; otherwise
   * the config is reloaded anyway (an operator's explicit request, e.g. to retry after fixing a
   * file whose events were missed).
   */
  async hangup(): Promise<boolean> {
    if (this.watcher !== null && (await this.watcher.check())) return this.watchReload;
    return this.reload('SIGHUP');
  }

  private fail(problems: readonly string[]): false {
    this.metrics.configReloads.labels('failure').inc();
    this.metrics.configLastReloadOk.set(0);
    this.log.warn({ errors: problems }, `config reload failed; keeping the last good config:\n${problems.join('\n')}`);
    return false;
  }

  private async doReload(reason: string): Promise<boolean> {
    if (this.draining) return false;
    // Everything up to the swap is built on the side; the running snapshot is not touched until
    // the new one is complete (parsed, validated, TLS material read, listeners bound).
    const loaded = await loadConfigFile(this.opts.configFile);
    if (!loaded.ok) return this.fail(loaded.problems.map(formatProblem));
    const next = loaded.config;
    const prev = this.rt;
    const cur = prev.config;
    const file = this.opts.configFile;
    // A listener that needs a new socket on the address it already holds cannot have it before
    // the old one closes (Node 20 has no SO_REUSEPORT): refuse rather than refuse connections.
    for (const dir of ['inbound', 'outbound'] as const) {
      const have = dir === 'inbound' ? this.inbound : this.outbound;
      const want = next[dir];
      if (
        have !== null &&
        want !== null &&
        want.listen.port !== 0 &&
        !listenerChanged(have.address, want.listen) &&
        tlsModeChanged(dir, cur, next)
      ) {
        return this.fail([
          `${file}: inbound.tls: turning TLS on or off or changing requireClientCert needs a new socket on ${formatAddress(want.listen)}, which is in use; restart to apply`,
        ]);
      }
    }
    let built;
    try {
      built = await buildRuntime(next, prev, { metrics: this.metrics, log: this.log });
    } catch (err) {
      return this.fail([`${file}: ${(err as Error).message}`]);
    }
    // Bind every new or moved listener before anything changes (new socket up before the old one
    // closes), so a port in use fails the reload as a whole.
    const fresh: { dir: 'inbound' | 'outbound'; l: Listener }[] = [];
    let failure: string | null = null;
    try {
      for (const dir of ['inbound', 'outbound'] as const) {
        const want = next[dir];
        const have = dir === 'inbound' ? this.inbound : this.outbound;
        if (want === null) continue;
        if (have === null || listenerChanged(have.address, want.listen) || tlsModeChanged(dir, cur, next)) {
          try {
            fresh.push({ dir, l: await this.makeListener(dir, next) });
          } catch (err) {
            const from = have === null ? '' : ` (now on ${formatAddress(have.boundAddress ?? have.address)})`;
            failure = `${file}: ${dir}.listen: cannot bind ${formatAddress(want.listen)}${from}: ${(err as Error).message}; keeping the current listener`;
            throw err;
          }
        }
      }
    } catch (err) {
      await discard(fresh, built, prev);
      return this.fail([failure ?? `${file}: cannot bind listener: ${(err as Error).message}`]);
    }
    if (this.draining) {
      // A shutdown began while we were building: it drains the listeners it knows; drop ours.
      await discard(fresh, built, prev);
      return false;
    }

    // The swap: from here on new requests see the new snapshot; requests in flight keep the one
    // they read at their start.
    this.rt = built.runtime;
    for (const c of built.created) c.start();
    // What the new snapshot no longer uses closes once the requests in flight now (which may still
    // use it, retries included) have finished, bounded by drain.timeout.
    const retire: (Cluster | PassthroughPools)[] = [...built.dropped];
    if (built.runtime.passthrough !== prev.passthrough) retire.push(prev.passthrough);
    if (retire.length > 0) {
      const trackers = [this.inbound, this.outbound, ...fresh.map((f) => f.l)];
      this.retireLater(retire, trackers, next.drain.timeout);
    }
    this.awaitDns(built.runtime);

    for (const dir of ['inbound', 'outbound'] as const) {
      const old = dir === 'inbound' ? this.inbound : this.outbound;
      const repl = fresh.find((f) => f.dir === dir)?.l ?? null;
      const want = next[dir];
      if (repl !== null) {
        if (dir === 'inbound') this.inbound = repl;
        else this.outbound = repl;
        if (old !== null) {
          this.log.info(
            { direction: dir, from: formatAddress(old.boundAddress ?? old.address), to: formatAddress(repl.boundAddress ?? repl.address) },
            'listener moved; draining the old socket',
          );
          void old.drain(next.drain.timeout);
        }
      } else if (want === null && old !== null) {
        if (dir === 'inbound') this.inbound = null;
        else this.outbound = null;
        void old.drain(next.drain.timeout);
      } else if (old !== null && want !== null) {
        old.applyLimits(want.limits);
        if (dir === 'inbound') await this.rotateInboundTls(old, want as InboundConfig);
      }
    }
    this.own = null;
    if (listenerChanged(cur.admin.listen, next.admin.listen)) {
      this.log.warn(
        { from: formatAddress(cur.admin.listen), to: formatAddress(next.admin.listen) },
        'admin.listen changed: takes effect on restart',
      );
    }
    this.watcher?.setFiles([file, ...loaded.files]);
    this.metrics.configReloads.labels('success').inc();
    this.metrics.configLastReloadOk.set(1);
    this.log.info(
      { reason, hash: loaded.hash, created: built.created.map((c) => c.name), dropped: built.dropped.map((c) => c.name) },
      'config reloaded',
    );
    return true;
  }

  /** Closes `items` gracefully once the requests in flight on `listeners` now have finished. */
  private retireLater(items: readonly (Cluster | PassthroughPools)[], listeners: readonly (Listener | null)[], timeout: number): void {
    for (const it of items) this.retiring.add(it);
    const barriers: Promise<void>[] = [];
    for (const l of listeners) if (l !== null) barriers.push(l.tracker.settled());
    let timer: NodeJS.Timeout | null = null;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeout);
      timer.unref();
    });
    void Promise.race([Promise.all(barriers), deadline]).then(async () => {
      if (timer !== null) clearTimeout(timer);
      await Promise.all(
        items.map(async (it) => {
          if (!this.retiring.delete(it)) return; // destroyed by close() meanwhile
          await ('retire' in it ? it.retire() : it.close()).catch(() => undefined);
        }),
      );
    });
  }

  /** New certificates for new handshakes; open connections keep the old ones. */
  private async rotateInboundTls(l: Listener, inbound: InboundConfig): Promise<void> {
    const tls = await this.inboundTls(inbound).catch((err: Error) => {
      this.log.warn({ err: err.message }, 'inbound TLS material unreadable; keeping the current certificates');
      return null;
    });
    if (tls === null) return;
    const s = l.server as import('node:https').Server;
    if (typeof s.setSecureContext !== 'function') return;
    try {
      s.setSecureContext(tls.options);
    } catch (err) {
      // Typically a cert and key caught mid-rotation (one file written, not yet the other): keep
      // serving with the current context; the second write triggers another reload.
      this.log.warn({ err: (err as Error).message }, 'inbound TLS material rejected; keeping the current certificates');
    }
  }

  /**
   * Graceful shutdown (SIGTERM, SIGINT, POST /shutdown), as Istio drains a sidecar:
   * 1. at once: `/ready` answers 503 and inbound responses carry `Connection: close`, so
   *    keep-alive callers move to pods that are still ready; everything keeps being served (the
   *    endpoints controller and every peer's proxy need time to stop sending here);
   * 2. after `drain.delay`: the inbound listener stops accepting, idle keep-alive sockets close,
   *    in-flight requests finish with `Connection: close`;
   * 3. the outbound listener keeps accepting until the inbound requests are done (the app may
   *    still call out to finish them), then drains the same way;
   * 4. all of it within `drain.timeout` of step 2; what is left then is cut. `closed` settles.
   * Idempotent.
   */
  shutdown(reason: string): void {
    if (this.draining) return;
    this.draining = true;
    const { delay, timeout } = this.rt.config.drain;
    this.log.info({ reason, delay_ms: delay, timeout_ms: timeout }, 'draining');
    this.inbound?.tracker.closeConnectionsAfterResponse();
    this.drainTimer = setTimeout(() => {
      this.drainTimer = null;
      void this.finishDrain(timeout);
    }, delay);
  }

  private async finishDrain(timeout: number): Promise<void> {
    this.watcher?.close();
    // A reload that was already past its draining check finishes first, so the listeners drained
    // here are the final ones.
    await this.reloadChain;
    const end = Date.now() + timeout;
    this.log.info({ timeout_ms: timeout }, 'drain: listeners closing');
    await this.inbound?.shutdown(timeout);
    await this.outbound?.shutdown(Math.max(0, end - Date.now()));
    await this.stopRest();
    this.log.info('drained');
    flushLogger(this.log);
    this.resolveClosed();
  }

  private async stopRest(): Promise<void> {
    await this.admin.close();
    const rt = this.rt;
    const waiting = [...this.retiring];
    this.retiring.clear();
    await Promise.all([...rt.allClusters(), ...waiting].map((c) => c.destroy()));
    await rt.passthrough.destroy();
  }

  /** Stops at once (tests, second signal): in-flight requests are cut. */
  async close(): Promise<void> {
    this.draining = true;
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    this.drainTimer = null;
    this.watcher?.close();
    await this.reloadChain;
    await Promise.all([this.inbound?.drain(0), this.outbound?.drain(0)]);
    await this.stopRest();
    this.resolveClosed();
  }
}

/** Undoes a snapshot that will not go live: its new listeners, clusters and passthrough pools. */
async function discard(fresh: readonly { l: Listener }[], built: BuildResult, prev: Runtime): Promise<void> {
  await Promise.all(fresh.map((f) => f.l.drain(0)));
  await Promise.all(built.created.map((c) => c.destroy()));
  if (built.runtime.passthrough !== prev.passthrough) await built.runtime.passthrough.destroy();
}

function tlsModeChanged(dir: 'inbound' | 'outbound', a: Config, b: Config): boolean {
  if (dir !== 'inbound') return false;
  return (
    (a.inbound?.tls === null) !== (b.inbound?.tls === null) ||
    (a.inbound?.tls?.requireClientCert ?? null) !== (b.inbound?.tls?.requireClientCert ?? null)
  );
}
