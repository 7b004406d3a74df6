/**
 * The hardened HTTP/1.1 edge: the request-head checks Node's parser (llhttp, strict mode) leaves
 * to us, and the response-head checks for raw upstreams that undici's parser leaves to us. Both
 * run on every message, so they are one pass over the raw header list, compare names by length
 * first, and return preallocated frozen results (no allocation on success, except for an
 * absolute-form target whose authority and path must be returned).
 *
 * What Node 20's server parser already rejects with 400 before a handler runs (verified by
 * test/security.edge.test.ts against `test/smuggling.vectors.ts`): CL together with TE,
 * duplicate Content-Length (even equal), non-digit Content-Length, a request TE whose last coding
 * is not `chunked`, two TE headers, whitespace before the colon, obs-fold, bare CR and bare LF,
 * NUL and control bytes in names and values, bad chunk sizes and extensions, `HTTP/1.2`,
 * unknown and lower-case methods, a missing Host on HTTP/1.1 (`requireHostHeader`, default true),
 * heads over `maxHeaderSize` (431). We still check the framing headers here because those
 * defaults can be switched off (`insecureHTTPParser`, `requireHostHeader: false`) and the proxy
 * must not depend on a parser version for its own safety. What Node 20 hands to the handler and
 * this module refuses: TE lists ending in chunked (`identity, chunked`, `gzip, chunked`), an
 * empty TE, TE on HTTP/1.0, `_` spellings of framing and forwarding headers, a second Host,
 * Host values that are not an authority (`u@svc`, `svc/admin`, port > 65535), absolute-form
 * targets with another scheme than `http` or with userinfo, `*` on
 * methods other than OPTIONS, `HTTP/2.0` and `HTTP/0.9` request lines (major 2 / 0), and the
 * maxHeaders / maxUrlLength limits; also a Connection header naming Content-Length,
 * Transfer-Encoding or Host, and `Upgrade: h2c`. Node tolerates several spaces between request-line parts;
 * harmless here because the proxy writes its own request line upstream. Paths (`%2F`, `\`,
 * `%00`, bad escapes) are `normalize.ts`'s job.
 *
 * Listener wiring: set `server.maxHeadersCount = limits.maxHeaders + 1` (Node silently truncates
 * `rawHeaders` at `maxHeadersCount`, default 2000, so without it an over-long head would look
 * fine here) and answer a failed result with its status, `x-outrigger-error: bad_request`,
 * `connection: close`, then destroy the socket after the response is written.
 */

/** A rejected request head: answer `status` with reason `bad_request` and close. */
export interface EdgeVerdict {
  readonly ok: false;
  readonly status: 400 | 414 | 431;
  /** for logs only; never sent to the client */
  readonly detail: string;
}

/** An accepted request head. */
export interface EdgeOk {
  readonly ok: true;
  /**
   * Where to route: the lower-cased authority of an absolute-form target (`http://a:8080/x` →
   * `a:8080`) or the authority-form target of CONNECT (`host:port`, as sent); null for
   * origin-form (`/x`) and asterisk-form (`*`) targets, where the Host header is the authority.
   */
  readonly authority: string | null;
  /**
   * The origin-form target to forward (`/x?q`) when it differs from `req.url` (absolute-form);
   * null when `req.url` is already the target (origin-form, asterisk-form, CONNECT).
   */
  readonly target: string | null;
}

export type EdgeResult = EdgeOk | EdgeVerdict;

/** The two edge limits checked here (`ListenerLimits` satisfies it). */
export interface EdgeLimits {
  /** header fields (431 over it) */
  readonly maxHeaders: number;
  /** request-target length in characters (414 over it) */
  readonly maxUrlLength: number;
}

function verdict(status: 400 | 414 | 431, detail: string): EdgeVerdict {
  return Object.freeze({ ok: false as const, status, detail });
}

const OK_ORIGIN: EdgeOk = Object.freeze({ ok: true as const, authority: null, target: null });

const BAD_VERSION = verdict(400, 'HTTP version other than 1.0 or 1.1');
const URL_TOO_LONG = verdict(414, 'request-target longer than maxUrlLength');
const TOO_MANY_HEADERS = verdict(431, 'more header fields than maxHeaders');
const DUP_HOST = verdict(400, 'more than one Host header');
const NO_HOST = verdict(400, 'Host header missing on HTTP/1.1');
const BAD_HOST = verdict(400, 'Host header is not a valid authority');
const EMPTY_HOST = verdict(400, 'Host header is empty: the request names no authority to route by');
const BAD_TARGET_CHAR = verdict(400, 'request-target has a character that URIs do not allow (RFC 3986)');
const DUP_CL = verdict(400, 'more than one Content-Length header');
const BAD_CL = verdict(400, 'Content-Length is not a plain decimal number');
const DUP_TE = verdict(400, 'more than one Transfer-Encoding header');
const BAD_TE = verdict(400, 'Transfer-Encoding other than exactly "chunked"');
const CL_AND_TE = verdict(400, 'both Content-Length and Transfer-Encoding');
const TE_ON_10 = verdict(400, 'Transfer-Encoding on an HTTP/1.0 request');
const UNDERSCORE = verdict(400, 'header name with "_" that aliases a protected header');
const CONNECTION_FRAMING = verdict(400, 'Connection header names a framing header');
const H2C_UPGRADE = verdict(400, 'Upgrade to h2c is not proxied');
const BAD_SCHEME = verdict(400, 'absolute-form target with an unsupported scheme');
const BAD_AUTHORITY = verdict(400, 'absolute-form target with an invalid authority');
const BAD_CONNECT = verdict(400, 'CONNECT target is not host:port');
const BAD_ASTERISK = verdict(400, 'asterisk-form target on a method other than OPTIONS');
const BAD_TARGET = verdict(400, 'request-target is not origin-, absolute- or asterisk-form');

// Names whose `_` spelling is rejected because CGI/WSGI-style apps (and some proxies) fold `_`
// and `-` together, letting `Content_Length` or `X_Forwarded_For` stand in for the real header
// behind our back. Names without a `-` (host, connection, upgrade, te) cannot be aliased this way.
const PROTECTED_NAMES: readonly string[] = [
  'content-length',
  'transfer-encoding',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-real-ip',
  'x-request-id',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'x-outrigger-error',
];
// Candidates by name length, so most headers are dismissed by one array read. Filled without
// holes (a holey array read is slower), and read only below its length.
let maxLen = 0;
for (const n of PROTECTED_NAMES) maxLen = Math.max(maxLen, n.length);
const BY_LENGTH: (readonly string[] | undefined)[] = new Array<readonly string[] | undefined>(maxLen + 1).fill(undefined);
for (const n of PROTECTED_NAMES) {
  const list = (BY_LENGTH[n.length] as string[] | undefined) ?? [];
  list.push(n);
  BY_LENGTH[n.length] = list;
}

// `Connection: content-length` asks every hop to drop the framing header while the body stays:
// a proxy that honours it changes how the next hop frames the message.
const FRAMING_TOKENS: readonly string[] = ['content-length', 'transfer-encoding', 'host'];
// `Upgrade: h2c` would turn the connection into an HTTP/2 tunnel to the app, past per-request
// routing and authorization ("h2c smuggling"); cleartext HTTP/2 upgrades are not proxied.
const H2C_TOKENS: readonly string[] = ['h2c'];

// The same names with every `-` and `_` taken out: `Content__Length` and `Content-_Length` alias
// `content-length` for a folding app just as `Content_Length` does.
const SQUASHED = new Set(PROTECTED_NAMES.map((n) => n.replace(/-/g, '')));

/** A name with a `_` that, letters and digits only, is one of the protected names. Rare: only names with `_` pay. */
function aliasesProtected(name: string): boolean {
  return name.indexOf('_') !== -1 && SQUASHED.has(name.toLowerCase().replace(/[-_]/g, ''));
}

// Bytes a request-target may carry (RFC 3986 unreserved, reserved but `#`, and `%`): visible
// ASCII except `"` `#` `<` `>` `\` `^` `` ` `` `{` `|` `}`. Apps and frameworks disagree about
// the others (`\` read as `/`, raw UTF-8 decoded or not), so they are refused rather than
// forwarded as sent.
const TARGET_OK = new Uint8Array(128);
for (let c = 0x21; c < 0x7f; c++) TARGET_OK[c] = 1;
for (const ch of '"#<>\\^`{|}') TARGET_OK[ch.charCodeAt(0)] = 0;

function hasBadTargetChar(url: string): boolean {
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c >= 128 || TARGET_OK[c] === 0) return true;
  }
  return false;
}

const NO_MATCH = 0;
const EXACT = 1;
const VIA_UNDERSCORE = 2;

/**
 * Compare a header name with a lower-case target of the same length, case-insensitively, with
 * `_` counted as `-`. Returns NO_MATCH, EXACT, or VIA_UNDERSCORE (matched only thanks to a `_`).
 */
function matchName(name: string, target: string): number {
  let underscore = false;
  for (let i = 0; i < target.length; i++) {
    let c = name.charCodeAt(i);
    if (c === 0x5f) {
      underscore = true;
      c = 0x2d;
    } else if (c >= 0x41 && c <= 0x5a) {
      c |= 0x20;
    }
    if (c !== target.charCodeAt(i)) return NO_MATCH;
  }
  return underscore ? VIA_UNDERSCORE : EXACT;
}

/**
 * Whether a comma-separated token list (`a, b,c`) holds one of `tokens` (lower-case),
 * case-insensitively. Scans in place: no split, no allocation.
 */
function hasToken(value: string, tokens: readonly string[]): boolean {
  const n = value.length;
  let i = 0;
  while (i < n) {
    while (i < n && (value.charCodeAt(i) === 0x20 || value.charCodeAt(i) === 0x09 || value.charCodeAt(i) === 0x2c)) i++;
    let end = i;
    while (end < n && value.charCodeAt(end) !== 0x2c) end++;
    let last = end;
    while (last > i && (value.charCodeAt(last - 1) === 0x20 || value.charCodeAt(last - 1) === 0x09)) last--;
    const len = last - i;
    for (let k = 0; k < tokens.length; k++) {
      const t = tokens[k] as string;
      if (t.length !== len) continue;
      let j = 0;
      for (; j < len; j++) {
        let c = value.charCodeAt(i + j);
        if (c >= 0x41 && c <= 0x5a) c |= 0x20;
        if (c !== t.charCodeAt(j)) break;
      }
      if (j === len) return true;
    }
    i = end + 1;
  }
  return false;
}

/** `chunked`, case-insensitive, nothing else (Node trims OWS from values). */
function isExactlyChunked(v: string): boolean {
  return v.length === 7 && matchName(v, 'chunked') === EXACT;
}

/** 1..15 ASCII digits (15 keeps the value a safe integer). */
function isPlainDigits(v: string): boolean {
  if (v.length === 0 || v.length > 15) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * An authority as it may appear in Host or an absolute-form target: reg-name or IPv4, or an
 * `[IPv6]` literal, then an optional `:port`. No userinfo (`@`), no path characters, no
 * whitespace; percent-escapes are refused too (nothing legitimate needs them in a host).
 * An empty value is allowed only where `allowEmpty` (RFC 9112 3.2: Host may be empty).
 */
function isValidAuthority(v: string, allowEmpty: boolean): boolean {
  const n = v.length;
  if (n === 0) return allowEmpty;
  let i = 0;
  if (v.charCodeAt(0) === 0x5b) {
    // [IPv6]
    const close = v.indexOf(']');
    if (close < 3) return false;
    for (i = 1; i < close; i++) {
      const c = v.charCodeAt(i);
      const ok = (c >= 0x30 && c <= 0x3a) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66) || c === 0x2e;
      if (!ok) return false;
    }
    i = close + 1;
  } else {
    for (; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c === 0x3a) break;
      const ok =
        (c >= 0x61 && c <= 0x7a) ||
        (c >= 0x41 && c <= 0x5a) ||
        (c >= 0x30 && c <= 0x39) ||
        c === 0x2d ||
        c === 0x2e ||
        c === 0x5f ||
        c === 0x7e;
      if (!ok) return false;
    }
    if (i === 0) return false;
  }
  if (i === n) return true;
  if (v.charCodeAt(i) !== 0x3a) return false;
  const port = n - i - 1;
  if (port === 0 || port > 5) return false;
  let value = 0;
  for (let j = i + 1; j < n; j++) {
    const c = v.charCodeAt(j);
    if (c < 0x30 || c > 0x39) return false;
    value = value * 10 + (c - 0x30);
  }
  return value <= 65535;
}

/**
 * Check a request head that Node's parser has accepted. Call first thing in the `request`
 * handler (and in `connect` / `upgrade` handlers), before routing or authorization.
 *
 * @param rawHeaders `req.rawHeaders` (flat `[name, value, ...]`, values already OWS-trimmed)
 * @param method `req.method`
 * @param url `req.url` (the request-target as sent)
 * @param httpVersionMinor `req.httpVersionMinor`
 * @param limits `maxHeaders` → 431, `maxUrlLength` → 414
 * @param httpVersionMajor `req.httpVersionMajor`. Required: Node 20's parser hands `HTTP/2.0`
 *   and `HTTP/0.9` request lines to the handler (major 2 / 0), and only 1.0 and 1.1 are served.
 * @returns `{ ok: true, authority, target }` (see `EdgeOk`) or `{ ok: false, status, detail }`.
 *   Success for an origin-form target is a shared frozen object: no allocation.
 */
export function checkRequestHead(
  rawHeaders: readonly string[],
  method: string,
  url: string,
  httpVersionMinor: number,
  limits: EdgeLimits,
  httpVersionMajor: number,
): EdgeResult {
  if (httpVersionMajor !== 1 || (httpVersionMinor !== 0 && httpVersionMinor !== 1)) return BAD_VERSION;
  if (url.length > limits.maxUrlLength) return URL_TOO_LONG;
  const n = rawHeaders.length;
  if (n > limits.maxHeaders * 2) return TOO_MANY_HEADERS;

  let hosts = 0;
  let host = '';
  let cls = 0;
  let tes = 0;
  for (let i = 0; i < n; i += 2) {
    const name = rawHeaders[i] as string;
    const len = name.length;
    if (len === 4) {
      if (matchName(name, 'host') === EXACT) {
        hosts++;
        host = rawHeaders[i + 1] as string;
      }
      continue;
    }
    if (len === 10 && matchName(name, 'connection') === EXACT) {
      if (hasToken(rawHeaders[i + 1] as string, FRAMING_TOKENS)) return CONNECTION_FRAMING;
      continue;
    }
    if (len === 7 && matchName(name, 'upgrade') === EXACT) {
      if (hasToken(rawHeaders[i + 1] as string, H2C_TOKENS)) return H2C_UPGRADE;
      continue;
    }
    const candidates = len < BY_LENGTH.length ? BY_LENGTH[len] : undefined;
    if (candidates === undefined) {
      if (aliasesProtected(name)) return UNDERSCORE;
      continue;
    }
    let matched = false;
    for (let k = 0; k < candidates.length; k++) {
      const target = candidates[k] as string;
      const m = matchName(name, target);
      if (m === NO_MATCH) continue;
      if (m === VIA_UNDERSCORE) return UNDERSCORE;
      if (len === 14 && target === 'content-length') {
        cls++;
        if (!isPlainDigits(rawHeaders[i + 1] as string)) return BAD_CL;
      } else if (len === 17 && target === 'transfer-encoding') {
        tes++;
        if (!isExactlyChunked(rawHeaders[i + 1] as string)) return BAD_TE;
      }
      matched = true;
      break;
    }
    if (!matched && aliasesProtected(name)) return UNDERSCORE;
  }
  if (cls > 1) return DUP_CL;
  if (tes > 1) return DUP_TE;
  if (cls > 0 && tes > 0) return CL_AND_TE;
  if (tes > 0 && httpVersionMinor === 0) return TE_ON_10;
  if (hosts > 1) return DUP_HOST;
  if (hosts === 1 && !isValidAuthority(host, true)) return BAD_HOST;
  if (method !== 'CONNECT' && hasBadTargetChar(url)) return BAD_TARGET_CHAR;

  const first = url.charCodeAt(0);
  if (method === 'CONNECT') {
    // authority-form; Host may be absent on CONNECT from HTTP/1.0 clients
    if (hosts === 0 && httpVersionMinor >= 1) return NO_HOST;
    if (url.indexOf(':') <= 0 || url.charCodeAt(url.length - 1) === 0x5d || !isValidAuthority(url, false)) {
      return BAD_CONNECT;
    }
    return { ok: true, authority: url, target: null };
  }
  if (first === 0x2f) {
    if (hosts === 0 && httpVersionMinor >= 1) return NO_HOST;
    if (hosts === 1 && host === '') return EMPTY_HOST;
    return OK_ORIGIN;
  }
  if (url === '*') {
    if (method !== 'OPTIONS') return BAD_ASTERISK;
    if (hosts === 0 && httpVersionMinor >= 1) return NO_HOST;
    if (hosts === 1 && host === '') return EMPTY_HOST;
    return OK_ORIGIN;
  }
  return checkAbsoluteForm(url, hosts === 1 ? host : null, httpVersionMinor);
}

/** Absolute-form (`http://authority/path?q`), as sent to an HTTP_PROXY. Only `http` is proxied. */
function checkAbsoluteForm(url: string, host: string | null, minor: number): EdgeResult {
  const colon = url.indexOf(':');
  if (colon <= 0) return BAD_TARGET;
  if (!(colon === 4 && matchName(url.slice(0, 4), 'http') === EXACT)) return BAD_SCHEME;
  if (url.charCodeAt(5) !== 0x2f || url.charCodeAt(6) !== 0x2f) return BAD_TARGET;
  let end = 7;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 0x2f || c === 0x3f) break;
    end++;
  }
  const authority = url.slice(7, end);
  if (!isValidAuthority(authority, false)) return BAD_AUTHORITY;
  // RFC 9112 3.2.2: a proxy MUST ignore Host here and replace it with the target's authority,
  // so the route and the Host the upstream sees are always the same name (the listener does the
  // replacing). HTTP/1.1 still requires a Host field to be present.
  if (host === null && minor >= 1) return NO_HOST;
  let target = url.slice(end);
  if (target.length === 0) target = '/';
  else if (target.charCodeAt(0) === 0x3f) target = '/' + target;
  return { ok: true, authority: authority.toLowerCase(), target };
}

// ---------------------------------------------------------------------------------------------
// Upstream responses

/**
 * Check the framing headers of an upstream response (raw list, `[name, value, ...]`, names as
 * strings or as the Buffers undici's `onHeaders` hands out). Returns a detail string when the
 * response must not be relayed — the caller answers 502 `upstream_protocol_error` and destroys
 * the upstream connection rather than returning it to the pool — or null when it is fine.
 *
 * What undici 7.30 (`lib/dispatcher/client-h1.js`, llhttp without lenient flags) refuses on its
 * own *before* delivering headers (verified by test/security.edge.test.ts): Content-Length
 * together with Transfer-Encoding, duplicate Content-Length (equal or not), a signed or
 * non-numeric Content-Length, obs-fold — surfacing as `UND_ERR_RES_CONTENT_LENGTH_MISMATCH` or
 * an `HTTPParserError`. It fails the body later for bad chunk sizes and for a body shorter than
 * Content-Length. What it delivers and this function refuses: a Transfer-Encoding whose final
 * coding is not `chunked` (llhttp then reads until close, legal for a response but it lets the
 * upstream decide where our response ends), TE lists such as `gzip, chunked` and repeated TE
 * headers (we do not decode transfer-codings, and relaying them would change the framing
 * downstream), and `_` spellings of Content-Length / Transfer-Encoding. Those undici checks are
 * repeated here so the proxy does not depend on them.
 */
export function checkResponseHead(rawHeaders: readonly (string | Uint8Array)[]): string | null {
  let cls = 0;
  let tes = 0;
  let cl = '';
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i];
    if (raw === undefined) break;
    const len = raw.length;
    if (len !== 14 && len !== 17) continue;
    const name = typeof raw === 'string' ? raw : Buffer.from(raw).toString('latin1');
    const rv = rawHeaders[i + 1];
    const value = rv === undefined ? '' : typeof rv === 'string' ? rv : Buffer.from(rv).toString('latin1').trim();
    if (len === 14) {
      const m = matchName(name, 'content-length');
      if (m === VIA_UNDERSCORE) return 'upstream sent Content_Length';
      if (m === EXACT) {
        if (!isPlainDigits(value)) return 'upstream Content-Length is not a plain number';
        if (cls > 0) return cl === value ? 'upstream sent duplicate Content-Length' : 'upstream sent conflicting Content-Length';
        cls++;
        cl = value;
      }
    } else {
      const m = matchName(name, 'transfer-encoding');
      if (m === VIA_UNDERSCORE) return 'upstream sent Transfer_Encoding';
      if (m === EXACT) {
        if (tes > 0) return 'upstream sent more than one Transfer-Encoding';
        if (!isExactlyChunked(value)) return 'upstream Transfer-Encoding other than exactly "chunked"';
        tes++;
      }
    }
  }
  if (cls > 0 && tes > 0) return 'upstream sent both Content-Length and Transfer-Encoding';
  return null;
}

/**
 * The same checks on undici's parsed header object (`request()` / `onResponseStart` style,
 * lower-cased names, repeated headers as arrays). `_` spellings are looked up by name.
 */
export function checkResponseHeaders(headers: Readonly<Record<string, string | readonly string[] | undefined>>): string | null {
  if (headers['content_length'] !== undefined) return 'upstream sent Content_Length';
  if (headers['transfer_encoding'] !== undefined) return 'upstream sent Transfer_Encoding';
  const cl = headers['content-length'];
  const te = headers['transfer-encoding'];
  if (cl !== undefined) {
    if (typeof cl !== 'string') {
      return cl.length > 1 && cl[0] === cl[1] ? 'upstream sent duplicate Content-Length' : 'upstream sent conflicting Content-Length';
    }
    if (!isPlainDigits(cl)) return 'upstream Content-Length is not a plain number';
  }
  if (te !== undefined) {
    if (typeof te !== 'string') return 'upstream sent more than one Transfer-Encoding';
    if (!isExactlyChunked(te)) return 'upstream Transfer-Encoding other than exactly "chunked"';
  }
  if (cl !== undefined && te !== undefined) return 'upstream sent both Content-Length and Transfer-Encoding';
  return null;
}
