/**
 * Turns benchmark samples into the result files: the summary table (medians and ratios to
 * direct), outrigger's ratios to each peer, and a detail table with min–max, as Markdown (for
 * README and the terminal) plus the raw JSON.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spread } from './harness.js';
import type { Spread } from './harness.js';

/** One measurement: a scenario on a target in one round. */
export interface Sample {
  readonly scenario: string;
  readonly target: string;
  readonly round: number;
  /** Metric name → value (units in the metric's name: _ms, _mbps, _mib, rps). */
  readonly metrics: Readonly<Record<string, number>>;
  /** Cross-checks and warnings (e.g. outrigger's metrics count vs responses). */
  readonly notes: readonly string[];
}

/** A column of the summary: one metric of one scenario. */
interface Column {
  readonly scenario: string;
  readonly metric: string;
  readonly title: string;
  /** 'higher' = bigger is better (ratios as target/direct); 'lower' = smaller is better. */
  readonly better: 'higher' | 'lower';
  /** Show the ratio to direct in the summary. */
  readonly vsDirect: boolean;
  readonly digits: number;
}

const COLUMNS: readonly Column[] = [
  { scenario: 'small', metric: 'rps', title: '13 B req/s', better: 'higher', vsDirect: true, digits: 0 },
  { scenario: 'small', metric: 'p50_ms', title: '13 B p50 ms', better: 'lower', vsDirect: false, digits: 2 },
  { scenario: 'small', metric: 'p99_ms', title: '13 B p99 ms', better: 'lower', vsDirect: false, digits: 2 },
  { scenario: 'small', metric: 'cpu_us_per_req', title: '13 B proxy CPU µs/req', better: 'lower', vsDirect: false, digits: 1 },
  { scenario: 'large', metric: 'rps', title: '64 KiB req/s', better: 'higher', vsDirect: true, digits: 0 },
  { scenario: 'large', metric: 'p50_ms', title: '64 KiB p50 ms', better: 'lower', vsDirect: false, digits: 2 },
  { scenario: 'large', metric: 'p99_ms', title: '64 KiB p99 ms', better: 'lower', vsDirect: false, digits: 2 },
  { scenario: 'large', metric: 'cpu_us_per_req', title: '64 KiB proxy CPU µs/req', better: 'lower', vsDirect: false, digits: 1 },
  { scenario: 'rate', metric: 'added_p50_ms', title: '{rate} req/s: added p50 ms', better: 'lower', vsDirect: false, digits: 3 },
  { scenario: 'rate', metric: 'added_p99_ms', title: '{rate} req/s: added p99 ms', better: 'lower', vsDirect: false, digits: 3 },
  { scenario: 'rate-low', metric: 'added_p50_ms', title: '{rate-low} req/s: added p50 ms', better: 'lower', vsDirect: false, digits: 3 },
  { scenario: 'rate-low', metric: 'added_p99_ms', title: '{rate-low} req/s: added p99 ms', better: 'lower', vsDirect: false, digits: 3 },
  { scenario: 'download', metric: 'mbps', title: '1 GiB down MB/s', better: 'higher', vsDirect: true, digits: 0 },
  { scenario: 'download', metric: 'peak_rss_mib', title: 'down peak RSS MiB', better: 'lower', vsDirect: false, digits: 1 },
  { scenario: 'upload', metric: 'mbps', title: '256 MiB up MB/s', better: 'higher', vsDirect: true, digits: 0 },
  { scenario: 'upload', metric: 'peak_rss_mib', title: 'up peak RSS MiB', better: 'lower', vsDirect: false, digits: 1 },
  { scenario: 'idle', metric: 'rss_mib', title: '1k idle conns RSS MiB', better: 'lower', vsDirect: false, digits: 1 },
  { scenario: 'idle', metric: 'added_rss_mib', title: '1k idle +RSS MiB', better: 'lower', vsDirect: false, digits: 1 },
];

/** Median/min/max of every (scenario, target, metric). */
export type Summary = Record<string, Record<string, Record<string, Spread>>>;

/** Groups samples into spreads. */
export function summarize(samples: readonly Sample[]): Summary {
  const acc: Record<string, Record<string, Record<string, number[]>>> = {};
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    if (s === undefined) continue;
    const byTarget = (acc[s.scenario] ??= {});
    const byMetric = (byTarget[s.target] ??= {});
    for (const [k, v] of Object.entries(s.metrics)) {
      if (Number.isFinite(v)) (byMetric[k] ??= []).push(v);
    }
  }
  const out: Summary = {};
  for (const [scenario, byTarget] of Object.entries(acc)) {
    const t: Record<string, Record<string, Spread>> = (out[scenario] = {});
    for (const [target, byMetric] of Object.entries(byTarget)) {
      const m: Record<string, Spread> = (t[target] = {});
      for (const [metric, values] of Object.entries(byMetric)) m[metric] = spread(values);
    }
  }
  return out;
}

function fmt(v: number, digits: number): string {
  if (!Number.isFinite(v)) return '–';
  return digits === 0 ? Math.round(v).toLocaleString('en-US') : v.toFixed(digits);
}

/** The target fell more than 5% short of a fixed rate (its latencies are then queueing). */
function overloaded(summary: Summary, scenario: string, target: string, rates: Readonly<Record<string, number>>): boolean {
  const rps = rates[scenario];
  if (rps === undefined) return false;
  const a = get(summary, scenario, target, 'achieved_rps');
  return a !== null && a.median < rps * 0.95;
}

function get(summary: Summary, scenario: string, target: string, metric: string): Spread | null {
  return summary[scenario]?.[target]?.[metric] ?? null;
}

/** Facts printed above the tables. */
export interface ReportHeader {
  readonly date: string;
  readonly machine: Readonly<Record<string, string | number>>;
  readonly versions: Readonly<Record<string, string>>;
  readonly settings: Readonly<Record<string, string | number | boolean>>;
  readonly loadTool: string;
}

/** Renders the Markdown report (summary, outrigger vs peers, details, notes). */
export function renderMarkdown(
  header: ReportHeader,
  samples: readonly Sample[],
  targets: readonly string[],
  failures: readonly string[],
): string {
  const summary = summarize(samples);
  const rates: Record<string, number> = {
    rate: Number(header.settings['rateRps'] ?? 5000),
    'rate-low': Number(header.settings['rateLowRps'] ?? 1000),
  };
  // with `--load both` the saturation scenarios are labelled small/wrk, small/autocannon...
  const expanded: Column[] = [];
  for (const c of COLUMNS) {
    const labels = Object.keys(summary).filter((l) => l === c.scenario || l.startsWith(`${c.scenario}/`));
    // fixed-rate titles name their rate: {rate} and {rate-low} are the settings'
    const title = c.title.replace(/\{([a-z-]+)\}/, (_m, k: string) => fmt(rates[k] ?? Number.NaN, 0));
    for (const l of labels)
      expanded.push(l === c.scenario ? { ...c, title } : { ...c, scenario: l, title: `${title} (${l.slice(c.scenario.length + 1)})` });
  }
  const present = expanded.filter((c) => targets.some((t) => get(summary, c.scenario, t, c.metric) !== null));
  const lines: string[] = [];
  lines.push(`# outrigger benchmark (${header.date})`);
  lines.push('');
  lines.push(
    `Machine: ${header.machine['cpu']}, ${header.machine['cores']} cores, Node ${header.machine['node']}, ${header.machine['os']}; pinning: ${header.machine['pinning']}; load average (1/5/15 min) ${header.machine['loadavg_start']} at start, ${header.machine['loadavg_end']} at end (anything else running skews the numbers).`,
  );
  lines.push(
    `Versions: ${Object.entries(header.versions)
      .map(([k, v]) => `${k} = ${v}`)
      .join('; ')}.`,
  );
  lines.push(
    `Settings: ${Object.entries(header.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}; saturation load: ${header.loadTool}.`,
  );
  lines.push('');
  lines.push('## Summary (medians over rounds; × = ratio to direct)');
  lines.push('');
  // one row per metric, one column per target: 6 columns stay readable, 16 would not
  lines.push(`| metric | ${targets.join(' | ')} |`);
  lines.push(`|---|${targets.map(() => '---:').join('|')}|`);
  for (const c of present) {
    const cells = targets.map((t) => {
      const s = get(summary, c.scenario, t, c.metric);
      if (s === null) return '–';
      let cell = fmt(s.median, c.digits);
      if (c.vsDirect && t !== 'direct') {
        const d = get(summary, c.scenario, 'direct', c.metric);
        if (d !== null && d.median > 0) cell += ` (${(s.median / d.median).toFixed(2)}×)`;
      }
      if (overloaded(summary, c.scenario, t, rates)) cell += ' ‡';
      return cell;
    });
    lines.push(`| ${c.title} | ${cells.join(' | ')} |`);
  }
  for (const [scenario, rps] of Object.entries(rates)) {
    const short = targets.filter((t) => overloaded(summary, scenario, t, rates));
    if (short.length === 0) continue;
    lines.push('');
    lines.push(
      `‡ could not sustain ${rps} req/s (achieved ${short.map((t) => `${t} ${fmt(get(summary, scenario, t, 'achieved_rps')?.median ?? Number.NaN, 0)}`).join(', ')}): its latency is queueing, not proxy overhead.`,
    );
  }
  const peers = targets.filter((t) => t !== 'direct' && t !== 'outrigger');
  if (targets.includes('outrigger') && peers.length > 0) {
    lines.push('');
    lines.push('## outrigger ÷ peer (on medians; added latency and added RSS as outrigger − peer)');
    lines.push('');
    lines.push(`| metric | ${peers.map((p) => `vs ${p}`).join(' | ')} |`);
    lines.push(`|---|${peers.map(() => '---:').join('|')}|`);
    for (const c of present) {
      const cells = peers.map((p) => {
        const o = get(summary, c.scenario, 'outrigger', c.metric);
        const q = get(summary, c.scenario, p, c.metric);
        if (o === null || q === null) return '–';
        if (overloaded(summary, c.scenario, 'outrigger', rates) || overloaded(summary, c.scenario, p, rates)) return 'n/a ‡';
        // added latencies are differences near zero: a ratio of them is noise, a difference is not
        if (c.metric.startsWith('added_')) {
          const unit = c.metric.endsWith('_ms') ? 'ms' : 'MiB';
          return `${o.median - q.median >= 0 ? '+' : ''}${(o.median - q.median).toFixed(unit === 'ms' ? 3 : 1)} ${unit}`;
        }
        if (q.median === 0) return '–';
        return `${(o.median / q.median).toFixed(2)}×`;
      });
      lines.push(`| ${c.title} (${c.better} is better) | ${cells.join(' | ')} |`);
    }
  }
  lines.push('');
  lines.push('## Details (median [min–max] over rounds)');
  for (const scenario of Object.keys(summary)) {
    const byTarget = summary[scenario] ?? {};
    const metrics = [...new Set(Object.values(byTarget).flatMap((m) => Object.keys(m)))];
    lines.push('');
    lines.push(`### ${scenario}`);
    lines.push('');
    lines.push(`| target | ${metrics.join(' | ')} |`);
    lines.push(`|---|${metrics.map(() => '---:').join('|')}|`);
    for (const t of targets) {
      const m = byTarget[t];
      if (m === undefined) continue;
      const cells = metrics.map((k) => {
        const s = m[k];
        if (s === undefined) return '–';
        const d = Math.abs(s.median) >= 100 ? 0 : Math.abs(s.median) >= 10 ? 1 : 3;
        return s.n > 1 ? `${fmt(s.median, d)} [${fmt(s.min, d)}–${fmt(s.max, d)}]` : fmt(s.median, d);
      });
      lines.push(`| ${t} | ${cells.join(' | ')} |`);
    }
  }
  const notes = [...new Set(samples.flatMap((s) => s.notes.map((n) => `${s.scenario}/${s.target}: ${n}`)))];
  if (notes.length > 0 || failures.length > 0) {
    lines.push('');
    lines.push('## Notes and failures');
    lines.push('');
    for (const n of failures) lines.push(`- FAILED ${n}`);
    for (const n of notes) lines.push(`- ${n}`);
  }
  lines.push('');
  return lines.join('\n');
}

/** Writes DIR/NAME.json and DIR/NAME.md (NAME is `latest` for a full run). */
export function writeResults(
  dir: string,
  name: string,
  header: ReportHeader,
  samples: readonly Sample[],
  targets: readonly string[],
  failures: readonly string[],
): { json: string; md: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const markdown = renderMarkdown(header, samples, targets, failures);
  const json = path.join(dir, `${name}.json`);
  const md = path.join(dir, `${name}.md`);
  writeFileSync(json, JSON.stringify({ ...header, targets, failures, summary: summarize(samples), samples }, null, 2) + '\n');
  writeFileSync(md, markdown);
  return { json, md, markdown };
}
