/**
 * The config in force as JSON for the admin `/config` endpoint. It reads like the file: same
 * keys, durations as `5s`, addresses as `host:port`, TLS material as file paths (the Config never
 * holds contents). Values of credential-carrying headers are redacted. A rendered config, written
 * back as YAML, loads to the same Config (apart from redacted values): absent optional blocks are
 * left out rather than shown as null, because a null block in the file means "present, defaults".
 */
import { formatAddress } from './address.js';
import { formatDuration } from './duration.js';
import type {
  AuthorizationConfig,
  ClusterConfig,
  Config,
  HeaderOps,
  InboundConfig,
  ListenerLimits,
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

function limits(l: ListenerLimits): JsonObject {
  return {
    maxConnections: l.maxConnections,
    headersTimeout: formatDuration(l.headersTimeout),
    maxHeaderBytes: l.maxHeaderBytes,
    maxHeaders: l.maxHeaders,
    maxUrlLength: l.maxUrlLength,
    idleTimeout: formatDuration(l.idleTimeout),
    keepAliveTimeout: formatDuration(l.keepAliveTimeout),
  };
}

function rateLimit(r: RateLimitConfig | null): Json {
  return r === null ? null : { requestsPerSecond: r.requestsPerSecond, burst: r.burst };
}

function authorization(a: AuthorizationConfig | null): Json {
  if (a === null) return null;
  return {
    default: a.default,
    ignoreCase: a.ignoreCase,
    rules: a.rules.map((r) => {
      const o: JsonObject = { action: r.action };
      put(o, 'principals', r.principals === null ? null : [...r.principals]);
      put(o, 'paths', r.paths === null ? null : [...r.paths]);
      put(o, 'methods', r.methods === null ? null : [...r.methods]);
      return o;
    }),
  };
}

function inbound(c: InboundConfig): JsonObject {
  const o: JsonObject = {
    listen: formatAddress(c.listen),
    app: formatAddress(c.app),
    timeout: formatDuration(c.timeout),
    maxConcurrent: c.maxConcurrent,
  };
  put(o, 'rateLimit', rateLimit(c.rateLimit));
  if (c.tls !== null) {
    const t: JsonObject = { cert: c.tls.cert, key: c.tls.key };
    put(t, 'ca', c.tls.ca);
    t['requireClientCert'] = c.tls.requireClientCert;
    o['tls'] = t;
  }
  put(o, 'authorization', authorization(c.authorization));
  o['limits'] = limits(c.limits);
  return o;
}

function headerOps(h: HeaderOps): JsonObject {
  return { set: headerValues(h.set), remove: [...h.remove] };
}

function route(r: RouteConfig): JsonObject {
  const o: JsonObject = { name: r.name };
  const m: JsonObject = {};
  put(m, 'host', r.match.host === null ? null : [...r.match.host]);
  put(m, 'port', r.match.ports === null ? null : [...r.match.ports]);
  put(m, 'path', r.match.path === null ? null : { ...r.match.path });
  put(m, 'methods', r.match.methods === null ? null : [...r.match.methods]);
  put(m, 'headers', r.match.headers === null ? null : headerValues(r.match.headers));
  o['match'] = m;
  put(o, 'rewrite', r.rewrite === null ? null : { prefix: r.rewrite.prefix });
  put(o, 'cluster', r.cluster);
  put(o, 'split', r.split === null ? null : r.split.map((w) => ({ cluster: w.cluster, weight: w.weight })));
  o['timeout'] = formatDuration(r.timeout);
  if (r.retries !== null) {
    const t = r.retries;
    o['retries'] = {
      attempts: t.attempts,
      perTryTimeout: formatDuration(t.perTryTimeout),
      on: [...t.on],
      backoff: { base: formatDuration(t.backoff.base), max: formatDuration(t.backoff.max) },
      nonIdempotent: t.nonIdempotent,
    };
  }
  o['headers'] = { request: headerOps(r.headers.request), response: headerOps(r.headers.response) };
  put(o, 'mirror', r.mirror === null ? null : { cluster: r.mirror.cluster, percent: r.mirror.percent });
  if (r.fault !== null) {
    const f: JsonObject = {};
    put(f, 'delay', r.fault.delay === null ? null : { percent: r.fault.delay.percent, duration: formatDuration(r.fault.delay.duration) });
    put(f, 'abort', r.fault.abort === null ? null : { percent: r.fault.abort.percent, status: r.fault.abort.status });
    o['fault'] = f;
  }
  put(o, 'rateLimit', rateLimit(r.rateLimit));
  return o;
}

function outbound(c: OutboundConfig): JsonObject {
  return {
    listen: formatAddress(c.listen),
    unknownHosts: c.unknownHosts,
    timeout: formatDuration(c.timeout),
    maxConcurrent: c.maxConcurrent,
    routes: c.routes.map(route),
    limits: limits(c.limits),
  };
}

function cluster(c: ClusterConfig): JsonObject {
  const o: JsonObject = {};
  put(o, 'endpoints', c.endpoints === null ? null : c.endpoints.map(formatAddress));
  put(o, 'dns', c.dns === null ? null : { name: c.dns.name, port: c.dns.port, refresh: formatDuration(c.dns.refresh) });
  o['loadBalancer'] = c.loadBalancer;
  put(o, 'hashOn', c.hashOn === null ? null : { header: c.hashOn.header });
  o['connectTimeout'] = formatDuration(c.connectTimeout);
  o['maxConnectionsPerEndpoint'] = c.maxConnectionsPerEndpoint;
  o['maxPending'] = c.maxPending;
  const hc = c.healthCheck;
  put(
    o,
    'healthCheck',
    hc === null
      ? null
      : {
          path: hc.path,
          interval: formatDuration(hc.interval),
          timeout: formatDuration(hc.timeout),
          unhealthyThreshold: hc.unhealthyThreshold,
          healthyThreshold: hc.healthyThreshold,
        },
  );
  const od = c.outlierDetection;
  put(
    o,
    'outlierDetection',
    od === null
      ? null
      : {
          consecutiveErrors: od.consecutiveErrors,
          ejectionTime: formatDuration(od.ejectionTime),
          maxEjectionPercent: od.maxEjectionPercent,
        },
  );
  o['panicThreshold'] = c.panicThreshold;
  const cb = c.circuitBreaker;
  put(
    o,
    'circuitBreaker',
    cb === null
      ? null
      : {
          errorThresholdPercentage: cb.errorThresholdPercentage,
          volumeThreshold: cb.volumeThreshold,
          window: formatDuration(cb.window),
          resetTimeout: formatDuration(cb.resetTimeout),
        },
  );
  o['retryBudget'] = { ratio: c.retryBudget.ratio, minPerSecond: c.retryBudget.minPerSecond };
  if (c.tls !== null) {
    const t: JsonObject = {};
    put(t, 'ca', c.tls.ca);
    put(t, 'cert', c.tls.cert);
    put(t, 'key', c.tls.key);
    put(t, 'serverName', c.tls.serverName);
    put(t, 'principals', c.tls.principals === null ? null : [...c.tls.principals]);
    o['tls'] = t;
  }
  return o;
}

/**
 * The config as plain JSON in the file's shape (see the module comment). Called once per
 * `/config` request; cheap enough not to cache.
 */
export function renderConfig(c: Config): unknown {
  const o: JsonObject = { admin: { listen: formatAddress(c.admin.listen) } };
  if (c.inbound !== null) o['inbound'] = inbound(c.inbound);
  if (c.outbound !== null) o['outbound'] = outbound(c.outbound);
  const clusters: JsonObject = {};
  for (const [name, cl] of Object.entries(c.clusters)) put(clusters, name, cluster(cl));
  o['clusters'] = clusters;
  const res: JsonObject = {};
  put(res, 'servers', c.resolver.servers === null ? null : c.resolver.servers.map(formatAddress));
  o['resolver'] = res;
  o['drain'] = { delay: formatDuration(c.drain.delay), timeout: formatDuration(c.drain.timeout) };
  return o;
}
