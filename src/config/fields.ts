/**
 * Every key of the config file, declared once: its type, default, bounds and a one-line meaning.
 *
 * Three readers use these tables and nothing else for what they hold:
 * - the schema (`schema.ts`): a block's allowed keys (and so the "did you mean" hints), and the
 *   reading of every simple field (integer, number, duration, boolean, one-of) with its bounds and
 *   default; `kind: 'other'` fields (addresses, lists, nested blocks) are read by hand there;
 * - `/config` (`render.ts`), which writes the simple fields from the table and must name a
 *   renderer for every other field (the compiler checks that none is forgotten);
 * - the key reference in docs/configuration.md (`reference.ts`, checked by a test and written by
 *   `npm run docs:config`).
 *
 * A simple field without `default` is required when its block is written.
 */
import { formatAddress } from './address.js';
import { formatDuration } from './duration.js';
import type { Address } from './types.js';

interface Doc {
  /** the "meaning" column of the reference */
  readonly doc: string;
  /** the reference's "default" column when it is not just the value (markdown) */
  readonly shown?: string;
  /** the reference's "type" column when it is not derived from the kind (markdown) */
  readonly type?: string;
}

export type FieldSpec =
  | (Doc & { readonly kind: 'integer'; readonly default?: number; readonly min: number; readonly max?: number })
  | (Doc & {
      readonly kind: 'number';
      readonly default?: number;
      readonly min: number;
      readonly max: number;
      /** the minimum itself is excluded (`> min`) */
      readonly aboveMin?: boolean;
    })
  | (Doc & { readonly kind: 'duration'; readonly default?: number; /** 0 is refused */ readonly positive?: boolean })
  | (Doc & { readonly kind: 'boolean'; readonly default: boolean })
  | (Doc & { readonly kind: 'enum'; readonly values: readonly string[]; readonly default?: string })
  | (Doc & { readonly kind: 'other'; readonly type: string; readonly shown: string });

export type Block = Readonly<Record<string, FieldSpec>>;

export type SimpleSpec = Exclude<FieldSpec, { kind: 'other' }>;
export type ValueOf<F> = F extends { kind: 'boolean' } ? boolean : F extends { kind: 'enum'; values: readonly (infer V)[] } ? V : number;

/** The keys of a block's simple fields that have a default. */
export type DefaultedKeys<B> = { [K in keyof B]: B[K] extends { kind: SimpleSpec['kind']; default: unknown } ? K : never }[keyof B];
/** The keys of a block read by hand (`kind: 'other'`). */
export type OtherKeys<B> = { [K in keyof B]: B[K] extends { kind: 'other' } ? K : never }[keyof B];
/** The values of a block's defaulted simple fields, as the schema returns them. */
export type Simple<B> = { -readonly [K in DefaultedKeys<B>]: ValueOf<B[K]> };

export function isSimple(spec: FieldSpec): spec is SimpleSpec {
  return spec.kind !== 'other';
}

/** The defaults of a block's simple fields (what an absent block, or an empty one, reads as). */
export function defaultsOf<B extends Block>(block: B): Simple<B> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(block)) if (isSimple(spec) && spec.default !== undefined) out[key] = spec.default;
  return out as Simple<B>;
}

const SEC = 1000;
const MIN = 60 * SEC;
const MAX = Number.MAX_SAFE_INTEGER;
const code = (s: string): string => `\`${s}\``;

export const DEFAULT_ADMIN_LISTEN: Address = Object.freeze({ host: '127.0.0.1', port: 15000 });
export const DEFAULT_INBOUND_LISTEN: Address = Object.freeze({ host: '0.0.0.0', port: 15006 });
export const DEFAULT_OUTBOUND_LISTEN: Address = Object.freeze({ host: '127.0.0.1', port: 15001 });
/** Named retry conditions; status codes are written as numbers. */
export const RETRY_CONDITIONS = ['connect-failure', 'reset', '5xx', 'gateway-error'] as const;
export const DEFAULT_RETRY_ON: readonly (string | number)[] = Object.freeze(['connect-failure', 'reset', 502, 503, 504]);

// ---- shared blocks ----

export const RATE_LIMIT = {
  requestsPerSecond: { kind: 'number', min: 0, max: MAX, aboveMin: true, doc: 'sustained rate of the token bucket' },
  burst: {
    kind: 'other',
    type: 'number ≥ 1',
    shown: '`requestsPerSecond` (at least 1)',
    doc: 'bucket size: requests that may pass at once after a quiet period',
  },
} as const satisfies Block;

export const LIMITS = {
  maxConnections: { kind: 'integer', default: 10000, min: 1, doc: 'open client connections; more are refused at accept' },
  headersTimeout: { kind: 'duration', default: 10 * SEC, doc: 'time allowed to receive a request head (slowloris); over it 408' },
  maxHeaderBytes: { kind: 'integer', default: 16384, min: 1, doc: 'size of a request head; over it 431' },
  maxHeaders: { kind: 'integer', default: 100, min: 1, doc: 'number of header fields; over it 431' },
  maxUrlLength: { kind: 'integer', default: 8192, min: 1, doc: 'length of the request-target; over it 414' },
  idleTimeout: {
    kind: 'duration',
    default: 5 * MIN,
    doc: 'an Upgrade or CONNECT tunnel with no bytes either way for this long is closed; `0` = never',
  },
  keepAliveTimeout: { kind: 'duration', default: 60 * SEC, doc: 'idle keep-alive client connections are closed after this' },
} as const satisfies Block;

// ---- admin ----

export const ADMIN = {
  listen: {
    kind: 'other',
    type: 'address',
    shown: code(formatAddress(DEFAULT_ADMIN_LISTEN)),
    doc: 'address of the admin API; keep it on loopback. A change takes effect on restart',
  },
} as const satisfies Block;

// ---- inbound ----

export const INBOUND_TLS = {
  cert: { kind: 'other', type: 'string (file)', shown: '**required**', doc: 'PEM certificate chain this listener presents' },
  key: { kind: 'other', type: 'string (file)', shown: '**required**', doc: 'PEM private key of `cert`' },
  ca: {
    kind: 'other',
    type: 'string (file)',
    shown: 'none',
    doc: 'PEM CA bundle that client certificates must chain to; required when `requireClientCert` is true',
  },
  requireClientCert: {
    kind: 'boolean',
    default: true,
    doc: 'refuse clients without a valid certificate; `false` still refuses an invalid one',
  },
} as const satisfies Block;

export const AUTHZ_RULE = {
  action: { kind: 'enum', values: ['allow', 'deny'], doc: 'what a matching rule decides (403 `forbidden` for deny)' },
  principals: {
    kind: 'other',
    type: 'non-empty list of strings',
    shown: 'any caller',
    doc: 'client certificate URI SANs (`spiffe://...`); `"*"` = any caller with a certificate',
  },
  paths: {
    kind: 'other',
    type: 'non-empty list of strings',
    shown: 'any path',
    doc: 'exact paths, or prefixes ending in `*`; each must start with `/`',
  },
  methods: { kind: 'other', type: 'non-empty list of strings', shown: 'any method', doc: 'HTTP methods, compared upper-case' },
} as const satisfies Block;

export const AUTHORIZATION = {
  default: { kind: 'enum', values: ['allow', 'deny'], default: 'allow', doc: 'the decision when no rule matches' },
  ignoreCase: { kind: 'boolean', default: false, doc: 'compare rule paths with request paths case-insensitively' },
  rules: { kind: 'other', type: 'list of rules', shown: '`[]`', doc: 'evaluated in order, first match wins' },
} as const satisfies Block;

export const INBOUND = {
  listen: { kind: 'other', type: 'address', shown: code(formatAddress(DEFAULT_INBOUND_LISTEN)), doc: 'where the mesh connects' },
  app: { kind: 'other', type: 'address', shown: '**required**', doc: 'the local app every inbound request is forwarded to' },
  timeout: { kind: 'duration', default: 15 * SEC, doc: 'whole-request deadline; `0` = none; over it 504 `upstream_timeout`' },
  maxConcurrent: {
    kind: 'integer',
    default: 10000,
    min: 1,
    doc: 'requests (and tunnels) in flight; one more gets 503 `overflow`',
  },
  rateLimit: {
    kind: 'other',
    type: 'map',
    shown: 'none',
    doc: 'token bucket in front of the app, see [`rateLimit`](#ratelimit); over it 429 `rate_limited`',
  },
  tls: { kind: 'other', type: 'map', shown: 'none (plaintext)', doc: 'mTLS, see [`inbound.tls`](#inboundtls)' },
  authorization: {
    kind: 'other',
    type: 'map',
    shown: 'none (allow all)',
    doc: 'rules, see [`inbound.authorization`](#inboundauthorization)',
  },
  limits: { kind: 'other', type: 'map', shown: 'see [`limits`](#limits)', doc: 'HTTP edge limits of this listener' },
} as const satisfies Block;

// ---- outbound ----

export const PATH = {
  prefix: { kind: 'other', type: 'string', shown: '—', doc: 'the path starts with this' },
  exact: { kind: 'other', type: 'string', shown: '—', doc: 'the path is this' },
  regex: { kind: 'other', type: 'string', shown: '—', doc: 'the whole path matches this regular expression' },
} as const satisfies Block;

export const MATCH = {
  host: {
    kind: 'other',
    type: 'string or non-empty list',
    shown: 'any host',
    doc: 'Host names without port, compared case-insensitively; `*.example.com` matches any name under `example.com` (not `example.com` itself)',
  },
  port: {
    kind: 'other',
    type: 'integer or non-empty list (1–65535)',
    shown: 'any port',
    doc: 'the port the request names (80 when it names none); for CONNECT, see [traffic.md](traffic.md#connect)',
  },
  path: {
    kind: 'other',
    type: 'map',
    shown: 'any path',
    doc: 'exactly one of `prefix: /p`, `exact: /p` or `regex: "..."` (the whole path must match the regex)',
  },
  methods: { kind: 'other', type: 'non-empty list of strings', shown: 'any method', doc: 'HTTP methods, compared upper-case' },
  headers: {
    kind: 'other',
    type: 'map of name → value',
    shown: 'none',
    doc: 'exact header values; names are case-insensitive',
  },
} as const satisfies Block;

export const REWRITE = {
  prefix: { kind: 'other', type: 'string', shown: '**required**', doc: 'replaces the matched path prefix' },
} as const satisfies Block;

export const SPLIT = {
  cluster: { kind: 'other', type: 'string', shown: '**required**', doc: 'a cluster name; each may appear once per split' },
  weight: { kind: 'integer', min: 1, doc: 'relative share of requests' },
} as const satisfies Block;

export const BACKOFF = {
  base: { kind: 'duration', default: 25, doc: 'first backoff ceiling; must not exceed `max`' },
  max: { kind: 'duration', default: 250, doc: 'largest backoff ceiling' },
} as const satisfies Block;

export const RETRIES = {
  attempts: { kind: 'integer', default: 2, min: 0, max: 10, doc: 'retries after the first try' },
  perTryTimeout: { kind: 'duration', default: 0, shown: '`0` (none)', doc: 'how long one try may wait for its response head' },
  on: {
    kind: 'other',
    type: 'list',
    shown: code(`[${DEFAULT_RETRY_ON.join(', ')}]`),
    doc: 'conditions: `connect-failure`, `reset`, `5xx`, `gateway-error`, status codes 400–599',
  },
  backoff: { kind: 'other', type: 'map', shown: '`{ base: 25ms, max: 250ms }`', doc: 'jittered backoff between tries' },
  nonIdempotent: {
    kind: 'boolean',
    default: false,
    doc: 'retry POST, PATCH and other non-idempotent methods on more than connect failures',
  },
} as const satisfies Block;

export const HEADER_OPS = {
  set: { kind: 'other', type: 'map of name → value', shown: '`{}`', doc: 'set, replacing any incoming value' },
  remove: { kind: 'other', type: 'list of names', shown: '`[]`', doc: 'removed' },
} as const satisfies Block;

export const HEADERS = {
  request: { kind: 'other', type: 'map', shown: 'none', doc: 'operations on the upstream request' },
  response: { kind: 'other', type: 'map', shown: 'none', doc: 'operations on the response to the client' },
} as const satisfies Block;

export const MIRROR = {
  cluster: { kind: 'other', type: 'string', shown: '**required**', doc: 'the cluster that gets the copy' },
  percent: { kind: 'number', default: 100, min: 0, max: 100, doc: 'share of requests copied' },
} as const satisfies Block;

export const DELAY = {
  percent: { kind: 'number', default: 100, min: 0, max: 100, doc: 'share of requests delayed' },
  duration: { kind: 'duration', positive: true, doc: 'how long they are held before forwarding' },
} as const satisfies Block;

export const ABORT = {
  percent: { kind: 'number', default: 100, min: 0, max: 100, doc: 'share of requests answered by the proxy' },
  status: { kind: 'integer', min: 400, max: 599, doc: 'the status of that answer (`x-outrigger-error: fault_injected`)' },
} as const satisfies Block;

export const FAULT = {
  delay: { kind: 'other', type: 'map', shown: 'none', doc: 'hold requests before forwarding' },
  abort: { kind: 'other', type: 'map', shown: 'none', doc: 'answer requests from the proxy' },
} as const satisfies Block;

export const ROUTE = {
  name: { kind: 'other', type: 'string', shown: '**required**', doc: 'unique; the `route` label of metrics and access lines' },
  match: { kind: 'other', type: 'map', shown: 'match everything', doc: 'see [`match`](#outboundroutesmatch)' },
  rewrite: {
    kind: 'other',
    type: 'map',
    shown: 'none',
    doc: '`{ prefix: /new }` replaces the matched path prefix; not allowed with a `regex` path',
  },
  cluster: {
    kind: 'other',
    type: 'string',
    shown: '—',
    doc: 'the cluster to send to; exactly one of `cluster` or `split` is required',
  },
  split: { kind: 'other', type: 'list', shown: '—', doc: 'weighted clusters, see [`split`](#outboundroutessplit)' },
  timeout: {
    kind: 'other',
    type: 'duration',
    shown: '`outbound.timeout`',
    doc: 'whole-request deadline, retries included; `0` = none; over it 504 `upstream_timeout`',
  },
  retries: { kind: 'other', type: 'map', shown: 'retry a connect failure once', doc: 'see [`retries`](#outboundroutesretries)' },
  headers: { kind: 'other', type: 'map', shown: 'none', doc: 'see [`headers`](#outboundroutesheaders)' },
  mirror: { kind: 'other', type: 'map', shown: 'none', doc: 'see [`mirror`](#outboundroutesmirror)' },
  fault: { kind: 'other', type: 'map', shown: 'none', doc: 'see [`fault`](#outboundroutesfault)' },
  rateLimit: {
    kind: 'other',
    type: 'map',
    shown: 'none',
    doc: 'per-route token bucket, see [`rateLimit`](#ratelimit); over it 429 `rate_limited`',
  },
} as const satisfies Block;

export const OUTBOUND = {
  listen: {
    kind: 'other',
    type: 'address',
    shown: code(formatAddress(DEFAULT_OUTBOUND_LISTEN)),
    doc: 'where the app sends its outbound traffic',
  },
  unknownHosts: {
    kind: 'enum',
    values: ['passthrough', 'reject'],
    default: 'passthrough',
    doc: 'a request no route takes: forward it to its Host as given, or answer 404 `no_route`',
  },
  timeout: {
    kind: 'duration',
    default: 15 * SEC,
    doc: 'timeout of passthrough requests, and the default `timeout` of routes',
  },
  maxConcurrent: {
    kind: 'integer',
    default: 10000,
    min: 1,
    doc: 'requests (and tunnels) in flight; one more gets 503 `overflow`',
  },
  routes: { kind: 'other', type: 'list of routes', shown: '`[]`', doc: 'the route table, first match wins' },
  limits: { kind: 'other', type: 'map', shown: 'see [`limits`](#limits)', doc: 'HTTP edge limits of this listener' },
} as const satisfies Block;

// ---- clusters ----

export const DNS = {
  name: { kind: 'other', type: 'string (DNS name)', shown: '**required**', doc: 'name whose A and AAAA records are the endpoints' },
  port: { kind: 'integer', min: 1, max: 65535, doc: 'port of every discovered endpoint' },
  refresh: { kind: 'duration', default: 5 * SEC, positive: true, doc: 'how often the name is resolved again' },
} as const satisfies Block;

export const HASH_ON = {
  header: { kind: 'other', type: 'string', shown: '**required**', doc: 'the header whose value is hashed' },
} as const satisfies Block;

export const HEALTH_CHECK = {
  path: { kind: 'other', type: 'string', shown: '`/healthz`', doc: 'path of the `GET` sent to each endpoint' },
  interval: { kind: 'duration', default: 5 * SEC, positive: true, doc: 'time between checks (±10 % jitter)' },
  timeout: { kind: 'duration', default: 1 * SEC, positive: true, doc: 'a check without a 2xx answer in this time fails' },
  unhealthyThreshold: { kind: 'integer', default: 3, min: 1, doc: 'failed checks in a row that mark an endpoint unhealthy' },
  healthyThreshold: { kind: 'integer', default: 2, min: 1, doc: 'passed checks in a row that mark it healthy again' },
} as const satisfies Block;

export const OUTLIER_DETECTION = {
  consecutiveErrors: { kind: 'integer', default: 5, min: 1, doc: 'failed tries in a row that eject an endpoint' },
  ejectionTime: {
    kind: 'duration',
    default: 30 * SEC,
    positive: true,
    doc: 'base ejection time, multiplied by the number of ejections',
  },
  maxEjectionPercent: {
    kind: 'number',
    default: 50,
    min: 0,
    max: 100,
    doc: 'at most floor(n × this / 100) of n endpoints are ejected at once',
  },
} as const satisfies Block;

export const CIRCUIT_BREAKER = {
  errorThresholdPercentage: { kind: 'number', default: 50, min: 0, max: 100, doc: 'failure share that opens the circuit' },
  volumeThreshold: { kind: 'integer', default: 20, min: 1, doc: 'tries needed in the window before the circuit may open' },
  window: { kind: 'duration', default: 10 * SEC, positive: true, doc: 'rolling window the share is measured over' },
  resetTimeout: { kind: 'duration', default: 30 * SEC, positive: true, doc: 'how long the circuit stays open before one probe' },
} as const satisfies Block;

export const RETRY_BUDGET = {
  ratio: { kind: 'number', default: 0.2, min: 0, max: 1, doc: 'retries may add this share of the requests of the last 10 s' },
  minPerSecond: { kind: 'integer', default: 10, min: 0, doc: 'plus this many retries in each second, not saved up' },
} as const satisfies Block;

export const CLUSTER_TLS = {
  ca: { kind: 'other', type: 'string (file)', shown: 'system roots', doc: "PEM CA bundle the server's chain is checked against" },
  cert: {
    kind: 'other',
    type: 'string (file)',
    shown: 'none',
    doc: 'client certificate presented to the server; give `cert` and `key` together',
  },
  key: { kind: 'other', type: 'string (file)', shown: 'none', doc: 'private key of `cert`' },
  serverName: {
    kind: 'other',
    type: 'string',
    shown: 'the endpoint host',
    doc: 'SNI sent, and the name checked when `principals` is absent',
  },
  principals: {
    kind: 'other',
    type: 'non-empty list of strings',
    shown: 'none',
    doc: 'accepted server URI SANs (`spiffe://...`); replaces the hostname check',
  },
} as const satisfies Block;

const shownDefaults = (block: Block): string =>
  code(
    `{ ${Object.entries(defaultsOf(block))
      .map(([k, v]) => `${k}: ${typeof v === 'number' && block[k]!.kind === 'duration' ? formatDuration(v) : String(v)}`)
      .join(', ')} }`,
  );

export const CLUSTER = {
  endpoints: {
    kind: 'other',
    type: 'non-empty list of addresses',
    shown: '—',
    doc: 'static endpoints; exactly one of `endpoints` or `dns` is required',
  },
  dns: { kind: 'other', type: 'map', shown: '—', doc: 'DNS discovery, see [`dns`](#clustersnamedns)' },
  loadBalancer: {
    kind: 'enum',
    values: ['round-robin', 'least-request', 'random', 'ring-hash'],
    default: 'round-robin',
    doc: 'how an endpoint is picked',
  },
  hashOn: {
    kind: 'other',
    type: 'map',
    shown: 'client address',
    doc: 'ring-hash only: `{ header: NAME }`, the header whose value is hashed',
  },
  connectTimeout: { kind: 'duration', default: 1 * SEC, doc: 'TCP (and TLS) connect; a timeout is a connect failure' },
  maxConnectionsPerEndpoint: {
    kind: 'integer',
    default: 128,
    min: 1,
    doc: 'sockets per endpoint (one request per socket at a time)',
  },
  maxPending: {
    kind: 'integer',
    default: 1024,
    min: 1,
    doc: 'requests waiting for a socket across the cluster; one more gets 503 `overflow`',
  },
  healthCheck: {
    kind: 'other',
    type: 'map',
    shown: '*off*',
    doc: 'active health checks, see [`healthCheck`](#clustersnamehealthcheck)',
  },
  outlierDetection: {
    kind: 'other',
    type: 'map',
    shown: '*off*',
    doc: 'passive ejection, see [`outlierDetection`](#clustersnameoutlierdetection)',
  },
  panicThreshold: {
    kind: 'number',
    default: 50,
    min: 0,
    max: 100,
    doc: 'percent of healthy endpoints below which the balancer uses all endpoints; `0` disables',
  },
  circuitBreaker: { kind: 'other', type: 'map', shown: '*off*', doc: 'see [`circuitBreaker`](#clustersnamecircuitbreaker)' },
  retryBudget: {
    kind: 'other',
    type: 'map',
    shown: shownDefaults(RETRY_BUDGET),
    doc: 'see [`retryBudget`](#clustersnameretrybudget)',
  },
  tls: { kind: 'other', type: 'map', shown: 'none (plain TCP)', doc: 'upstream mTLS, see [`tls`](#clustersnametls)' },
} as const satisfies Block;

// ---- the rest ----

export const RESOLVER = {
  servers: {
    kind: 'other',
    type: 'non-empty list',
    shown: "the system's (`/etc/resolv.conf`)",
    doc: 'DNS servers as `ip` or `ip:port` (port 53 when left out); names must then be fully qualified',
  },
} as const satisfies Block;

export const DRAIN = {
  delay: { kind: 'duration', default: 5 * SEC, doc: 'after `SIGTERM`: keep serving this long while `/ready` answers 503' },
  timeout: { kind: 'duration', default: 20 * SEC, doc: 'then wait this long for requests in flight before cutting them' },
} as const satisfies Block;

export const TOP = {
  admin: { kind: 'other', type: 'map', shown: code(`{ listen: ${formatAddress(DEFAULT_ADMIN_LISTEN)} }`), doc: 'the admin API' },
  inbound: {
    kind: 'other',
    type: 'map',
    shown: 'absent',
    doc: 'the inbound listener (mesh → app); no inbound listener when absent',
  },
  outbound: {
    kind: 'other',
    type: 'map',
    shown: 'absent',
    doc: 'the outbound listener (app → mesh); no outbound listener when absent',
  },
  clusters: { kind: 'other', type: 'map of name → cluster', shown: '`{}`', doc: 'upstream clusters that routes name' },
  resolver: { kind: 'other', type: 'map', shown: "the system's resolver", doc: 'DNS servers for `dns` clusters and passthrough traffic' },
  drain: { kind: 'other', type: 'map', shown: shownDefaults(DRAIN), doc: 'graceful shutdown' },
} as const satisfies Block;
