/**
 * The demo's live summary: reads a sidecar's admin API (`/metrics` in Prometheus text, `/clusters`
 * as JSON, docs/operations.md "Admin API" and docs/metrics.md) and renders one compact block of text.
 */
import http from 'node:http';
import type { Address } from '../config/types.js';

/** One sample of a Prometheus text exposition. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus text format (comments skipped; label values unescaped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    if (m[2] !== undefined) {
      for (const l of m[2].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** GET on the admin API; null when it does not answer (the sidecar may be restarting). */
export function adminGet(admin: Address, path: string): Promise<string | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: admin.host, port: admin.port, path, timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? body : null));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

const BREAKER = ['closed', 'half-open', 'open'];

function codeClasses(samples: readonly Sample[], direction: string): string {
  const byClass = new Map<string, number>();
  let total = 0;
  for (const s of samples) {
    if (s.name !== 'outrigger_requests_total' || s.labels['direction'] !== direction) continue;
    const cls = `${(s.labels['code'] ?? '?').charAt(0)}xx`;
    byClass.set(cls, (byClass.get(cls) ?? 0) + s.value);
    total += s.value;
  }
  const parts = [...byClass].sort().map(([k, v]) => `${k} ${v}`);
  return `${total}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}

/** Renders a sidecar's state: requests by direction and status class, retries, errors, breakers, ejections. */
export function renderSidecar(name: string, metricsText: string | null, clustersJson: string | null): string {
  if (metricsText === null) return `${name.padEnd(20)} (admin API not answering)`;
  const samples = parseMetrics(metricsText);
  const parts = [`in ${codeClasses(samples, 'inbound')}`, `out ${codeClasses(samples, 'outbound')}`];
  let retries = 0;
  const errors = new Map<string, number>();
  const open: string[] = [];
  for (const s of samples) {
    if (s.name === 'outrigger_upstream_retries_total') retries += s.value;
    else if (s.name === 'outrigger_upstream_errors_total' && s.value > 0) {
      const r = s.labels['reason'] ?? '?';
      errors.set(r, (errors.get(r) ?? 0) + s.value);
    } else if (s.name === 'outrigger_circuit_breaker_state' && s.value > 0) {
      open.push(`${s.labels['cluster'] ?? '?'} ${BREAKER[s.value] ?? s.value}`);
    }
  }
  if (retries > 0) parts.push(`retries ${retries}`);
  if (errors.size > 0) parts.push(`errors ${[...errors].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (open.length > 0) parts.push(`breaker ${open.join(', ')}`);
  const ejected = ejectedEndpoints(clustersJson);
  if (ejected.length > 0) parts.push(`ejected ${ejected.join(', ')}`);
  return `${name.padEnd(20)} ${parts.join(' | ')}`;
}

/** `cluster/address` of every ejected or unhealthy endpoint in a `/clusters` answer. */
export function ejectedEndpoints(clustersJson: string | null): string[] {
  if (clustersJson === null) return [];
  const out: string[] = [];
  try {
    const doc = JSON.parse(clustersJson) as { clusters?: Record<string, { endpoints?: unknown }> };
    for (const [cluster, c] of Object.entries(doc.clusters ?? {})) {
      if (!Array.isArray(c.endpoints)) continue;
      for (const ep of c.endpoints as { address?: string; ejected?: boolean; healthy?: boolean }[]) {
        if (ep.ejected === true) out.push(`${cluster}/${ep.address ?? '?'}`);
        else if (ep.healthy === false) out.push(`${cluster}/${ep.address ?? '?'} (unhealthy)`);
      }
    }
  } catch {
    // An answer in another shape is not worth failing the demo over.
  }
  return out;
}
