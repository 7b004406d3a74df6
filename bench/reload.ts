/**
 * Reload under load: autocannon through outrigger for D seconds without config changes, then D
 * seconds while the config file is rewritten every 500 ms, then D seconds without again (the
 * baseline is the mean of the two quiet runs, so JIT warm-up or drift does not favour either side) (alternating a request header value on
 * the benchmarked route, so every write is a real change). Prints errors (non-2xx + socket
 * errors; must be 0), throughput with reloads vs without, and outrigger_config_reloads_total.
 * Exits 1 when any request failed.
 *
 *   node .build-test/bench/reload.js [--duration S] [--connections N] [--interval MS] [--atomic]
 *
 * Default: the file is rewritten in place (truncate + write, the harder case for a watcher);
 * `--atomic` writes a temp file and renames it over the config, as editors and tools do.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pinSelfToLoadCore, runAutocannon, stopAll } from './harness.js';
import type { SaturationResult } from './harness.js';
import { BENCH_HOST, scrapeCounter, startOutrigger } from './outrigger.js';
import { startUpstream } from './targets.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '20' },
    interval: { type: 'string', default: '500' },
    atomic: { type: 'boolean', default: false },
  },
  strict: true,
});

function row(name: string, r: SaturationResult, reloads: string): string {
  return `| ${name} | ${Math.round(r.rps)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.non2xx} | ${r.errors} | ${reloads} |`;
}

async function main(): Promise<void> {
  pinSelfToLoadCore();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-reload-'));
  try {
    const upstream = await startUpstream();
    const o = await startOutrigger(dir, upstream.port);
    const durationS = Number(args.duration);
    const load = { port: o.port, path: '/small', host: BENCH_HOST, connections: Number(args.connections), durationS };
    await runAutocannon({ ...load, durationS: 3 });
    const base1 = await runAutocannon(load);

    const original = readFileSync(o.configFile, 'utf8');
    if (!original.includes('x-env: bench')) throw new Error('generated config lacks the x-env header this test toggles');
    let writes = 0;
    const timer = setInterval(() => {
      writes++;
      const text = original.replace('x-env: bench', `x-env: bench-${writes % 2}`);
      if (args.atomic) {
        const tmp = `${o.configFile}.tmp`;
        writeFileSync(tmp, text);
        renameSync(tmp, o.configFile);
      } else {
        writeFileSync(o.configFile, text);
      }
    }, Number(args.interval));
    const before = await scrapeCounter(o.adminPort, 'outrigger_config_reloads_total', { result: 'success' });
    const beforeFail = await scrapeCounter(o.adminPort, 'outrigger_config_reloads_total', { result: 'failure' });
    let withReloads: SaturationResult;
    try {
      withReloads = await runAutocannon(load);
    } finally {
      clearInterval(timer);
    }
    // let the last write be picked up (docs/configuration.md allows 2 s)
    await new Promise((r) => setTimeout(r, 2500));
    const base2 = await runAutocannon(load);
    const baseRps = (base1.rps + base2.rps) / 2;
    const ok = (await scrapeCounter(o.adminPort, 'outrigger_config_reloads_total', { result: 'success' })) - before;
    const failed = (await scrapeCounter(o.adminPort, 'outrigger_config_reloads_total', { result: 'failure' })) - beforeFail;
    const errors = withReloads.non2xx + withReloads.errors;
    process.stdout.write(
      [
        `reload under load: ${durationS} s each, ${args.connections} connections, config rewritten every ${args.interval} ms (${args.atomic ? 'atomic rename' : 'in place'})`,
        '',
        '| run | req/s | p50 ms | p99 ms | non-2xx | socket errors | reloads (ok/failed) |',
        '|---|---:|---:|---:|---:|---:|---|',
        row('no reloads (before)', base1, '–'),
        row('with reloads', withReloads, `${ok}/${failed} of ${writes} writes`),
        row('no reloads (after)', base2, '–'),
        '',
        `errors during reloads: ${errors} (must be 0); throughput with reloads / mean without: ${(withReloads.rps / baseRps).toFixed(3)}`,
        '',
      ].join('\n'),
    );
    if (errors > 0 || base1.non2xx + base1.errors + base2.non2xx + base2.errors > 0) process.exitCode = 1;
    if (ok === 0) {
      process.stderr.write('reload: outrigger_config_reloads_total{result="success"} did not move: reloads were not applied\n');
      process.exitCode = 1;
    }
    await o.child.stop();
    await upstream.child.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`reload: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
