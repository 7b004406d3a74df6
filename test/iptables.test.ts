// docker/iptables.sh for real: two network namespaces joined by a veth pair stand for a pod
// (10.77.0.2) and the rest of the cluster (10.77.0.1). The script runs in the pod namespace; a
// proxy runs there as UID 1337: the real one (`dist/cli.js run`) when it is built and accepts the
// config, else a tiny stand-in with the same ports that forwards and stamps x-request-id.
// What crosses the wire shows: the app's plain outbound call was redirected to the outbound
// listener, the proxy's own (UID 1337) traffic was not, inbound traffic reached the app through
// the inbound listener, and loopback and excluded ports bypass the proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLI, ROOT } from './helpers/paths.js';
import { waitReadyScript } from '../src/inject/sidecar.js';

const SCRIPT = path.join(ROOT, 'docker', 'iptables.sh');
const POD = `orpod${process.pid}`;
const PEER = `orpeer${process.pid}`;
const POD_IP = '10.77.0.2';
const PEER_IP = '10.77.0.1';

/** Stand-in proxy: the three listeners (docs/operations.md), forwarding like `unknownHosts: passthrough`. */
const STAND_IN = `
const http = require('http');
function fwd(req, res, host, port) {
  if (req.headers['x-request-id'] === 'stand-in') { res.writeHead(508); res.end('loop'); return; }
  const headers = Object.assign({}, req.headers, { 'x-request-id': 'stand-in' });
  const up = http.request({ host, port, method: req.method, path: req.url, headers }, (r) => {
    res.writeHead(r.statusCode, r.headers); r.pipe(res);
  });
  up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
  req.pipe(up);
}
http.createServer((req, res) => {
  const m = /^(.*?)(?::(\\d+))?$/.exec(req.headers.host || '');
  fwd(req, res, m[1], Number(m[2] || 80));
}).listen(15001, '127.0.0.1');
http.createServer((req, res) => fwd(req, res, '127.0.0.1', 8080)).listen(15006, '0.0.0.0');
http.createServer((req, res) => res.end(req.url === '/ready' ? 'ready' : 'live')).listen(15000, '127.0.0.1');
`;

/** An HTTP server on each given port answering what it saw, as JSON. */
function echoServer(host: string, ports: number[]): string {
  return `
const http = require('http');
for (const port of ${JSON.stringify(ports)}) {
  http.createServer((req, res) => res.end(JSON.stringify({
    server: '${host}:' + port, requestId: req.headers['x-request-id'] || null,
  }))).listen(port, '${host}', () => console.log('listening ' + port));
}`;
}

const CLIENT = `
require('http').get(process.argv[1], (r) => {
  let b = ''; r.on('data', (d) => (b += d));
  r.on('end', () => console.log(JSON.stringify({ status: r.statusCode, body: b })));
}).on('error', (e) => console.log(JSON.stringify({ error: e.message })));`;

function sh(cmd: string, args: string[]): string {
  // A redirect loop must fail the test, not hang it.
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
}

function inNs(ns: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, ...args]);
}

interface Reply {
  readonly status?: number;
  readonly error?: string;
  readonly server?: string;
  readonly requestId?: string | null;
}

/** GET `url` from a client in `ns` (as `uid` when given); the parsed echo answer. */
function get(ns: string, url: string, uid: number | null = null): Reply {
  const cmd = uid === null ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const out = JSON.parse(inNs(ns, [...cmd, process.execPath, '-e', CLIENT, url])) as { status?: number; body?: string; error?: string };
  if (out.error !== undefined) return { error: out.error };
  try {
    return { status: out.status!, ...(JSON.parse(out.body!) as object) };
  } catch {
    return { status: out.status!, error: out.body! };
  }
}

/** Starts a long-running process and resolves once it printed `marker` (or exited). */
function start(args: string[], marker: string | null, procs: ChildProcess[]): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(child);
  if (marker === null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes(marker)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${buf}`)));
  });
}

/**
 * A checkout in a `mktemp -d` folder (mode 700, as CI's may be) keeps UID 1337 from reaching
 * dist/ and node_modules/: let others traverse each folder on the way to the repository.
 */
function letProxyUserIn(): void {
  for (let d = ROOT; ; d = path.dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) chmodSync(d, (mode & 0o7777) | 0o001);
    if (path.dirname(d) === d) break;
  }
}

/** Whether the real proxy is built and, run as UID 1337, accepts our config; else the stand-in is used. */
function realProxyUsable(config: string): boolean {
  if (!existsSync(CLI)) return false;
  letProxyUserIn();
  const r = spawnSync('setpriv', ['--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, CLI, 'validate', config], {
    encoding: 'utf8',
  });
  return r.status === 0;
}

test('iptables.sh redirects the pod’s traffic through the proxy, except the proxy’s own', { timeout: 90_000 }, async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root to create network namespaces (run the suite as root, as CI does)');
    return;
  }
  for (const bin of ['ip', 'iptables', 'setpriv']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) {
      t.skip(`${bin} is not installed (apt-get install -y iptables iproute2)`);
      return;
    }
  }
  const created: string[] = [];
  const procs: ChildProcess[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'outrigger-ipt-'));
  chmodSync(dir, 0o755); // UID 1337 reads the config from here
  try {
    try {
      for (const ns of [POD, PEER]) {
        sh('ip', ['netns', 'add', ns]);
        created.push(ns);
        inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
      }
      sh('ip', ['link', 'add', 'orv0', 'netns', POD, 'type', 'veth', 'peer', 'name', 'orv1', 'netns', PEER]);
      inNs(POD, ['ip', 'addr', 'add', `${POD_IP}/24`, 'dev', 'orv0']);
      inNs(POD, ['ip', 'link', 'set', 'orv0', 'up']);
      inNs(PEER, ['ip', 'addr', 'add', `${PEER_IP}/24`, 'dev', 'orv1']);
      inNs(PEER, ['ip', 'link', 'set', 'orv1', 'up']);
      inNs(POD, ['iptables', '-t', 'nat', '-S']);
    } catch (e) {
      t.skip(`the kernel refused network namespaces or nat rules: ${(e as Error).message.split('\n')[0]}`);
      return;
    }

    // --dry-run prints the rules and changes nothing.
    const dry = inNs(POD, ['sh', SCRIPT, '--dry-run', '--exclude-outbound-ports', '81']);
    assert.match(dry, /-A OUTRIGGER_OUTPUT -m owner --uid-owner 1337 -j RETURN/);
    assert.match(dry, /-A OUTRIGGER_OUTPUT -p tcp -j REDIRECT --to-ports 15001/);
    assert.match(dry, /-A OUTRIGGER_INBOUND -p tcp -j REDIRECT --to-ports 15006/);
    assert.doesNotMatch(inNs(POD, ['iptables', '-t', 'nat', '-S']), /OUTRIGGER/);

    // Twice, to show it is idempotent.
    const args = ['--exclude-inbound-ports', '9090', '--exclude-outbound-ports', '81'];
    inNs(POD, ['sh', SCRIPT, ...args]);
    inNs(POD, ['env', 'OUTRIGGER_PROXY_UID=1337', 'sh', SCRIPT, ...args]);
    const rules = inNs(POD, ['iptables', '-t', 'nat', '-S']).split('\n');
    assert.equal(rules.filter((r) => r === '-A OUTPUT -p tcp -j OUTRIGGER_OUTPUT').length, 1);
    assert.equal(rules.filter((r) => r === '-A PREROUTING -p tcp -j OUTRIGGER_INBOUND').length, 1);
    assert.equal(rules.filter((r) => r.startsWith('-A OUTRIGGER_OUTPUT')).length, 4);

    // The rest of the cluster: a service on PEER_IP:80 and :81. The app: 127.0.0.1:8080 and :9090.
    await start([PEER, process.execPath, '-e', echoServer(PEER_IP, [80, 81])], 'listening 81', procs);
    await start([POD, process.execPath, '-e', echoServer('0.0.0.0', [8080, 9090])], 'listening 9090', procs);

    const config = path.join(dir, 'outrigger.yaml');
    writeFileSync(
      config,
      [
        'admin: { listen: 127.0.0.1:15000 }',
        'inbound: { listen: 0.0.0.0:15006, app: 127.0.0.1:8080 }',
        'outbound: { listen: 127.0.0.1:15001, unknownHosts: passthrough }',
        '',
      ].join('\n'),
    );
    chmodSync(config, 0o644);
    const real = realProxyUsable(config);
    t.diagnostic(real ? 'proxy: dist/cli.js' : 'proxy: stand-in (dist/cli.js missing or rejects the config)');
    const asProxy = ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', process.execPath];
    await start([POD, ...asProxy, ...(real ? [CLI, 'run', '--config', config] : ['-e', STAND_IN])], null, procs);
    // Same readiness wait as the injected postStart hook.
    inNs(POD, [process.execPath, '-e', waitReadyScript(15000)]);
    const proxied = real
      ? (id: string | null | undefined) => typeof id === 'string' && id !== ''
      : (id: string | null | undefined) => id === 'stand-in';

    // The app's plain call to the service went through the outbound listener...
    const out = get(POD, `http://${PEER_IP}/orders`);
    assert.equal(out.status, 200, JSON.stringify(out));
    assert.equal(out.server, `${PEER_IP}:80`);
    assert.ok(proxied(out.requestId), `outbound call was not proxied: ${JSON.stringify(out)}`);
    // ...and the proxy's own connection to it (UID 1337) was not redirected again (else: a loop).
    const own = get(POD, `http://${PEER_IP}/orders`, 1337);
    assert.deepEqual([own.server, own.requestId], [`${PEER_IP}:80`, null]);
    // Excluded outbound port and loopback destinations bypass the proxy.
    assert.deepEqual(get(POD, `http://${PEER_IP}:81/`).requestId, null);
    assert.deepEqual(get(POD, 'http://127.0.0.1:8080/').requestId, null);
    // Inbound: a caller from outside the pod reaches the app through the inbound listener.
    const inbound = get(PEER, `http://${POD_IP}:8080/assets`);
    assert.equal(inbound.server, '0.0.0.0:8080', JSON.stringify(inbound));
    assert.ok(proxied(inbound.requestId), `inbound call was not proxied: ${JSON.stringify(inbound)}`);
    // Any port is redirected to the inbound listener, which sends it to the app's port...
    assert.equal(get(PEER, `http://${POD_IP}:7777/`).server, '0.0.0.0:8080');
    // ...except the excluded ones.
    assert.deepEqual(get(PEER, `http://${POD_IP}:9090/`), { status: 200, server: '0.0.0.0:9090', requestId: null });

    // --clean removes everything it added.
    inNs(POD, ['sh', SCRIPT, '--clean']);
    assert.doesNotMatch(inNs(POD, ['iptables', '-t', 'nat', '-S']), /OUTRIGGER/);
  } finally {
    for (const p of procs) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await new Promise((r) => p.once('exit', r));
      }
    }
    for (const ns of created) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  }
});
