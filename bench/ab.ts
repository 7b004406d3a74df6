/**
 * Before and after a hot-path change: the CPU a request costs outrigger in two builds, measured in
 * interleaved rounds on fresh processes pinned to the proxy core, so that the machine's drift hits
 * both alike. Per round and build: CPU µs per request at a fixed rate (1,000 req/s: each request
 * pays its own event-loop wake-ups, as in most sidecars) and at saturation (13 B, 50 connections).
 * Prints the medians and the median of the per-round differences (B − A).
 *
 *   npm run bench:ab -- --base HEAD~1            # A = that revision, built in a temporary worktree
 *   node .build-test/bench/ab.js --base-cli /path/to/dist/cli.js [--cli dist/cli.js]
 *     [--rounds 5] [--rate 1000] [--duration 5] [--path /small|/large]   (/large: 64 KiB responses)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, ROOT } from '../test/helpers/paths.js';
import { pinSelfToLoadCore, procCpuSeconds, runPaced, runWrk, runAutocannon, spread, stopAll } from './harness.js';
import { BENCH_HOST, startOutrigger } from './outrigger.js';
import { DEFAULT_LOAD, checkTarget } from './scenarios.js';
import { startRateUpstream, DEFAULT_UPSTREAM } from './targets.js';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    'base-cli': { type: 'string' },
    cli: { type: 'string', default: CLI },
    rounds: { type: 'string', default: '5' },
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '5' },
    path: { type: 'string', default: '/small' },
  },
  strict: true,
});

/** Builds `rev` of this repository into a temporary worktree; returns its dist/cli.js. */
function buildRevision(rev: string, dir: string): string {
  const tree = path.join(dir, 'tree');
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', tree, rev], { stdio: 'ignore' });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(tree, 'node_modules'));
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(tree, 'tsconfig.json')], {
    stdio: 'inherit',
  });
  return path.join(tree, 'dist', 'cli.js');
}

interface Sample {
  rateCpu: number;
  satCpu: number;
  rateP99: number;
}

async function measure(cli: string, upstreamPort: number, rate: number, durationS: number, urlPath: string): Promise<Sample> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-ab-'));
  try {
    const o = await startOutrigger(dir, upstreamPort, { cli });
    const pid = o.child.pid;
    await checkTarget({ port: o.port, pid, adminPort: o.adminPort, accessLog: o.accessLog, stop: () => o.child.stop() });
    const saturate = DEFAULT_LOAD === 'wrk' ? runWrk : runAutocannon;
    const load = { port: o.port, path: urlPath, host: BENCH_HOST, connections: 50, durationS: 1 };
    await saturate(load); // JIT warm-up
    const paced = { port: o.port, path: urlPath, host: BENCH_HOST, rps: rate, connections: 64 };
    await runPaced({ ...paced, durationS: 1 });
    let c0 = procCpuSeconds(pid) ?? Number.NaN;
    const p = await runPaced({ ...paced, durationS });
    let c1 = procCpuSeconds(pid) ?? Number.NaN;
    const rateCpu = ((c1 - c0) * 1e6) / p.ok;
    c0 = procCpuSeconds(pid) ?? Number.NaN;
    const r = await saturate({ ...load, durationS: Math.min(durationS, 4) });
    c1 = procCpuSeconds(pid) ?? Number.NaN;
    await o.child.stop();
    return { rateCpu, satCpu: ((c1 - c0) * 1e6) / r.ok, rateP99: p.p99 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  pinSelfToLoadCore();
  const rounds = Number(args.rounds);
  const rate = Number(args.rate);
  const durationS = Number(args.duration);
  if (args['base-cli'] === undefined && args.base === undefined) throw new Error('--base REV or --base-cli PATH is required');
  const work = mkdtempSync(path.join(os.tmpdir(), 'bench-ab-build-'));
  const upDir = mkdtempSync(path.join(os.tmpdir(), 'bench-ab-up-'));
  const got: Record<'A' | 'B', Sample[]> = { A: [], B: [] };
  const cli = { A: args['base-cli'] ?? '', B: args.cli ?? CLI };
  let upstream: Awaited<ReturnType<typeof startRateUpstream>> | null = null;
  try {
    if (cli.A === '') cli.A = buildRevision(args.base as string, work);
    upstream = await startRateUpstream(DEFAULT_UPSTREAM, upDir);
    for (let round = 0; round < rounds; round++) {
      for (const which of round % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const)) {
        const s = await measure(cli[which], upstream.port, rate, durationS, args.path ?? '/small');
        got[which].push(s);
        process.stderr.write(
          `round ${round + 1} ${which}: ${s.rateCpu.toFixed(1)} µs/req at ${rate}/s (p99 ${s.rateP99.toFixed(2)} ms), ${s.satCpu.toFixed(1)} µs/req at saturation\n`,
        );
      }
    }
  } finally {
    await upstream?.child.stop();
    rmSync(upDir, { recursive: true, force: true });
    if (args['base-cli'] === undefined) {
      try {
        execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', path.join(work, 'tree')], { stdio: 'ignore' });
      } catch {
        // the worktree was never made (a bad revision)
      }
    }
    rmSync(work, { recursive: true, force: true });
  }
  const med = (xs: number[]): number => spread(xs).median;
  const row = (name: string, pick: (s: Sample) => number): string => {
    const a = got.A.map(pick);
    const b = got.B.map(pick);
    const diffs = b.map((v, i) => v - (a[i] ?? Number.NaN));
    const better = diffs.filter((d) => d < 0).length;
    return `| ${name} | ${med(a).toFixed(1)} | ${med(b).toFixed(1)} | ${med(diffs) >= 0 ? '+' : ''}${med(diffs).toFixed(1)} (${((med(b) / med(a) - 1) * 100).toFixed(1)}%) | ${better} of ${diffs.length} |`;
  };
  process.stdout.write(
    [
      `A = ${cli.A}`,
      `B = ${cli.B}`,
      '',
      `| proxy CPU µs per request (median of ${rounds} rounds) | A | B | B − A, paired median | rounds B was cheaper |`,
      '|---|---:|---:|---:|---:|',
      row(`fixed rate ${rate} req/s, ${args.path === '/large' ? '64 KiB' : '13 B'}`, (s) => s.rateCpu),
      row(`saturation, ${args.path === '/large' ? '64 KiB' : '13 B'}`, (s) => s.satCpu),
      '',
    ].join('\n'),
  );
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`ab: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
