/**
 * Request-path normalisation for the authorization boundary and routing: one canonical spelling
 * per path so a rule on `/api` or `/api/*` cannot be sidestepped with `/%61pi`, `//api`,
 * `/x/../api` or `/%2e%2e/api` (CVE-2021-31920 class). The normalised path is what authz and the
 * router see and what is forwarded, so the app and the policy never disagree.
 *
 * Policy (what Istio calls MERGE_SLASHES plus RFC 3986 6.2.2 syntax normalisation):
 * - percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded, once; every other
 *   escape is kept with its hex upper-cased (`%2f` → rejected, `%3a` → `%3A`, `%25` stays);
 * - dot segments are removed (RFC 3986 5.2.4), after decoding, so `%2e%2e` counts as `..`;
 *   `..` above the root stays at the root;
 * - runs of `/` are merged into one;
 * - the query is returned untouched.
 *
 * Rejected (null → 400 bad_request):
 * - a target not starting with `/` (absolute-form is split by `edge.ts` first; `*` and
 *   authority-form are not paths);
 * - `%2F` / `%5C` (encoded slash or backslash). Envoy's default for
 *   `path_with_escaped_slashes_action` is KEEP_UNCHANGED, which leaves `/api%2Fadmin` as one
 *   segment for the policy while many apps decode it into two; Istio names that gap in its
 *   security best practices. At an auth boundary the safe choices are to reject or to decode;
 *   decoding changes what the app receives (and breaks apps that use `%2F` in IDs on purpose
 *   without telling anyone), so we reject: loud, and never a bypass;
 * - a raw backslash (some servers treat it as `/`), NUL, control bytes (< 0x21, 0x7F), either
 *   raw or percent-encoded, `#` (a fragment is never part of a request-target), and a malformed
 *   escape (`%`, `%4`, `%zz`).
 */

/** A normalised request-target: `path + query` is the target to forward. */
export interface NormalizedTarget {
  /** starts with `/`; no `//`, no `.`/`..` segments, no escaped unreserved characters */
  readonly path: string;
  /** `''`, or the raw query including its leading `?` */
  readonly query: string;
}

const PERCENT = 0x25;
const SLASH = 0x2f;
const DOT = 0x2e;
const BACKSLASH = 0x5c;
const HASH = 0x23;
const SEMICOLON = 0x3b;

// Hex digit value by char code; -1 when not a hex digit. Built once.
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let c = 0; c < 10; c++) HEX_VALUE[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX_VALUE[0x41 + c] = 10 + c;
  HEX_VALUE[0x61 + c] = 10 + c;
}
const HEX_UPPER = '0123456789ABCDEF';

function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2d || // -
    c === DOT ||
    c === 0x5f || // _
    c === 0x7e // ~
  );
}

/** Raw characters that can never appear in a path we accept. */
function isForbiddenRaw(c: number): boolean {
  return c < 0x21 || c === 0x7f || c === BACKSLASH || c === HASH;
}

/**
 * Normalise an origin-form request-target (`/path?query`).
 *
 * @returns the canonical path and the untouched query, or null when the target cannot be a
 *   path (the caller answers 400 bad_request). Never throws.
 *
 * Cost: one scan of the path for the common target (no `%`, no `//`, no `/.`), which is returned
 * as is; only targets that need work pay for decoding and segment resolution.
 */
export function normalizePath(rawTarget: string): NormalizedTarget | null {
  if (rawTarget.length === 0 || rawTarget.charCodeAt(0) !== SLASH) return null;

  let q = rawTarget.indexOf('?');
  if (q === -1) q = rawTarget.length;

  // Fast scan: validate raw bytes and find out whether anything needs rewriting.
  let slow = false;
  let prev = 0;
  for (let i = 0; i < q; i++) {
    const c = rawTarget.charCodeAt(i);
    if (isForbiddenRaw(c)) return null;
    if (c === PERCENT || (prev === SLASH && (c === SLASH || c === DOT))) slow = true;
    prev = c;
  }
  if (!slow) {
    return q === rawTarget.length ? { path: rawTarget, query: '' } : { path: rawTarget.slice(0, q), query: rawTarget.slice(q) };
  }
  const decoded = decodeUnreserved(rawTarget, q);
  if (decoded === null) return null;
  return { path: resolveSegments(decoded), query: q === rawTarget.length ? '' : rawTarget.slice(q) };
}

/** Step 1: decode escaped unreserved characters, upper-case the rest, reject the dangerous. */
function decodeUnreserved(s: string, end: number): string | null {
  let out = '';
  let from = 0;
  for (let i = 0; i < end; i++) {
    if (s.charCodeAt(i) !== PERCENT) continue;
    if (i + 2 >= end) return null; // truncated escape
    const h = s.charCodeAt(i + 1);
    const l = s.charCodeAt(i + 2);
    const hv = h < 128 ? (HEX_VALUE[h] as number) : -1;
    const lv = l < 128 ? (HEX_VALUE[l] as number) : -1;
    if (hv < 0 || lv < 0) return null;
    const v = hv * 16 + lv;
    if (v === SLASH || v === BACKSLASH || v < 0x20 || v === 0x7f) return null;
    out += s.slice(from, i);
    if (isUnreserved(v)) out += String.fromCharCode(v);
    else out += '%' + HEX_UPPER[hv] + HEX_UPPER[lv];
    from = i + 3;
    i += 2;
  }
  return out + s.slice(from, end);
}

/** Steps 2 and 3: remove dot segments (RFC 3986 5.2.4) and merge repeated slashes. */
function resolveSegments(path: string): string {
  const parts = path.split('/');
  // parts[0] is '' (the path starts with '/').
  const out: string[] = [];
  let trailingSlash = false;
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i] as string;
    const last = i === parts.length - 1;
    if (seg === '') {
      // empty segment: `//` merged away; at the end it records the trailing slash
      if (last) trailingSlash = true;
      continue;
    }
    if (seg === '.') {
      if (last) trailingSlash = true;
      continue;
    }
    if (seg === '..') {
      out.pop();
      if (last) trailingSlash = true;
      continue;
    }
    out.push(seg);
    trailingSlash = false;
  }
  if (out.length === 0) return '/';
  const joined = '/' + out.join('/');
  return trailingSlash ? joined + '/' : joined;
}

/**
 * The spelling of a normalised path that authorization rules are matched against, so that the
 * ways app servers read one path two ways cannot slip past a rule:
 * - `;` path parameters are removed from every segment (Tomcat, Jetty and Spring drop them:
 *   `/admin;x` is `/admin` there, and `/public/..;/admin` is `/admin`), and dot segments are
 *   resolved again after that;
 * - trailing dots and spaces (`%20`) of a segment are removed (IIS and Windows file names:
 *   `/admin.` and `/admin%20` are `/admin`);
 * - with `ignoreCase`, the path is lower-cased (rule paths are lower-cased at compile time).
 * What is forwarded to the app is still the normalised path itself, unchanged.
 * Common paths (no `;`, `.`, `%20` or upper case to fold) come back as they are.
 */
export function authorizationPath(path: string, ignoreCase: boolean): string {
  let work = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === SEMICOLON || c === DOT || c === PERCENT || (ignoreCase && c >= 0x41 && c <= 0x5a)) {
      work = true;
      break;
    }
  }
  if (!work) return path;
  let out = path;
  if (out.includes(';') || out.includes('.') || out.includes('%20')) {
    const parts = out.split('/');
    for (let i = 1; i < parts.length; i++) {
      let seg = parts[i] as string;
      const semi = seg.indexOf(';');
      if (semi >= 0) seg = seg.slice(0, semi);
      if (seg !== '.' && seg !== '..') {
        for (;;) {
          if (seg.endsWith('.')) seg = seg.slice(0, -1);
          else if (seg.endsWith('%20')) seg = seg.slice(0, -3);
          else break;
        }
      }
      parts[i] = seg;
    }
    out = resolveSegments(parts.join('/'));
  }
  return ignoreCase ? out.toLowerCase() : out;
}

/** True when `path` (no query) is already in normal form: `normalizePath(path)` would return it unchanged. */
export function isNormalizedPath(path: string): boolean {
  const n = normalizePath(path);
  return n !== null && n.path === path && n.query === '';
}
