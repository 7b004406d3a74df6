// Raw HTTP/1.1 vectors for request smuggling and edge hardening, as data: exact bytes with
// \r\n spelled out. `expect: 'reject'` means the request must never be accepted (Node's parser or
// our edge answers 4xx and closes, and nothing behind it answers 200); `'ok'` means a well-formed
// request that must be accepted. Used by test/security.edge.test.ts against a plain node:http
// server today, and later against the running proxy with a recording upstream.
// Limits assumed: maxHeaders 100, maxUrlLength 8192, Node's default maxHeaderSize (16 KiB).

export interface Vector {
  readonly name: string;
  readonly raw: string;
  readonly expect: 'reject' | 'ok';
}

/** The limits the vectors are written against. */
export const VECTOR_LIMITS = Object.freeze({ maxHeaders: 100, maxUrlLength: 8192 });

const H = 'Host: svc\r\n';
const post = (headers: string, body: string): string => `POST /submit HTTP/1.1\r\n${H}${headers}\r\n${body}`;
const get = (headers: string, target = '/'): string => `GET ${target} HTTP/1.1\r\n${headers}\r\n`;

const manyHeaders = (n: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += `X-H${i}: v\r\n`;
  return s;
};

export const REQUEST_VECTORS: readonly Vector[] = [
  // ---- well-formed controls (the oracle must not reject everything) ----
  { name: 'ok: simple GET', raw: get(H), expect: 'ok' },
  { name: 'ok: POST with Content-Length', raw: post('Content-Length: 5\r\n', 'hello'), expect: 'ok' },
  { name: 'ok: POST chunked', raw: post('Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'ok' },
  { name: 'ok: chunked upper-case coding', raw: post('Transfer-Encoding: CHUNKED\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'ok' },
  { name: 'ok: chunked with trailer', raw: post('Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n'), expect: 'ok' },
  { name: 'ok: chunk extension', raw: post('Transfer-Encoding: chunked\r\n', '5;name=value\r\nhello\r\n0\r\n\r\n'), expect: 'ok' },
  { name: 'ok: absolute-form with matching Host', raw: get(H, 'http://svc/path?q=1'), expect: 'ok' },
  { name: 'ok: OPTIONS *', raw: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, expect: 'ok' },
  { name: 'ok: HTTP/1.0 without Host', raw: 'GET / HTTP/1.0\r\n\r\n', expect: 'ok' },
  { name: 'ok: tab as OWS around a value', raw: get(`${H}X-A:\tv\t\r\n`), expect: 'ok' },
  { name: 'ok: encoded path that normalises', raw: get(H, '/%61pi/./x/../y'), expect: 'ok' },
  { name: 'ok: 100 headers (at the limit)', raw: get(H + manyHeaders(99)), expect: 'ok' },

  // ---- CL.TE / TE.CL ----
  { name: 'CL.TE: CL then TE', raw: post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nG'), expect: 'reject' },
  {
    name: 'TE.CL: TE then CL',
    raw: post('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', '8\r\nSMUGGLED\r\n0\r\n\r\n'),
    expect: 'reject',
  },
  {
    name: 'CL.TE with smuggled GET',
    raw: post('Content-Length: 44\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nGET /admin HTTP/1.1\r\nHost: svc\r\n\r\n'),
    expect: 'reject',
  },

  // ---- TE.TE obfuscation ----
  { name: 'TE: xchunked', raw: post('Transfer-Encoding: xchunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: chunked, identity', raw: post('Transfer-Encoding: chunked, identity\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: identity, chunked', raw: post('Transfer-Encoding: identity, chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: gzip, chunked', raw: post('Transfer-Encoding: gzip, chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: space before colon', raw: post('Transfer-Encoding : chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: tab before colon', raw: post('Transfer-Encoding\t: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  {
    name: 'TE: leading space on the line (obs-fold)',
    raw: post('X-A: b\r\n Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'),
    expect: 'reject',
  },
  { name: 'TE: vertical tab before value', raw: post('Transfer-Encoding:\x0bchunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: form feed before value', raw: post('Transfer-Encoding:\x0cchunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: quoted "chunked"', raw: post('Transfer-Encoding: "chunked"\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: chunked with parameter', raw: post('Transfer-Encoding: chunked;q=1\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  {
    name: 'TE: duplicated chunked headers',
    raw: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'),
    expect: 'reject',
  },
  {
    name: 'TE: chunked then identity header',
    raw: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n', '5\r\nhello\r\n0\r\n\r\n'),
    expect: 'reject',
  },
  { name: 'TE: NUL inside name', raw: post('Transfer-Encoding\x00: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'TE: on HTTP/1.0', raw: `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'reject' },
  { name: 'TE: empty value', raw: post('Transfer-Encoding: \r\n', ''), expect: 'reject' },

  // ---- Content-Length abuse ----
  { name: 'CL: signed +5', raw: post('Content-Length: +5\r\n', 'hello'), expect: 'reject' },
  { name: 'CL: negative -1', raw: post('Content-Length: -1\r\n', 'hello'), expect: 'reject' },
  { name: 'CL: list 5, 5', raw: post('Content-Length: 5, 5\r\n', 'hello'), expect: 'reject' },
  { name: 'CL: duplicate equal headers', raw: post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), expect: 'reject' },
  { name: 'CL: duplicate different headers', raw: post('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'), expect: 'reject' },
  { name: 'CL: hex 0x5', raw: post('Content-Length: 0x5\r\n', 'hello'), expect: 'reject' },
  { name: 'CL: trailing garbage 5a', raw: post('Content-Length: 5a\r\n', 'hello'), expect: 'reject' },
  { name: 'CL: inner space 5 5', raw: post('Content-Length: 5 5\r\n', 'hello'), expect: 'reject' },
  { name: 'CL: empty value', raw: post('Content-Length: \r\n', ''), expect: 'reject' },
  { name: 'CL: overflowing 2^64', raw: post('Content-Length: 18446744073709551621\r\n', 'hello'), expect: 'reject' },

  // ---- `_` spellings of protected headers ----
  {
    name: 'underscore: Content_Length beside TE',
    raw: post('Transfer-Encoding: chunked\r\nContent_Length: 3\r\n', '5\r\nhello\r\n0\r\n\r\n'),
    expect: 'reject',
  },
  {
    name: 'underscore: transfer_encoding beside CL',
    raw: post('Content-Length: 5\r\ntransfer_encoding: chunked\r\n', 'hello'),
    expect: 'reject',
  },
  { name: 'underscore: X_Forwarded_For', raw: get(`${H}X_Forwarded_For: 10.0.0.1\r\n`), expect: 'reject' },

  // ---- hop-by-hop abuse ----
  {
    name: 'Connection: content-length (strip the framing downstream)',
    raw: post('Content-Length: 5\r\nConnection: keep-alive, Content-Length\r\n', 'hello'),
    expect: 'reject',
  },
  {
    name: 'Connection: transfer-encoding',
    raw: post('Transfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n', '5\r\nhello\r\n0\r\n\r\n'),
    expect: 'reject',
  },
  { name: 'Connection: host', raw: get(`${H}Connection: host\r\n`), expect: 'reject' },
  {
    name: 'Upgrade: h2c (h2c smuggling)',
    raw: get(`${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n`),
    expect: 'reject',
  },
  { name: 'ok: Connection: keep-alive, x-custom', raw: get(`${H}Connection: keep-alive, X-Custom\r\nX-Custom: 1\r\n`), expect: 'ok' },

  // ---- line endings and folding ----
  { name: 'bare LF line endings', raw: 'GET / HTTP/1.1\nHost: svc\n\n', expect: 'reject' },
  { name: 'bare LF after a header', raw: `GET / HTTP/1.1\r\nHost: svc\nX-A: b\r\n\r\n`, expect: 'reject' },
  { name: 'bare CR line ending', raw: 'GET / HTTP/1.1\rHost: svc\r\n\r\n', expect: 'reject' },
  { name: 'bare CR inside a value', raw: get(`${H}X-A: a\rb\r\n`), expect: 'reject' },
  { name: 'obs-fold continuation line', raw: get(`${H}X-A: a\r\n b\r\n`), expect: 'reject' },

  // ---- NUL and control bytes ----
  { name: 'NUL in a header value', raw: get(`${H}X-A: a\x00b\r\n`), expect: 'reject' },
  { name: 'NUL in a header name', raw: get(`${H}X-\x00A: b\r\n`), expect: 'reject' },
  { name: 'control byte 0x01 in a value', raw: get(`${H}X-A: a\x01b\r\n`), expect: 'reject' },
  { name: 'DEL in a header name', raw: get(`${H}X-\x7fA: b\r\n`), expect: 'reject' },
  { name: 'space inside a header name', raw: get(`${H}X A: b\r\n`), expect: 'reject' },
  { name: 'header line without colon', raw: get(`${H}NoColonHere\r\n`), expect: 'reject' },

  // ---- chunked body framing ----
  { name: 'chunk size 0x5', raw: post('Transfer-Encoding: chunked\r\n', '0x5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'chunk size -1', raw: post('Transfer-Encoding: chunked\r\n', '-1\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  {
    name: 'chunk size overflowing 64 bits',
    raw: post('Transfer-Encoding: chunked\r\n', 'ffffffffffffffffff\r\nhello\r\n0\r\n\r\n'),
    expect: 'reject',
  },
  { name: 'chunk size with leading space', raw: post('Transfer-Encoding: chunked\r\n', ' 5\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'chunk extension with NUL', raw: post('Transfer-Encoding: chunked\r\n', '5;a=\x00\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'chunk extension with bare LF', raw: post('Transfer-Encoding: chunked\r\n', '5;a\nb\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'chunk data longer than its size', raw: post('Transfer-Encoding: chunked\r\n', '3\r\nhello\r\n0\r\n\r\n'), expect: 'reject' },
  { name: 'chunk size line ended by bare LF', raw: post('Transfer-Encoding: chunked\r\n', '5\nhello\r\n0\r\n\r\n'), expect: 'reject' },

  // ---- request line ----
  { name: 'version HTTP/1.2', raw: `GET / HTTP/1.2\r\n${H}\r\n`, expect: 'reject' },
  { name: 'version HTTP/2.0', raw: `GET / HTTP/2.0\r\n${H}\r\n`, expect: 'reject' },
  { name: 'version HTTP/0.9', raw: `GET / HTTP/0.9\r\n${H}\r\n`, expect: 'reject' },
  { name: 'version lower-case http/1.1', raw: `GET / http/1.1\r\n${H}\r\n`, expect: 'reject' },
  { name: 'version HTTP/11', raw: `GET / HTTP/11\r\n${H}\r\n`, expect: 'reject' },
  { name: 'unknown method', raw: `FOO / HTTP/1.1\r\n${H}\r\n`, expect: 'reject' },
  { name: 'lower-case method', raw: `get / HTTP/1.1\r\n${H}\r\n`, expect: 'reject' },
  // Node tolerates extra spaces between request-line parts; harmless behind a proxy that writes
  // its own request line, so it is a control here.
  { name: 'ok: double space in request line', raw: `GET  / HTTP/1.1\r\n${H}\r\n`, expect: 'ok' },
  { name: 'tab as request-line separator', raw: `GET\t/ HTTP/1.1\r\n${H}\r\n`, expect: 'reject' },
  { name: 'space inside the target', raw: `GET /a b HTTP/1.1\r\n${H}\r\n`, expect: 'reject' },
  { name: 'asterisk-form on GET', raw: `GET * HTTP/1.1\r\n${H}\r\n`, expect: 'reject' },

  // ---- paths the authorization boundary must not see ----
  { name: 'path: encoded slash %2F', raw: get(H, '/api%2F..%2Fadmin'), expect: 'reject' },
  { name: 'path: encoded backslash %5c', raw: get(H, '/api%5cadmin'), expect: 'reject' },
  { name: 'path: raw backslash', raw: get(H, '/api\\admin'), expect: 'reject' },
  { name: 'path: encoded NUL', raw: get(H, '/api%00'), expect: 'reject' },
  { name: 'path: malformed escape', raw: get(H, '/api%zz'), expect: 'reject' },

  // ---- Host and authority ----
  { name: 'Host: missing on HTTP/1.1', raw: 'GET / HTTP/1.1\r\n\r\n', expect: 'reject' },
  { name: 'Host: two headers', raw: get(`${H}Host: admin\r\n`), expect: 'reject' },
  { name: 'Host: with userinfo', raw: get('Host: user@svc\r\n'), expect: 'reject' },
  { name: 'Host: with a path', raw: get('Host: svc/admin\r\n'), expect: 'reject' },
  { name: 'Host: bad port', raw: get('Host: svc:99999\r\n'), expect: 'reject' },
  // RFC 9112 3.2.2: the target's authority wins and replaces Host (checked in smuggling.test).
  { name: 'absolute-form: Host disagrees', raw: get('Host: other\r\n', 'http://svc/'), expect: 'ok' },
  { name: 'absolute-form: no Host on HTTP/1.1', raw: get('', 'http://svc/'), expect: 'reject' },
  { name: 'absolute-form: https scheme', raw: get(H, 'https://svc/'), expect: 'reject' },
  { name: 'absolute-form: ftp scheme', raw: get(H, 'ftp://svc/'), expect: 'reject' },
  { name: 'absolute-form: userinfo', raw: get(H, 'http://user@svc/'), expect: 'reject' },

  // ---- size limits ----
  { name: 'URL longer than maxUrlLength (414)', raw: get(H, '/' + 'a'.repeat(9000)), expect: 'reject' },
  { name: '101 headers, over maxHeaders (431)', raw: get(H + manyHeaders(100)), expect: 'reject' },
  { name: 'head over 16 KiB (431)', raw: get(`${H}X-Big: ${'b'.repeat(17000)}\r\n`), expect: 'reject' },
];

// ---------------------------------------------------------------------------------------------
// Upstream responses, for a raw upstream. 'reject': the proxy must not relay it. `stage: 'head'`:
// refused before anything is relayed (undici fails the request before delivering headers, or
// checkResponseHead returns a detail → 502 upstream_protocol_error); `stage: 'body'`: the head is
// fine and undici fails the body (the proxy then resets the downstream response).

export interface ResponseVector extends Vector {
  readonly stage: 'head' | 'body';
}

export const RESPONSE_VECTORS: readonly ResponseVector[] = [
  { name: 'resp ok: Content-Length', raw: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', expect: 'ok', stage: 'head' },
  {
    name: 'resp ok: chunked',
    raw: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    expect: 'ok',
    stage: 'head',
  },
  {
    name: 'resp: CL and TE',
    raw: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    expect: 'reject',
    stage: 'head',
  },
  {
    name: 'resp: duplicate equal CL',
    raw: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello',
    expect: 'reject',
    stage: 'head',
  },
  {
    name: 'resp: conflicting CL',
    raw: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 3\r\n\r\nhello',
    expect: 'reject',
    stage: 'head',
  },
  { name: 'resp: CL +5', raw: 'HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello', expect: 'reject', stage: 'head' },
  {
    name: 'resp: TE gzip (read to close)',
    raw: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nhello',
    expect: 'reject',
    stage: 'head',
  },
  {
    name: 'resp: TE gzip, chunked',
    raw: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    expect: 'reject',
    stage: 'head',
  },
  {
    name: 'resp: two TE headers',
    raw: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    expect: 'reject',
    stage: 'head',
  },
  {
    name: 'resp: Content_Length beside TE',
    raw: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent_Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    expect: 'reject',
    stage: 'head',
  },
  { name: 'resp: obs-fold', raw: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\r\n b\r\n\r\nhello', expect: 'reject', stage: 'head' },
  {
    name: 'resp: bad chunk size',
    raw: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    expect: 'reject',
    stage: 'body',
  },
  {
    name: 'resp: body shorter than CL, then close',
    raw: 'HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\nhello',
    expect: 'reject',
    stage: 'body',
  },
];
