/**
 * The composition root: loads the config, builds a runtime snapshot, binds the listeners and the
 * admin server, watches the config (and the files it names) for changes, swaps snapshots on
 * reload without dropping a request, and drains on shutdown.
 */
import type { DestinationStream } from 'pino';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { AdminServer } from './admin/server.js';
import { formatProblem, loadConfigFile } from './config/load.js';
import type { Address, Config, ConfigProblem, InboundConfig } from './config/types.js';
import { listenerChanged } from './config/diff.js';
import { watchFiles, type FileWatcher } from './config/watch.js';
import { Listener, principals, type TlsServerOptions } from './listener/listener.js';
import type { ListenerContext } from './listener/handler.js';
import { buildRuntime, type Runtime } from './runtime.js';
import { inboundServerOptions, readTlsMaterial, verifyClientSocket } from './security/tls.js';
import { createLogger, flushLogger, type Logger } from './telemetry/log.js';
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

const TLS_LOG_INTERVAL = 60_000;

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
  private readonly tlsLogged = new Map<string, number>();
  private resolveClosed!: () => void;
  /** settles once a drain (shutdown) or close finished */
  readonly closed: Promise<void> = new Promise((r) => (this.resolveClosed = r));

  private constructor(
    private readonly opts: ProxyOptions,
    config: Config,
    runtime: Runtime,
    metrics: Metrics,
    log: Logger,
  ) {
    this.metrics = metrics;
    this.log = log;
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
    const log = opts.logDestination !== undefined ? createLogger(opts.logLevel ?? 'info', opts.logDestination) : createLogger(opts.logLevel ?? 'info');
    const loaded = await loadConfigFile(opts.configFile);
    if (!loaded.ok) {
      metrics.configReloads.labels('failure').inc();
      throw new ConfigError(loaded.problems);
    }
    const built = await buildRuntime(loaded.config, null, { metrics, log });
    const p = new Proxy(opts, loaded.config, built.runtime, metrics, log);
    try {
      for (const c of built.created) c.start();
      await p.bindListeners(loaded.config);
      await p.admin.listen();
    } catch (err) {
      await p.close();
      throw err;
    }
    p.bound = true;
    metrics.configReloads.labels('success').inc();
    metrics.configLastReloadOk.set(1);
    void built.runtime.ready().then(() => {
      p.dnsReady = true;
    });
    if (opts.watch ?? true) {
      p.watcher = watchFiles([opts.configFile, ...loaded.files], () => void p.reload('file changed'));
    }
    const a = p.addresses();
    log.info(
      {
        admin: fmt(a.admin),
        inbound: a.inbound === null ? null : fmt(a.inbound),
        outbound: a.outbound === null ? null : fmt(a.outbound),
        config: opts.configFile,
      },
      'outrigger started',
    );
    return p;
  }

  runtime(): Runtime {
    return this.rt;
  }

  principalOf(socket: Socket): string | null {
    return principals.get(socket) ?? null;
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

  private onTlsError = (reason: string, socket: Socket): void => {
    this.metrics.tlsHandshakeErrors.labels(reason).inc();
    const now = Date.now();
    const last = this.tlsLogged.get(reason) ?? 0;
    if (now - last >= TLS_LOG_INTERVAL) {
      this.tlsLogged.set(reason, now);
      this.log.warn({ reason, peer: socket.remoteAddress }, 'inbound TLS handshake refused (logged once a minute per reason)');
    }
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
  }

  /** Re-reads the config; a valid one replaces the snapshot, an invalid one is logged and ignored. */
  reload(reason: string): Promise<boolean> {
    const run = this.reloadChain.then(() => this.doReload(reason));
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  private fail(problems: readonly string[]): false {
    this.metrics.configReloads.labels('failure').inc();
    this.metrics.configLastReloadOk.set(0);
    this.log.warn({ errors: problems }, `config reload failed; keeping the last good config:\n${problems.join('\n')}`);
    return false;
  }

  private async doReload(reason: string): Promise<boolean> {
    if (this.draining) return false;
    const loaded = await loadConfigFile(this.opts.configFile);
    if (!loaded.ok) return this.fail(loaded.problems.map(formatProblem));
    const next = loaded.config;
    const prev = this.rt;
    const cur = prev.config;
    if (listenerChanged(cur.admin.listen, next.admin.listen)) {
      this.log.warn({ from: fmt(cur.admin.listen), to: fmt(next.admin.listen) }, 'admin.listen changed: takes effect on restart');
    }
    let built;
    try {
      built = await buildRuntime(next, prev, { metrics: this.metrics, log: this.log });
    } catch (err) {
      return this.fail([`${this.opts.configFile}: ${(err as Error).message}`]);
    }
    // Bind every new or moved listener before anything changes, so a port in use fails the
    // reload as a whole.
    const fresh: { dir: 'inbound' | 'outbound'; l: Listener }[] = [];
    try {
      for (const dir of ['inbound', 'outbound'] as const) {
        const want = next[dir];
        const have = dir === 'inbound' ? this.inbound : this.outbound;
        if (want === null) continue;
        if (have === null || listenerChanged(have.address, want.listen) || tlsModeChanged(dir, cur, next)) {
          fresh.push({ dir, l: await this.makeListener(dir, next) });
        }
      }
    } catch (err) {
      await Promise.all(fresh.map((f) => f.l.drain(0)));
      await Promise.all(built.created.map((c) => c.destroy()));
      return this.fail([`${this.opts.configFile}: cannot bind listener: ${(err as Error).message}`]);
    }

    // The swap: from here on new requests see the new snapshot.
    this.rt = built.runtime;
    for (const c of built.created) c.start();
    for (const c of built.dropped) void c.retire();
    if (built.runtime.passthrough !== prev.passthrough) void prev.passthrough.close();
    this.dnsReady = false;
    void built.runtime.ready().then(() => {
      if (this.rt === built.runtime) this.dnsReady = true;
    });

    for (const dir of ['inbound', 'outbound'] as const) {
      const old = dir === 'inbound' ? this.inbound : this.outbound;
      const repl = fresh.find((f) => f.dir === dir)?.l ?? null;
      const want = next[dir];
      if (repl !== null) {
        if (dir === 'inbound') this.inbound = repl;
        else this.outbound = repl;
        if (old !== null) void old.drain(next.drain.timeout);
      } else if (want === null && old !== null) {
        if (dir === 'inbound') this.inbound = null;
        else this.outbound = null;
        void old.drain(next.drain.timeout);
      } else if (old !== null && want !== null) {
        old.applyLimits(want.limits);
        if (dir === 'inbound') await this.rotateInboundTls(old, want as InboundConfig);
      }
    }
    this.watcher?.setFiles([this.opts.configFile, ...loaded.files]);
    this.metrics.configReloads.labels('success').inc();
    this.metrics.configLastReloadOk.set(1);
    this.log.info({ reason, hash: loaded.hash, created: built.created.map((c) => c.name), dropped: built.dropped.map((c) => c.name) }, 'config reloaded');
    return true;
  }

  /** New certificates for new handshakes; open connections keep the old ones. */
  private async rotateInboundTls(l: Listener, inbound: InboundConfig): Promise<void> {
    const tls = await this.inboundTls(inbound).catch((err: Error) => {
      this.log.warn({ err: err.message }, 'inbound TLS material unreadable; keeping the current certificates');
      return null;
    });
    if (tls === null) return;
    const s = l.server as import('node:https').Server;
    if (typeof s.setSecureContext === 'function') s.setSecureContext(tls.options);
  }

  /**
   * Graceful shutdown (SIGTERM, POST /shutdown): `/ready` answers 503 at once, traffic is served
   * for `drain.delay`, then listeners stop accepting and in-flight requests get up to
   * `drain.timeout`. Idempotent; `closed` settles when done.
   */
  shutdown(reason: string): void {
    if (this.draining) return;
    this.draining = true;
    const { delay, timeout } = this.rt.config.drain;
    this.log.info({ reason, delay_ms: delay, timeout_ms: timeout }, 'draining');
    setTimeout(() => {
      void this.finishDrain(timeout);
    }, delay).unref();
  }

  private async finishDrain(timeout: number): Promise<void> {
    this.watcher?.close();
    await Promise.all([this.inbound?.drain(timeout), this.outbound?.drain(timeout)]);
    await this.stopRest();
    this.log.info('drained');
    flushLogger(this.log);
    this.resolveClosed();
  }

  private async stopRest(): Promise<void> {
    await this.admin.close();
    const rt = this.rt;
    await Promise.all(rt.allClusters().map((c) => c.destroy()));
    await rt.passthrough.destroy();
  }

  /** Stops at once (tests, second signal). */
  async close(): Promise<void> {
    this.draining = true;
    this.watcher?.close();
    await Promise.all([this.inbound?.drain(0), this.outbound?.drain(0)]);
    await this.stopRest();
    this.resolveClosed();
  }
}

function tlsModeChanged(dir: 'inbound' | 'outbound', a: Config, b: Config): boolean {
  if (dir !== 'inbound') return false;
  return (a.inbound?.tls === null) !== (b.inbound?.tls === null) ||
    (a.inbound?.tls?.requireClientCert ?? null) !== (b.inbound?.tls?.requireClientCert ?? null);
}

function fmt(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
