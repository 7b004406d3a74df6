/**
 * Retry storm: the upstream answers 100% 503 and outrigger's route retries on 503. Prints client
 * requests, upstream attempts and their ratio (the retry budget, default 20% + 10/s, should keep
 * it near 1.2 rather than 1 + attempts), and outrigger_upstream_retries_total.
 *
 *   node .build-test/bench/retry-storm.js [--duration S] [--connections N] [--attempts N] [--budget RATIO]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { httpGet, httpRequest, pinSelfToLoadCore, runAutocannon, stopAll } from './harness.js';
import { startOutrigger, scrapeCounter, BENCH_HOST } from './outrigger.js';
import { startUpstream } from './targets.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '20' },
    attempts: { type: 'string', default: '2' },
    budget: { type: 'string' },
  },
  strict: true,
});

async function main(): Promise<void> {
  pinSelfToLoadCore();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-retry-storm-'));
  try {
    const upstream = await startUpstream();
    const clusterExtra = args.budget === undefined ? [] : [`    retryBudget: { ratio: ${Number(args.budget)}, minPerSecond: 10 }`];
    const o = await startOutrigger(dir, upstream.port, {
      routeExtra: [`      retries: { attempts: ${Number(args.attempts)}, on: [503], backoff: { base: 1ms, max: 10ms } }`],
      clusterExtra,
    });
    await httpRequest('POST', `http://127.0.0.1:${upstream.port}/__upstream/reset`, null);
    const r = await runAutocannon({
      port: o.port,
      path: '/status/503',
      host: BENCH_HOST,
      connections: Number(args.connections),
      durationS: Number(args.duration),
    });
    // autocannon does not count the requests still in flight when it stops; let them finish and
    // take outrigger's own request counter as the exact denominator
    await new Promise((res) => setTimeout(res, 500));
    const proxied = await scrapeCounter(o.adminPort, 'outrigger_requests_total', { route: 'bench' });
    const stats = JSON.parse((await httpGet(`http://127.0.0.1:${upstream.port}/__upstream/stats`)).body) as {
      requests: Record<string, number>;
    };
    const attempts = stats.requests['/status/503'] ?? 0;
    const client = r.ok + r.non2xx;
    const retries = await scrapeCounter(o.adminPort, 'outrigger_upstream_retries_total', { cluster: 'bench' });
    const ratio = proxied > 0 ? attempts / proxied : Number.NaN;
    const perSecondSlack = 10 * Number(args.duration);
    const allowed = Math.floor(proxied * (args.budget === undefined ? 0.2 : Number(args.budget)) + perSecondSlack);
    process.stdout.write(
      [
        `retry storm: upstream 100% 503, route retries attempts=${args.attempts} on [503], retryBudget ${args.budget ?? 'default (0.2, minPerSecond 10)'}`,
        '',
        '| client requests (autocannon) | requests (outrigger_requests_total) | upstream attempts | attempts / request | outrigger_upstream_retries_total | budget allows about | client socket errors |',
        '|---:|---:|---:|---:|---:|---:|---:|',
        `| ${client} | ${proxied} | ${attempts} | ${ratio.toFixed(3)} | ${retries} | ${allowed} | ${r.errors} |`,
        '',
        `without a budget the ratio would be ${1 + Number(args.attempts)}; the budget allows ratio x requests + minPerSecond x duration (${perSecondSlack}) retries`,
        '',
      ].join('\n'),
    );
    await o.child.stop();
    await upstream.child.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main()
  .catch(async (err: unknown) => {
    process.stderr.write(`retry-storm: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
