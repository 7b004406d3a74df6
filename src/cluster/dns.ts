/**
 * DNS service discovery for `dns:` clusters, and the name lookup used by passthrough traffic.
 * Both go through the same resolver, built from the config's `resolver.servers`:
 *
 * - servers configured: a c-ares `dns.Resolver` pointed at exactly those servers, asking A and
 *   AAAA in parallel. `/etc/hosts` and resolv.conf search domains are NOT consulted (names must
 *   be fully qualified, e.g. `svc.ns.svc.cluster.local`), except that `localhost` and
 *   `*.localhost` always go to the system lookup.
 * - servers null (the default): the system's `getaddrinfo` (`dns.lookup`), which honours
 *   `/etc/hosts`, `/etc/resolv.conf` and its search domains, as the app in the pod would.
 *
 * A name that is an IP literal resolves to itself with no query at all.
 */
import dns from 'node:dns';
import type { LookupAddress, LookupOptions } from 'node:dns';
import net from 'node:net';
import type { Address } from '../config/types.js';
import { formatAddress } from '../config/address.js';

/** Per-query timeout (c-ares doubles it on each retry) and tries, unless given. */
const DEFAULT_QUERY_TIMEOUT = 2000;
const DEFAULT_TRIES = 2;

/** `node:dns` codes that mean "the name has no such records", as opposed to "no answer". */
function isNoData(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === dns.NODATA || code === dns.NOTFOUND;
}

function isLocalhost(name: string): boolean {
  const n = name.toLowerCase();
  return n === 'localhost' || n.endsWith('.localhost');
}

function notFound(name: string, why: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${why} ${name}`);
  err.code = dns.NOTFOUND;
  (err as { hostname?: string }).hostname = name;
  return err;
}

/**
 * The outcome of one resolution, per family: a list (possibly empty: the name has no such
 * records) or null when the query failed (timeout, SERVFAIL, refused) and nothing is known.
 */
export interface FamilyResult {
  readonly v4: readonly string[] | null;
  readonly v6: readonly string[] | null;
  /** the first real failure (not "no data"), if any */
  readonly error: Error | null;
}

/** Options of the resolver built for `resolver.servers` (query tuning; optional). */
export interface ResolverOptions {
  /** ms before the first retry of a query; default 2000 */
  readonly timeout?: number;
  /** attempts per query; default 2 */
  readonly tries?: number;
}

/** A resolver bound to the configured servers (or the system's). One per consumer. */
export class HostResolver {
  private readonly resolver: dns.Resolver | null;

  constructor(servers: readonly Address[] | null, opts: ResolverOptions = {}) {
    if (servers === null) {
      this.resolver = null;
    } else {
      this.resolver = new dns.Resolver({
        timeout: opts.timeout ?? DEFAULT_QUERY_TIMEOUT,
        tries: opts.tries ?? DEFAULT_TRIES,
      });
      // setServers accepts `ip:port` and `[v6]:port`, which is exactly formatAddress's format.
      this.resolver.setServers(servers.map(formatAddress));
    }
  }

  /** Whether this resolver uses the configured servers (false: the system's getaddrinfo). */
  get custom(): boolean {
    return this.resolver !== null;
  }

  /** Resolves A and AAAA (in parallel). Never rejects: failures are in the result. */
  resolveFamilies(name: string): Promise<FamilyResult> {
    const family = net.isIP(name);
    if (family === 4) return Promise.resolve({ v4: [name], v6: [], error: null });
    if (family === 6) return Promise.resolve({ v4: [], v6: [name], error: null });
    const r = this.resolver;
    if (r === null || isLocalhost(name)) return systemFamilies(name);
    return Promise.all([query(r, name, 4), query(r, name, 6)]).then(([a, aaaa]) => {
      const v4 = a instanceof Error ? (isNoData(a) ? [] : null) : a;
      const v6 = aaaa instanceof Error ? (isNoData(aaaa) ? [] : null) : aaaa;
      const error = v4 === null ? (a as Error) : v6 === null ? (aaaa as Error) : null;
      return { v4, v6, error };
    });
  }

  /**
   * A `net.LookupFunction` (for `net.connect({ lookup })`, `tls.connect`, and undici's
   * `Pool`/`Client` option `connect: { lookup }`, which undici passes through to
   * net/tls.connect). Honours `family` and `all` (Node 20's happy-eyeballs connect asks with
   * `all: true`). IPv4 addresses are listed first.
   */
  readonly lookup = (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    const r = this.resolver;
    if (r === null || isLocalhost(hostname) || net.isIP(hostname) !== 0) {
      dns.lookup(hostname, options, callback as never);
      return;
    }
    const fam = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
    const wantAll = options.all === true;
    const done = (v4: readonly string[] | Error, v6: readonly string[] | Error): void => {
      const list: LookupAddress[] = [];
      if (!(v4 instanceof Error)) for (const a of v4) list.push({ address: a, family: 4 });
      if (!(v6 instanceof Error)) for (const a of v6) list.push({ address: a, family: 6 });
      if (list.length === 0) {
        const real = v4 instanceof Error && !isNoData(v4) ? v4 : v6 instanceof Error && !isNoData(v6) ? v6 : null;
        callback(real ?? notFound(hostname, 'no addresses for'), wantAll ? [] : '');
        return;
      }
      if (wantAll) callback(null, list);
      else callback(null, list[0]!.address, list[0]!.family);
    };
    if (fam === 4) void query(r, hostname, 4).then((v4) => done(v4, []));
    else if (fam === 6) void query(r, hostname, 6).then((v6) => done([], v6));
    else void Promise.all([query(r, hostname, 4), query(r, hostname, 6)]).then(([v4, v6]) => done(v4, v6));
  };

  /** Cancels outstanding queries (they complete with ECANCELLED). */
  cancel(): void {
    this.resolver?.cancel();
  }
}

/** One query of one family; resolves to the addresses or the error (never rejects). */
function query(r: dns.Resolver, name: string, family: 4 | 6): Promise<string[] | Error> {
  return new Promise((resolve) => {
    const cb = (err: NodeJS.ErrnoException | null, addrs: string[]): void => resolve(err ?? addrs);
    if (family === 4) r.resolve4(name, cb);
    else r.resolve6(name, cb);
  });
}

function systemFamilies(name: string): Promise<FamilyResult> {
  return dns.promises.lookup(name, { all: true }).then(
    (list) => {
      const v4: string[] = [];
      const v6: string[] = [];
      for (const a of list) (a.family === 6 ? v6 : v4).push(a.address);
      return { v4, v6, error: null };
    },
    (err: Error) => (isNoData(err) ? { v4: [], v6: [], error: null } : { v4: null, v6: null, error: err }),
  );
}

function sortAddresses(hosts: readonly string[], port: number): Address[] {
  const uniq = [...new Set(hosts)];
  const out = uniq.map((host) => Object.freeze({ host, port }));
  out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  return out;
}

function sameAddresses(a: readonly Address[], b: readonly Address[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.host !== b[i]!.host || a[i]!.port !== b[i]!.port) return false;
  return true;
}

/**
 * Resolves `name` once to addresses on `port` (A and AAAA, sorted). Rejects when the name has
 * no addresses or the query failed.
 */
export async function resolveOnce(
  name: string,
  port: number,
  servers: readonly Address[] | null,
  opts: ResolverOptions = {},
): Promise<Address[]> {
  const r = await new HostResolver(servers, opts).resolveFamilies(name);
  const hosts = [...(r.v4 ?? []), ...(r.v6 ?? [])];
  if (hosts.length === 0) throw r.error ?? notFound(name, 'no addresses for');
  return sortAddresses(hosts, port);
}

/**
 * A `net.LookupFunction` resolving through `servers` (null: the system's `dns.lookup`). For
 * passthrough pools: `new Pool(origin, { connect: { lookup: createLookup(servers) } })`.
 */
export function createLookup(servers: readonly Address[] | null, opts: ResolverOptions = {}): HostResolver['lookup'] {
  return servers === null ? (dns.lookup as unknown as HostResolver['lookup']) : new HostResolver(servers, opts).lookup;
}

export interface DnsDiscoveryOptions {
  readonly name: string;
  readonly port: number;
  /** ms between resolutions (after the previous one finished); 0 = resolve once */
  readonly refresh: number;
  /** null: the system's resolver (getaddrinfo) */
  readonly servers: readonly Address[] | null;
  /** the new address set, sorted; called only when it changed */
  readonly onUpdate: (addrs: readonly Address[]) => void;
  /** a failed (or partly failed) resolution; `consecutive` counts failures in a row */
  readonly onError: (err: Error, consecutive: number) => void;
  /** query tuning for configured servers (tests use short timeouts) */
  readonly resolver?: ResolverOptions;
}

/**
 * Keeps a cluster's endpoint addresses in step with DNS (Envoy's STRICT_DNS).
 *
 * Failure policy: a resolution that yields no address at all (timeout, SERVFAIL, and also
 * NXDOMAIN or an empty answer) is a failure: the last known addresses stay in force and
 * `onError` is called, because dropping every endpoint on a DNS blip would turn it into an
 * outage, while stale endpoints are caught by health checks and outlier detection. If one
 * family fails for real and the other answers, that family's last known addresses are kept,
 * the set is updated, and `onError` still reports the failure.
 */
export class DnsDiscovery {
  /** Settles (never rejects) after the first resolution succeeded or failed, or on stop(). */
  readonly firstResult: Promise<void>;
  private settleFirst!: () => void;
  private readonly resolver: HostResolver;
  private current: readonly Address[] = Object.freeze([]);
  private lastV4: readonly string[] = [];
  private lastV6: readonly string[] = [];
  private consecutive = 0;
  private timer: NodeJS.Timeout | null = null;
  private started = false;
  private stopped = false;

  constructor(private readonly opts: DnsDiscoveryOptions) {
    this.firstResult = new Promise<void>((resolve) => {
      this.settleFirst = resolve;
    });
    this.resolver = new HostResolver(opts.servers, opts.resolver ?? {});
  }

  /** The last known addresses (sorted, frozen). */
  get addresses(): readonly Address[] {
    return this.current;
  }

  /** Consecutive failed resolutions (0 after a success). */
  get failures(): number {
    return this.consecutive;
  }

  /** Resolves now, then every `refresh` ms. Idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    void this.resolve();
  }

  /** Stops re-resolving and cancels queries in flight. The addresses stay readable. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.resolver.cancel();
    this.settleFirst();
  }

  private async resolve(): Promise<void> {
    if (this.stopped) return;
    const { name, port } = this.opts;
    const r = await this.resolver.resolveFamilies(name);
    if (this.stopped) return;
    const v4 = r.v4 ?? this.lastV4;
    const v6 = r.v6 ?? this.lastV6;
    let error = r.error;
    let next: Address[] | null = null;
    if (v4.length + v6.length === 0) {
      // Nothing at all: keep the last known set (see the class comment).
      error ??= notFound(name, 'no addresses for');
    } else {
      next = sortAddresses([...v4, ...v6], port);
      this.lastV4 = v4;
      this.lastV6 = v6;
    }
    // Schedule first, so a throwing callback cannot stop the refresh loop.
    if (this.opts.refresh > 0 && net.isIP(name) === 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.resolve();
      }, this.opts.refresh);
      this.timer.unref();
    }
    this.consecutive = error === null ? 0 : this.consecutive + 1;
    try {
      if (next !== null && !sameAddresses(next, this.current)) {
        this.current = Object.freeze(next);
        this.opts.onUpdate(this.current);
      }
      if (error !== null) this.opts.onError(error, this.consecutive);
    } finally {
      this.settleFirst();
    }
  }
}
