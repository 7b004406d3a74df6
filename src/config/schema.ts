/**
 * The config schema: the validation of every key declared in `fields.ts` (docs/configuration.md
 * is generated from that table). Allowed keys, bounds and defaults of simple fields come from the
 * table; addresses, lists, files and the checks across keys are read here. `buildConfig` walks
 * the YAML document once, records every problem with the position of the offending node, and
 * returns the defaulted `Config` (meaningful only when no problem was recorded).
 *
 * Decisions the tests pin:
 * - Indexes in key paths are 0-based: `outbound.routes[0]` is the first route.
 * - `retries.on` takes `connect-failure`, `reset`, `5xx`, `gateway-error`, and status codes
 *   400..599 as numbers (`429` is useful behind rate-limited services).
 * - `fault.delay.percent`, `fault.abort.percent` and `mirror.percent` default to 100 (as Istio).
 * - `inbound.tls.requireClientCert: true` (the default) needs `ca`: verifying mesh clients
 *   against the public web roots is never what is meant.
 * - `rewrite` is not allowed with a regex path match (there is no matched prefix to replace).
 * - Header values must be valid HTTP field values: CR, LF and NUL get the documented message;
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
import * as F from './fields.js';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_INBOUND_LISTEN, DEFAULT_OUTBOUND_LISTEN, DEFAULT_RETRY_ON, RETRY_CONDITIONS } from './fields.js';
import { isNullNode, Reader, suggest, type Field, type MapView } from './reader.js';
import type {
  Address,
  AuthorizationConfig,
  AuthzRule,
  ClusterConfig,
  ClusterTlsConfig,
  Config,
  FaultConfig,
  HeaderOps,
  InboundConfig,
  InboundTlsConfig,
  ListenerLimits,
  OutboundConfig,
  PathMatch,
  RateLimitConfig,
  ResolverConfig,
  RetryConfig,
  RouteConfig,
  RouteMatch,
  WeightedCluster,
} from './types.js';

const keys = (b: F.Block): readonly string[] => Object.freeze(Object.keys(b));
const TOP_KEYS = keys(F.TOP);
const ADMIN_KEYS = keys(F.ADMIN);
const INBOUND_KEYS = keys(F.INBOUND);
const OUTBOUND_KEYS = keys(F.OUTBOUND);
const LIMITS_KEYS = keys(F.LIMITS);
const RATE_LIMIT_KEYS = keys(F.RATE_LIMIT);
const INBOUND_TLS_KEYS = keys(F.INBOUND_TLS);
const AUTHZ_KEYS = keys(F.AUTHORIZATION);
const AUTHZ_RULE_KEYS = keys(F.AUTHZ_RULE);
const ROUTE_KEYS = keys(F.ROUTE);
const MATCH_KEYS = keys(F.MATCH);
const PATH_KEYS = ['prefix', 'exact', 'regex'] as const satisfies readonly (keyof typeof F.PATH)[];
const REWRITE_KEYS = keys(F.REWRITE);
const SPLIT_KEYS = keys(F.SPLIT);
const RETRY_KEYS = keys(F.RETRIES);
const BACKOFF_KEYS = keys(F.BACKOFF);
const HEADERS_KEYS = keys(F.HEADERS);
const HEADER_OPS_KEYS = keys(F.HEADER_OPS);
const MIRROR_KEYS = keys(F.MIRROR);
const FAULT_KEYS = keys(F.FAULT);
const DELAY_KEYS = keys(F.DELAY);
const ABORT_KEYS = keys(F.ABORT);
const CLUSTER_KEYS = keys(F.CLUSTER);
const DNS_KEYS = keys(F.DNS);
const HASH_ON_KEYS = keys(F.HASH_ON);
const HEALTH_KEYS = keys(F.HEALTH_CHECK);
const OUTLIER_KEYS = keys(F.OUTLIER_DETECTION);
const BREAKER_KEYS = keys(F.CIRCUIT_BREAKER);
const BUDGET_KEYS = keys(F.RETRY_BUDGET);
const CLUSTER_TLS_KEYS = keys(F.CLUSTER_TLS);
const RESOLVER_KEYS = keys(F.RESOLVER);
const DRAIN_KEYS = keys(F.DRAIN);

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
    const drain = this.simple(drainM, F.DRAIN);

    if (clustersReadable) this.checkClusterRefs(clusters);
    this.checkListenerConflicts();

    return { config: { admin, inbound, outbound, clusters, resolver, drain }, files: this.files };
  }

  // ---- simple fields, read as fields.ts declares them: absent → default; invalid → problem recorded, default returned ----

  /** A block's defaulted simple fields (all defaults when the block is absent). */
  private simple<B extends F.Block>(m: MapView | null, block: B): F.Simple<B> {
    const out: Record<string, unknown> = F.defaultsOf(block);
    if (m === null) return out as F.Simple<B>;
    for (const [key, spec] of Object.entries(block)) {
      if (!F.isSimple(spec) || spec.default === undefined) continue;
      const f = this.r.opt(m, key);
      const v = f === undefined ? undefined : this.value(f, spec);
      if (v !== undefined) out[key] = v;
    }
    return out as F.Simple<B>;
  }

  /** A simple field without a default: undefined (problem recorded) when missing or invalid. */
  private required<B extends F.Block, K extends keyof B & string>(m: MapView, block: B, key: K): F.ValueOf<B[K]> | undefined {
    const spec = block[key]!;
    const f = this.r.req(m, key);
    if (f === undefined || !F.isSimple(spec)) return undefined;
    return this.value(f, spec) as F.ValueOf<B[K]> | undefined;
  }

  private value(f: Field, spec: F.SimpleSpec): number | boolean | string | undefined {
    const r = this.r;
    switch (spec.kind) {
      case 'integer':
        return r.integer(f, spec.min, spec.max);
      case 'number':
        return r.number(f, spec.min, spec.max, spec.aboveMin ?? false);
      case 'duration':
        return r.duration(f, spec.positive ?? false);
      case 'boolean':
        return r.boolean(f);
      case 'enum':
        return r.oneOf(f, spec.values);
    }
  }

  private dur(m: MapView, key: string, def: number): number {
    const f = this.r.opt(m, key);
    return f === undefined ? def : (this.r.duration(f, false) ?? def);
  }

  private num(m: MapView, key: string, def: number, min: number, max: number): number {
    const f = this.r.opt(m, key);
    return f === undefined ? def : (this.r.number(f, min, max) ?? def);
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
    const rps = this.required(m, F.RATE_LIMIT, 'requestsPerSecond') ?? 1;
    return { requestsPerSecond: rps, burst: this.num(m, 'burst', Math.max(1, rps), 1, Number.MAX_SAFE_INTEGER) };
  }

  private limits(m: MapView | null): ListenerLimits {
    return this.simple(m, F.LIMITS);
  }

  // ---- inbound ----

  private inbound(m: MapView): InboundConfig {
    const r = this.r;
    const appF = r.req(m, 'app');
    const app = (appF === undefined ? undefined : r.address(appF, false)) ?? { host: '127.0.0.1', port: 8080 };
    return {
      listen: this.listen(m, 'inbound.listen', DEFAULT_INBOUND_LISTEN),
      app,
      ...this.simple(m, F.INBOUND),
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
    const { requireClientCert } = this.simple(m, F.INBOUND_TLS);
    if (requireClientCert && ca === null && !r.has(m, 'ca')) {
      r.report(m.at, `${p(m.path)}requireClientCert needs "ca" (the CA that signs client certificates); or set requireClientCert: false`);
    }
    return { cert, key, ca, requireClientCert };
  }

  private authorization(m: MapView | null): AuthorizationConfig | null {
    if (m === null) return null;
    const r = this.r;
    const rules: AuthzRule[] = [];
    const rulesF = r.opt(m, 'rules');
    const items = rulesF === undefined ? [] : (r.list(rulesF) ?? []);
    for (let i = 0; i < items.length; i++) {
      const rm = r.map(items[i]!, AUTHZ_RULE_KEYS);
      if (rm === null) continue;
      const action = this.required(rm, F.AUTHZ_RULE, 'action') ?? 'deny';
      rules.push({
        action,
        principals: this.optList(rm, 'principals', (f) => r.nonEmptyString(f)),
        paths: this.optList(rm, 'paths', (f) => this.authzPath(f)),
        methods: this.optList(rm, 'methods', this.method),
      });
    }
    return { ...this.simple(m, F.AUTHORIZATION), rules };
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
    const simple = this.simple(m, F.OUTBOUND);
    const timeout = simple.timeout;
    const routes: RouteConfig[] = [];
    const routesF = r.opt(m, 'routes');
    const items = routesF === undefined ? [] : (r.list(routesF) ?? []);
    for (let i = 0; i < items.length; i++) {
      const route = this.route(items[i]!, timeout);
      if (route !== null) routes.push(route);
    }
    return {
      listen: this.listen(m, 'outbound.listen', DEFAULT_OUTBOUND_LISTEN),
      ...simple,
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
        ...this.simple(mirM, F.MIRROR),
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
        const weight = this.required(m, F.SPLIT, 'weight');
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
    const bm = r.block(m, 'backoff', BACKOFF_KEYS);
    const backoff = this.simple(bm, F.BACKOFF);
    const { base, max } = backoff;
    if (bm !== null) {
      if (base > max) {
        const at = r.opt(bm, 'base')?.at ?? bm.at;
        r.report(at, `${p(bm.path)}base (${formatDuration(base)}) must not exceed max (${formatDuration(max)})`);
      }
    }
    return { ...this.simple(m, F.RETRIES), on, backoff };
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
      delay = { ...this.simple(dm, F.DELAY), duration: this.required(dm, F.DELAY, 'duration') ?? 0 };
    }
    let abort: { percent: number; status: number } | null = null;
    if (am !== null) {
      abort = { ...this.simple(am, F.ABORT), status: this.required(am, F.ABORT, 'status') ?? 503 };
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
        let dnsName = nf === undefined ? undefined : r.nonEmptyString(nf);
        if (nf !== undefined && dnsName !== undefined && !isHostname(dnsName)) {
          r.report(nf.at, `${p(nf.path)}invalid DNS name ${JSON.stringify(dnsName)}`);
          dnsName = undefined;
        }
        dns = {
          name: dnsName ?? '',
          port: this.required(dm, F.DNS, 'port') ?? 80,
          ...this.simple(dm, F.DNS),
        };
      }
    }

    const simple = this.simple(m, F.CLUSTER);
    let hashOn: { header: string } | null = null;
    const hm = r.block(m, 'hashOn', HASH_ON_KEYS);
    if (hm !== null) {
      // With an invalid loadBalancer the problem is that key's, not hashOn's.
      const lbF = r.opt(m, 'loadBalancer');
      const lbValid =
        lbF === undefined ||
        (isScalar(lbF.node) && F.CLUSTER.loadBalancer.values.some((v) => v === (lbF.node as { value: unknown }).value));
      if (lbValid && simple.loadBalancer !== 'ring-hash') {
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
      ...simple,
      hashOn,
      healthCheck: hcM === null ? null : { path: healthPath, ...this.simple(hcM, F.HEALTH_CHECK) },
      outlierDetection: odM === null ? null : this.simple(odM, F.OUTLIER_DETECTION),
      circuitBreaker: cbM === null ? null : this.simple(cbM, F.CIRCUIT_BREAKER),
      retryBudget: this.simple(rbM, F.RETRY_BUDGET),
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
