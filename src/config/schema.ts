/**
 * The config schema: every key of CONTRACT.md's "Config file" (plus the extensions declared in
 * `types.ts`), its default, and its validation, in one place. `buildConfig` walks the YAML
 * document once, records every problem with the position of the offending node, and returns the
 * defaulted `Config` (meaningful only when no problem was recorded).
 *
 * Decisions where the contract is silent (the tests pin each one):
 * - Indexes in key paths are 0-based: `outbound.routes[0]` is the first route.
 * - `retries.on` takes `connect-failure`, `reset`, `5xx`, `gateway-error`, and status codes
 *   400..599 as numbers (`429` is useful behind rate-limited services).
 * - `fault.delay.percent`, `fault.abort.percent` and `mirror.percent` default to 100 (as Istio).
 * - `inbound.tls.requireClientCert: true` (the default) needs `ca`: verifying mesh clients
 *   against the public web roots is never what is meant.
 * - `rewrite` is not allowed with a regex path match (there is no matched prefix to replace).
 * - Header values must be valid HTTP field values: CR, LF and NUL get the contract's message;
 *   other characters Node refuses at request time (controls, code points above U+00FF) are
 *   rejected here too, so the data plane never throws on a configured header.
 * - Setting hop-by-hop or framing headers (`connection`, `content-length`, `transfer-encoding`,
 *   ...) is refused: the proxy owns them.
 * - Lists that narrow a match (`match.host`, `match.methods`, `principals`, `paths`,
 *   `methods`) must not be empty: leaving the key out is how "any" is written.
 */
import path from 'node:path';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { isMap, isScalar } from 'yaml';
import { formatAddress, isHostname, parseAddress } from './address.js';
import { formatDuration } from './duration.js';
import { isNullNode, Reader, suggest, type Field, type MapView } from './reader.js';
import type {
  Address,
  AuthorizationConfig,
  AuthzAction,
  AuthzRule,
  ClusterConfig,
  ClusterTlsConfig,
  Config,
  FaultConfig,
  HeaderOps,
  InboundConfig,
  InboundTlsConfig,
  ListenerLimits,
  LoadBalancerKind,
  OutboundConfig,
  PathMatch,
  RateLimitConfig,
  ResolverConfig,
  RetryConfig,
  RouteConfig,
  RouteMatch,
  WeightedCluster,
} from './types.js';

const TOP_KEYS = ['admin', 'inbound', 'outbound', 'clusters', 'resolver', 'drain'] as const;
const ADMIN_KEYS = ['listen'] as const;
const INBOUND_KEYS = ['listen', 'app', 'timeout', 'maxConcurrent', 'rateLimit', 'tls', 'authorization', 'limits'] as const;
const OUTBOUND_KEYS = ['listen', 'unknownHosts', 'timeout', 'maxConcurrent', 'routes', 'limits'] as const;
const LIMITS_KEYS = [
  'maxConnections',
  'headersTimeout',
  'maxHeaderBytes',
  'maxHeaders',
  'maxUrlLength',
  'idleTimeout',
  'keepAliveTimeout',
] as const;
const RATE_LIMIT_KEYS = ['requestsPerSecond', 'burst'] as const;
const INBOUND_TLS_KEYS = ['cert', 'key', 'ca', 'requireClientCert'] as const;
const AUTHZ_KEYS = ['default', 'ignoreCase', 'rules'] as const;
const AUTHZ_RULE_KEYS = ['action', 'principals', 'paths', 'methods'] as const;
const ROUTE_KEYS = [
  'name',
  'match',
  'rewrite',
  'cluster',
  'split',
  'timeout',
  'retries',
  'headers',
  'mirror',
  'fault',
  'rateLimit',
] as const;
const MATCH_KEYS = ['host', 'port', 'path', 'methods', 'headers'] as const;
const PATH_KEYS = ['prefix', 'exact', 'regex'] as const;
const REWRITE_KEYS = ['prefix'] as const;
const SPLIT_KEYS = ['cluster', 'weight'] as const;
const RETRY_KEYS = ['attempts', 'perTryTimeout', 'on', 'backoff', 'nonIdempotent'] as const;
const BACKOFF_KEYS = ['base', 'max'] as const;
const HEADERS_KEYS = ['request', 'response'] as const;
const HEADER_OPS_KEYS = ['set', 'remove'] as const;
const MIRROR_KEYS = ['cluster', 'percent'] as const;
const FAULT_KEYS = ['delay', 'abort'] as const;
const DELAY_KEYS = ['percent', 'duration'] as const;
const ABORT_KEYS = ['percent', 'status'] as const;
const CLUSTER_KEYS = [
  'endpoints',
  'dns',
  'loadBalancer',
  'hashOn',
  'connectTimeout',
  'maxConnectionsPerEndpoint',
  'maxPending',
  'healthCheck',
  'outlierDetection',
  'panicThreshold',
  'circuitBreaker',
  'retryBudget',
  'tls',
] as const;
const DNS_KEYS = ['name', 'port', 'refresh'] as const;
const HASH_ON_KEYS = ['header'] as const;
const HEALTH_KEYS = ['path', 'interval', 'timeout', 'unhealthyThreshold', 'healthyThreshold'] as const;
const OUTLIER_KEYS = ['consecutiveErrors', 'ejectionTime', 'maxEjectionPercent'] as const;
const BREAKER_KEYS = ['errorThresholdPercentage', 'volumeThreshold', 'window', 'resetTimeout'] as const;
const BUDGET_KEYS = ['ratio', 'minPerSecond'] as const;
const CLUSTER_TLS_KEYS = ['ca', 'cert', 'key', 'serverName', 'principals'] as const;
const RESOLVER_KEYS = ['servers'] as const;
const DRAIN_KEYS = ['delay', 'timeout'] as const;

const LOAD_BALANCERS: readonly LoadBalancerKind[] = ['round-robin', 'least-request', 'random', 'ring-hash'];
const AUTHZ_ACTIONS: readonly AuthzAction[] = ['allow', 'deny'];
const UNKNOWN_HOSTS = ['passthrough', 'reject'] as const;
/** Named retry conditions; status codes are written as numbers. */
export const RETRY_CONDITIONS = ['connect-failure', 'reset', '5xx', 'gateway-error'] as const;
/** Headers the proxy manages itself; configuring them would break framing or hop-by-hop handling. */
const UNSETTABLE_HEADERS = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
];

const SEC = 1000;
const MIN = 60 * SEC;

/** Defaults of every listener's `limits` block (types.ts `ListenerLimits`). Shared, so frozen. */
export const DEFAULT_LIMITS: ListenerLimits = Object.freeze({
  maxConnections: 10000,
  headersTimeout: 10 * SEC,
  maxHeaderBytes: 16384,
  maxHeaders: 100,
  maxUrlLength: 8192,
  idleTimeout: 5 * MIN,
  keepAliveTimeout: 60 * SEC,
});
export const DEFAULT_ADMIN_LISTEN: Address = Object.freeze({ host: '127.0.0.1', port: 15000 });
export const DEFAULT_INBOUND_LISTEN: Address = Object.freeze({ host: '0.0.0.0', port: 15006 });
export const DEFAULT_OUTBOUND_LISTEN: Address = Object.freeze({ host: '127.0.0.1', port: 15001 });
export const DEFAULT_RETRY_ON: readonly (string | number)[] = Object.freeze(['connect-failure', 'reset', 502, 503, 504]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// What Node's http module accepts in a header value (lib/_http_common.js checkInvalidHeaderChar).
const INVALID_HEADER_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
const CR_LF_NUL = /[\r\n\0]/;
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

/**
 * How route regexes are compiled: anchored, the whole path must match (as Envoy's safe_regex
 * and Istio), no flags. The router compiles with this function, so what validated is what runs.
 */
export function compileRouteRegex(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

/** An own, enumerable property even for names like `__proto__`. */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function lowerFirst(s: string): string {
  return s.length > 0 ? s.charAt(0).toLowerCase() + s.slice(1) : s;
}

/** Where a problem is reported and what it says; `p` prefixes a key path. */
function p(path: string): string {
  return path === '' ? '' : `${path}: `;
}

interface ClusterRef {
  readonly name: string;
  readonly at: number;
  readonly path: string;
}

interface ListenerUse {
  readonly path: string;
  readonly addr: Address;
  /** null when the address is the default (not written in the file) */
  readonly at: number | null;
}

/** The result of a schema pass; `config` is meaningful only when the reader has no problems. */
export interface Built {
  readonly config: Config;
  /** absolute paths of every file the config names (TLS material), deduplicated, in file order */
  readonly files: readonly string[];
}

/** Walks a parsed document (its root `Field`) and builds the config; problems go to `r`. */
export function buildConfig(r: Reader, root: Field, baseDir: string): Built {
  return new Builder(r, baseDir).build(root);
}

class Builder {
  private readonly files: string[] = [];
  private readonly clusterRefs: ClusterRef[] = [];
  private readonly listeners: ListenerUse[] = [];
  private readonly routeNames = new Map<string, number>();

  constructor(
    private readonly r: Reader,
    private readonly baseDir: string,
  ) {}

  build(rootField: Field): Built {
    const r = this.r;
    let root: MapView | null = null;
    if (isNullNode(rootField.node) || isMap(rootField.node)) root = r.map(rootField, TOP_KEYS, true);
    else r.report(rootField.at, `expected a map at top level, got ${r.describe(rootField.node)}`);
    const empty: MapView = { path: '', at: 0, fields: new Map(), nulls: new Map() };
    const top = root ?? empty;

    const adminM = r.block(top, 'admin', ADMIN_KEYS);
    const admin = { listen: this.listen(adminM, 'admin.listen', DEFAULT_ADMIN_LISTEN) };

    const inM = r.block(top, 'inbound', INBOUND_KEYS);
    const inbound = inM === null ? null : this.inbound(inM);
    const outM = r.block(top, 'outbound', OUTBOUND_KEYS);
    const outbound = outM === null ? null : this.outbound(outM);

    const clusters: Record<string, ClusterConfig> = {};
    let clustersReadable = true;
    const clustersField = r.opt(top, 'clusters');
    if (clustersField !== undefined) {
      const entries = r.entries(clustersField);
      if (entries === null) clustersReadable = false;
      else {
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]!;
          if (e.key === '') {
            r.report(e.keyAt, 'clusters: cluster name must not be empty');
            continue;
          }
          setOwn(clusters, e.key, this.cluster(e.key, e.field));
        }
      }
    }

    const resM = r.block(top, 'resolver', RESOLVER_KEYS);
    const resolver: ResolverConfig = { servers: resM === null ? null : this.resolverServers(resM) };

    const drainM = r.block(top, 'drain', DRAIN_KEYS);
    const drain = {
      delay: drainM === null ? 5 * SEC : this.dur(drainM, 'delay', 5 * SEC),
      timeout: drainM === null ? 20 * SEC : this.dur(drainM, 'timeout', 20 * SEC),
    };

    if (clustersReadable) this.checkClusterRefs(clusters);
    this.checkListenerConflicts();

    return { config: { admin, inbound, outbound, clusters, resolver, drain }, files: this.files };
  }

  // ---- small typed getters: absent → default; invalid → problem recorded, default returned ----

  private dur(m: MapView, key: string, def: number, positive = false): number {
    const f = this.r.opt(m, key);
    return f === undefined ? def : (this.r.duration(f, positive) ?? def);
  }

  private int(m: MapView, key: string, def: number, min: number, max?: number): number {
    const f = this.r.opt(m, key);
    return f === undefined ? def : (this.r.integer(f, min, max) ?? def);
  }

  private num(m: MapView, key: string, def: number, min: number, max: number, aboveMin = false): number {
    const f = this.r.opt(m, key);
    return f === undefined ? def : (this.r.number(f, min, max, aboveMin) ?? def);
  }

  private bool(m: MapView, key: string, def: boolean): boolean {
    const f = this.r.opt(m, key);
    return f === undefined ? def : (this.r.boolean(f) ?? def);
  }

  private listen(m: MapView | null, path: string, def: Address): Address {
    const f = m === null ? undefined : this.r.opt(m, 'listen');
    if (f === undefined) {
      this.listeners.push({ path, addr: def, at: null });
      return def;
    }
    const a = this.r.address(f, true);
    if (a === undefined) return def;
    this.listeners.push({ path, addr: a, at: f.at });
    return a;
  }

  /** A file path, resolved against the config file's directory and remembered for watching. */
  private file(f: Field | undefined): string | null {
    if (f === undefined) return null;
    const s = this.r.nonEmptyString(f);
    if (s === undefined) return null;
    const abs = path.resolve(this.baseDir, s);
    if (!this.files.includes(abs)) this.files.push(abs);
    return abs;
  }

  /** A non-empty list of items read by `item` (items that fail are dropped; problems recorded). */
  private nonEmptyList<T>(f: Field, item: (f: Field) => T | undefined, anyHint: boolean): T[] | null {
    const items = this.r.list(f);
    if (items === undefined) return null;
    if (items.length === 0) {
      this.r.report(f.at, `${p(f.path)}must not be empty${anyHint ? ' (leave it out to match any)' : ''}`);
      return null;
    }
    const out: T[] = [];
    for (let i = 0; i < items.length; i++) {
      const v = item(items[i]!);
      if (v !== undefined) out.push(v);
    }
    return out;
  }

  private optList<T>(m: MapView, key: string, item: (f: Field) => T | undefined): T[] | null {
    const f = this.r.opt(m, key);
    return f === undefined ? null : this.nonEmptyList(f, item, true);
  }

  private token(f: Field, what: string): string | undefined {
    const s = this.r.string(f);
    if (s === undefined) return undefined;
    if (!TOKEN.test(s)) {
      this.r.report(f.at, `${p(f.path)}invalid ${what} ${JSON.stringify(s)}`);
      return undefined;
    }
    return s;
  }

  private method = (f: Field): string | undefined => this.token(f, 'method')?.toUpperCase();

  private headerValue(f: Field): string | undefined {
    const s = this.r.string(f);
    if (s === undefined) return undefined;
    if (CR_LF_NUL.test(s)) {
      this.r.report(f.at, `${p(f.path)}header value must not contain CR, LF or NUL`);
      return undefined;
    }
    const bad = INVALID_HEADER_VALUE_CHAR.exec(s);
    if (bad !== null) {
      const cp = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
      this.r.report(f.at, `${p(f.path)}header value contains a character HTTP does not allow (U+${cp})`);
      return undefined;
    }
    return s;
  }

  /** A map of header name → value; names lower-cased (so `X-A` and `x-a` are duplicates). */
  private headerMap(f: Field, settable: boolean): Record<string, string> {
    const out: Record<string, string> = {};
    const entries = this.r.entries(f, (k) => k.toLowerCase());
    if (entries === null) return out;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (!TOKEN.test(e.key)) {
        this.r.report(e.keyAt, `${p(f.path)}invalid header name ${JSON.stringify(e.key)}`);
        continue;
      }
      if (settable && UNSETTABLE_HEADERS.includes(e.key)) {
        this.r.report(e.keyAt, `${p(f.path)}header "${e.key}" cannot be set: the proxy manages it`);
        continue;
      }
      const v = this.headerValue(e.field);
      if (v !== undefined) setOwn(out, e.key, v);
    }
    return out;
  }

  private rateLimit(m: MapView | null): RateLimitConfig | null {
    if (m === null) return null;
    const f = this.r.req(m, 'requestsPerSecond');
    const rps = (f === undefined ? undefined : this.r.number(f, 0, Number.MAX_SAFE_INTEGER, true)) ?? 1;
    return { requestsPerSecond: rps, burst: this.num(m, 'burst', Math.max(1, rps), 1, Number.MAX_SAFE_INTEGER) };
  }

  private limits(m: MapView | null): ListenerLimits {
    if (m === null) return DEFAULT_LIMITS;
    const d = DEFAULT_LIMITS;
    return {
      maxConnections: this.int(m, 'maxConnections', d.maxConnections, 1),
      headersTimeout: this.dur(m, 'headersTimeout', d.headersTimeout),
      maxHeaderBytes: this.int(m, 'maxHeaderBytes', d.maxHeaderBytes, 1),
      maxHeaders: this.int(m, 'maxHeaders', d.maxHeaders, 1),
      maxUrlLength: this.int(m, 'maxUrlLength', d.maxUrlLength, 1),
      idleTimeout: this.dur(m, 'idleTimeout', d.idleTimeout),
      keepAliveTimeout: this.dur(m, 'keepAliveTimeout', d.keepAliveTimeout),
    };
  }

  // ---- inbound ----

  private inbound(m: MapView): InboundConfig {
    const r = this.r;
    const appF = r.req(m, 'app');
    const app = (appF === undefined ? undefined : r.address(appF, false)) ?? { host: '127.0.0.1', port: 8080 };
    return {
      listen: this.listen(m, 'inbound.listen', DEFAULT_INBOUND_LISTEN),
      app,
      timeout: this.dur(m, 'timeout', 15 * SEC),
      maxConcurrent: this.int(m, 'maxConcurrent', 10000, 1),
      rateLimit: this.rateLimit(r.block(m, 'rateLimit', RATE_LIMIT_KEYS)),
      tls: this.inboundTls(r.block(m, 'tls', INBOUND_TLS_KEYS)),
      authorization: this.authorization(r.block(m, 'authorization', AUTHZ_KEYS)),
      limits: this.limits(r.block(m, 'limits', LIMITS_KEYS)),
    };
  }

  private inboundTls(m: MapView | null): InboundTlsConfig | null {
    if (m === null) return null;
    const r = this.r;
    const cert = this.file(r.req(m, 'cert')) ?? '';
    const key = this.file(r.req(m, 'key')) ?? '';
    const ca = this.file(r.opt(m, 'ca'));
    const requireClientCert = this.bool(m, 'requireClientCert', true);
    if (requireClientCert && ca === null && !r.has(m, 'ca')) {
      r.report(m.at, `${p(m.path)}requireClientCert needs "ca" (the CA that signs client certificates); or set requireClientCert: false`);
    }
    return { cert, key, ca, requireClientCert };
  }

  private authorization(m: MapView | null): AuthorizationConfig | null {
    if (m === null) return null;
    const r = this.r;
    const defF = r.opt(m, 'default');
    const def = (defF === undefined ? undefined : r.oneOf(defF, AUTHZ_ACTIONS)) ?? 'allow';
    const rules: AuthzRule[] = [];
    const rulesF = r.opt(m, 'rules');
    const items = rulesF === undefined ? [] : (r.list(rulesF) ?? []);
    for (let i = 0; i < items.length; i++) {
      const rm = r.map(items[i]!, AUTHZ_RULE_KEYS);
      if (rm === null) continue;
      const actionF = r.req(rm, 'action');
      const action = (actionF === undefined ? undefined : r.oneOf(actionF, AUTHZ_ACTIONS)) ?? 'deny';
      rules.push({
        action,
        principals: this.optList(rm, 'principals', (f) => r.nonEmptyString(f)),
        paths: this.optList(rm, 'paths', (f) => this.authzPath(f)),
        methods: this.optList(rm, 'methods', this.method),
      });
    }
    return { default: def, ignoreCase: this.bool(m, 'ignoreCase', false), rules };
  }

  private authzPath(f: Field): string | undefined {
    const s = this.r.string(f);
    if (s === undefined) return undefined;
    if (!s.startsWith('/')) {
      this.r.report(f.at, `${p(f.path)}path ${JSON.stringify(s)} must start with "/"`);
      return undefined;
    }
    const star = s.indexOf('*');
    if (star >= 0 && star !== s.length - 1) {
      this.r.report(f.at, `${p(f.path)}path ${JSON.stringify(s)}: "*" is allowed only as the last character`);
      return undefined;
    }
    return s;
  }

  // ---- outbound ----

  private outbound(m: MapView): OutboundConfig {
    const r = this.r;
    const uhF = r.opt(m, 'unknownHosts');
    const timeout = this.dur(m, 'timeout', 15 * SEC);
    const routes: RouteConfig[] = [];
    const routesF = r.opt(m, 'routes');
    const items = routesF === undefined ? [] : (r.list(routesF) ?? []);
    for (let i = 0; i < items.length; i++) {
      const route = this.route(items[i]!, timeout);
      if (route !== null) routes.push(route);
    }
    return {
      listen: this.listen(m, 'outbound.listen', DEFAULT_OUTBOUND_LISTEN),
      unknownHosts: (uhF === undefined ? undefined : r.oneOf(uhF, UNKNOWN_HOSTS)) ?? 'passthrough',
      timeout,
      maxConcurrent: this.int(m, 'maxConcurrent', 10000, 1),
      routes,
      limits: this.limits(r.block(m, 'limits', LIMITS_KEYS)),
    };
  }

  private route(f: Field, defaultTimeout: number): RouteConfig | null {
    const r = this.r;
    const m = r.map(f, ROUTE_KEYS);
    if (m === null) return null;

    const nameF = r.req(m, 'name');
    const name = (nameF === undefined ? undefined : r.nonEmptyString(nameF)) ?? '';
    if (nameF !== undefined && name !== '') {
      const first = this.routeNames.get(name);
      if (first !== undefined) {
        r.report(nameF.at, `${p(nameF.path)}duplicate route name ${JSON.stringify(name)} (first at ${r.lineCol(first)})`);
      } else this.routeNames.set(name, nameF.at);
    }

    const match = this.match(r.block(m, 'match', MATCH_KEYS));

    let rewrite: { prefix: string } | null = null;
    const rwM = r.block(m, 'rewrite', REWRITE_KEYS);
    if (rwM !== null) {
      const pf = r.req(rwM, 'prefix');
      const prefix = pf === undefined ? undefined : this.absPath(pf);
      if (match.path !== null && 'regex' in match.path) {
        r.report(rwM.at, `${p(rwM.path)}rewrite needs a prefix or exact path match, not a regex`);
      }
      rewrite = { prefix: prefix ?? '/' };
    }

    let cluster: string | null = null;
    let split: WeightedCluster[] | null = null;
    const hasCluster = r.has(m, 'cluster');
    const hasSplit = r.has(m, 'split');
    if (hasCluster && hasSplit) {
      r.report(m.at, `${p(m.path)}use either "cluster" or "split", not both`);
    } else if (!hasCluster && !hasSplit) {
      r.report(m.at, `${p(m.path)}missing required key "cluster" (or "split")`);
    }
    // Both are read even when both are written, so that their own problems are reported too.
    if (hasCluster) cluster = this.clusterRef(r.req(m, 'cluster')!) ?? '';
    if (hasSplit) split = this.split(r.req(m, 'split')!);

    const retM = r.block(m, 'retries', RETRY_KEYS);
    const hdrM = r.block(m, 'headers', HEADERS_KEYS);
    const mirM = r.block(m, 'mirror', MIRROR_KEYS);
    let mirror: { cluster: string; percent: number } | null = null;
    if (mirM !== null) {
      const cf = r.req(mirM, 'cluster');
      mirror = {
        cluster: (cf === undefined ? undefined : this.clusterRef(cf)) ?? '',
        percent: this.num(mirM, 'percent', 100, 0, 100),
      };
    }

    return {
      name,
      match,
      rewrite,
      cluster,
      split,
      timeout: this.dur(m, 'timeout', defaultTimeout),
      retries: retM === null ? null : this.retries(retM),
      headers: {
        request: this.headerOps(hdrM === null ? null : r.block(hdrM, 'request', HEADER_OPS_KEYS)),
        response: this.headerOps(hdrM === null ? null : r.block(hdrM, 'response', HEADER_OPS_KEYS)),
      },
      mirror,
      fault: this.fault(r.block(m, 'fault', FAULT_KEYS)),
      rateLimit: this.rateLimit(r.block(m, 'rateLimit', RATE_LIMIT_KEYS)),
    };
  }

  /** A path that must start with `/` (prefix and exact matches, rewrites). */
  private absPath(f: Field): string | undefined {
    const s = this.r.string(f);
    if (s === undefined) return undefined;
    if (!s.startsWith('/')) {
      this.r.report(f.at, `${p(f.path)}must start with "/", got ${JSON.stringify(s)}`);
      return undefined;
    }
    return s;
  }

  private match(m: MapView | null): RouteMatch {
    if (m === null) return { host: null, ports: null, path: null, methods: null, headers: null };
    const r = this.r;
    let host: string[] | null = null;
    const hostF = r.opt(m, 'host');
    if (hostF !== undefined) {
      host = isScalar(hostF.node)
        ? ((h) => (h === undefined ? null : [h]))(this.host(hostF))
        : this.nonEmptyList(hostF, (f) => this.host(f), true);
    }
    let pathMatch: PathMatch | null = null;
    const pm = r.block(m, 'path', PATH_KEYS);
    if (pm !== null) pathMatch = this.pathMatch(pm);
    const hf = r.opt(m, 'headers');
    const portF = r.opt(m, 'port');
    let ports: number[] | null = null;
    if (portF !== undefined) {
      ports = isScalar(portF.node)
        ? ((n) => (n === undefined ? null : [n]))(r.integer(portF, 1, 65535))
        : this.nonEmptyList(portF, (f) => r.integer(f, 1, 65535), true);
    }
    return {
      host,
      ports,
      path: pathMatch,
      methods: this.optList(m, 'methods', this.method),
      headers: hf === undefined ? null : this.headerMap(hf, false),
    };
  }

  private host(f: Field): string | undefined {
    const raw = this.r.string(f);
    if (raw === undefined) return undefined;
    const h = raw.toLowerCase();
    if (h === '*') {
      this.r.report(f.at, `${p(f.path)}"*" alone is not a host pattern: leave match.host out to match any host`);
      return undefined;
    }
    const bare = h.startsWith('*.') ? h.slice(2) : h;
    const ok = isHostname(bare) || (bare.startsWith('[') && bare.endsWith(']') && isIPv6(bare.slice(1, -1)));
    if (!ok) {
      const why = bare.includes('*')
        ? ': "*" is allowed only as a whole leading label ("*.example.com")'
        : /:[0-9]+$/.test(bare)
          ? ': hosts are matched without the port'
          : '';
      this.r.report(f.at, `${p(f.path)}invalid host ${JSON.stringify(raw)}${why}`);
      return undefined;
    }
    return h;
  }

  private pathMatch(m: MapView): PathMatch | null {
    const r = this.r;
    const written = PATH_KEYS.filter((k) => r.has(m, k));
    if (written.length !== 1) {
      r.report(m.at, `${p(m.path)}${written.length === 0 ? 'expected one of' : 'use only one of'} "prefix", "exact" or "regex"`);
      return null;
    }
    const kind = written[0]!;
    const f = r.req(m, kind)!;
    if (kind === 'regex') {
      const s = r.nonEmptyString(f);
      if (s === undefined) return null;
      try {
        new RegExp(s);
        compileRouteRegex(s);
      } catch (e) {
        r.report(f.at, `${p(f.path)}${lowerFirst((e as Error).message)}`);
        return null;
      }
      return { regex: s };
    }
    const s = this.absPath(f);
    if (s === undefined) return null;
    return kind === 'prefix' ? { prefix: s } : { exact: s };
  }

  private split(f: Field): WeightedCluster[] | null {
    const r = this.r;
    const seen = new Map<string, number>();
    return this.nonEmptyList(
      f,
      (item) => {
        const m = r.map(item, SPLIT_KEYS);
        if (m === null) return undefined;
        const cf = r.req(m, 'cluster');
        const cluster = cf === undefined ? undefined : this.clusterRef(cf);
        if (cluster !== undefined && cf !== undefined) {
          const first = seen.get(cluster);
          if (first !== undefined) {
            r.report(cf.at, `${p(cf.path)}cluster ${JSON.stringify(cluster)} is already in this split (at ${r.lineCol(first)})`);
          } else seen.set(cluster, cf.at);
        }
        const wf = r.req(m, 'weight');
        const weight = wf === undefined ? undefined : r.integer(wf, 1);
        return { cluster: cluster ?? '', weight: weight ?? 1 };
      },
      false,
    );
  }

  private clusterRef(f: Field): string | undefined {
    const s = this.r.nonEmptyString(f);
    if (s !== undefined) this.clusterRefs.push({ name: s, at: f.at, path: f.path });
    return s;
  }

  private retries(m: MapView): RetryConfig {
    const r = this.r;
    const onF = r.opt(m, 'on');
    let on: (string | number)[] = [...DEFAULT_RETRY_ON];
    if (onF !== undefined) {
      const items = r.list(onF);
      if (items !== undefined) {
        on = [];
        for (let i = 0; i < items.length; i++) {
          const c = this.retryCondition(items[i]!);
          if (c !== undefined) on.push(c);
        }
      }
    }
    let base = 25;
    let max = 250;
    const bm = r.block(m, 'backoff', BACKOFF_KEYS);
    if (bm !== null) {
      base = this.dur(bm, 'base', base);
      max = this.dur(bm, 'max', max);
      if (base > max) {
        const at = r.opt(bm, 'base')?.at ?? bm.at;
        r.report(at, `${p(bm.path)}base (${formatDuration(base)}) must not exceed max (${formatDuration(max)})`);
      }
    }
    return {
      attempts: this.int(m, 'attempts', 2, 0, 10),
      perTryTimeout: this.dur(m, 'perTryTimeout', 0),
      on,
      backoff: { base, max },
      nonIdempotent: this.bool(m, 'nonIdempotent', false),
    };
  }

  private retryCondition(f: Field): string | number | undefined {
    const n = f.node;
    if (isScalar(n)) {
      const v = n.value;
      if (typeof v === 'number' && Number.isInteger(v) && v >= 400 && v <= 599) return v;
      if (typeof v === 'string') {
        if ((RETRY_CONDITIONS as readonly string[]).includes(v)) return v;
        if (/^[45][0-9][0-9]$/.test(v)) return Number(v);
      }
    }
    this.r.report(
      f.at,
      `${p(f.path)}invalid retry condition ${this.r.describe(n)}: use connect-failure, reset, 5xx, gateway-error or a status code from 400 to 599`,
    );
    return undefined;
  }

  private headerOps(m: MapView | null): HeaderOps {
    if (m === null) return { set: {}, remove: [] };
    const r = this.r;
    const setF = r.opt(m, 'set');
    const removeF = r.opt(m, 'remove');
    let remove: string[] = [];
    if (removeF !== undefined) {
      const items = r.list(removeF) ?? [];
      for (let i = 0; i < items.length; i++) {
        const t = this.token(items[i]!, 'header name');
        if (t !== undefined) remove.push(t.toLowerCase());
      }
      remove = [...new Set(remove)];
    }
    return { set: setF === undefined ? {} : this.headerMap(setF, true), remove };
  }

  private fault(m: MapView | null): FaultConfig | null {
    if (m === null) return null;
    const r = this.r;
    const dm = r.block(m, 'delay', DELAY_KEYS);
    const am = r.block(m, 'abort', ABORT_KEYS);
    let delay: { percent: number; duration: number } | null = null;
    if (dm !== null) {
      const df = r.req(dm, 'duration');
      delay = {
        percent: this.num(dm, 'percent', 100, 0, 100),
        duration: (df === undefined ? undefined : r.duration(df, true)) ?? 0,
      };
    }
    let abort: { percent: number; status: number } | null = null;
    if (am !== null) {
      const sf = r.req(am, 'status');
      abort = {
        percent: this.num(am, 'percent', 100, 0, 100),
        status: (sf === undefined ? undefined : r.integer(sf, 400, 599)) ?? 503,
      };
    }
    return { delay, abort };
  }

  // ---- clusters ----

  private cluster(name: string, f: Field): ClusterConfig {
    const r = this.r;
    const read = r.map(f, CLUSTER_KEYS, true);
    const m = read ?? { path: f.path, at: f.at, fields: new Map<string, Field>(), nulls: new Map<string, Field>() };
    let endpoints: Address[] | null = null;
    let dns: ClusterConfig['dns'] = null;
    const hasEp = r.has(m, 'endpoints');
    const hasDns = r.has(m, 'dns');
    if (hasEp && hasDns) {
      r.report(m.at, `${p(m.path)}use either "endpoints" or "dns", not both`);
    } else if (!hasEp && !hasDns) {
      // A cluster that is not a map at all was reported already.
      if (read !== null) r.report(m.at, `${p(m.path)}missing required key "endpoints" (or "dns")`);
    } else if (hasEp) {
      endpoints = this.endpoints(r.req(m, 'endpoints')!);
    } else {
      const dm = r.block(m, 'dns', DNS_KEYS);
      if (dm !== null) {
        const nf = r.req(dm, 'name');
        const pf = r.req(dm, 'port');
        let dnsName = nf === undefined ? undefined : r.nonEmptyString(nf);
        if (nf !== undefined && dnsName !== undefined && !isHostname(dnsName)) {
          r.report(nf.at, `${p(nf.path)}invalid DNS name ${JSON.stringify(dnsName)}`);
          dnsName = undefined;
        }
        dns = {
          name: dnsName ?? '',
          port: (pf === undefined ? undefined : r.integer(pf, 1, 65535)) ?? 80,
          refresh: this.dur(dm, 'refresh', 5 * SEC, true),
        };
      }
    }

    const lbF = r.opt(m, 'loadBalancer');
    const lbRead = lbF === undefined ? 'round-robin' : r.oneOf(lbF, LOAD_BALANCERS);
    const loadBalancer = lbRead ?? 'round-robin';
    let hashOn: { header: string } | null = null;
    const hm = r.block(m, 'hashOn', HASH_ON_KEYS);
    if (hm !== null) {
      // With an invalid loadBalancer the problem is that key's, not hashOn's.
      if (lbRead !== undefined && loadBalancer !== 'ring-hash') {
        r.report(hm.at, `${p(hm.path)}only allowed with loadBalancer: ring-hash`);
      }
      const hf = r.req(hm, 'header');
      const header = hf === undefined ? undefined : this.token(hf, 'header name');
      hashOn = { header: (header ?? 'x').toLowerCase() };
    }

    const hcM = r.block(m, 'healthCheck', HEALTH_KEYS);
    const odM = r.block(m, 'outlierDetection', OUTLIER_KEYS);
    const cbM = r.block(m, 'circuitBreaker', BREAKER_KEYS);
    const rbM = r.block(m, 'retryBudget', BUDGET_KEYS);
    let healthPath = '/healthz';
    if (hcM !== null) {
      const pf = r.opt(hcM, 'path');
      if (pf !== undefined) healthPath = this.absPath(pf) ?? healthPath;
    }
    return {
      name,
      endpoints,
      dns,
      loadBalancer,
      hashOn,
      connectTimeout: this.dur(m, 'connectTimeout', 1 * SEC),
      maxConnectionsPerEndpoint: this.int(m, 'maxConnectionsPerEndpoint', 128, 1),
      maxPending: this.int(m, 'maxPending', 1024, 1),
      healthCheck:
        hcM === null
          ? null
          : {
              path: healthPath,
              interval: this.dur(hcM, 'interval', 5 * SEC, true),
              timeout: this.dur(hcM, 'timeout', 1 * SEC, true),
              unhealthyThreshold: this.int(hcM, 'unhealthyThreshold', 3, 1),
              healthyThreshold: this.int(hcM, 'healthyThreshold', 2, 1),
            },
      outlierDetection:
        odM === null
          ? null
          : {
              consecutiveErrors: this.int(odM, 'consecutiveErrors', 5, 1),
              ejectionTime: this.dur(odM, 'ejectionTime', 30 * SEC, true),
              maxEjectionPercent: this.num(odM, 'maxEjectionPercent', 50, 0, 100),
            },
      panicThreshold: this.num(m, 'panicThreshold', 50, 0, 100),
      circuitBreaker:
        cbM === null
          ? null
          : {
              errorThresholdPercentage: this.num(cbM, 'errorThresholdPercentage', 50, 0, 100),
              volumeThreshold: this.int(cbM, 'volumeThreshold', 20, 1),
              window: this.dur(cbM, 'window', 10 * SEC, true),
              resetTimeout: this.dur(cbM, 'resetTimeout', 30 * SEC, true),
            },
      retryBudget:
        rbM === null
          ? { ratio: 0.2, minPerSecond: 10 }
          : { ratio: this.num(rbM, 'ratio', 0.2, 0, 1), minPerSecond: this.int(rbM, 'minPerSecond', 10, 0) },
      tls: this.clusterTls(r.block(m, 'tls', CLUSTER_TLS_KEYS)),
    };
  }

  private endpoints(f: Field): Address[] | null {
    const seen = new Map<string, number>();
    return this.nonEmptyList(
      f,
      (item) => {
        const a = this.r.address(item, false);
        if (a === undefined) return undefined;
        const key = formatAddress(a);
        const first = seen.get(key);
        if (first !== undefined) {
          this.r.report(item.at, `${p(item.path)}duplicate endpoint "${key}" (first at ${this.r.lineCol(first)})`);
          return undefined;
        }
        seen.set(key, item.at);
        return a;
      },
      false,
    );
  }

  private clusterTls(m: MapView | null): ClusterTlsConfig | null {
    if (m === null) return null;
    const r = this.r;
    const ca = this.file(r.opt(m, 'ca'));
    const cert = this.file(r.opt(m, 'cert'));
    const key = this.file(r.opt(m, 'key'));
    if (r.has(m, 'cert') !== r.has(m, 'key')) {
      r.report(m.at, `${p(m.path)}"cert" and "key" go together: give both or neither`);
    }
    let serverName: string | null = null;
    const sf = r.opt(m, 'serverName');
    if (sf !== undefined) {
      const s = r.nonEmptyString(sf);
      if (s !== undefined && !isHostname(s)) {
        r.report(sf.at, `${p(sf.path)}invalid server name ${JSON.stringify(s)}`);
      } else if (s !== undefined) serverName = s;
    }
    return { ca, cert, key, serverName, principals: this.optList(m, 'principals', (f) => r.nonEmptyString(f)) };
  }

  // ---- resolver ----

  private resolverServers(m: MapView): Address[] | null {
    const f = this.r.opt(m, 'servers');
    if (f === undefined) return null;
    return this.nonEmptyList(
      f,
      (item) => {
        const s = this.r.string(item);
        if (s === undefined) return undefined;
        if (isIP(s) !== 0) return { host: s, port: 53 };
        const a = parseAddress(s);
        if (a === null || a.port === 0 || (!isIPv4(a.host) && !isIPv6(a.host))) {
          this.r.report(item.at, `${p(item.path)}invalid DNS server ${JSON.stringify(s)}: use an IP address, optionally with :port`);
          return undefined;
        }
        return a;
      },
      false,
    );
  }

  // ---- cross-checks ----

  private checkClusterRefs(clusters: Record<string, ClusterConfig>): void {
    const names = Object.keys(clusters);
    for (let i = 0; i < this.clusterRefs.length; i++) {
      const ref = this.clusterRefs[i]!;
      if (Object.hasOwn(clusters, ref.name)) continue;
      const hint = suggest(ref.name, names);
      this.r.report(
        ref.at,
        `${p(ref.path)}unknown cluster ${JSON.stringify(ref.name)}${hint === null ? '' : ` (did you mean "${hint}"?)`}`,
      );
    }
  }

  private checkListenerConflicts(): void {
    const ls = this.listeners;
    for (let j = 1; j < ls.length; j++) {
      const b = ls[j]!;
      for (let i = 0; i < j; i++) {
        const a = ls[i]!;
        if (!conflicts(a.addr, b.addr)) continue;
        // Report at the one written later in the file (a default one is not written at all).
        const [later, other] = a.at === null ? [b, a] : b.at === null ? [a, b] : a.at > b.at ? [a, b] : [b, a];
        this.r.report(
          later.at ?? 0,
          `${p(later.path)}port ${later.addr.port} is already used by ${other.path} (${formatAddress(other.addr)})`,
        );
        break;
      }
    }
  }
}

/** Two listen addresses that cannot both be bound (port 0 picks a free port, so never). */
function conflicts(a: Address, b: Address): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  if (a.host.toLowerCase() === b.host.toLowerCase()) return true;
  // `::` takes the port on every address (dual stack); `0.0.0.0` on every IPv4 address.
  if (a.host === '::' || b.host === '::' || a.host === '0:0:0:0:0:0:0:0' || b.host === '0:0:0:0:0:0:0:0') return true;
  if (WILDCARD_HOSTS.has(a.host)) return !isIPv6(b.host);
  if (WILDCARD_HOSTS.has(b.host)) return !isIPv6(a.host);
  return false;
}
