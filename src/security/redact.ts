/**
 * Secrets that must never reach a log line or the `/config` admin output: credential-bearing
 * header names, a redaction helper for header objects and raw header lists, and the path list
 * for pino's `redact` option.
 */

/** Lower-case names of headers whose values are credentials. */
export const SECRET_HEADERS: readonly string[] = Object.freeze([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
]);

const SECRET_SET: ReadonlySet<string> = new Set(SECRET_HEADERS);

/** What a redacted value is replaced with (also pino's `censor`). */
export const REDACTED = '[REDACTED]';

/** True when `name` (any case) is a credential header. */
export function isSecretHeader(name: string): boolean {
  return SECRET_SET.has(name.toLowerCase());
}

/**
 * A copy of a header object with credential values replaced by `[REDACTED]` (arrays keep their
 * length so a log still shows that several cookies were sent). Names are kept as given.
 * Undefined values are dropped.
 */
export function redactHeaders(
  h: Readonly<Record<string, string | number | readonly string[] | undefined>>,
): Record<string, string | number | string[]> {
  const out: Record<string, string | number | string[]> = {};
  for (const name of Object.keys(h)) {
    const v = h[name];
    if (v === undefined) continue;
    if (isSecretHeader(name)) out[name] = typeof v === 'object' ? v.map(() => REDACTED) : REDACTED;
    else out[name] = typeof v === 'object' ? v.slice() : v;
  }
  return out;
}

/** A copy of a raw `[name, value, ...]` list with credential values replaced. */
export function redactRawHeaders(raw: readonly string[]): string[] {
  const out = raw.slice();
  for (let i = 0; i + 1 < out.length; i += 2) {
    if (isSecretHeader(out[i] as string)) out[i + 1] = REDACTED;
  }
  return out;
}

const HEADER_OWNERS = ['headers', 'req.headers', 'res.headers', 'request.headers', 'response.headers'];

/**
 * Paths for pino's `redact` option (`pino({ redact: { paths: PINO_REDACT_PATHS, censor:
 * REDACTED } })`): credential headers under the usual places a log object carries headers
 * (`headers`, `req.headers`, `res.headers`, `request.headers`, `response.headers`).
 */
export const PINO_REDACT_PATHS: readonly string[] = Object.freeze([
  ...HEADER_OWNERS.flatMap((owner) => SECRET_HEADERS.map((n) => `${owner}["${n}"]`)),
]);
