/**
 * Secrets that never reach a log line or the `/config` admin answer: the credential-bearing
 * header names, the text that replaces their values, and the paths pino's `redact` option
 * censors. The operational log (telemetry/log.ts) and `/config` (config/render.ts) both read
 * these lists; the access log never holds a header value at all.
 */

/** Lower-case names of headers whose values are credentials. */
export const SECRET_HEADERS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/** What a redacted value is replaced with (also pino's `censor`). */
export const REDACTED = '[redacted]';

/** The places a log object carries headers: `{ headers }`, and one level down (`{ req: { headers } }`). */
const HEADER_OWNERS = ['headers', '*.headers'];

/** PEM contents and passphrases, should a TLS options object ever be logged. */
const KEY_MATERIAL = ['key', 'cert', 'passphrase', 'tls.key', 'tls.passphrase'];

/** Paths for pino's `redact` option. */
export const LOG_REDACT_PATHS: readonly string[] = Object.freeze([
  ...HEADER_OWNERS.flatMap((owner) => [...SECRET_HEADERS].map((n) => `${owner}["${n}"]`)),
  ...KEY_MATERIAL,
]);
