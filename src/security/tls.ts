/**
 * mTLS with SPIFFE identities: reading the PEM files a config names, the inbound server options
 * (TLS 1.2+, client certificates verified against the mesh CA), the caller's principal (the one
 * URI SAN of its leaf certificate), the upstream connect options with SPIFFE server
 * verification, and rate-limited logging of handshake failures.
 *
 * Identity rules (as Istio / SPIFFE X.509-SVID): a workload certificate carries exactly one URI
 * SAN, which is the principal; a leaf with several URI SANs is ambiguous and refused; a
 * certificate with `CA:TRUE` is not a workload identity and is refused even when the mesh CA
 * signed it (OpenSSL accepts CA certificates as client leaves).
 */
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import type { ClusterTlsConfig, InboundTlsConfig } from '../config/types.js';

// ---------------------------------------------------------------------------------------------
// Material

/** PEM contents read from the files a config names. Keys absent when the path is null. */
export interface TlsMaterial {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

/** A TLS file could not be read. The message names the role and path, never the contents. */
export class TlsMaterialError extends Error {
  readonly code = 'OUTRIGGER_TLS_MATERIAL';
  constructor(
    readonly which: 'cert' | 'key' | 'ca',
    readonly path: string,
    /** errno code (`ENOENT`, `EACCES`) or a short description; never file contents */
    readonly problem: string,
  ) {
    super(`cannot read TLS ${which} file ${path}: ${problem}`);
    this.name = 'TlsMaterialError';
  }
}

/**
 * Read the cert, key and CA files (null paths are skipped). Rejects with a `TlsMaterialError`
 * naming the first file that failed (by role and path, with the errno code only). Also rejects a
 * file that is empty or holds no PEM block, since that otherwise surfaces later as an opaque
 * OpenSSL error at handshake time.
 */
export async function readTlsMaterial(paths: {
  readonly cert: string | null;
  readonly key: string | null;
  readonly ca: string | null;
}): Promise<TlsMaterial> {
  const roles = ['cert', 'key', 'ca'] as const;
  const reads = roles.map(async (which) => {
    const p = paths[which];
    if (p === null) return undefined;
    let buf: Buffer;
    try {
      buf = await readFile(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'read error';
      throw new TlsMaterialError(which, p, code);
    }
    if (buf.indexOf('-----BEGIN ') === -1) throw new TlsMaterialError(which, p, 'no PEM block found');
    return buf;
  });
  const settled = await Promise.allSettled(reads);
  const out: TlsMaterial = {};
  for (let i = 0; i < roles.length; i++) {
    const s = settled[i] as PromiseSettledResult<Buffer | undefined>;
    if (s.status === 'rejected') throw s.reason;
    if (s.value !== undefined) out[roles[i] as 'cert' | 'key' | 'ca'] = s.value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Principals

export type PrincipalResult =
  | { readonly ok: true; readonly principal: string }
  | { readonly ok: false; readonly reason: 'no_uri_san' | 'multiple_uri_sans' | 'ca_leaf' };

/**
 * Split Node's `subjectaltname` string (`DNS:a, URI:spiffe://x, IP Address:1.2.3.4`) and return
 * the URI values. Since Node 17.3.1 / 16.13.2 (CVE-2021-44532) a value holding `,`, `"` or other
 * special characters is printed as a JSON string (`URI:"spiffe://a, b"`), so a naive split on
 * ", " would mis-split it; this honours the quoting.
 */
export function uriSans(subjectaltname: string | undefined): string[] {
  const out: string[] = [];
  if (subjectaltname === undefined || subjectaltname.length === 0) return out;
  const s = subjectaltname;
  let i = 0;
  while (i < s.length) {
    const colon = s.indexOf(':', i);
    if (colon === -1) break;
    const type = s.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (s.charCodeAt(j) === 0x22) {
      // JSON string: find the closing quote, skipping escapes
      let k = j + 1;
      while (k < s.length && s.charCodeAt(k) !== 0x22) k += s.charCodeAt(k) === 0x5c ? 2 : 1;
      try {
        value = JSON.parse(s.slice(j, k + 1)) as string;
      } catch {
        value = s.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const comma = s.indexOf(', ', j);
      const end = comma === -1 ? s.length : comma;
      value = s.slice(j, end);
      j = end;
    }
    if (type === 'URI') out.push(value);
    // skip the ", " separator
    if (s.charCodeAt(j) === 0x2c) j++;
    if (s.charCodeAt(j) === 0x20) j++;
    i = j;
  }
  return out;
}

/**
 * The principal of a verified peer certificate: its single URI SAN (normally `spiffe://...`).
 * Refuses a CA certificate used as a leaf and a leaf with more than one URI SAN.
 */
export function principalOf(cert: tls.PeerCertificate | tls.DetailedPeerCertificate): PrincipalResult {
  // `ca` is set by Node from basicConstraints (present on Node 20's PeerCertificate).
  if (cert.ca === true) return { ok: false, reason: 'ca_leaf' };
  const uris = uriSans(cert.subjectaltname);
  if (uris.length === 0) return { ok: false, reason: 'no_uri_san' };
  if (uris.length > 1) return { ok: false, reason: 'multiple_uri_sans' };
  return { ok: true, principal: uris[0] as string };
}

// ---------------------------------------------------------------------------------------------
// Inbound

/** Options for `tls.createServer` / `https.createServer` / `server.setSecureContext`. */
export type InboundServerOptions = tls.TlsOptions & {
  requestCert: boolean;
  rejectUnauthorized: boolean;
};

/**
 * Server options of the inbound mTLS listener: TLS 1.2 and 1.3 only, ALPN `http/1.1`, client
 * certificates requested always (so a caller that has one is identified even when they are
 * optional) and required when `requireClientCert`. There is no plaintext fallback: the
 * listener is a TLS server or nothing.
 *
 * Throws when client certificates are required but no CA is configured: Node would then verify
 * them against the public root store, and any publicly issued certificate would be a caller.
 */
export function inboundServerOptions(t: InboundTlsConfig, material: TlsMaterial): InboundServerOptions {
  if (material.cert === undefined || material.key === undefined) {
    throw new Error('inbound TLS needs both cert and key');
  }
  if (material.ca === undefined && t.requireClientCert) {
    throw new Error('inbound TLS with requireClientCert needs a ca file (the mesh CA)');
  }
  const o: InboundServerOptions = {
    cert: material.cert,
    key: material.key,
    minVersion: 'TLSv1.2',
    requestCert: true,
    rejectUnauthorized: t.requireClientCert,
    ALPNProtocols: ['http/1.1'],
  };
  if (material.ca !== undefined) o.ca = material.ca;
  return o;
}

export type ClientVerdict = { readonly ok: true; readonly principal: string | null } | { readonly ok: false; readonly reason: string };

// One verdict per connection: the peer certificate cannot change once renegotiation is off,
// and getPeerCertificate() builds a fresh object on every call.
const verdicts = new WeakMap<tls.TLSSocket, ClientVerdict>();

/**
 * Identify the caller right after the handshake (`secureConnection`, or per request from
 * `req.socket`: the verdict is computed once per connection and cached). With
 * `requireClientCert` the handshake already refused absent and untrusted certificates; here we
 * refuse what OpenSSL accepts but a mesh must not: several URI SANs, a CA certificate as leaf,
 * and (when client certs are optional) a presented certificate that did not verify. A verified
 * certificate without URI SAN, or no certificate when optional, yields `principal: null`
 * (unauthenticated for authorization).
 *
 * Side effect: disables TLS renegotiation on the socket (TLS 1.2 clients could otherwise
 * renegotiate with another certificate after we identified them). On `ok: false` the caller
 * should destroy the socket (HTTP: answer 403 forbidden with `connection: close`).
 */
export function verifyClientSocket(socket: tls.TLSSocket): ClientVerdict {
  const cached = verdicts.get(socket);
  if (cached !== undefined) return cached;
  const v = computeVerdict(socket);
  socket.disableRenegotiation();
  verdicts.set(socket, v);
  return v;
}

function computeVerdict(socket: tls.TLSSocket): ClientVerdict {
  const cert = socket.getPeerCertificate(false);
  // Node returns {} (or null on a closed socket) when the peer sent no certificate.
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) {
    return { ok: true, principal: null };
  }
  if (!socket.authorized) {
    const err = socket.authorizationError;
    return { ok: false, reason: `untrusted_client_cert:${err instanceof Error ? err.message : String(err)}` };
  }
  const p = principalOf(cert);
  if (p.ok) return { ok: true, principal: p.principal };
  if (p.reason === 'no_uri_san') return { ok: true, principal: null };
  return { ok: false, reason: p.reason };
}

// ---------------------------------------------------------------------------------------------
// Outbound

export interface ClusterConnectOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  minVersion: tls.SecureVersion;
  rejectUnauthorized: true;
  checkServerIdentity: (host: string, cert: tls.PeerCertificate) => Error | undefined;
}

function identityError(msg: string, reason: string): Error {
  const e = new Error(msg) as Error & { code: string; reason: string };
  // ERR_TLS_ like Node's own ERR_TLS_CERT_ALTNAME_INVALID, so the failure classifier counts it
  // as a connect failure (the handshake never completed; nothing was sent upstream)
  e.code = 'ERR_TLS_PEER_IDENTITY';
  e.reason = reason;
  return e;
}

/**
 * Connect options for an undici `Pool`/`Agent` (`connect: clusterConnectOptions(...)`).
 *
 * The chain is always verified (`rejectUnauthorized: true`, against `ca` or the system roots).
 * Server identity:
 * - `principals` set: the server's leaf must carry exactly one URI SAN and it must be listed;
 *   the hostname is NOT checked. This is Istio's SPIFFE verification (Envoy
 *   `match_typed_subject_alt_names` on the URI SAN replaces hostname verification): endpoints are
 *   pod IPs and workload certificates name identities, not hosts. `serverName` is still sent as
 *   SNI.
 * - no `principals`, `serverName` set: the usual hostname check against `serverName` (Node's
 *   `tls.checkServerIdentity`).
 * - neither: the usual hostname check against the host connected to.
 *
 * Node skips `checkServerIdentity` on a resumed TLS session; undici keeps its session cache per
 * connector (so per Pool, i.e. per cluster endpoint set), and a ticket can only be resumed by a
 * server holding the ticket key of the one that passed the check, so the identity holds.
 */
export function clusterConnectOptions(t: ClusterTlsConfig, material: TlsMaterial): ClusterConnectOptions {
  const allowed = t.principals === null ? null : new Set(t.principals);
  const serverName = t.serverName;
  const check = (host: string, cert: tls.PeerCertificate): Error | undefined => {
    if (allowed !== null) {
      const p = principalOf(cert);
      if (!p.ok) return identityError(`upstream certificate refused: ${p.reason}`, p.reason);
      if (!allowed.has(p.principal)) {
        return identityError(`upstream principal ${p.principal} is not in the cluster's principals`, 'principal_mismatch');
      }
      return undefined;
    }
    return tls.checkServerIdentity(serverName ?? host, cert);
  };
  const o: ClusterConnectOptions = {
    minVersion: 'TLSv1.2',
    rejectUnauthorized: true,
    checkServerIdentity: check,
  };
  if (material.ca !== undefined) o.ca = material.ca;
  if (material.cert !== undefined) o.cert = material.cert;
  if (material.key !== undefined) o.key = material.key;
  if (serverName !== null) o.servername = serverName;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Handshake failure logging

/**
 * A `tlsClientError` as a bounded metric label: `no_client_cert` (requireClientCert and the
 * client sent none), `bad_certificate` (untrusted, expired, wrong purpose), `protocol` (plaintext
 * HTTP or an unsupported version on the TLS port), `timeout`, `reset`, else `handshake`. Together
 * with the post-handshake reasons (`ca_leaf`, `multiple_uri_sans`, `untrusted_client_cert`) the
 * label set stays small whatever a scanner sends.
 */
export function handshakeFailureReason(err: Error & { code?: string }, socket?: import('node:tls').TLSSocket): string {
  // A client certificate that failed verification makes Node destroy the socket quietly; the
  // error is then a generic ECONNRESET "socket hang up", and only the socket knows why.
  if (socket?.authorizationError != null) return 'bad_certificate';
  const c = err.code ?? '';
  const m = err.message;
  if (c === 'ECONNRESET') return 'reset';
  if (c === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/i.test(c) || /did not return a certificate|certificate required/i.test(m)) {
    return 'no_client_cert';
  }
  if (/CERT|CERTIFICATE/i.test(c) || /certificate/i.test(m)) return 'bad_certificate';
  if (/VERSION|PROTOCOL|HTTP_REQUEST/i.test(c) || /wrong version|http request|unsupported protocol/i.test(m)) return 'protocol';
  return 'handshake';
}

/**
 * Counts handshake failures by reason and logs at most one warning per reason per interval
 * (default one minute), carrying how many were suppressed: a scanner or a misconfigured client
 * retrying in a loop must not flood the log.
 */
export class HandshakeFailureLog {
  readonly #warn: (obj: object, msg: string) => void;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #total = new Map<string, number>();
  readonly #sinceLog = new Map<string, number>();
  readonly #lastLog = new Map<string, number>();

  constructor(warn: (obj: object, msg: string) => void, now: () => number = Date.now, intervalMs = 60_000) {
    this.#warn = warn;
    this.#now = now;
    this.#intervalMs = intervalMs;
  }

  /** Record one failure; logs if this reason has not been logged within the interval. */
  record(reason: string, remote?: string): void {
    this.#total.set(reason, (this.#total.get(reason) ?? 0) + 1);
    const pending = (this.#sinceLog.get(reason) ?? 0) + 1;
    const now = this.#now();
    const last = this.#lastLog.get(reason);
    if (last !== undefined && now - last < this.#intervalMs) {
      this.#sinceLog.set(reason, pending);
      return;
    }
    this.#lastLog.set(reason, now);
    this.#sinceLog.set(reason, 0);
    const obj: Record<string, unknown> = { reason, count: pending, total: this.#total.get(reason) };
    if (remote !== undefined) obj['remote'] = remote;
    this.#warn(obj, 'TLS handshake failed');
  }

  /** Total failures per reason since creation (for metrics or /clusters-style output). */
  counts(): Record<string, number> {
    return Object.fromEntries(this.#total);
  }
}
