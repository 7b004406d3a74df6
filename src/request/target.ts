/**
 * The request-target and authority, read once at admission: origin-form and http absolute-form
 * targets (RFC 9112 3.2), the authority an outbound request is routed on, and the `host:port`
 * forms that passthrough pools and tunnels dial. Pure functions over strings.
 */

export interface ParsedTarget {
  /** authority of an absolute-form target (`host[:port]`), else null */
  readonly authority: string | null;
  readonly path: string;
  /** `?query` or '' */
  readonly query: string;
}

const ASTERISK: ParsedTarget = Object.freeze({ authority: null, path: '*', query: '' });

/** Splits the request-target; null when it is not origin-form, `*` or http absolute-form. */
export function parseTarget(url: string): ParsedTarget | null {
  let authority: string | null = null;
  let rest = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    if (url.length > 7 && url.slice(0, 7).toLowerCase() === 'http://') {
      const after = url.slice(7);
      let end = after.length;
      for (let i = 0; i < after.length; i++) {
        const c = after.charCodeAt(i);
        if (c === 47 || c === 63 || c === 35) {
          end = i;
          break;
        }
      }
      authority = after.slice(0, end);
      if (authority === '' || authority.includes('@')) return null;
      rest = after.slice(end);
      if (rest === '' || rest.charCodeAt(0) === 63) rest = '/' + rest;
    } else if (url === '*') {
      return ASTERISK;
    } else {
      return null;
    }
  }
  const q = rest.indexOf('?');
  if (q === -1) return { authority, path: rest, query: '' };
  return { authority, path: rest.slice(0, q), query: rest.slice(q) };
}

/** `Host`-style authority → lower-case host without port (IPv6 keeps its brackets). */
export function hostOnly(authority: string): string {
  let h = authority;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']');
    h = end === -1 ? h : h.slice(0, end + 1);
  } else {
    const c = h.lastIndexOf(':');
    if (c !== -1) h = h.slice(0, c);
  }
  return h.toLowerCase();
}

/** `host:port` for a passthrough pool or a tunnel; port 80 when absent. Null when unusable. */
export function hostPort(authority: string): string | null {
  if (authority.charCodeAt(0) === 91) {
    const end = authority.indexOf(']');
    if (end === -1) return null;
    const port = authority.slice(end + 1);
    if (port === '') return `${authority}:80`;
    return /^:\d{1,5}$/.test(port) && Number(port.slice(1)) <= 65535 ? authority : null;
  }
  const c = authority.indexOf(':');
  if (c === -1) return authority === '' ? null : `${authority}:80`;
  if (c === 0 || !/^\d{1,5}$/.test(authority.slice(c + 1)) || Number(authority.slice(c + 1)) > 65535) return null;
  return authority;
}

/** The port of an authority (80 when it names none or is unusable). */
export function authorityPort(authority: string): number {
  const hp = hostPort(authority);
  return hp === null ? 80 : Number(hp.slice(hp.lastIndexOf(':') + 1));
}

/** Splits `host:port` / `[v6]:port` (as hostPort() returns it) for net.connect. */
export function splitHostPort(hp: string): { host: string; port: number } {
  const c = hp.lastIndexOf(':');
  let host = hp.slice(0, c);
  if (host.charCodeAt(0) === 91) host = host.slice(1, -1);
  return { host, port: Number(hp.slice(c + 1)) };
}
