/**
 * The config in force as JSON for the admin `/config` endpoint. It reads like the file: same
 * keys, durations as `5s`, addresses as `host:port`, TLS material as file paths (the Config never
 * holds contents). Values of credential-carrying headers are redacted. A rendered config, written
 * back as YAML, loads to the same Config (apart from redacted values): absent optional blocks are
 * left out rather than shown as null, because a null block in the file means "present, defaults".
 * Keys come out in the order fields.ts declares them; simple fields are written from the table,
 * and every other field must have a renderer here (the compiler checks that none is missing).
 */
import { formatAddress } from './address.js';
import { formatDuration } from './duration.js';
import * as F from './fields.js';
import type {
  AuthorizationConfig,
  ClusterConfig,
  Config,
  HeaderOps,
  InboundConfig,
  OutboundConfig,
  RateLimitConfig,
  RouteConfig,
} from './types.js';
import { REDACTED, SECRET_HEADERS } from '../security/redact.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Sets `key` only when `value` is not null: an absent optional block stays absent. */
function put(obj: JsonObject, key: string, value: Json): void {
  if (value !== null) Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function headerValues(h: Readonly<Record<string, string>>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(h)) put(out, k, SECRET_HEADERS.has(k) ? REDACTED : v);
  return out;
}

/** The renderers of a block's hand-read fields; each returns null for "leave the key out". */
type Others<B> = { readonly [K in F.OtherKeys<B>]: () => Json };

/** One block: its simple fields from `value` (durations as `5s`), the others from `others`. */
function block<B extends F.Block>(spec: B, value: object, others: Others<B>): JsonObject {
  const o: JsonObject = {};
  const values = value as Readonly<Record<string, unknown>>;
  const rest = others as Readonly<Record<string, () => Json>>;
  for (const [key, f] of Object.entries(spec)) {
    if (!F.isSimple(f)) put(o, key, rest[key]!());
    else {
      const v = values[key];
      if (v !== undefined && v !== null) put(o, key, f.kind === 'duration' ? formatDuration(v as number) : (v as Json));
    }
  }
  return o;
}

const list = <T>(items: readonly T[] | null, each: (t: T) => Json = (t) => t as Json): Json => (items === null ? null : items.map(each));

function rateLimit(r: RateLimitConfig | null): Json {
  return r === null ? null : block(F.RATE_LIMIT, r, { burst: () => r.burst });
}

function authorization(a: AuthorizationConfig | null): Json {
  if (a === null) return null;
  return block(F.AUTHORIZATION, a, {
    rules: () =>
      a.rules.map((r) =>
        block(F.AUTHZ_RULE, r, { principals: () => list(r.principals), paths: () => list(r.paths), methods: () => list(r.methods) }),
      ),
  });
}

function inbound(c: InboundConfig): JsonObject {
  const tls = c.tls;
  return block(F.INBOUND, c, {
    listen: () => formatAddress(c.listen),
    app: () => formatAddress(c.app),
    rateLimit: () => rateLimit(c.rateLimit),
    tls: () => (tls === null ? null : block(F.INBOUND_TLS, tls, { cert: () => tls.cert, key: () => tls.key, ca: () => tls.ca })),
    authorization: () => authorization(c.authorization),
    limits: () => block(F.LIMITS, c.limits, {}),
  });
}

function headerOps(h: HeaderOps): JsonObject {
  return block(F.HEADER_OPS, h, { set: () => headerValues(h.set), remove: () => [...h.remove] });
}

function route(r: RouteConfig): JsonObject {
  const m = r.match;
  const fault = r.fault;
  return block(F.ROUTE, r, {
    name: () => r.name,
    match: () =>
      block(F.MATCH, m, {
        host: () => list(m.host),
        port: () => list(m.ports),
        path: () => (m.path === null ? null : { ...m.path }),
        methods: () => list(m.methods),
        headers: () => (m.headers === null ? null : headerValues(m.headers)),
      }),
    rewrite: () => (r.rewrite === null ? null : { prefix: r.rewrite.prefix }),
    cluster: () => r.cluster,
    split: () => list(r.split, (w) => block(F.SPLIT, w, { cluster: () => w.cluster })),
    timeout: () => formatDuration(r.timeout),
    retries: () => {
      const t = r.retries;
      if (t === null) return null;
      return block(F.RETRIES, t, { on: () => [...t.on], backoff: () => block(F.BACKOFF, t.backoff, {}) });
    },
    headers: () =>
      block(F.HEADERS, r.headers, { request: () => headerOps(r.headers.request), response: () => headerOps(r.headers.response) }),
    mirror: () => (r.mirror === null ? null : block(F.MIRROR, r.mirror, { cluster: () => r.mirror!.cluster })),
    fault: () =>
      fault === null
        ? null
        : block(F.FAULT, fault, {
            delay: () => (fault.delay === null ? null : block(F.DELAY, fault.delay, {})),
            abort: () => (fault.abort === null ? null : block(F.ABORT, fault.abort, {})),
          }),
    rateLimit: () => rateLimit(r.rateLimit),
  });
}

function outbound(c: OutboundConfig): JsonObject {
  return block(F.OUTBOUND, c, {
    listen: () => formatAddress(c.listen),
    routes: () => c.routes.map(route),
    limits: () => block(F.LIMITS, c.limits, {}),
  });
}

function cluster(c: ClusterConfig): JsonObject {
  const { dns, healthCheck: hc, tls } = c;
  return block(F.CLUSTER, c, {
    endpoints: () => list(c.endpoints, formatAddress),
    dns: () => (dns === null ? null : block(F.DNS, dns, { name: () => dns.name })),
    hashOn: () => (c.hashOn === null ? null : { header: c.hashOn.header }),
    healthCheck: () => (hc === null ? null : block(F.HEALTH_CHECK, hc, { path: () => hc.path })),
    outlierDetection: () => (c.outlierDetection === null ? null : block(F.OUTLIER_DETECTION, c.outlierDetection, {})),
    circuitBreaker: () => (c.circuitBreaker === null ? null : block(F.CIRCUIT_BREAKER, c.circuitBreaker, {})),
    retryBudget: () => block(F.RETRY_BUDGET, c.retryBudget, {}),
    tls: () =>
      tls === null
        ? null
        : block(F.CLUSTER_TLS, tls, {
            ca: () => tls.ca,
            cert: () => tls.cert,
            key: () => tls.key,
            serverName: () => tls.serverName,
            principals: () => list(tls.principals),
          }),
  });
}

/**
 * The config as plain JSON in the file's shape (see the module comment). Called once per
 * `/config` request; cheap enough not to cache.
 */
export function renderConfig(c: Config): unknown {
  return block(F.TOP, c, {
    admin: () => block(F.ADMIN, c.admin, { listen: () => formatAddress(c.admin.listen) }),
    inbound: () => (c.inbound === null ? null : inbound(c.inbound)),
    outbound: () => (c.outbound === null ? null : outbound(c.outbound)),
    clusters: () => {
      const clusters: JsonObject = {};
      for (const [name, cl] of Object.entries(c.clusters)) put(clusters, name, cluster(cl));
      return clusters;
    },
    resolver: () => block(F.RESOLVER, c.resolver, { servers: () => list(c.resolver.servers, formatAddress) }),
    drain: () => block(F.DRAIN, c.drain, {}),
  });
}
