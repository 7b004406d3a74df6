/**
 * `npm run demo`: the mesh without Kubernetes. Starts the sample services of `apps.ts` on
 * loopback, one outrigger sidecar per service instance (`node dist/cli.js run --config
 * config/demo/NAME.yaml`), sends a steady stream of traffic into asset-dashboard-bff's inbound
 * listener (including a slow and a failing endpoint and a flaky replica, so timeouts, retries,
 * the circuit breaker and outlier ejection all show), and prints a summary from the sidecars'
 * admin APIs every second until Ctrl-C or `--duration S`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import type { Address } from '../config/types.js';
import { formatAddress } from '../config/address.js';
import { closeClients, startAssetMgr, startBff, startConsumer } from './apps.js';
import type { App } from './apps.js';
import { adminGet, renderSidecar } from './summary.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const USAGE = `Usage: node dist/demo/index.js [--duration S] [--rate N] [--random-ports] [--cli FILE] [--config-dir DIR]
  --duration S     stop after S seconds (default: run until Ctrl-C)
  --rate N         requests per second into asset-dashboard-bff (default 20)
  --random-ports   rewrite the configs' fixed 18xxx/19xxx ports to free ones
  --cli FILE       the proxy (default: dist/cli.js next to this demo)
  --config-dir DIR the sidecar configs (default: config/demo)
`;

/** The sidecars, in display order; each config names its app's address in inbound.app. */
const SIDECARS = ['asset-dashboard-bff', 'asset-consumer', 'asset-mgr-ms-1', 'asset-mgr-ms-2'] as const;

interface Sidecar {
  readonly name: string;
  readonly admin: Address;
  readonly inbound: Address;
  readonly app: Address;
  readonly outbound: Address | null;
  readonly configFile: string;
  proc: ChildProcess | null;
  /** last lines of its output, shown when it fails */
  readonly tail: string[];
}

function address(s: unknown): Address {
  const m = /^(.*):(\d+)$/.exec(String(s));
  if (m === null) throw new Error(`not host:port: ${String(s)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Reads the configs, rewrites ports when asked, writes the copies the sidecars run with. */
async function prepareConfigs(configDir: string, workDir: string, randomPorts: boolean): Promise<Sidecar[]> {
  const texts = SIDECARS.map((n) => readFileSync(path.join(configDir, `${n}.yaml`), 'utf8'));
  const mapping = new Map<string, number>();
  if (randomPorts) {
    for (const t of texts) {
      for (const m of t.matchAll(/127\.0\.0\.1:(1[89]\d{3})\b/g)) {
        if (!mapping.has(m[1]!)) mapping.set(m[1]!, await freePort());
      }
    }
  }
  return SIDECARS.map((name, i) => {
    const text = texts[i]!.replace(/127\.0\.0\.1:(1[89]\d{3})\b/g, (all, p: string) => {
      const to = mapping.get(p);
      return to === undefined ? all : `127.0.0.1:${to}`;
    });
    const configFile = path.join(workDir, `${name}.yaml`);
    writeFileSync(configFile, text);
    const cfg = parse(text) as { admin: { listen: string }; inbound: { listen: string; app: string }; outbound?: { listen: string } };
    return {
      name,
      admin: address(cfg.admin.listen),
      inbound: address(cfg.inbound.listen),
      app: address(cfg.inbound.app),
      outbound: cfg.outbound === undefined ? null : address(cfg.outbound.listen),
      configFile,
      proc: null,
      tail: [],
    };
  });
}

function startSidecar(cli: string, s: Sidecar): void {
  const proc = spawn(process.execPath, [cli, 'run', '--config', s.configFile, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk: Buffer) => {
    // The access log (one JSON line per request) is dropped; only the last lines are kept.
    for (const line of chunk.toString().split('\n')) {
      if (line === '') continue;
      s.tail.push(line);
      if (s.tail.length > 20) s.tail.shift();
    }
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  s.proc = proc;
}

async function waitReady(s: Sidecar, deadline: number): Promise<void> {
  for (;;) {
    if (s.proc !== null && s.proc.exitCode !== null) {
      throw new Error(`sidecar ${s.name} exited with ${s.proc.exitCode}:\n${s.tail.join('\n')}`);
    }
    if ((await adminGet(s.admin, '/ready')) !== null) return;
    if (Date.now() > deadline) throw new Error(`sidecar ${s.name} not ready after 20 s:\n${s.tail.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Client-side view of the traffic: status counts. */
class Traffic {
  readonly codes = new Map<string, number>();
  sent = 0;
  private n = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(private readonly entry: Address) {}

  start(rate: number): void {
    // Per tick several requests when the rate is high: one coarse timer, not one per request.
    const perTick = Math.max(1, Math.round(rate / 20));
    this.timer = setInterval(
      () => {
        for (let i = 0; i < perTick; i++) this.send();
      },
      Math.max(1, Math.round((1000 * perTick) / rate)),
    );
  }

  private send(): void {
    // 7 in 10 normal, 1 slow, 2 to the failing endpoint.
    const k = this.n++ % 10;
    const p = k === 7 ? '/assetdashboard/slow' : k >= 8 ? '/assetdashboard/reports' : '/assetdashboard/items';
    this.sent++;
    const req = http.get(
      { host: this.entry.host, port: this.entry.port, path: p, agent: this.agent, headers: { host: 'asset-dashboard-bff' } },
      (res) => {
        res.resume();
        this.count(String(res.statusCode));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => this.count(err.code ?? 'error'));
  }

  private count(code: string): void {
    // Requests cut off by stop() are not part of the picture.
    if (this.stopped) return;
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.agent.destroy();
  }

  render(): string {
    const codes = [...this.codes]
      .sort()
      .map(([k, v]) => `${k}×${v}`)
      .join(' ');
    return `client → asset-dashboard-bff: sent ${this.sent}${codes === '' ? '' : ` · ${codes}`}`;
  }
}

async function summary(sidecars: readonly Sidecar[], traffic: Traffic, elapsed: number): Promise<string> {
  const lines = await Promise.all(
    sidecars.map(async (s) => renderSidecar(s.name, await adminGet(s.admin, '/metrics'), await adminGet(s.admin, '/clusters'))),
  );
  return [`── ${elapsed}s ── ${traffic.render()}`, ...lines].join('\n');
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        duration: { type: 'string' },
        rate: { type: 'string' },
        'random-ports': { type: 'boolean' },
        cli: { type: 'string' },
        'config-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const duration = values.duration === undefined ? Infinity : Number(values.duration);
  const rate = values.rate === undefined ? 20 : Number(values.rate);
  if (!(duration > 0) || !(rate > 0)) {
    process.stderr.write(`--duration and --rate must be positive numbers\n${USAGE}`);
    return 2;
  }
  const cli = path.resolve(values.cli ?? path.join(HERE, '..', 'cli.js'));
  if (!existsSync(cli)) {
    process.stderr.write(`${cli} does not exist: run npm run build first\n`);
    return 1;
  }
  const configDir = path.resolve(values['config-dir'] ?? path.join(HERE, '..', '..', 'config', 'demo'));
  const workDir = mkdtempSync(path.join(tmpdir(), 'outrigger-demo-'));
  const apps: App[] = [];
  let sidecars: Sidecar[] = [];
  const traffic = { current: null as Traffic | null };
  let ticker: NodeJS.Timeout | null = null;
  let stopped = false;
  let wake: () => void = () => undefined;
  const stop = () => {
    stopped = true;
    wake();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    sidecars = await prepareConfigs(configDir, workDir, values['random-ports'] === true);
    const by = (n: string) => sidecars.find((s) => s.name === n)!;
    apps.push(await startBff(by('asset-dashboard-bff').app, by('asset-dashboard-bff').outbound!));
    apps.push(await startConsumer(by('asset-consumer').app, by('asset-consumer').outbound!));
    apps.push(await startAssetMgr('asset-mgr-ms-1', by('asset-mgr-ms-1').app, false));
    apps.push(await startAssetMgr('asset-mgr-ms-2', by('asset-mgr-ms-2').app, true));
    for (const s of sidecars) startSidecar(cli, s);
    const deadline = Date.now() + 20_000;
    await Promise.all(sidecars.map((s) => waitReady(s, deadline)));
    process.stdout.write(
      `outrigger demo: ${sidecars.length} sidecars ready (admin ${sidecars.map((s) => `${s.name} ${formatAddress(s.admin)}`).join(', ')})\n`,
    );
    const t = new Traffic(by('asset-dashboard-bff').inbound);
    traffic.current = t;
    t.start(rate);
    const started = Date.now();
    let printing = Promise.resolve();
    ticker = setInterval(() => {
      const elapsed = Math.round((Date.now() - started) / 1000);
      printing = printing.then(async () => {
        if (!stopped) process.stdout.write(`${await summary(sidecars, t, elapsed)}\n`);
      });
      if (elapsed >= duration) stop();
    }, 1000);
    await new Promise<void>((resolve) => {
      wake = resolve;
      if (stopped) resolve();
    });
    clearInterval(ticker);
    ticker = null;
    await printing;
    t.stop();
    process.stdout.write(`${await summary(sidecars, t, Math.round((Date.now() - started) / 1000))}\n(final)\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    return 1;
  } finally {
    if (ticker !== null) clearInterval(ticker);
    traffic.current?.stop();
    await Promise.all(sidecars.map((s) => stopSidecar(s)));
    await Promise.all(apps.map((a) => a.close()));
    closeClients();
    rmSync(workDir, { recursive: true, force: true });
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** SIGTERM (the sidecar drains), SIGKILL after 5 s. */
function stopSidecar(s: Sidecar): Promise<void> {
  const proc = s.proc;
  if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
