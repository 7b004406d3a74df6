/**
 * Header handling at the proxy boundary: hop-by-hop removal (RFC 9110 7.6.1, including the
 * names listed in Connection), the forwarding headers, request ids and W3C trace context. Works
 * on the flat raw arrays Node and undici hand over, so no header object is built per request.
 */
import { randomFillSync, randomUUID } from 'node:crypto';
import type { CompiledHeaderOps } from '../router/table.js';
import { viaHolds } from './loop.js';

/** Never forwarded in either direction (plus whatever Connection names). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Request headers the proxy replaces or consumes itself. */
const REQUEST_OWNED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'expect']);

/** Per-request values the forwarder adds to the upstream request. */
export interface ForwardingInfo {
  clientIp: string;
  proto: 'http' | 'https';
  /** set when the Host sent upstream must differ from the client's (absolute-form) */
  hostOverride: string | null;
  /** keep `upgrade` and `connection: upgrade` (upgrade tunnels) */
  upgrade: boolean;
  /** this listener's `via` entry, added upstream; '' adds none */
  via: string;
  /** out: the request id and trace id used (kept or made) */
  requestId: string;
  traceId: string;
  /** out: the request already carried this listener's `via` entry (it came back: a loop) */
  loop: boolean;
}

/** The Connection header's tokens other than keep-alive/close, lower-cased; null when none. */
function connectionTokens(raw: readonly string[]): Set<string> | null {
  let out: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i] as string;
    if (k.length !== 10 || k.toLowerCase() !== 'connection') continue;
    for (const t of (raw[i + 1] as string).split(',')) {
      const tok = t.trim().toLowerCase();
      if (tok === '' || tok === 'keep-alive' || tok === 'close') continue;
      (out ??= new Set()).add(tok);
    }
  }
  return out;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

function validTraceparent(v: string): boolean {
  // version ff is invalid, as are all-zero trace and parent ids (W3C Trace Context 3.2).
  return (
    v.length >= 55 &&
    TRACEPARENT.test(v.slice(0, 55)) &&
    !v.startsWith('ff') &&
    v.slice(3, 35) !== '00000000000000000000000000000000' &&
    v.slice(36, 52) !== '0000000000000000'
  );
}

// Ids come from a pool of random bytes refilled 256 ids at a time: one randomBytes() call per
// request was a measurable share of the request path (as randomUUID, which caches the same way).
const ID_BYTES = 24;
const idPool = Buffer.allocUnsafe(ID_BYTES * 256);
let idOffset = idPool.length;

export function makeTraceparent(): string {
  if (idOffset + ID_BYTES > idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const trace = idPool.toString('hex', idOffset, idOffset + 16);
  const span = idPool.toString('hex', idOffset + 16, idOffset + 24);
  idOffset += ID_BYTES;
  return `00-${trace}-${span}-01`;
}

/**
 * The upstream request's headers as a flat [name, value, ...] array: hop-by-hop headers dropped,
 * `x-forwarded-for` appended, `x-forwarded-proto` set, `x-request-id` and `traceparent` kept or
 * made, this listener's `via` entry appended, the route's header policy applied. Fills
 * `info.requestId`, `info.traceId` and `info.loop`.
 */
export function upstreamRequestHeaders(raw: readonly string[], info: ForwardingInfo, ops: CompiledHeaderOps | null): string[] {
  const named = connectionTokens(raw);
  const out: string[] = [];
  let xff: string | null = null;
  let requestId: string | null = null;
  let traceparent: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (info.upgrade && (lower === 'upgrade' || lower === 'connection')) {
        if (lower === 'upgrade') out.push('upgrade', value);
        continue;
      }
      continue;
    }
    if (named !== null && named.has(lower)) continue;
    if (REQUEST_OWNED.has(lower)) {
      if (lower === 'x-forwarded-for') xff = xff === null ? value : `${xff}, ${value}`;
      continue;
    }
    if (ops !== null && ops.remove.has(lower)) continue;
    if (lower === 'host') {
      if (info.hostOverride !== null) continue;
    } else if (lower === 'x-request-id') {
      if (requestId !== null || value === '') continue;
      requestId = value;
    } else if (lower === 'traceparent') {
      if (traceparent !== null || !validTraceparent(value)) continue;
      traceparent = value;
    } else if (lower === 'via' && info.via !== '' && viaHolds(value, info.via)) {
      info.loop = true;
    }
    out.push(name, value);
  }
  if (info.via !== '') out.push('via', info.via);
  if (info.hostOverride !== null) out.push('host', info.hostOverride);
  if (info.upgrade) out.push('connection', 'upgrade');
  out.push('x-forwarded-for', xff === null ? info.clientIp : `${xff}, ${info.clientIp}`);
  out.push('x-forwarded-proto', info.proto);
  if (requestId === null) {
    requestId = randomUUID();
    out.push('x-request-id', requestId);
  }
  if (traceparent === null) {
    traceparent = makeTraceparent();
    out.push('traceparent', traceparent);
  }
  info.requestId = requestId;
  info.traceId = traceparent.slice(3, 35);
  if (ops !== null) {
    const set = ops.set;
    for (let i = 0; i < set.length; i++) out.push(set[i] as string);
  }
  return out;
}

/**
 * The client response's headers from undici's raw response head (Buffers): hop-by-hop headers
 * dropped, the route's response policy applied.
 */
export function clientResponseHeaders(raw: readonly Buffer[], ops: CompiledHeaderOps | null): string[] {
  const out: string[] = [];
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = (raw[i] as Buffer).toString('latin1').toLowerCase();
    const value = (raw[i + 1] as Buffer).toString('latin1');
    if (lower === 'connection') {
      for (const t of value.split(',')) {
        const tok = t.trim().toLowerCase();
        if (tok !== '' && tok !== 'close' && tok !== 'keep-alive') (named ??= new Set()).add(tok);
      }
      continue;
    }
    if (HOP_BY_HOP.has(lower)) continue;
    if (ops !== null && ops.remove.has(lower)) continue;
    out.push(lower, value);
  }
  if (named !== null) {
    for (let i = out.length - 2; i >= 0; i -= 2) if (named.has(out[i] as string)) out.splice(i, 2);
  }
  if (ops !== null) {
    const set = ops.set;
    for (let i = 0; i < set.length; i++) out.push(set[i] as string);
  }
  return out;
}

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName);
}
