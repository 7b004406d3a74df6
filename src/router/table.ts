/**
 * The outbound route table, compiled once per config snapshot. Matching reads only precompiled
 * structures: routes are bucketed by exact host so a lookup walks just the routes that can
 * apply to the request's host, in file order (first match wins).
 */
import type { Cluster } from '../cluster/cluster.js';
import { proxyError, type ProxyError } from '../errors.js';
import type { HeaderOps, OutboundConfig, RouteConfig } from '../config/types.js';
import { compileRouteRegex } from '../config/schema.js';
import type { RetryPolicy } from '../resilience/retry.js';
import { compileRetryPolicy } from '../resilience/retry.js';
import { TokenBucket } from '../resilience/ratelimit.js';
import type { Metrics, RouteStats } from '../telemetry/metrics.js';
import { WeightedPicker } from './split.js';

/** Header policy in the shape the forwarder applies: removals as a set, sets as pairs. */
export class CompiledHeaderOps {
  readonly remove: ReadonlySet<string>;
  /** flat [name, value, name, value, ...] */
  readonly set: readonly string[];
  readonly empty: boolean;
  constructor(ops: HeaderOps) {
    const set: string[] = [];
    for (const [k, v] of Object.entries(ops.set)) set.push(k, v);
    this.set = set;
    // A set header replaces what came in: removing it first keeps one value.
    const remove = new Set(ops.remove);
    for (let i = 0; i < set.length; i += 2) remove.add(set[i] as string);
    this.remove = remove;
    this.empty = set.length === 0 && ops.remove.length === 0;
  }
}

/** One cluster a route can send to, with the metric children of that pair. */
export interface RouteTarget {
  readonly cluster: Cluster;
  readonly stats: RouteStats;
}

export class CompiledRoute {
  readonly name: string;
  private readonly pathKind: 0 | 1 | 2 | 3; // any, prefix, exact, regex
  private readonly pathValue: string;
  /** the exact or prefix path condition (null for none or a regex); for the segment index */
  readonly pathLiteral: string | null;
  readonly pathIsExact: boolean;
  private readonly pathRegex: RegExp | null;
  private readonly methods: ReadonlySet<string> | null;
  /** `match.port`: the ports a plain request's Host may name; null = any */
  private readonly ports: ReadonlySet<number> | null;
  /**
   * The ports a CONNECT may take this route to: `match.port`, or without it the ports its
   * clusters' endpoints listen on. A CONNECT to another port of the same host is not this
   * route's traffic (a route to an HTTP service on 8080 must not carry a TLS tunnel to 443).
   */
  readonly connectPorts: ReadonlySet<number>;
  /** flat [name, value, ...], lower-cased names */
  private readonly headerMatch: readonly string[];
  /** prefix to strip (the matched prefix) and its replacement; null = no rewrite */
  readonly rewriteFrom: string | null;
  readonly rewriteTo: string;
  readonly timeout: number;
  readonly retry: RetryPolicy;
  readonly requestHeaders: CompiledHeaderOps;
  readonly responseHeaders: CompiledHeaderOps;
  readonly bucket: TokenBucket | null;
  readonly faultDelayPercent: number;
  readonly faultDelayMs: number;
  readonly faultAbortPercent: number;
  readonly faultAbortStatus: number;
  /** the answer of an injected abort (made once) */
  readonly faultAbort: ProxyError;
  readonly mirror: RouteTarget | null;
  readonly mirrorPercent: number;
  private readonly single: RouteTarget | null;
  private readonly picker: WeightedPicker<RouteTarget> | null;
  readonly targets: readonly RouteTarget[];
  /** what `RouteTable.route` returns for this route (made once, so a match allocates nothing) */
  readonly decision: RouteDecision;
  /** literal text every path the regex matches starts with ('' when unknown): a cheap pre-check */
  readonly regexLiteral: string;

  constructor(r: RouteConfig, clusters: ReadonlyMap<string, Cluster>, metrics: Metrics) {
    this.name = r.name;
    this.decision = Object.freeze({ kind: 'route', route: this });
    const p = r.match.path;
    if (p === null) {
      this.pathKind = 0;
      this.pathValue = '';
      this.pathRegex = null;
    } else if ('prefix' in p) {
      this.pathKind = 1;
      this.pathValue = p.prefix;
      this.pathRegex = null;
    } else if ('exact' in p) {
      this.pathKind = 2;
      this.pathValue = p.exact;
      this.pathRegex = null;
    } else {
      this.pathKind = 3;
      this.pathValue = p.regex;
      this.pathRegex = compileRouteRegex(p.regex);
    }
    this.regexLiteral = this.pathKind === 3 ? regexLiteralPrefix(this.pathValue) : '';
    this.pathLiteral = this.pathKind === 1 || this.pathKind === 2 ? this.pathValue : null;
    this.pathIsExact = this.pathKind === 2;
    this.methods = r.match.methods === null ? null : new Set(r.match.methods);
    this.ports = r.match.ports === null ? null : new Set(r.match.ports);
    const hm: string[] = [];
    if (r.match.headers !== null) for (const [k, v] of Object.entries(r.match.headers)) hm.push(k, v);
    this.headerMatch = hm;
    this.rewriteFrom = r.rewrite === null ? null : this.pathKind === 1 ? this.pathValue : '';
    this.rewriteTo = r.rewrite === null ? '' : r.rewrite.prefix;
    this.timeout = r.timeout;
    this.retry = compileRetryPolicy(r.retries);
    this.requestHeaders = new CompiledHeaderOps(r.headers.request);
    this.responseHeaders = new CompiledHeaderOps(r.headers.response);
    this.bucket = r.rateLimit === null ? null : new TokenBucket(r.rateLimit.requestsPerSecond, r.rateLimit.burst);
    this.faultDelayPercent = r.fault?.delay?.percent ?? 0;
    this.faultDelayMs = r.fault?.delay?.duration ?? 0;
    this.faultAbortPercent = r.fault?.abort?.percent ?? 0;
    this.faultAbortStatus = r.fault?.abort?.status ?? 503;
    this.faultAbort = proxyError('fault_injected', undefined, this.faultAbortStatus);

    const target = (name: string): RouteTarget => {
      const cluster = clusters.get(name);
      if (cluster === undefined) throw new Error(`route ${r.name}: unknown cluster ${name}`);
      return { cluster, stats: metrics.routeStats('outbound', r.name, name) };
    };
    if (r.split !== null) {
      const items = r.split.map((s) => ({ value: target(s.cluster), weight: s.weight }));
      this.picker = new WeightedPicker(items);
      this.single = null;
      this.targets = items.map((i) => i.value);
    } else {
      this.single = target(r.cluster as string);
      this.picker = null;
      this.targets = [this.single];
    }
    this.mirror = r.mirror === null ? null : target(r.mirror.cluster);
    this.mirrorPercent = r.mirror?.percent ?? 0;
    this.connectPorts = this.ports ?? clusterPorts(this.targets);
  }

  /** Port, path, method and header match; the host was matched by the table. */
  matches(port: number, path: string, method: string, rawHeaders: readonly string[]): boolean {
    if (this.ports !== null && !this.ports.has(port)) return false;
    switch (this.pathKind) {
      case 0:
        break;
      case 1:
        if (!path.startsWith(this.pathValue)) return false;
        break;
      case 2:
        if (path !== this.pathValue) return false;
        break;
      case 3:
        if (!path.startsWith(this.regexLiteral) || !(this.pathRegex as RegExp).test(path)) return false;
        break;
    }
    if (this.methods !== null && !this.methods.has(method)) return false;
    const hm = this.headerMatch;
    for (let i = 0; i < hm.length; i += 2) {
      if (!hasHeaderValue(rawHeaders, hm[i] as string, hm[i + 1] as string)) return false;
    }
    return true;
  }

  pickTarget(): RouteTarget {
    return this.single ?? (this.picker as WeightedPicker<RouteTarget>).pick();
  }

  /** The upstream path after `rewrite` (the query string is carried over untouched). */
  rewrite(path: string, query: string): string {
    if (this.rewriteFrom === null) return query === '' ? path : path + query;
    let rest = path.slice(this.rewriteFrom.length);
    let out: string;
    // Joining "/" + "/x" or "/api" + "x" must not produce "//x" nor "/apix".
    if (this.rewriteTo.endsWith('/') && rest.startsWith('/')) out = this.rewriteTo + rest.slice(1);
    else if (!this.rewriteTo.endsWith('/') && rest !== '' && !rest.startsWith('/')) out = this.rewriteTo + '/' + rest;
    else out = this.rewriteTo + rest;
    if (out === '') out = '/';
    rest = out;
    return query === '' ? rest : rest + query;
  }
}

/**
 * The literal text at the start of a route regex (which is anchored at both ends), so most
 * non-matching paths are refused by a string compare instead of a regex run. Conservative: stops
 * at the first metacharacter or escape, drops a character a quantifier makes optional, and gives
 * up ('') on any alternation, since `|` makes the start ambiguous.
 */
export function regexLiteralPrefix(re: string): string {
  if (re.includes('|')) return '';
  let i = 0;
  while (i < re.length && !'\\^$.|?*+()[]{}'.includes(re[i] as string)) i++;
  let prefix = re.slice(0, i);
  const next = re[i];
  if (next === '?' || next === '*' || next === '{') prefix = prefix.slice(0, -1);
  return prefix;
}

function hasHeaderValue(raw: readonly string[], name: string, value: string): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i] as string;
    if (k.length === name.length && k.toLowerCase() === name && (raw[i + 1] as string) === value) return true;
  }
  return false;
}

export type RouteDecision =
  { readonly kind: 'route'; readonly route: CompiledRoute } | { readonly kind: 'passthrough' } | { readonly kind: 'no_route' };

const PASSTHROUGH: RouteDecision = Object.freeze({ kind: 'passthrough' });
const NO_ROUTE: RouteDecision = Object.freeze({ kind: 'no_route' });

/** A bucket is indexed by leading path segments only when it has at least this many routes. */
const INDEX_MIN_ROUTES = 8;
/** ...and when the index stays small: (distinct keys) × (routes listed under every one). */
const INDEX_MAX_ENTRIES = 100_000;
/** Buckets remembered for hosts that no route names exactly (wildcards, host-less routes). */
const HOST_CACHE_MAX = 256;

/** Deepest path-segment index tried; the depth with the most distinct keys wins. */
const INDEX_MAX_DEPTH = 3;

/**
 * The first `depth` segments of a path, without the leading `/` (`/a/b/c`, 2 → `a/b`); the whole
 * path when it has fewer. The path is normalised and has no query.
 */
function pathKey(path: string, depth: number): string {
  let end = 0;
  for (let d = 0; d < depth; d++) {
    end = path.indexOf('/', end + 1);
    if (end === -1) return path.slice(1);
  }
  return path.slice(1, end);
}

/**
 * The key at `depth` that every path a route can match has, or null when it is not fixed: no
 * path condition, or a prefix (of a `prefix:` or the literal start of a `regex:`) that does not
 * fix `depth` whole segments (`/api` also matches `/apix`).
 */
function routeKey(r: CompiledRoute, depth: number): string | null {
  if (r.pathIsExact) return pathKey(r.pathLiteral as string, depth);
  const p = r.pathLiteral ?? r.regexLiteral;
  if (p === '' || p.charCodeAt(0) !== 47) return null;
  let end = 0;
  for (let d = 0; d < depth; d++) {
    end = p.indexOf('/', end + 1);
    if (end === -1) return null;
  }
  return p.slice(1, end);
}

/**
 * The routes that can match one host, in file order. With many routes they are also indexed by
 * the leading path segments their path conditions fix (at the depth, 1 to 3, that tells most of
 * them apart), so a lookup walks only the routes that can match that key (plus those whose key is
 * not fixed), still in file order.
 */
class Bucket {
  private readonly index: Map<string, CompiledRoute[]> | null = null;
  private readonly depth: number = 1;
  /** routes whose key is not fixed: the candidates for a key not in `index` */
  private readonly rest: CompiledRoute[] = [];

  constructor(readonly routes: readonly CompiledRoute[]) {
    if (routes.length < INDEX_MIN_ROUTES) return;
    let best: (string | null)[] | null = null;
    let bestDistinct = 1;
    for (let depth = 1; depth <= INDEX_MAX_DEPTH; depth++) {
      const keys = routes.map((r) => routeKey(r, depth));
      const distinct = new Set<string>();
      let unfixed = 0;
      for (const k of keys) {
        if (k === null) unfixed++;
        else distinct.add(k);
      }
      if (distinct.size > bestDistinct && distinct.size * (unfixed + 1) <= INDEX_MAX_ENTRIES) {
        best = keys;
        bestDistinct = distinct.size;
        this.depth = depth;
      }
    }
    if (best === null) return;
    const index = new Map<string, CompiledRoute[]>();
    for (const k of best) if (k !== null && !index.has(k)) index.set(k, []);
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i] as CompiledRoute;
      const k = best[i];
      if (k === null || k === undefined) {
        this.rest.push(r);
        for (const list of index.values()) list.push(r);
      } else {
        (index.get(k) as CompiledRoute[]).push(r);
      }
    }
    this.index = index;
  }

  find(port: number, path: string, method: string, rawHeaders: readonly string[]): CompiledRoute | null {
    let list = this.routes;
    if (this.index !== null) list = this.index.get(pathKey(path, this.depth)) ?? this.rest;
    for (let i = 0; i < list.length; i++) {
      const r = list[i] as CompiledRoute;
      if (r.matches(port, path, method, rawHeaders)) return r;
    }
    return null;
  }
}

export class RouteTable {
  readonly routes: readonly CompiledRoute[];
  /** routes that can match each exact host, in file order */
  private readonly byHost = new Map<string, Bucket>();
  /** buckets made on demand for hosts not in `byHost` (least recently made first) */
  private readonly hostCache = new Map<string, Bucket>();
  /** the bucket of a host no route names at all (host-less routes and `*` only) */
  private readonly wildcards: HostRule[] = [];
  private readonly anyHost: Bucket | null;
  readonly passthrough: boolean;

  constructor(cfg: OutboundConfig, clusters: ReadonlyMap<string, Cluster>, metrics: Metrics) {
    this.passthrough = cfg.unknownHosts === 'passthrough';
    const routes: CompiledRoute[] = [];
    const exactHosts = new Set<string>();
    let hasSuffixes = false;
    for (const r of cfg.routes) {
      const cr = new CompiledRoute(r, clusters, metrics);
      routes.push(cr);
      const exact = new Set<string>();
      let suffixes: string[] | null = null;
      if (r.match.host === null) suffixes = null;
      else {
        suffixes = [];
        for (const h of r.match.host) {
          if (h.startsWith('*.')) {
            suffixes.push(h.slice(1));
            hasSuffixes = true;
          } else if (h === '*') suffixes.push('');
          else {
            exact.add(h);
            exactHosts.add(h);
          }
        }
      }
      this.wildcards.push({ route: cr, suffixes, exact });
    }
    this.routes = routes;
    for (const h of exactHosts) this.byHost.set(h, this.bucketFor(h));
    // Without `*.suffix` hosts every unnamed host has the same candidates: one shared bucket.
    this.anyHost = hasSuffixes ? null : this.bucketFor(null);
  }

  /** The routes whose host condition admits `host` (null: a host no route names), in file order. */
  private bucketFor(host: string | null): Bucket {
    const list: CompiledRoute[] = [];
    for (const w of this.wildcards) {
      if (host === null ? w.suffixes === null || w.suffixes.includes('') : hostMatches(w, host)) list.push(w.route);
    }
    return new Bucket(list);
  }

  /** `host` is lower-case without port; `port` is the Host's (80 when it names none). */
  route(host: string, port: number, path: string, method: string, rawHeaders: readonly string[]): RouteDecision {
    let b = this.byHost.get(host) ?? this.anyHost;
    if (b === null) {
      b = this.hostCache.get(host) ?? null;
      if (b === null) {
        // Hosts come from clients: the cache is bounded, oldest entry out first.
        if (this.hostCache.size >= HOST_CACHE_MAX) this.hostCache.delete(this.hostCache.keys().next().value as string);
        b = this.bucketFor(host);
        this.hostCache.set(host, b);
      }
    }
    const r = b.find(port, path, method, rawHeaders);
    if (r !== null) return r.decision;
    return this.passthrough ? PASSTHROUGH : NO_ROUTE;
  }

  /**
   * The route of `CONNECT host:port`: the first route (file order) whose host condition names
   * `host` and whose `connectPorts` hold `port`, path, method and headers ignored (a CONNECT
   * carries none); null when none does. Routes without a host condition do not count: they would
   * capture every CONNECT.
   */
  routeForConnect(host: string, port: number): CompiledRoute | null {
    const w = this.wildcards;
    for (let i = 0; i < w.length; i++) {
      const r = w[i] as HostRule;
      if (r.suffixes !== null && hostMatches(r, host) && r.route.connectPorts.has(port)) return r.route;
    }
    return null;
  }
}

/** The ports the clusters of `targets` send to (static endpoints' ports, or the DNS port). */
function clusterPorts(targets: readonly RouteTarget[]): ReadonlySet<number> {
  const ports = new Set<number>();
  for (const t of targets) {
    const c = t.cluster.config;
    if (c.dns !== null) ports.add(c.dns.port);
    for (const a of c.endpoints ?? []) ports.add(a.port);
  }
  return ports;
}

/** A route's host condition: null suffixes = any host; "" suffix = "*". */
interface HostRule {
  readonly route: CompiledRoute;
  readonly suffixes: string[] | null;
  readonly exact: ReadonlySet<string>;
}

function hostMatches(w: HostRule, host: string): boolean {
  if (w.suffixes === null) return true;
  if (w.exact.has(host)) return true;
  for (const s of w.suffixes) {
    if (s === '') return true;
    // "*.example.com" matches "a.example.com", not "example.com" itself (as Envoy).
    if (host.length > s.length && host.endsWith(s)) return true;
  }
  return false;
}
