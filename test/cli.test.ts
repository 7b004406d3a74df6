// The command line as users and Kubernetes run it: a spawned `node dist/cli.js`. `validate`
// output and exit codes, `run` refusing an invalid first config, $OUTRIGGER_CONFIG, SIGTERM drain
// (exit 0, /ready 503 meanwhile), a second SIGTERM exiting at once, SIGHUP reload, batched access
// lines that arrive without further traffic and survive exit.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { CLI, FIXTURES, ROOT } from './helpers/paths.js';
import { request, startUpstream, type Upstream } from './helpers/servers.js';
import { tempDir } from './helpers/proxy.js';

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of a spawned CLI. Under `node --test` this process has NODE_TEST_CONTEXT set,
 * which must not leak into the proxy (it is no test runner).
 */
function childEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'info', ...extra };
  delete env['NODE_TEST_CONTEXT'];
  return env;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Done> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env: childEnv(env), timeout: 15_000 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

/** A running `outrigger run`: its JSON log lines as they arrive, and a way to wait for one. */
interface Running {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitLog(pred: (l: Record<string, unknown>) => boolean, what: string, from?: number): Promise<Record<string, unknown>>;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let err = '';
  let partial = '';
  const waiters: (() => void)[] = [];
  child.stdout!.on('data', (c: Buffer) => {
    partial += c.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  let done = false;
  const exited = once(child, 'exit').then(([code, signal]) => {
    done = true;
    for (const w of waiters.splice(0)) w();
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });
  const r: Running = {
    child,
    logs,
    stderr: () => err,
    exited,
    async waitLog(pred, what, from = 0) {
      for (;;) {
        const hit = logs.slice(from).find(pred);
        if (hit !== undefined) return hit;
        if (done) throw new Error(`exited before logging ${what}; stderr: ${err}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
  return r;
}

function port(addr: unknown): number {
  return Number(String(addr).split(':').pop());
}

async function started(r: Running): Promise<{ admin: number; outbound: number; inbound: number }> {
  const l = await r.waitLog((x) => x['msg'] === 'outrigger started', 'outrigger started');
  return { admin: port(l['admin']), outbound: port(l['outbound']), inbound: port(l['inbound']) };
}

function config(svc: number, extra = '', drain = '{ delay: 0s, timeout: 5s }'): string {
  return `admin: { listen: 127.0.0.1:0 }
outbound:
  listen: 127.0.0.1:0
  routes:
    - name: svc
      match: { host: svc }
      cluster: svc
      headers: { request: { set: { x-gen: "${extra || 'one'}" } } }
clusters:
  svc: { endpoints: ["127.0.0.1:${svc}"] }
drain: ${drain}
`;
}

/**
 * An upstream, a config for it in a temporary folder and `outrigger` running on that config
 * (`run --config FILE` unless `args`/`env` say otherwise), all cleaned up after the test.
 */
async function launch(
  t: TestContext,
  opts: { drain?: string; args?: (file: string) => string[]; env?: (file: string) => NodeJS.ProcessEnv } = {},
): Promise<{ r: Running; svc: Upstream; file: string; ports: { admin: number; outbound: number; inbound: number } }> {
  const svc = await startUpstream();
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, config(svc.port, '', opts.drain));
  const r = run(opts.args?.(file) ?? ['run', '--config', file], opts.env?.(file) ?? {});
  t.after(async () => {
    r.child.kill('SIGKILL');
    await svc.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { r, svc, file, ports: await started(r) };
}

test('validate: `FILE: ok` and exit 0 for a valid file', async () => {
  const file = path.join(FIXTURES, 'config', 'valid', 'minimal.yaml');
  const r = await cli(['validate', file]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${file}: ok\n`);
  assert.equal(r.stderr, '');
});

test('validate: one `FILE:LINE:COL: message` line per problem and exit 1', async () => {
  const file = path.join(FIXTURES, 'config', 'invalid', 'bad-durations.yaml');
  const expected = fs.readFileSync(file.replace(/\.yaml$/, '.expected'), 'utf8').replaceAll('FILE', file);
  const r = await cli(['validate', file]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout.trimEnd(), expected.trimEnd());
  const lines = r.stdout.trimEnd().split('\n');
  assert.ok(lines.length > 1);
  for (const line of lines) assert.ok(line.startsWith(`${file}:`) && /^[^\n]+:\d+:\d+: \S/.test(line), line);
  // An unreadable file is a problem like any other, positioned at 1:1.
  const missing = path.join(tempDir(), 'nope.yaml');
  const m = await cli(['validate', missing]);
  assert.equal(m.code, 1);
  assert.match(m.stdout, new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1:1: cannot read config: ENOENT`));
});

test('run: an invalid first config exits non-zero with the problems on stderr', async () => {
  const file = path.join(FIXTURES, 'config', 'invalid', 'bad-durations.yaml');
  const r = await cli(['run', '--config', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid config/);
  assert.ok(r.stderr.includes(`${file}:3:12: inbound.timeout: invalid duration "5 sec"`), r.stderr);
  assert.equal(r.stdout.includes('outrigger started'), false);
});

test('an empty config file is one rule everywhere: validate and run refuse it as reload does; {} is every default', async () => {
  const dir = tempDir();
  const empty = path.join(dir, 'empty.yaml');
  fs.writeFileSync(empty, '');
  const v = await cli(['validate', empty]);
  assert.equal(v.code, 1);
  assert.equal(
    v.stdout,
    `${empty}:1:1: config file is empty; write {} for every default (and write config files atomically: temp file + rename)\n`,
  );
  const r = await cli(['run', '--config', empty]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`${empty}:1:1: config file is empty`), r.stderr);
  const defaults = path.join(dir, 'defaults.yaml');
  fs.writeFileSync(defaults, '{}\n');
  assert.equal((await cli(['validate', defaults])).stdout, `${defaults}: ok\n`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('run: $OUTRIGGER_CONFIG; SIGTERM drains (/ready 503, traffic served during the delay) and exits 0', async (t) => {
  const { r, file, ports } = await launch(t, {
    drain: '{ delay: 2s, timeout: 5s }',
    args: () => [],
    env: (f) => ({ OUTRIGGER_CONFIG: f }),
  });
  assert.equal(r.logs.find((l) => l['msg'] === 'outrigger started')?.['config'], file);
  assert.equal((await request(ports.admin, { path: '/ready' })).status, 200);
  r.child.kill('SIGTERM');
  await r.waitLog((l) => l['msg'] === 'draining', 'draining');
  assert.equal((await request(ports.admin, { path: '/ready' })).status, 503);
  assert.equal((await request(ports.outbound, { headers: { host: 'svc' } })).status, 200);
  assert.equal(
    r.logs.some((l) => l['msg'] === 'drain: listeners closing'),
    false,
    'the checks above ran within drain.delay',
  );
  const exit = await r.exited;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(r.logs.some((l) => l['msg'] === 'drained'));
});

test('run: access lines reach stdout without further traffic, and none is lost at exit', async (t) => {
  const { r, ports } = await launch(t);
  // Access lines are written in batches (one write per 16 KiB or per second): a lone request's
  // line still arrives, on the next flush, with no other request to push it out.
  assert.equal((await request(ports.outbound, { headers: { host: 'svc' }, path: '/first' })).status, 200);
  const first = await r.waitLog((l) => l['msg'] === 'access' && l['path'] === '/first', 'the access line of /first');
  assert.equal(first['status'], 200);
  // Lines still in the buffer when the process exits are written before it exits.
  for (let i = 0; i < 5; i++) assert.equal((await request(ports.outbound, { headers: { host: 'svc' }, path: `/n${i}` })).status, 200);
  r.child.kill('SIGTERM');
  assert.deepEqual(await r.exited, { code: 0, signal: null });
  const paths = r.logs.filter((l) => l['msg'] === 'access').map((l) => l['path']);
  assert.deepEqual(paths, ['/first', '/n0', '/n1', '/n2', '/n3', '/n4']);
});

test('run: a second SIGTERM during the drain exits at once', async (t) => {
  const { r, ports } = await launch(t, { drain: '{ delay: 60s, timeout: 60s }' });
  assert.equal((await request(ports.outbound, { headers: { host: 'svc' }, path: '/before' })).status, 200);
  r.child.kill('SIGTERM');
  await r.waitLog((l) => l['msg'] === 'draining', 'draining');
  assert.equal((await request(ports.admin, { path: '/ready' })).status, 503);
  r.child.kill('SIGTERM');
  // Without the second signal this would take the 60 s delay (and the test would time out).
  const exit = await r.exited;
  assert.equal(exit.signal, null, 'exited on its own, not killed');
  assert.ok(r.logs.some((l) => l['msg'] === 'second signal: exiting now'));
  assert.equal(
    r.logs.some((l) => l['msg'] === 'drained'),
    false,
  );
  // an exit at once still writes the access lines it had buffered
  assert.ok(r.logs.some((l) => l['msg'] === 'access' && l['path'] === '/before'));
});

test('run: SIGHUP reloads; an invalid file is logged with FILE:LINE:COL and the last good config keeps serving', async (t) => {
  const { r, svc, file, ports } = await launch(t, { args: (f) => ['--config', f] });
  const gen = async (): Promise<string> =>
    (JSON.parse((await request(ports.outbound, { headers: { host: 'svc' } })).body.toString()) as { headers: Record<string, string> })
      .headers['x-gen']!;
  assert.equal(await gen(), 'one');

  let mark = r.logs.length;
  r.child.kill('SIGHUP');
  const first = await r.waitLog((l) => l['msg'] === 'config reloaded', 'a reload on SIGHUP', mark);
  assert.equal(first['reason'], 'SIGHUP');

  mark = r.logs.length;
  fs.writeFileSync(file, config(svc.port, 'two'));
  r.child.kill('SIGHUP');
  await r.waitLog((l) => l['msg'] === 'config reloaded', 'the reload of the edited file', mark);
  assert.equal(await gen(), 'two');

  mark = r.logs.length;
  fs.writeFileSync(file, config(svc.port, 'three').replace('delay: 0s', 'delay: never'));
  r.child.kill('SIGHUP');
  const warn = await r.waitLog((l) => String(l['msg']).startsWith('config reload failed'), 'the reload failure', mark);
  assert.match(
    (warn['errors'] as string[])[0]!,
    new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: drain\\.delay: invalid duration`),
  );
  assert.equal(await gen(), 'two');
  assert.equal((await request(ports.admin, { path: '/ready' })).status, 200);
  const metrics = (await request(ports.admin, { path: '/metrics' })).body.toString();
  // The watcher may have seen the edit before SIGHUP did: one or two failed reloads.
  assert.match(metrics, /^outrigger_config_reloads_total\{result="failure"\} [12]$/m);
  assert.match(metrics, /^outrigger_config_last_reload_successful 0$/m);

  r.child.kill('SIGTERM');
  assert.deepEqual(await r.exited, { code: 0, signal: null });
});
