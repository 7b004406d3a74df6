/**
 * The validated, defaulted configuration: what `load.ts` produces from YAML and what the
 * runtime is built from. Every object is deep-frozen. Durations are milliseconds (0 = none),
 * addresses are parsed. Shapes mirror the YAML keys (docs/configuration.md) so that `/config` reads like
 * the file the operator wrote; `null` stands for an optional block that is absent.
 */

/** Milliseconds. */
export type Millis = number;

/** A parsed `host:port`; `host` never carries IPv6 brackets. */
export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface Config {
  readonly admin: AdminConfig;
  /** Absent section: that listener is not started. */
  readonly inbound: InboundConfig | null;
  readonly outbound: OutboundConfig | null;
  /** Keyed by cluster name, in file order. */
  readonly clusters: Readonly<Record<string, ClusterConfig>>;
  readonly resolver: ResolverConfig;
  readonly drain: DrainConfig;
}

export interface AdminConfig {
  /** default 127.0.0.1:15000 */
  readonly listen: Address;
}

/**
 * Protections of the HTTP edge shared by both listeners (an outrigger extension of the
 * contract, key `limits` under `inbound` and `outbound`).
 */
export interface ListenerLimits {
  /** Open client connections per listener; over it new connections are closed. default 10000 */
  readonly maxConnections: number;
  /** Time to receive a request head. default 10s */
  readonly headersTimeout: Millis;
  /** Total size of a request head (431 over it). default 16384 (Node's default) */
  readonly maxHeaderBytes: number;
  /** Number of header fields (431 over it). default 100 */
  readonly maxHeaders: number;
  /** Request-target length (414 over it). default 8192 */
  readonly maxUrlLength: number;
  /** An upgraded or CONNECT tunnel with no bytes either way for this long is closed. default 5m */
  readonly idleTimeout: Millis;
  /** How long an idle keep-alive client connection is kept. default 60s */
  readonly keepAliveTimeout: Millis;
}

export interface RateLimitConfig {
  readonly requestsPerSecond: number;
  /** default: requestsPerSecond */
  readonly burst: number;
}

export interface InboundConfig {
  /** default 0.0.0.0:15006 */
  readonly listen: Address;
  /** required */
  readonly app: Address;
  /** whole request; 0 = none. default 15s */
  readonly timeout: Millis;
  /** default 10000; over it 503 overflow */
  readonly maxConcurrent: number;
  readonly rateLimit: RateLimitConfig | null;
  readonly tls: InboundTlsConfig | null;
  readonly authorization: AuthorizationConfig | null;
  readonly limits: ListenerLimits;
}

export interface InboundTlsConfig {
  /** file paths; contents are read by the TLS layer and never kept in the config */
  readonly cert: string;
  readonly key: string;
  readonly ca: string | null;
  /** default true */
  readonly requireClientCert: boolean;
}

export type AuthzAction = 'allow' | 'deny';

export interface AuthorizationConfig {
  /** default allow */
  readonly default: AuthzAction;
  /** paths compare case-insensitively (for apps that route so, as IIS does). default false */
  readonly ignoreCase: boolean;
  readonly rules: readonly AuthzRule[];
}

export interface AuthzRule {
  readonly action: AuthzAction;
  /** null = any caller (authenticated or not) */
  readonly principals: readonly string[] | null;
  /** exact, or prefix ending in `*`; null = any path */
  readonly paths: readonly string[] | null;
  /** upper-case; null = any method */
  readonly methods: readonly string[] | null;
}

export interface OutboundConfig {
  /** default 127.0.0.1:15001 */
  readonly listen: Address;
  /** default passthrough */
  readonly unknownHosts: 'passthrough' | 'reject';
  /** Whole-request timeout of passthrough traffic and default of routes (extension). default 15s */
  readonly timeout: Millis;
  /** default 10000; over it 503 overflow (extension, as inbound) */
  readonly maxConcurrent: number;
  readonly routes: readonly RouteConfig[];
  readonly limits: ListenerLimits;
}

export type PathMatch = { readonly prefix: string } | { readonly exact: string } | { readonly regex: string };

export interface RouteMatch {
  /** lower-cased hosts without port; entries may start with `*.`; null = any host */
  readonly host: readonly string[] | null;
  /** the Host's port (80 when absent) or a CONNECT target's port must be one of these; null = any */
  readonly ports: readonly number[] | null;
  readonly path: PathMatch | null;
  /** upper-case; null = any */
  readonly methods: readonly string[] | null;
  /** lower-cased names; exact value match; all must match */
  readonly headers: Readonly<Record<string, string>> | null;
}

export interface WeightedCluster {
  readonly cluster: string;
  readonly weight: number;
}

export interface RetryConfig {
  /** retries after the first try. default 2 */
  readonly attempts: number;
  /** 0 = only the route timeout bounds a try. default 0 */
  readonly perTryTimeout: Millis;
  /**
   * Conditions as written: `connect-failure`, `reset`, `5xx`, `gateway-error`, `retriable-4xx`
   * is NOT supported; numbers are status codes. default [connect-failure, reset, 502, 503, 504]
   */
  readonly on: readonly (string | number)[];
  /** default { base: 25ms, max: 250ms } */
  readonly backoff: { readonly base: Millis; readonly max: Millis };
  /** default false */
  readonly nonIdempotent: boolean;
}

export interface HeaderOps {
  /** lower-cased names */
  readonly set: Readonly<Record<string, string>>;
  /** lower-cased names */
  readonly remove: readonly string[];
}

export interface FaultConfig {
  readonly delay: { readonly percent: number; readonly duration: Millis } | null;
  readonly abort: { readonly percent: number; readonly status: number } | null;
}

export interface RouteConfig {
  /** required, unique */
  readonly name: string;
  readonly match: RouteMatch;
  readonly rewrite: { readonly prefix: string } | null;
  /** Exactly one of `cluster` and `split` is non-null. */
  readonly cluster: string | null;
  readonly split: readonly WeightedCluster[] | null;
  /** default: outbound.timeout; 0 = none */
  readonly timeout: Millis;
  /** null: the default policy (one retry on connect-failure) */
  readonly retries: RetryConfig | null;
  readonly headers: { readonly request: HeaderOps; readonly response: HeaderOps };
  readonly mirror: { readonly cluster: string; readonly percent: number } | null;
  readonly fault: FaultConfig | null;
  readonly rateLimit: RateLimitConfig | null;
}

export type LoadBalancerKind = 'round-robin' | 'least-request' | 'random' | 'ring-hash';

export interface DnsDiscoveryConfig {
  readonly name: string;
  readonly port: number;
  /** default 5s */
  readonly refresh: Millis;
}

export interface HealthCheckConfig {
  /** default /healthz */
  readonly path: string;
  /** default 5s */
  readonly interval: Millis;
  /** default 1s */
  readonly timeout: Millis;
  /** default 3 */
  readonly unhealthyThreshold: number;
  /** default 2 */
  readonly healthyThreshold: number;
}

export interface OutlierDetectionConfig {
  /** default 5 */
  readonly consecutiveErrors: number;
  /** default 30s */
  readonly ejectionTime: Millis;
  /** default 50 */
  readonly maxEjectionPercent: number;
}

export interface CircuitBreakerConfig {
  /** default 50 */
  readonly errorThresholdPercentage: number;
  /** default 20 */
  readonly volumeThreshold: number;
  /** rolling window. default 10s */
  readonly window: Millis;
  /** default 30s */
  readonly resetTimeout: Millis;
}

export interface RetryBudgetConfig {
  /** default 0.2 */
  readonly ratio: number;
  /** default 10 */
  readonly minPerSecond: number;
}

export interface ClusterTlsConfig {
  readonly ca: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  readonly serverName: string | null;
  /** accepted server URI SANs; null = any verified server */
  readonly principals: readonly string[] | null;
}

export interface ClusterConfig {
  readonly name: string;
  /** Exactly one of `endpoints` and `dns` is non-null. */
  readonly endpoints: readonly Address[] | null;
  readonly dns: DnsDiscoveryConfig | null;
  /** default round-robin */
  readonly loadBalancer: LoadBalancerKind;
  /** ring-hash only; lower-cased header name */
  readonly hashOn: { readonly header: string } | null;
  /** default 1s */
  readonly connectTimeout: Millis;
  /** default 128 */
  readonly maxConnectionsPerEndpoint: number;
  /** default 1024 */
  readonly maxPending: number;
  readonly healthCheck: HealthCheckConfig | null;
  readonly outlierDetection: OutlierDetectionConfig | null;
  /** percent; below it (and above none) every endpoint takes traffic. default 50, 0 = never */
  readonly panicThreshold: number;
  readonly circuitBreaker: CircuitBreakerConfig | null;
  /** always present: default { ratio: 0.2, minPerSecond: 10 } */
  readonly retryBudget: RetryBudgetConfig;
  readonly tls: ClusterTlsConfig | null;
}

export interface ResolverConfig {
  /** null: the system's resolvers (/etc/resolv.conf) */
  readonly servers: readonly Address[] | null;
}

export interface DrainConfig {
  /** default 5s */
  readonly delay: Millis;
  /** default 20s */
  readonly timeout: Millis;
}

/** One problem found in a config file, reported as `FILE:LINE:COL: message`. */
export interface ConfigProblem {
  readonly file: string;
  /** 1-based */
  readonly line: number;
  /** 1-based */
  readonly col: number;
  readonly message: string;
}

export type LoadResult =
  | {
      readonly ok: true;
      readonly config: Config;
      /** sha256 of the file's bytes */
      readonly hash: string;
      /** other files the config names (TLS material), for watching */
      readonly files: readonly string[];
    }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[] };
