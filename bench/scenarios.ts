/**
 * The scenarios of the comparison, each a function that measures one already-started target:
 * saturation with 13 B and 64 KiB responses, a fixed 5,000 req/s, a bulk download and upload
 * (throughput and the proxy's peak RSS), and 1,000 idle keep-alive connections (RSS).
 * Metric names carry their unit; `run.ts` derives the "added over direct" latencies.
 */
import { readFileSync } from 'node:fs';
import {
  HAVE_WRK,
  RssSampler,
  downloadOnce,
  httpGet,
  openIdleConnections,
  procCpuSeconds,
  procMemory,
  runAutocannon,
  runPaced,
  runWrk,
  sleep,
  uploadOnce,
} from './harness.js';
import type { SaturationResult } from './harness.js';
import { BENCH_HOST, scrapeCounter } from './outrigger.js';
import type { RunningTarget } from './targets.js';

/** Scenario names accepted by `--only`. */
export const SCENARIOS = ['small', 'large', 'rate', 'rate-low', 'download', 'upload', 'idle'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Which generator drives the saturation scenarios. */
export type LoadTool = 'wrk' | 'autocannon';

/** Durations and sizes of one benchmark run. */
export interface Settings {
  readonly rounds: number;
  readonly saturationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly rateRps: number;
  /** the second fixed rate: one every Node proxy sustains on a 2-core machine, so its added latency is overhead, not queueing */
  readonly rateLowRps: number;
  readonly rateS: number;
  readonly downloadBytes: number;
  readonly uploadBytes: number;
  readonly idleConnections: number;
}

/** 3 rounds of 7 targets must fit in 10 minutes on 2 cores, build included: 3 s runs + 1 s warm-up. */
export const FULL: Settings = {
  rounds: 3,
  saturationS: 3,
  warmupS: 1,
  connections: 50,
  rateRps: 5000,
  rateLowRps: 1000,
  rateS: 3,
  downloadBytes: 1024 ** 3,
  uploadBytes: 256 * 1024 ** 2,
  idleConnections: 1000,
};
export const QUICK: Settings = {
  rounds: 1,
  saturationS: 2,
  warmupS: 1,
  connections: 50,
  rateRps: 5000,
  rateLowRps: 1000,
  rateS: 2,
  downloadBytes: 256 * 1024 ** 2,
  uploadBytes: 64 * 1024 ** 2,
  idleConnections: 1000,
};

/** Default saturation tool: wrk when installed (µs latency resolution, cheaper per request). */
export const DEFAULT_LOAD: LoadTool = HAVE_WRK ? 'wrk' : 'autocannon';

/** What one scenario run produced. */
export interface ScenarioOutcome {
  readonly metrics: Record<string, number>;
  readonly notes: string[];
}

const MIB = 1024 * 1024;

/** GET /small through the target must answer 200 "Hello, World!" before anything is measured. */
export async function checkTarget(t: RunningTarget): Promise<void> {
  const r = await httpGet(`http://127.0.0.1:${t.port}/small`, 3000, { host: BENCH_HOST });
  if (r.status !== 200 || r.body !== 'Hello, World!')
    throw new Error(`GET /small through it answered ${r.status} ${JSON.stringify(r.body.slice(0, 200))}`);
}

function saturate(tool: LoadTool, port: number, urlPath: string, connections: number, durationS: number): Promise<SaturationResult> {
  const o = { port, path: urlPath, host: BENCH_HOST, connections, durationS };
  return tool === 'wrk' ? runWrk(o) : runAutocannon(o);
}

/** Lines in a log file; with `marker`, only the lines containing it. */
function countLines(file: string, marker: string | null = null): number {
  try {
    const buf = readFileSync(file);
    if (marker !== null) return buf.toString('latin1').split(marker).length - 1;
    let n = 0;
    for (let i = 0; i < buf.length; i++) if (buf[i] === 10) n++;
    return n;
  } catch {
    return -1;
  }
}

/**
 * For outrigger: its request counter and access log must have seen at least the responses the
 * client counted (proves metrics and the access log were on and the route matched).
 */
async function crossCheck(t: RunningTarget, ok: number, notes: string[], metrics: Record<string, number>): Promise<void> {
  if (t.adminPort !== null) {
    try {
      const counted = await scrapeCounter(t.adminPort, 'outrigger_requests_total', { route: 'bench' });
      metrics['metrics_requests'] = counted;
      if (counted < ok) notes.push(`outrigger_requests_total{route="bench"} = ${counted} < ${ok} responses seen by the client`);
    } catch (err) {
      notes.push(`could not scrape /metrics: ${(err as Error).message}`);
    }
  }
  if (t.accessLog !== null) {
    // outrigger writes access lines in batches, at least once a second: wait for the last one
    if (t.adminPort !== null) await sleep(1100);
    // outrigger's stdout also carries its operational log
    const lines = countLines(t.accessLog, t.adminPort !== null ? '"msg":"access"}' : null);
    metrics['access_log_lines'] = lines;
    const counted = metrics['metrics_requests'];
    // both count every request since the start (warm-up included); the peers' logs, the same
    if (counted !== undefined && lines !== counted) notes.push(`access log has ${lines} lines, outrigger_requests_total says ${counted}`);
    else if (lines < ok) notes.push(`access log has ${lines} lines < ${ok} responses`);
  }
}

function errorNotes(r: { non2xx: number; errors: number }, notes: string[]): void {
  if (r.non2xx > 0) notes.push(`${r.non2xx} non-2xx responses`);
  if (r.errors > 0) notes.push(`${r.errors} socket errors/timeouts`);
}

/** Runs one scenario against a started (fresh) target. */
export async function runScenario(name: ScenarioName, t: RunningTarget, s: Settings, tool: LoadTool): Promise<ScenarioOutcome> {
  const metrics: Record<string, number> = {};
  const notes: string[] = [];
  switch (name) {
    case 'small':
    case 'large': {
      const urlPath = name === 'small' ? '/small' : '/large';
      await saturate(tool, t.port, urlPath, s.connections, s.warmupS);
      const sampler = t.pid === null ? null : new RssSampler(t.pid);
      const cpu0 = t.pid === null ? null : procCpuSeconds(t.pid);
      const r = await saturate(tool, t.port, urlPath, s.connections, s.saturationS);
      const cpu1 = t.pid === null ? null : procCpuSeconds(t.pid);
      const mem = sampler?.stop();
      if (cpu0 !== null && cpu1 !== null && r.ok > 0) metrics['cpu_us_per_req'] = ((cpu1 - cpu0) * 1e6) / r.ok;
      metrics['rps'] = r.rps;
      metrics['p50_ms'] = r.p50;
      metrics['p99_ms'] = r.p99;
      metrics['errors'] = r.errors + r.non2xx;
      if (mem !== undefined) metrics['peak_rss_mib'] = Math.max(mem.hwm, mem.peakSampled) / MIB;
      errorNotes(r, notes);
      await crossCheck(t, r.ok, notes, metrics);
      break;
    }
    case 'rate':
    case 'rate-low': {
      const rps = name === 'rate' ? s.rateRps : s.rateLowRps;
      const o = { port: t.port, path: '/small', host: BENCH_HOST, rps, connections: 64 };
      // A fresh Node proxy needs thousands of requests before its JIT settles; at a fixed rate
      // the cold start alone builds a queue that lasts seconds. Saturate first, then pace.
      await saturate(tool, t.port, '/small', s.connections, s.warmupS);
      await runPaced({ ...o, durationS: s.warmupS });
      const r = await runPaced({ ...o, durationS: s.rateS });
      metrics['achieved_rps'] = r.achievedRps;
      metrics['p50_ms'] = r.p50;
      metrics['p99_ms'] = r.p99;
      metrics['max_ms'] = r.max;
      metrics['errors'] = r.errors + r.non2xx;
      if (r.unsent > 0) metrics['unsent'] = r.unsent;
      if (r.achievedRps < rps * 0.95)
        notes.push(`achieved only ${Math.round(r.achievedRps)} of ${rps} req/s${r.unsent > 0 ? ' (stopped once 0.5 s behind)' : ''}`);
      errorNotes(r, notes);
      break;
    }
    case 'download':
    case 'upload': {
      const fn = name === 'download' ? downloadOnce : uploadOnce;
      const timeoutMs = 120_000;
      // a short transfer first, so that the measured one does not include JIT warm-up
      await fn({ port: t.port, host: BENCH_HOST, bytes: 16 * MIB, timeoutMs });
      const sampler = t.pid === null ? null : new RssSampler(t.pid, 50);
      const cpu0 = t.pid === null ? null : procCpuSeconds(t.pid);
      const r = await fn({ port: t.port, host: BENCH_HOST, bytes: name === 'download' ? s.downloadBytes : s.uploadBytes, timeoutMs });
      const cpu1 = t.pid === null ? null : procCpuSeconds(t.pid);
      const mem = sampler?.stop();
      if (cpu0 !== null && cpu1 !== null && r.bytes > 0) metrics['cpu_s_per_gb'] = (cpu1 - cpu0) / (r.bytes / 1e9);
      const expected = name === 'download' ? s.downloadBytes : s.uploadBytes;
      if (r.status !== 200 || r.bytes !== expected) {
        notes.push(`status ${r.status}, ${r.bytes} of ${expected} bytes`);
        metrics['errors'] = 1;
        break;
      }
      metrics['mbps'] = r.mbps;
      if (mem !== undefined) {
        metrics['peak_rss_mib'] = Math.max(mem.hwm, mem.peakSampled) / MIB;
        metrics['vmhwm_mib'] = mem.hwm / MIB;
      }
      break;
    }
    case 'idle': {
      const before = t.pid === null ? null : procMemory(t.pid);
      const idle = await openIdleConnections({
        port: t.port,
        host: BENCH_HOST,
        path: '/small',
        count: s.idleConnections,
        timeoutMs: 10_000,
      });
      // let the proxy settle (timers, pools) before reading RSS
      await sleep(1000);
      const after = t.pid === null ? null : procMemory(t.pid);
      idle.close();
      metrics['opened'] = idle.opened;
      if (idle.failed > 0) notes.push(`${idle.failed} of ${s.idleConnections} connections failed`);
      if (before !== null && after !== null) {
        metrics['rss_mib'] = after.rss / MIB;
        metrics['added_rss_mib'] = (after.rss - before.rss) / MIB;
      }
      break;
    }
    default: {
      const never: never = name;
      throw new Error(`unknown scenario ${String(never)}`);
    }
  }
  return { metrics, notes };
}
