/**
 * The outbound route table, compiled once per config snapshot. Matching reads only precompiled
 * structures: routes are bucketed by exact host so a lookup walks just the routes that can
 * apply to the request's host, in file order (first match wins).
 */
import type { Cluster } from '../cluster/cluster.js';
import type { HeaderOps, OutboundConfig, RouteConfig } from '../config/types.js';
import type { RetryPolicy } from '../resilience/classify.js';
import { compileRetryPolicy } from '../resilience/classify.js';
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
  private readonly pathRegex: RegExp | null;
  private readonly methods: ReadonlySet<string> | null;
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
  readonly mirror: RouteTarget | null;
  readonly mirrorPercent: number;
  private readonly single: RouteTarget | null;
  private readonly picker: WeightedPicker<RouteTarget> | null;
  readonly targets: readonly RouteTarget[];

  constructor(r: RouteConfig, clusters: ReadonlyMap<string, Cluster>, metrics: Metrics) {
    this.name = r.name;
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
      // Anchored: a route regex describes the whole path, as in Envoy's safe_regex.
      this.pathRegex = new RegExp(`^(?:${p.regex})$`);
    }
    this.methods = r.match.methods === null ? null : new Set(r.match.methods);
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
  }

  /** Path, method and header match; the host was matched by the table. */
  matches(path: string, method: string, rawHeaders: readonly string[]): boolean {
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
        if (!(this.pathRegex as RegExp).test(path)) return false;
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

function hasHeaderValue(raw: readonly string[], name: string, value: string): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i] as string;
    if (k.length === name.length && k.toLowerCase() === name && (raw[i + 1] as string) === value) return true;
  }
  return false;
}

export type RouteDecision =
  | { readonly kind: 'route'; readonly route: CompiledRoute }
  | { readonly kind: 'passthrough' }
  | { readonly kind: 'no_route' };

const PASSTHROUGH: RouteDecision = Object.freeze({ kind: 'passthrough' });
const NO_ROUTE: RouteDecision = Object.freeze({ kind: 'no_route' });

/** Route decisions are cached per route object so `route()` allocates nothing. */
const decisionOf = new WeakMap<CompiledRoute, RouteDecision>();

export class RouteTable {
  readonly routes: readonly CompiledRoute[];
  /** routes that can match each exact host, in file order */
  private readonly byHost = new Map<string, CompiledRoute[]>();
  /** routes that can match a host not in `byHost` (wildcard or host-less), in file order */
  private readonly fallback: HostRule[] = [];
  private readonly wildcards: HostRule[] = [];
  readonly passthrough: boolean;

  constructor(cfg: OutboundConfig, clusters: ReadonlyMap<string, Cluster>, metrics: Metrics) {
    this.passthrough = cfg.unknownHosts === 'passthrough';
    const routes: CompiledRoute[] = [];
    const exactHosts = new Set<string>();
    for (const r of cfg.routes) {
      const cr = new CompiledRoute(r, clusters, metrics);
      decisionOf.set(cr, Object.freeze({ kind: 'route', route: cr }));
      routes.push(cr);
      const exact = new Set<string>();
      let suffixes: string[] | null = null;
      if (r.match.host === null) suffixes = null;
      else {
        suffixes = [];
        for (const h of r.match.host) {
          if (h.startsWith('*.')) suffixes.push(h.slice(1));
          else if (h === '*') suffixes.push('');
          else {
            exact.add(h);
            exactHosts.add(h);
          }
        }
      }
      this.wildcards.push({ route: cr, suffixes, exact });
    }
    this.routes = routes;
    for (const h of exactHosts) {
      const list: CompiledRoute[] = [];
      for (const w of this.wildcards) if (hostMatches(w, h)) list.push(w.route);
      this.byHost.set(h, list);
    }
    for (const w of this.wildcards) if (w.suffixes === null || w.suffixes.length > 0) this.fallback.push(w);
  }

  /** `host` is lower-case without port. */
  route(host: string, path: string, method: string, rawHeaders: readonly string[]): RouteDecision {
    const exact = this.byHost.get(host);
    if (exact !== undefined) {
      for (let i = 0; i < exact.length; i++) {
        const r = exact[i] as CompiledRoute;
        if (r.matches(path, method, rawHeaders)) return decisionOf.get(r) as RouteDecision;
      }
    } else {
      const fb = this.fallback;
      for (let i = 0; i < fb.length; i++) {
        const w = fb[i] as HostRule;
        if (hostMatches(w, host) && w.route.matches(path, method, rawHeaders)) {
          return decisionOf.get(w.route) as RouteDecision;
        }
      }
    }
    return this.passthrough ? PASSTHROUGH : NO_ROUTE;
  }

  /** Whether any route names this host (CONNECT under `unknownHosts: reject`). */
  knowsHost(host: string): boolean {
    if (this.byHost.has(host)) return true;
    for (const w of this.wildcards) if (w.suffixes !== null && hostMatches(w, host)) return true;
    return false;
  }

  /**
   * The first route (file order) whose host condition names `host`, path, method and headers
   * ignored; null when none does. CONNECT carries no path, so this is how a CONNECT is routed.
   * Routes without a host condition do not count: they would capture every CONNECT.
   */
  routeForHost(host: string): CompiledRoute | null {
    const w = this.wildcards;
    for (let i = 0; i < w.length; i++) {
      const r = w[i] as HostRule;
      if (r.suffixes !== null && hostMatches(r, host)) return r.route;
    }
    return null;
  }
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
