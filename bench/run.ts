/**
 * `npm run bench`: the whole comparison in one go. Starts the upstream once, then for each round,
 * each scenario and each target (order rotated per round, so no target always runs first or
 * last) starts a fresh proxy process, measures, stops it. Prints one summary table and writes
 * bench/results/latest.{json,md}.
 *
 *   --quick              1 round, short durations, smaller transfers (writes partial.*)
 *   --only a,b           scenarios: small, large, rate, rate-low, download, upload, idle
 *   --proxies a,b        targets besides direct: outrigger, http-proxy, floor, fast-proxy, fastify, nginx, haproxy
 *   --rounds N           rounds (default 3)
 *   --duration S         seconds per saturation run (default 4)
 *   --rate N             requests/s of the fixed-rate scenario (default 5000)
 *   --rate-low N         requests/s of the second fixed rate, one this machine sustains (default 1000)
 *   --load wrk|autocannon|both   saturation load generator (default wrk when installed)
 *   --upstream nginx|node        upstream of the request-rate scenarios (default nginx when installed)
 *   --budget S           stop starting new runs after S seconds (default 540: npm run bench, build
 *                        included, stays under 10 minutes); skipped runs are listed in the report
 *   --out NAME           result file basename (default latest for a full run, else partial)
 *
 * Upstreams: download/upload always go to the Node upstream (bench/upstream.ts: any size, byte
 * counts); 13 B, 64 KiB, fixed-rate and idle go to nginx when installed (bench/peers/
 * nginx-upstream.ts), because the upstream shares the load core with the client and nginx's
 * lower CPU cost per request keeps the proxy the bottleneck.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../test/helpers/paths.js';
import { HAVE_WRK, PINNING, machineInfo, pinSelfToLoadCore, stopAll, which } from './harness.js';
import { writeResults } from './report.js';
import type { Sample } from './report.js';
import { DEFAULT_LOAD, FULL, QUICK, SCENARIOS, checkTarget, runScenario } from './scenarios.js';
import type { LoadTool, ScenarioName, Settings } from './scenarios.js';
import { DEFAULT_UPSTREAM, allTargets, startRateUpstream, startUpstream } from './targets.js';
import type { Target, UpstreamKind } from './targets.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    proxies: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    rate: { type: 'string' },
    'rate-low': { type: 'string' },
    load: { type: 'string' },
    out: { type: 'string' },
    budget: { type: 'string', default: '540' },
    upstream: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(
    'usage: node .build-test/bench/run.js [--quick] [--only small,large,rate,rate-low,download,upload,idle] [--proxies outrigger,http-proxy,floor,fast-proxy,fastify,nginx,haproxy] [--rounds N] [--duration S] [--rate N] [--rate-low N] [--load wrk|autocannon|both] [--upstream nginx|node] [--budget S] [--out NAME]\n',
  );
  process.exit(0);
}

function list(value: string | undefined): string[] | null {
  return value === undefined
    ? null
    : value
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '');
}

const base: Settings = args.quick ? QUICK : FULL;
const settings: Settings = {
  ...base,
  rounds: args.rounds !== undefined ? Number(args.rounds) : base.rounds,
  saturationS: args.duration !== undefined ? Number(args.duration) : base.saturationS,
  rateRps: args.rate !== undefined ? Number(args.rate) : base.rateRps,
  rateLowRps: args['rate-low'] !== undefined ? Number(args['rate-low']) : base.rateLowRps,
};
if (!(settings.rounds >= 1) || !(settings.saturationS > 0) || !(settings.rateRps > 0) || !(settings.rateLowRps > 0))
  throw new Error('--rounds, --duration, --rate and --rate-low must be positive numbers');

const onlyList = list(args.only);
for (const s of onlyList ?? [])
  if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}; known: ${SCENARIOS.join(', ')}`);
const scenarios: ScenarioName[] = SCENARIOS.filter((s) => onlyList === null || onlyList.includes(s));

const known = allTargets();
const proxyList = list(args.proxies);
for (const p of proxyList ?? [])
  if (!known.some((t) => t.name === p)) throw new Error(`unknown proxy ${p}; known: ${known.map((t) => t.name).join(', ')}`);
const skipped: string[] = [];
const targets: Target[] = known.filter((t) => {
  if (t.name !== 'direct' && proxyList !== null && !proxyList.includes(t.name)) return false;
  if (t.unavailable !== null) {
    skipped.push(`${t.name}: ${t.unavailable}`);
    return false;
  }
  return true;
});

let tools: LoadTool[];
if (args.load === undefined) tools = [DEFAULT_LOAD];
else if (args.load === 'both') tools = HAVE_WRK ? ['wrk', 'autocannon'] : ['autocannon'];
else if (args.load === 'wrk' || args.load === 'autocannon') tools = [args.load];
else throw new Error('--load must be wrk, autocannon or both');
if (tools.includes('wrk') && !HAVE_WRK) throw new Error('--load wrk but wrk is not installed');

if (args.upstream !== undefined && args.upstream !== 'nginx' && args.upstream !== 'node')
  throw new Error('--upstream must be nginx or node');
const upstreamKind: UpstreamKind = (args.upstream as UpstreamKind | undefined) ?? DEFAULT_UPSTREAM;

const budgetS = Number(args.budget);
if (!(budgetS > 0)) throw new Error('--budget must be a positive number of seconds');

const partial =
  args.quick ||
  onlyList !== null ||
  proxyList !== null ||
  args.rounds !== undefined ||
  args.duration !== undefined ||
  args.rate !== undefined ||
  args['rate-low'] !== undefined;
const outName = args.out ?? (partial ? 'partial' : 'latest');

/** Scenario label in results: saturation scenarios get the tool suffix when several tools run. */
function label(s: ScenarioName, tool: LoadTool): string {
  return tools.length > 1 && (s === 'small' || s === 'large') ? `${s}/${tool}` : s;
}

/** Rough seconds one run of a scenario takes (start, warm-up, measure, stop). */
function runSeconds(s: ScenarioName): number {
  switch (s) {
    case 'small':
    case 'large':
      return settings.warmupS + settings.saturationS + 1;
    case 'rate':
    case 'rate-low':
      return 2 * settings.warmupS + settings.rateS + 1;
    case 'download':
      return 1 + settings.downloadBytes / 250e6;
    case 'upload':
      return 1 + settings.uploadBytes / 250e6;
    case 'idle':
      return 3;
  }
}

function estimateSeconds(): number {
  let total = 0;
  for (const t of targets) {
    for (const s of scenarios)
      if (t.scenarios === null || t.scenarios.includes(s)) total += runSeconds(s) * (s === 'small' || s === 'large' ? tools.length : 1);
  }
  return settings.rounds * total;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** Adds added_p50_ms / added_p99_ms to rate samples, paired with direct's sample of the same round. */
function deriveAdded(samples: Sample[]): Sample[] {
  return samples.map((s) => {
    if (s.scenario !== 'rate' && s.scenario !== 'rate-low') return s;
    const d = samples.find((x) => x.scenario === s.scenario && x.target === 'direct' && x.round === s.round);
    const p50 = s.metrics['p50_ms'];
    const p99 = s.metrics['p99_ms'];
    if (d === undefined || p50 === undefined || p99 === undefined) return s;
    return {
      ...s,
      metrics: {
        ...s.metrics,
        added_p50_ms: p50 - (d.metrics['p50_ms'] ?? Number.NaN),
        added_p99_ms: p99 - (d.metrics['p99_ms'] ?? Number.NaN),
      },
    };
  });
}

async function main(): Promise<void> {
  const loadStart = machineInfo().loadavg;
  pinSelfToLoadCore();
  const started = Date.now();
  log(
    `bench: targets ${targets.map((t) => t.name).join(', ')}; scenarios ${scenarios.join(', ')}; ${settings.rounds} round(s); saturation by ${tools.join('+')}; pinning ${PINNING === null ? 'off' : 'on'}`,
  );
  for (const s of skipped) log(`bench: skipping ${s}`);
  log(`bench: estimated ${Math.round(estimateSeconds())} s`);
  const upstream = await startUpstream();
  const upstreamDir = mkdtempSync(path.join(os.tmpdir(), 'bench-upstream-'));
  const rateUpstream = upstreamKind === 'node' ? upstream : await startRateUpstream(upstreamKind, upstreamDir);
  const samples: Sample[] = [];
  const failures: string[] = [];
  const broken = new Set<string>();
  const overBudget: string[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    // rotate the order each round so that no target always follows the same one
    const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]).filter((t): t is Target => t !== undefined);
    for (const scenario of scenarios) {
      for (const tool of scenario === 'small' || scenario === 'large' ? tools : [tools[0] ?? 'autocannon']) {
        for (const target of order) {
          if (broken.has(target.name)) continue;
          if (target.scenarios !== null && !target.scenarios.includes(scenario)) continue;
          if ((Date.now() - started) / 1000 + runSeconds(scenario) > budgetS) {
            overBudget.push(`${label(scenario, tool)} ${target.name} round ${round}`);
            continue;
          }
          const dir = mkdtempSync(path.join(os.tmpdir(), `bench-${target.name}-`));
          const what = `${label(scenario, tool)} ${target.name} round ${round}`;
          try {
            const upstreamPort = scenario === 'download' || scenario === 'upload' ? upstream.port : rateUpstream.port;
            const running = await target.start(upstreamPort, dir);
            try {
              await checkTarget(running);
              const outcome = await runScenario(scenario, running, settings, tool);
              samples.push({ scenario: label(scenario, tool), target: target.name, round, metrics: outcome.metrics, notes: outcome.notes });
              const shown = Object.entries(outcome.metrics)
                .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`)
                .join(' ');
              log(
                `[${Math.round((Date.now() - started) / 1000)}s] ${what}: ${shown}${outcome.notes.length > 0 ? `  (${outcome.notes.join('; ')})` : ''}`,
              );
            } finally {
              await running.stop();
            }
          } catch (err) {
            const msg = `${what}: ${(err as Error).message.split('\n').slice(0, 8).join(' | ')}`;
            failures.push(msg);
            log(`FAILED ${msg}`);
            // a target that cannot start will not start next time either: do not burn the budget on it
            if (/exited before|not listening|not ready/.test((err as Error).message)) broken.add(target.name);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
  }
  await upstream.child.stop();
  await rateUpstream.child.stop();
  rmSync(upstreamDir, { recursive: true, force: true });
  const machine = machineInfo();
  const versions: Record<string, string> = {};
  for (const t of targets) versions[t.name] = t.version;
  if (HAVE_WRK) versions['wrk'] = which('wrk') ?? 'wrk';
  const header = {
    date: new Date().toISOString(),
    machine,
    versions,
    settings: {
      ...settings,
      upstream: upstreamKind === 'nginx' ? 'nginx (13 B, 64 KiB, rate, idle) + node (download, upload)' : 'node',
      scenarios: scenarios.join('+'),
      elapsed_s: Math.round((Date.now() - started) / 1000),
    },
    loadTool: tools.join(' and '),
  };
  if (overBudget.length > 0) {
    failures.push(`time budget of ${budgetS} s reached; not run: ${overBudget.join(', ')}`);
    log(`bench: time budget reached, ${overBudget.length} runs skipped`);
  }
  const derived = deriveAdded(samples);
  const out = writeResults(
    path.join(ROOT, 'bench', 'results'),
    outName,
    { ...header, machine: { ...machine, loadavg_start: loadStart, loadavg_end: machine.loadavg } },
    derived,
    targets.map((t) => t.name),
    [...failures, ...skipped.map((s) => `skipped ${s}`)],
  );
  process.stdout.write(out.markdown);
  log(`bench: wrote ${out.json} and ${out.md} in ${Math.round((Date.now() - started) / 1000)} s`);
  if (failures.length > 0) process.exitCode = 1;
}

main()
  .catch(async (err: unknown) => {
    log(`bench: ${(err as Error).stack ?? String(err)}`);
    await stopAll();
    process.exit(1);
  })
  .finally(() => {
    void stopAll();
  });
