/**
 * Benchmark harness shared by every entry point under bench/: child processes pinned to a core
 * (and killed on exit or SIGINT), port/HTTP readiness waits, RSS reading from /proc, the load
 * generators (autocannon programmatic API, wrk when installed, a paced open-loop client for fixed
 * rates, bulk download/upload clients, idle keep-alive connection holder) and small statistics.
 *
 * Everything is bounded in time: each wait has a deadline and each load run has a duration.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';

// ---------------------------------------------------------------------------------------------
// Cores and pinning

/** `taskset` present and at least two cores: the proxy gets core 0, load (and upstream) core 1. */
export const PINNING: { readonly proxyCore: number; readonly loadCore: number } | null = (() => {
  if (os.cpus().length < 2) return null;
  if (!which('taskset')) return null;
  return { proxyCore: 0, loadCore: 1 };
})();

/** Absolute path of a binary on PATH (or in /usr/sbin, where Debian puts nginx/haproxy), or null. */
export function which(bin: string): string | null {
  const dirs = (process.env['PATH'] ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/local/sbin']);
  for (let i = 0; i < dirs.length; i++) {
    const dir = dirs[i];
    if (dir === undefined || dir === '') continue;
    const candidate = path.join(dir, bin);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/**
 * Pins the current process (all its threads, so autocannon's and libuv's too) to the load core.
 * In-process clients (autocannon, paced, download/upload) then never compete with the proxy.
 */
export function pinSelfToLoadCore(): void {
  if (PINNING === null) return;
  spawnSync('taskset', ['-a', '-p', '-c', String(PINNING.loadCore), String(process.pid)], { stdio: 'ignore' });
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** A child process the harness started; `stop()` is idempotent. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Resolves when the process has exited (SIGTERM, then SIGKILL after 2 s). */
  stop(): Promise<void>;
  /** True once the process has exited. */
  exited(): boolean;
  /** Last lines of stderr (for error messages). */
  stderrTail(): string;
}

const live = new Set<Child>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // Synchronous last resort: whatever happens, children do not outlive the harness.
  process.on('exit', () => {
    for (const child of live) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nbench: ${signal}, stopping children\n`);
    void Promise.allSettled([...live].map((c) => c.stop())).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/** Options of {@link spawnChild}. */
export interface SpawnOptions {
  /** Core to pin to with taskset (ignored without pinning). */
  readonly core: 'proxy' | 'load' | null;
  /** Where stdout goes: 'ignore', or a file path (appended). */
  readonly stdout: 'ignore' | string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/**
 * Starts `cmd args` as a child, pinned with `taskset -c CORE` (taskset execs the command, so the
 * PID is the program's own and /proc/PID/status is its RSS).
 */
export function spawnChild(name: string, cmd: string, args: readonly string[], opts: SpawnOptions): Child {
  installExitHandlers();
  let file = cmd;
  let argv = [...args];
  if (opts.core !== null && PINNING !== null) {
    const core = opts.core === 'proxy' ? PINNING.proxyCore : PINNING.loadCore;
    argv = ['-c', String(core), cmd, ...args];
    file = 'taskset';
  }
  let stdoutFd: number | null = null;
  if (opts.stdout !== 'ignore') stdoutFd = openSync(opts.stdout, 'a');
  const proc = spawn(file, argv, {
    stdio: ['ignore', stdoutFd ?? 'ignore', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? process.cwd(),
  });
  if (stdoutFd !== null) closeSync(stdoutFd);
  let stderr = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  let hasExited = false;
  const exitedP = new Promise<void>((resolve) => {
    proc.once('exit', () => {
      hasExited = true;
      resolve();
    });
    proc.once('error', (err) => {
      stderr += `\nspawn error: ${err.message}`;
      hasExited = true;
      resolve();
    });
  });
  if (proc.pid === undefined) throw new Error(`could not start ${name}: ${cmd}`);
  const pid = proc.pid;
  let stopping: Promise<void> | null = null;
  const child: Child = {
    name,
    pid,
    proc,
    exited: () => hasExited,
    stderrTail: () => stderr.split('\n').slice(-15).join('\n'),
    stop() {
      if (stopping !== null) return stopping;
      stopping = (async () => {
        if (!hasExited) {
          try {
            proc.kill('SIGTERM');
          } catch {
            /* gone */
          }
          const timer = setTimeout(() => {
            try {
              proc.kill('SIGKILL');
            } catch {
              /* gone */
            }
          }, 2000);
          await exitedP;
          clearTimeout(timer);
        }
        live.delete(child);
      })();
      return stopping;
    },
  };
  live.add(child);
  return child;
}

/** Stops every child still running (used at the end of a run and on errors). */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...live].map((c) => c.stop()));
}

// ---------------------------------------------------------------------------------------------
// Ports and readiness

/** A free TCP port on 127.0.0.1 (bound then released; the race is acceptable for a benchmark). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export { sleep };

/** Resolves once `port` accepts a TCP connection; rejects after `timeoutMs` or if `child` exits. */
export async function waitForPort(port: number, timeoutMs: number, child: Child | null = null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (child !== null && child.exited()) throw new Error(`${child.name} exited before listening on ${port}:\n${child.stderrTail()}`);
    if (Date.now() > deadline)
      throw new Error(`port ${port} not listening after ${timeoutMs} ms${child ? `:\n${child.stderrTail()}` : ''}`);
    await sleep(50);
  }
}

/** One GET; resolves with status and body (bounded by `timeoutMs`). */
export function httpGet(url: string, timeoutMs = 2000, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  return httpRequest('GET', url, null, timeoutMs, headers);
}

/** One request with an optional small body; resolves with status and body. */
export function httpRequest(
  method: string,
  url: string,
  body: string | null,
  timeoutMs = 2000,
  headers: http.OutgoingHttpHeaders = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        data += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout ${method} ${url}`)));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** Polls `url` until it answers 200; rejects after `timeoutMs` or if `child` exits. */
export async function waitForHttp(url: string, timeoutMs: number, child: Child | null = null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const r = await httpGet(url, 1000);
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (child !== null && child.exited()) throw new Error(`${child.name} exited before ${url} was ready:\n${child.stderrTail()}`);
    if (Date.now() > deadline)
      throw new Error(`${url} not ready after ${timeoutMs} ms (${last})${child ? `:\n${child.stderrTail()}` : ''}`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Memory

/** VmRSS and VmHWM (peak RSS) of a process, in bytes; null when /proc is unavailable. */
export function procMemory(pid: number): { rss: number; hwm: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(text);
  if (rss === null || hwm === null || rss[1] === undefined || hwm[1] === undefined) return null;
  return { rss: Number(rss[1]) * 1024, hwm: Number(hwm[1]) * 1024 };
}

/**
 * CPU time (user + system, all threads) a process has used so far, in seconds; null when /proc
 * is unavailable. CPU per request is steadier than requests/s on a machine where other work
 * steals time from the proxy's core.
 */
export function procCpuSeconds(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // fields after the parenthesised command name start at field 3 (state); utime is 14, stime 15
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : null;
}

/** USER_HZ: 100 on every Linux platform Node runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

/**
 * Samples VmRSS every `intervalMs` (the peak of the samples backs up VmHWM, which some kernels
 * or containers do not report).
 */
export class RssSampler {
  private peak = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(
    private readonly pid: number,
    intervalMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }
  private sample(): void {
    const m = procMemory(this.pid);
    if (m !== null && m.rss > this.peak) this.peak = m.rss;
  }
  /** Stops sampling; returns the peak sampled RSS and the kernel's VmHWM (bytes). */
  stop(): { peakSampled: number; hwm: number } {
    clearInterval(this.timer);
    this.sample();
    const m = procMemory(this.pid);
    return { peakSampled: this.peak, hwm: m?.hwm ?? this.peak };
  }
}

// ---------------------------------------------------------------------------------------------
// Load generators

/** What a saturation run measured. Latencies in milliseconds. */
export interface SaturationResult {
  readonly tool: 'autocannon' | 'wrk';
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  /** 2xx responses */
  readonly ok: number;
  readonly non2xx: number;
  /** socket errors and timeouts */
  readonly errors: number;
}

/** Options of a saturation (closed-loop) run. */
export interface SaturationOptions {
  readonly port: number;
  readonly path: string;
  readonly host: string;
  readonly connections: number;
  readonly durationS: number;
}

/** Runs autocannon in this process (which is pinned to the load core). */
export async function runAutocannon(o: SaturationOptions): Promise<SaturationResult> {
  const result = await autocannon({
    url: `http://127.0.0.1:${o.port}${o.path}`,
    connections: o.connections,
    pipelining: 1,
    duration: o.durationS,
    headers: { host: o.host },
  });
  return {
    tool: 'autocannon',
    rps: result['2xx'] / result.duration,
    // autocannon's histogram has 1 ms resolution (integers); wrk is preferred when present.
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/** True when the `wrk` binary is installed. */
export const HAVE_WRK = which('wrk') !== null;

/** Runs `wrk -t1` pinned to the load core; parses its --latency output (microsecond resolution). */
export async function runWrk(o: SaturationOptions): Promise<SaturationResult> {
  const args = [
    // wrk takes whole seconds only
    '-t1',
    `-c${o.connections}`,
    `-d${Math.max(1, Math.round(o.durationS))}s`,
    '--latency',
    '--timeout',
    '5s',
    '-H',
    `Host: ${o.host}`,
    `http://127.0.0.1:${o.port}${o.path}`,
  ];
  let file = 'wrk';
  let argv = args;
  if (PINNING !== null) {
    file = 'taskset';
    argv = ['-c', String(PINNING.loadCore), 'wrk', ...args];
  }
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => {
      text += d;
    });
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (d: string) => {
      text += d;
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), (o.durationS + 15) * 1000);
    p.once('error', reject);
    p.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(text);
      else reject(new Error(`wrk exited ${code}: ${text}`));
    });
  });
  const pct = (label: string): number => {
    const m = new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
    if (m === null || m[1] === undefined) throw new Error(`wrk output without ${label}%:\n${out}`);
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const total = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(out);
  if (total === null || total[1] === undefined || total[2] === undefined) throw new Error(`unparsable wrk output:\n${out}`);
  const seconds = total[3] === 'ms' ? Number(total[2]) / 1000 : total[3] === 'm' ? Number(total[2]) * 60 : Number(total[2]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = sock === null ? 0 : sock.slice(1).reduce((a, b) => a + Number(b), 0);
  const requests = Number(total[1]);
  return {
    tool: 'wrk',
    rps: (requests - non2xx) / seconds,
    p50: pct('50'),
    p99: pct('99'),
    ok: requests - non2xx,
    non2xx,
    errors,
  };
}

/** What a fixed-rate run measured. Latencies in milliseconds. */
export interface PacedResult {
  readonly targetRps: number;
  readonly achievedRps: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  /** requests never sent: the run stopped early because the target fell 0.5 s behind */
  readonly unsent: number;
}

/**
 * Open-loop client at a fixed rate over raw keep-alive sockets. autocannon's `overallRate` sends
 * each second's quota as a burst and records latency in whole milliseconds, which hides the
 * sub-millisecond difference a proxy adds; this client spreads requests over 1 ms ticks and times
 * each with hrtime from the moment it is due (waiting for a free connection included, so a stall
 * is not hidden by coordinated omission). Raw sockets with a pre-encoded request and a minimal
 * response parser keep the client's CPU cost per request far below undici's or http's, which
 * matters because the client shares its core with the upstream.
 */
export async function runPaced(o: {
  readonly port: number;
  readonly path: string;
  readonly host: string;
  readonly rps: number;
  readonly durationS: number;
  readonly connections: number;
}): Promise<PacedResult> {
  const request = Buffer.from(`GET ${o.path} HTTP/1.1\r\nHost: ${o.host}\r\n\r\n`, 'latin1');
  const latencies: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let inflight = 0;
  let lastDone = 0;
  const idle: PacedConn[] = [];
  const waiting: bigint[] = [];
  const all: PacedConn[] = [];
  const onDone = (c: PacedConn, status: number): void => {
    const dt = Number(process.hrtime.bigint() - c.t0) / 1e6;
    inflight--;
    lastDone = performance.now();
    if (status >= 200 && status < 300) {
      ok++;
      latencies.push(dt);
    } else {
      non2xx++;
    }
    const next = waiting.shift();
    if (next !== undefined) c.send(request, next);
    else idle.push(c);
  };
  const onFail = (c: PacedConn): void => {
    if (c.busy) {
      errors++;
      inflight--;
    }
    const i = idle.indexOf(c);
    if (i !== -1) idle.splice(i, 1);
  };
  await Promise.all(
    Array.from({ length: o.connections }, async () => {
      const c = await PacedConn.open(o.port, onDone, onFail);
      all.push(c);
      idle.push(c);
    }),
  );
  const issue = (): void => {
    inflight++;
    const due = process.hrtime.bigint();
    const c = idle.pop();
    if (c !== undefined) c.send(request, due);
    else waiting.push(due);
  };
  const start = performance.now();
  const end = start + o.durationS * 1000;
  const total = Math.floor(o.durationS * o.rps);
  // A target that cannot keep up would otherwise queue the rest of the run and drain for
  // seconds: stop once half a second of requests waits for a connection (bounded run time).
  const maxBacklog = Math.max(100, Math.floor(o.rps / 2));
  let sent = 0;
  let stoppedEarly = false;
  let stoppedAt = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      const due = Math.min(Math.floor(((Math.min(now, end) - start) / 1000) * o.rps), total);
      while (sent < due) {
        issue();
        sent++;
      }
      if (waiting.length > maxBacklog) {
        stoppedEarly = true;
        stoppedAt = now;
        resolve();
        return;
      }
      if (now >= end) {
        resolve();
        return;
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const unsent = total - sent + waiting.length;
  inflight -= waiting.length;
  waiting.length = 0;
  const drainDeadline = Date.now() + 2000;
  while (inflight > 0 && Date.now() < drainDeadline) await sleep(10);
  errors += inflight;
  for (let i = 0; i < all.length; i++) all[i]?.socket.destroy();
  // achieved rate over the scheduled duration (or the time until the last answer, if later):
  // a target that falls behind or was stopped early shows it here
  const elapsed = (Math.max(lastDone, stoppedEarly ? stoppedAt : end) - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    targetRps: o.rps,
    achievedRps: ok / elapsed,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    max: latencies.length > 0 ? (latencies[latencies.length - 1] ?? 0) : 0,
    ok,
    non2xx,
    errors,
    unsent,
  };
}

/** One keep-alive connection of {@link runPaced}: one request at a time, minimal HTTP/1.1 parsing. */
class PacedConn {
  busy = false;
  t0 = 0n;
  private buf = '';
  private headerEnd = -1;
  private status = 0;
  /** Content-Length, or -1 for chunked (complete at the 0-size chunk). */
  private bodyLength = 0;

  private constructor(
    readonly socket: net.Socket,
    private readonly onDone: (c: PacedConn, status: number) => void,
    private readonly onFail: (c: PacedConn) => void,
  ) {
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('error', () => {
      /* close follows */
    });
    socket.on('close', () => {
      this.onFail(this);
      this.busy = false;
    });
  }

  static open(port: number, onDone: (c: PacedConn, status: number) => void, onFail: (c: PacedConn) => void): Promise<PacedConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => resolve(new PacedConn(s, onDone, onFail)));
      s.once('error', reject);
    });
  }

  send(request: Buffer, due: bigint): void {
    this.busy = true;
    this.t0 = due;
    this.socket.write(request);
  }

  private onData(d: string): void {
    this.buf += d;
    for (;;) {
      if (this.headerEnd === -1) {
        const i = this.buf.indexOf('\r\n\r\n');
        if (i === -1) return;
        this.headerEnd = i + 4;
        this.status = Number(this.buf.slice(9, 12));
        const head = this.buf.slice(0, i).toLowerCase();
        const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
        this.bodyLength = cl !== null ? Number(cl[1]) : /\r\ntransfer-encoding:[^\r]*chunked/.test(head) ? -1 : 0;
      }
      let complete = -1;
      if (this.bodyLength >= 0) {
        if (this.buf.length >= this.headerEnd + this.bodyLength) complete = this.headerEnd + this.bodyLength;
      } else {
        const z = this.buf.indexOf('\r\n0\r\n\r\n', this.headerEnd - 2);
        if (z !== -1) complete = z + 7;
      }
      if (complete === -1) return;
      this.buf = this.buf.slice(complete);
      this.headerEnd = -1;
      this.busy = false;
      this.onDone(this, this.status);
      if (this.buf.length === 0) return;
    }
  }
}

/**
 * One streamed GET of `bytes` over a raw socket that only counts bytes after the response head
 * (an HTTP client's per-chunk parsing would make the load core, shared with the upstream, the
 * bottleneck). Returns MB/s (10^6 bytes per second) and the body bytes received.
 */
export function downloadOnce(o: {
  port: number;
  host: string;
  bytes: number;
  timeoutMs: number;
}): Promise<{ mbps: number; bytes: number; status: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = net.connect(o.port, '127.0.0.1');
    let head = '';
    let status = 0;
    let expected = -1;
    let received = 0;
    const timer = setTimeout(() => s.destroy(new Error(`download timed out after ${o.timeoutMs} ms`)), o.timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ mbps: received / 1e6 / ((performance.now() - t0) / 1000), bytes: received, status });
    };
    s.once('connect', () => s.write(`GET /download?bytes=${o.bytes} HTTP/1.1\r\nHost: ${o.host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (chunk: Buffer) => {
      if (expected === -1) {
        head += chunk.toString('latin1');
        const i = head.indexOf('\r\n\r\n');
        if (i === -1) return;
        status = Number(head.slice(9, 12));
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head.slice(0, i));
        // chunked framing would be counted as body here; every target answers with Content-Length
        expected = cl !== null ? Number(cl[1]) : Number.MAX_SAFE_INTEGER;
        received = Buffer.byteLength(head, 'latin1') - (i + 4);
        head = '';
      } else {
        received += chunk.length;
      }
      if (received >= expected) finish();
    });
    s.once('end', finish);
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** One streamed POST of `bytes` (64 KiB writes, with backpressure); the upstream echoes the count. */
export function uploadOnce(o: {
  port: number;
  host: string;
  bytes: number;
  timeoutMs: number;
}): Promise<{ mbps: number; bytes: number; status: number }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const t0 = performance.now();
    const req = http.request(
      {
        host: '127.0.0.1',
        port: o.port,
        path: '/upload',
        method: 'POST',
        agent: false,
        headers: { host: o.host, 'content-length': String(o.bytes), 'content-type': 'application/octet-stream' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => {
          clearTimeout(timer);
          const s = (performance.now() - t0) / 1000;
          let echoed = -1;
          try {
            echoed = (JSON.parse(body) as { bytes: number }).bytes;
          } catch {
            /* not ours */
          }
          resolve({ mbps: echoed / 1e6 / s, bytes: echoed, status: res.statusCode ?? 0 });
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`upload timed out after ${o.timeoutMs} ms`)), o.timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    let left = o.bytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        const more = req.write(n === chunk.length ? chunk : chunk.subarray(0, n));
        if (!more) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

/**
 * Opens `count` keep-alive connections, sends one small GET on each (so the proxy holds the
 * per-connection state of a served client) and keeps them open idle until `close()`.
 */
export async function openIdleConnections(o: {
  port: number;
  host: string;
  path: string;
  count: number;
  timeoutMs: number;
}): Promise<{ opened: number; failed: number; close(): void }> {
  const sockets: net.Socket[] = [];
  const request = Buffer.from(`GET ${o.path} HTTP/1.1\r\nHost: ${o.host}\r\nConnection: keep-alive\r\n\r\n`);
  let failed = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = net.connect(o.port, '127.0.0.1');
      let seen = '';
      const timer = setTimeout(() => {
        failed++;
        s.destroy();
        resolve();
      }, o.timeoutMs);
      s.setEncoding('latin1');
      s.once('connect', () => s.write(request));
      const onData = (d: string): void => {
        seen += d;
        // The 13-byte body ends the first response; any full response head is enough.
        if (seen.includes('\r\n\r\n')) {
          s.off('data', onData);
          s.on('data', () => {
            /* drop anything further */
          });
          clearTimeout(timer);
          sockets.push(s);
          resolve();
        }
      };
      s.on('data', onData);
      s.once('error', () => {
        clearTimeout(timer);
        failed++;
        resolve();
      });
    });
  // Batches of 50: a burst of 1000 simultaneous connects would measure the accept queue instead.
  for (let i = 0; i < o.count; i += 50) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(o.count, i + 50); j++) batch.push(one());
    await Promise.all(batch);
  }
  return {
    opened: sockets.length,
    failed,
    close() {
      for (let i = 0; i < sockets.length; i++) sockets[i]?.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** Percentile of an ascending array (nearest rank); 0 for an empty array. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx] ?? 0;
}

/** Median, minimum and maximum of a sample (NaN when empty). */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/** Median/min/max of `values`. */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
  return { median, min: s[0] ?? 0, max: s[s.length - 1] ?? 0, n: s.length };
}

/** Machine facts printed with every result table. */
export function machineInfo(): { cpu: string; cores: number; node: string; os: string; pinning: string; loadavg: string } {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    // os.cpus(), not availableParallelism(): the latter shrinks once this process is pinned
    cores: cpus.length,
    loadavg: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    pinning:
      PINNING === null
        ? 'none (taskset missing or < 2 cores)'
        : `proxy on core ${PINNING.proxyCore}; load and upstream on core ${PINNING.loadCore}`,
  };
}
