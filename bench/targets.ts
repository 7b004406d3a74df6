/**
 * The things a benchmark sends load to: `direct` (the upstream itself), `outrigger`, and the
 * peers (http-proxy, fastify + @fastify/http-proxy, nginx, haproxy). Each proxy is started fresh
 * per measurement as its own child process pinned to the proxy core, so its RSS (VmHWM) belongs
 * to that one scenario. Also starts the shared upstream.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { ROOT, CLI } from '../test/helpers/paths.js';
import { freePort, spawnChild, waitForPort, which } from './harness.js';
import type { Child } from './harness.js';
import { startOutrigger } from './outrigger.js';
import { writeNginxConf } from './peers/nginx.js';
import { writeHaproxyConf } from './peers/haproxy.js';
import { writeNginxUpstreamConf } from './peers/nginx-upstream.js';

/** A started target. `pid` is null for `direct` (no proxy process). */
export interface RunningTarget {
  readonly port: number;
  readonly pid: number | null;
  /** outrigger only: the admin port (for /metrics cross-checks). */
  readonly adminPort: number | null;
  /** File the proxy's access log goes to, if it writes one. */
  readonly accessLog: string | null;
  stop(): Promise<void>;
}

/** A benchmark target. */
export interface Target {
  readonly name: string;
  /** What exactly runs, for the report (package versions, binary versions). */
  readonly version: string;
  /** null when it can run here; otherwise why not (binary missing, not built...). */
  readonly unavailable: string | null;
  /** The scenarios it runs; null for all. */
  readonly scenarios: readonly string[] | null;
  start(upstreamPort: number, dir: string): Promise<RunningTarget>;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

function pkgVersion(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'missing';
  }
}

function binVersion(bin: string, args: readonly string[], re: RegExp): string {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  const m = re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  return m?.[1] ?? 'unknown';
}

function outriggerVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const rev = spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).stdout.trim() !== '';
  return `${pkg.version} (${rev}${dirty ? '+dirty' : ''})`;
}

async function nodePeer(name: string, script: string, upstreamPort: number): Promise<RunningTarget> {
  const port = await freePort();
  const child = spawnChild(name, process.execPath, [path.join(HERE, 'peers', script), String(port), String(upstreamPort)], {
    core: 'proxy',
    stdout: 'ignore',
  });
  await waitForPort(port, 10_000, child);
  return fromChild(child, port, null);
}

function fromChild(child: Child, port: number, accessLog: string | null, adminPort: number | null = null): RunningTarget {
  return { port, pid: child.pid, adminPort, accessLog, stop: () => child.stop() };
}

/** Every target the harness knows, in report order. */
export function allTargets(): Target[] {
  const nginx = which('nginx');
  const haproxy = which('haproxy');
  return [
    {
      name: 'direct',
      version: 'upstream without proxy',
      unavailable: null,
      scenarios: null,
      start: (upstreamPort) =>
        Promise.resolve({ port: upstreamPort, pid: null, adminPort: null, accessLog: null, stop: () => Promise.resolve() }),
    },
    {
      name: 'outrigger',
      version: existsSync(CLI) ? outriggerVersion() : 'not built',
      unavailable: existsSync(CLI) ? null : `${CLI} missing (npm run build)`,
      scenarios: null,
      async start(upstreamPort, dir) {
        const o = await startOutrigger(dir, upstreamPort);
        return fromChild(o.child, o.port, o.accessLog, o.adminPort);
      },
    },
    {
      name: 'http-proxy',
      version: `http-proxy ${pkgVersion('http-proxy')}`,
      unavailable: null,
      scenarios: null,
      start: (upstreamPort) => nodePeer('http-proxy', 'http-proxy.js', upstreamPort),
    },
    {
      name: 'floor',
      version: `node:http + undici ${pkgVersion('undici')} Pool, no features (bench/peers/floor.ts)`,
      unavailable: null,
      // a reference line for the per-request cost; streaming, idle and a rate no Node proxy
      // sustains here add little to what http-proxy and fastify show, and would push the run
      // past its 10 minutes
      scenarios: ['small', 'large', 'rate-low'],
      start: (upstreamPort) => nodePeer('floor', 'floor.js', upstreamPort),
    },
    {
      name: 'fast-proxy',
      version: `fast-proxy ${pkgVersion('fast-proxy')} (undici transport)`,
      unavailable: null,
      // in the table; per-request scenarios only, for the 10-minute budget
      scenarios: ['small', 'large'],
      start: (upstreamPort) => nodePeer('fast-proxy', 'fast-proxy.js', upstreamPort),
    },
    {
      name: 'fastify',
      version: `fastify ${pkgVersion('fastify')} + @fastify/http-proxy ${pkgVersion('@fastify/http-proxy')}`,
      unavailable: null,
      scenarios: null,
      start: (upstreamPort) => nodePeer('fastify', 'fastify.js', upstreamPort),
    },
    {
      name: 'nginx',
      version: nginx === null ? 'absent' : `nginx ${binVersion(nginx, ['-v'], /nginx\/(\S+)/)}`,
      unavailable: nginx === null ? 'nginx binary not installed' : null,
      scenarios: null,
      async start(upstreamPort, dir) {
        const port = await freePort();
        const conf = writeNginxConf(dir, port, upstreamPort);
        const child = spawnChild('nginx', nginx ?? 'nginx', ['-p', dir, '-c', conf], { core: 'proxy', stdout: 'ignore' });
        await waitForPort(port, 10_000, child);
        return fromChild(child, port, path.join(dir, 'logs', 'access.log'));
      },
    },
    {
      name: 'haproxy',
      version: haproxy === null ? 'absent' : `haproxy ${binVersion(haproxy, ['-v'], /version (\S+)/)}`,
      unavailable: haproxy === null ? 'haproxy binary not installed' : null,
      scenarios: null,
      async start(upstreamPort, dir) {
        const port = await freePort();
        const conf = writeHaproxyConf(dir, port, upstreamPort);
        const log = path.join(dir, 'haproxy-access.log');
        const child = spawnChild('haproxy', haproxy ?? 'haproxy', ['-db', '-f', conf], { core: 'proxy', stdout: log });
        await waitForPort(port, 10_000, child);
        return fromChild(child, port, log);
      },
    },
  ];
}

/** Starts the Node upstream (bench/upstream.js) on the load core. */
export async function startUpstream(): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = spawnChild('upstream', process.execPath, [path.join(HERE, 'upstream.js'), String(port)], {
    core: 'load',
    stdout: 'ignore',
  });
  await waitForPort(port, 10_000, child);
  return { child, port };
}

/** Which upstream serves the request-rate scenarios. */
export type UpstreamKind = 'nginx' | 'node';

/** nginx when installed: it costs the shared load core far less per request than Node. */
export const DEFAULT_UPSTREAM: UpstreamKind = which('nginx') !== null ? 'nginx' : 'node';

/**
 * Starts the upstream of the request-rate scenarios (13 B, 64 KiB, fixed rate, idle):
 * nginx (bench/peers/nginx-upstream.ts) or the Node upstream, on the load core.
 */
export async function startRateUpstream(kind: UpstreamKind, dir: string): Promise<{ child: Child; port: number }> {
  if (kind === 'node') return startUpstream();
  const nginx = which('nginx');
  if (nginx === null) throw new Error('nginx upstream requested but nginx is not installed');
  const port = await freePort();
  const conf = writeNginxUpstreamConf(dir, port);
  const child = spawnChild('nginx-upstream', nginx, ['-p', dir, '-c', conf], { core: 'load', stdout: 'ignore' });
  await waitForPort(port, 10_000, child);
  return { child, port };
}
