/**
 * Per-request cost of the resilience config: outrigger with a route and cluster that have no
 * retries/breaker/budget-relevant settings ("none") vs the same table with retries, circuit
 * breaker, retry budget and outlier detection ("resilient"). Both are measured in interleaved
 * rounds on fresh processes: saturation with 13 B responses (the proxy core is saturated, so
 * 1/rps is its CPU time per request) and a fixed rate (latency).
 *
 *   node .build-test/bench/overhead.js [--rounds N] [--duration S] [--rate RPS] [--load wrk|autocannon]
 *     [--variants none,retries,breaker,outlier,resilient]   (default none,resilient)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pinSelfToLoadCore, procCpuSeconds, runAutocannon, runPaced, runWrk, spread, stopAll } from './harness.js';
import { BENCH_HOST, startOutrigger } from './outrigger.js';
import { DEFAULT_LOAD, checkTarget } from './scenarios.js';
import { startUpstream } from './targets.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    rate: { type: 'string', default: '2000' },
    load: { type: 'string', default: DEFAULT_LOAD },
    variants: { type: 'string', default: 'none,resilient' },
  },
  strict: true,
});

const RETRIES = '      retries: { attempts: 2, perTryTimeout: 1s, on: [connect-failure, reset, 502, 503, 504] }';
const BREAKER = '    circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, window: 10s, resetTimeout: 30s }';
const OUTLIER = '    outlierDetection: { consecutiveErrors: 5, ejectionTime: 30s, maxEjectionPercent: 50 }';

/** none = no retries block (the default connect-failure retry only), no breaker, no outlier detection. */
const VARIANTS = {
  none: { routeExtra: [] as string[], clusterExtra: [] as string[] },
  retries: { routeExtra: [RETRIES], clusterExtra: [] as string[] },
  breaker: { routeExtra: [] as string[], clusterExtra: [BREAKER] },
  outlier: { routeExtra: [] as string[], clusterExtra: [OUTLIER] },
  resilient: {
    routeExtra: ['      timeout: 15s', '      retries: { attempts: 2, perTryTimeout: 1s, on: [connect-failure, reset, 502, 503, 504] }'],
    clusterExtra: [
      '    outlierDetection: { consecutiveErrors: 5, ejectionTime: 30s, maxEjectionPercent: 50 }',
      '    circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, window: 10s, resetTimeout: 30s }',
      '    retryBudget: { ratio: 0.2, minPerSecond: 10 }',
    ],
  },
} as const;
type Variant = keyof typeof VARIANTS;
const ALL_VARIANTS = Object.keys(VARIANTS) as Variant[];

async function main(): Promise<void> {
  pinSelfToLoadCore();
  const rounds = Number(args.rounds);
  const durationS = Number(args.duration);
  const rate = Number(args.rate);
  const saturate = args.load === 'autocannon' ? runAutocannon : runWrk;
  const upstream = await startUpstream();
  const variants = (args.variants ?? '').split(',').map((v) => v.trim()) as Variant[];
  for (const v of variants) if (!ALL_VARIANTS.includes(v)) throw new Error(`unknown variant ${v}; known: ${ALL_VARIANTS.join(', ')}`);
  if (!variants.includes('none')) variants.unshift('none');
  type Acc = { rps: number[]; cpu: number[]; p50: number[]; p99: number[]; rateP50: number[]; rateP99: number[] };
  const results = {} as Record<Variant, Acc>;
  for (const v of variants) results[v] = { rps: [], cpu: [], p50: [], p99: [], rateP50: [], rateP99: [] };
  for (let round = 0; round < rounds; round++) {
    // alternate the order so that neither config always runs first
    const order: Variant[] = round % 2 === 0 ? [...variants] : [...variants].reverse();
    for (const v of order) {
      const dir = mkdtempSync(path.join(os.tmpdir(), `bench-overhead-${v}-`));
      try {
        const o = await startOutrigger(dir, upstream.port, VARIANTS[v]);
        const t = { port: o.port, pid: o.child.pid, adminPort: o.adminPort, accessLog: o.accessLog, stop: () => o.child.stop() };
        await checkTarget(t);
        const load = { port: o.port, path: '/small', host: BENCH_HOST, connections: 50, durationS: 1 };
        await saturate(load);
        const cpu0 = procCpuSeconds(o.child.pid);
        const r = await saturate({ ...load, durationS });
        const cpu1 = procCpuSeconds(o.child.pid);
        if (cpu0 !== null && cpu1 !== null && r.ok > 0) results[v].cpu.push(((cpu1 - cpu0) * 1e6) / r.ok);
        const p = await runPaced({
          port: o.port,
          path: '/small',
          host: BENCH_HOST,
          rps: rate,
          durationS: Math.min(5, durationS),
          connections: 64,
        });
        results[v].rps.push(r.rps);
        results[v].p50.push(r.p50);
        results[v].p99.push(r.p99);
        results[v].rateP50.push(p.p50);
        results[v].rateP99.push(p.p99);
        process.stderr.write(
          `round ${round + 1} ${v}: ${Math.round(r.rps)} req/s p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)}; at ${rate}/s p50 ${p.p50.toFixed(3)} p99 ${p.p99.toFixed(3)}${r.errors + r.non2xx + p.errors + p.non2xx > 0 ? ' (with errors)' : ''}\n`,
        );
        await o.child.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  await upstream.child.stop();
  const m = (xs: number[]): number => spread(xs).median;
  const none = results.none;
  const fmtRow = (v: Variant): string => {
    const r = results[v];
    const s = spread(r.rps);
    const cpu = m(r.cpu);
    const added = v === 'none' ? '–' : `${(cpu - m(none.cpu)).toFixed(1)} µs (${((cpu / m(none.cpu) - 1) * 100).toFixed(1)}%)`;
    return `| ${v} | ${Math.round(s.median)} [${Math.round(s.min)}–${Math.round(s.max)}] | ${cpu.toFixed(1)} | ${added} | ${m(r.p50).toFixed(2)} / ${m(r.p99).toFixed(2)} | ${m(r.rateP50).toFixed(3)} / ${m(r.rateP99).toFixed(3)} |`;
  };
  process.stdout.write(
    [
      `per-request overhead of resilience config vs none (${rounds} rounds, ${durationS} s saturation by ${args.load}; fixed rate ${rate}/s; medians)`,
      '',
      '| config | 13 B req/s [min–max] | proxy CPU µs/request | added CPU per request | saturation p50 / p99 ms | fixed-rate p50 / p99 ms |',
      '|---|---:|---:|---:|---:|---:|',
      ...variants.map(fmtRow),
      '',
      "CPU per request is the proxy process's user+system time over the saturation run divided by its responses.",
      '',
    ].join('\n'),
  );
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`overhead: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
