/**
 * The key reference of docs/configuration.md, generated from fields.ts: one table per block, in
 * the order a config file reads. `npm run docs:config` writes it between the file's GENERATED
 * markers, and a test fails when the file and the tables disagree.
 */
import { formatDuration } from './duration.js';
import * as F from './fields.js';

/** A nested block whose rows are written in place of its parent key, with `prefix` before each key. */
interface Inline {
  readonly block: F.Block;
  readonly prefix: string;
  readonly inline?: Readonly<Record<string, Inline>>;
  /** also write the parent key's own row (for a list of blocks: `rules`, then `rules[].action`) */
  readonly keepParent?: boolean;
}

interface Section extends Inline {
  readonly title: string;
}

export const SECTIONS: readonly Section[] = [
  { title: 'Top level', block: F.TOP, prefix: '' },
  { title: '`admin`', block: F.ADMIN, prefix: 'admin.' },
  { title: '`inbound`', block: F.INBOUND, prefix: 'inbound.' },
  { title: '`inbound.tls`', block: F.INBOUND_TLS, prefix: '' },
  {
    title: '`inbound.authorization`',
    block: F.AUTHORIZATION,
    prefix: '',
    inline: { rules: { block: F.AUTHZ_RULE, prefix: 'rules[].', keepParent: true } },
  },
  { title: '`rateLimit`', block: F.RATE_LIMIT, prefix: '' },
  { title: '`limits`', block: F.LIMITS, prefix: '' },
  { title: '`outbound`', block: F.OUTBOUND, prefix: 'outbound.' },
  { title: '`outbound.routes[]`', block: F.ROUTE, prefix: '' },
  {
    title: '`outbound.routes[].match`',
    block: F.MATCH,
    prefix: '',
    inline: { path: { block: F.PATH, prefix: 'path.', keepParent: true } },
  },
  { title: '`outbound.routes[].split`', block: F.SPLIT, prefix: 'split[].' },
  { title: '`outbound.routes[].retries`', block: F.RETRIES, prefix: '', inline: { backoff: { block: F.BACKOFF, prefix: 'backoff.' } } },
  {
    title: '`outbound.routes[].headers`',
    block: F.HEADERS,
    prefix: 'headers.',
    inline: {
      request: { block: F.HEADER_OPS, prefix: 'headers.request.', keepParent: true },
      response: { block: F.HEADER_OPS, prefix: 'headers.response.', keepParent: true },
    },
  },
  { title: '`outbound.routes[].rewrite`', block: F.REWRITE, prefix: 'rewrite.' },
  { title: '`outbound.routes[].mirror`', block: F.MIRROR, prefix: 'mirror.' },
  {
    title: '`outbound.routes[].fault`',
    block: F.FAULT,
    prefix: 'fault.',
    inline: { delay: { block: F.DELAY, prefix: 'fault.delay.' }, abort: { block: F.ABORT, prefix: 'fault.abort.' } },
  },
  { title: '`clusters.NAME`', block: F.CLUSTER, prefix: '', inline: { hashOn: { block: F.HASH_ON, prefix: 'hashOn.', keepParent: true } } },
  { title: '`clusters.NAME.dns`', block: F.DNS, prefix: '' },
  { title: '`clusters.NAME.healthCheck`', block: F.HEALTH_CHECK, prefix: '' },
  { title: '`clusters.NAME.outlierDetection`', block: F.OUTLIER_DETECTION, prefix: '' },
  { title: '`clusters.NAME.circuitBreaker`', block: F.CIRCUIT_BREAKER, prefix: '' },
  { title: '`clusters.NAME.retryBudget`', block: F.RETRY_BUDGET, prefix: '' },
  { title: '`clusters.NAME.tls`', block: F.CLUSTER_TLS, prefix: '' },
  { title: '`resolver`', block: F.RESOLVER, prefix: 'resolver.' },
  { title: '`drain`', block: F.DRAIN, prefix: 'drain.' },
];

const code = (s: string): string => `\`${s}\``;
const MAX = Number.MAX_SAFE_INTEGER;

function typeOf(f: F.FieldSpec): string {
  if (f.type !== undefined) return f.type;
  switch (f.kind) {
    case 'integer':
      return f.max === undefined || f.max === MAX ? `integer ≥ ${f.min}` : `integer ${f.min}–${f.max}`;
    case 'number':
      if (f.max !== MAX) return `number ${f.min}–${f.max}`;
      return f.aboveMin === true ? `number > ${f.min}` : `number ≥ ${f.min}`;
    case 'duration':
      return f.positive === true ? 'duration > 0' : 'duration';
    case 'boolean':
      return 'boolean';
    case 'enum':
      return f.values.map(code).join(' \\| ');
    case 'other':
      return f.type;
  }
}

function defaultOf(f: F.FieldSpec): string {
  if (f.shown !== undefined) return f.shown;
  if (f.kind === 'other' || f.default === undefined) return '**required**';
  return code(f.kind === 'duration' ? formatDuration(f.default) : String(f.default));
}

function rows(s: Inline, out: string[]): void {
  for (const [key, f] of Object.entries(s.block)) {
    const nested = s.inline?.[key];
    if (nested === undefined || nested.keepParent === true) {
      out.push(`| ${code(s.prefix + key)} | ${typeOf(f)} | ${defaultOf(f)} | ${f.doc} |`);
    }
    if (nested !== undefined) rows(nested, out);
  }
}

/** The markdown that goes between the GENERATED markers (leading and trailing newline included). */
export function configReference(): string {
  const parts: string[] = [];
  for (const s of SECTIONS) {
    const out = [`### ${s.title}`, '', '| key | type | default | meaning |', '|---|---|---|---|'];
    rows(s, out);
    parts.push(out.join('\n'));
  }
  return `\n\n${parts.join('\n\n')}\n\n`;
}

export const BEGIN = '<!-- BEGIN GENERATED: config reference -->';
export const END = '<!-- END GENERATED: config reference -->';

/** `doc` with its generated region replaced by `configReference()`; throws when a marker is missing. */
export function withReference(doc: string): string {
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error(`the markers ${BEGIN} and ${END} are missing`);
  return doc.slice(0, a + BEGIN.length) + configReference() + doc.slice(b);
}
