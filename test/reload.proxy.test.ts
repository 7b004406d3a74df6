// Hot reload through a real proxy (issue 4): the Kubernetes ConfigMap symlink dance picked up by
// the watcher, reloads under continuous keep-alive load without a failed request or a dropped
// connection, pools of unchanged clusters kept, removed clusters finishing their in-flight
// requests, invalid and deleted files keeping the last good config, listener rebinding, and
// SIGHUP not reloading twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Proxy } from '../src/proxy.js';
import { request, startUpstream, type Upstream } from './helpers/servers.js';
import { tempDir } from './helpers/proxy.js';
import { waitFor } from './helpers/wait.js';

interface Running {
  proxy: Proxy;
  logs: Record<string, unknown>[];
  admin: number;
  inbound: number;
  outbound: number;
}

/** Starts a proxy on an existing config path (which may be a symlink), logs captured. */
async function launch(file: string, watch: boolean): Promise<Running> {
  const logs: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const proxy = await Proxy.start({ configFile: file, logLevel: 'info', logDestination: dest, watch, defaultMetrics: false });
  const a = proxy.addresses();
  return { proxy, logs, admin: a.admin.port, inbound: a.inbound?.port ?? 0, outbound: a.outbound?.port ?? 0 };
}

/** An upstream that answers its name (and the request's x-gen header, set by the route). */
function named(name: string, delay?: Promise<void>): Promise<Upstream> {
  return startUpstream((req, res) => {
    const body = JSON.stringify({ name, gen: req.headers['x-gen'] ?? null });
    const send = (): void => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (delay === undefined) send();
    else void delay.then(send);
  });
}

async function metric(admin: number, name: string, labels = ''): Promise<number | null> {
  const r = await request(admin, { path: '/metrics' });
  const line = r.body
    .toString()
    .split('\n')
    .find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? null : Number(line.split(' ')[1]);
}

function body(r: { body: Buffer }): { name: string; gen: string | null } {
  return JSON.parse(r.body.toString()) as { name: string; gen: string | null };
}

function config(o: { svc: number; extra?: number | null; gen?: string; app?: number; outboundListen?: string }): string {
  const extraCluster = o.extra == null ? '' : `  extra: { endpoints: ["127.0.0.1:${o.extra}"] }\n`;
  const extraRoute = o.extra == null ? '' : `    - name: extra\n      match: { host: extra-svc }\n      cluster: extra\n`;
  const inbound = o.app === undefined ? '' : `inbound: { listen: 127.0.0.1:0, app: 127.0.0.1:${o.app} }\n`;
  return `admin: { listen: 127.0.0.1:0 }
${inbound}outbound:
  listen: ${o.outboundListen ?? '127.0.0.1:0'}
  unknownHosts: reject
  routes:
${extraRoute}    - name: svc
      match: { host: svc }
      cluster: svc
      headers: { request: { set: { x-gen: "${o.gen ?? 'g0'}" } } }
clusters:
  svc: { endpoints: ["127.0.0.1:${o.svc}"] }
${extraCluster}drain: { delay: 0s, timeout: 10s }
`;
}

test('a ConfigMap update (the kubelet ..data symlink dance) takes effect through the watcher', async (t) => {
  const a = await named('a');
  const b = await named('b');
  const dir = tempDir();
  // The layout of a ConfigMap volume: ..<timestamp>/outrigger.yaml, ..data -> it, outrigger.yaml -> ..data/outrigger.yaml
  const v1 = path.join(dir, '..2026_11_26_01_00_00.000000001');
  fs.mkdirSync(v1);
  fs.writeFileSync(path.join(v1, 'outrigger.yaml'), config({ svc: a.port, gen: 'v1' }));
  fs.symlinkSync(path.basename(v1), path.join(dir, '..data'));
  fs.symlinkSync('..data/outrigger.yaml', path.join(dir, 'outrigger.yaml'));
  const p = await launch(path.join(dir, 'outrigger.yaml'), true);
  t.after(async () => {
    await p.proxy.close();
    await Promise.all([a.close(), b.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  assert.deepEqual(body(await request(p.outbound, { headers: { host: 'svc' } })), { name: 'a', gen: 'v1' });

  // The kubelet's atomic writer: new timestamped dir, ..data_tmp -> it, rename over ..data, remove the old dir.
  const v2 = path.join(dir, '..2026_11_26_01_01_00.000000002');
  fs.mkdirSync(v2);
  fs.writeFileSync(path.join(v2, 'outrigger.yaml'), config({ svc: b.port, gen: 'v2' }));
  fs.symlinkSync(path.basename(v2), path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  fs.rmSync(v1, { recursive: true });

  const seen = await waitFor(
    async () => {
      const r = body(await request(p.outbound, { headers: { host: 'svc' } }));
      return r.name === 'b' ? r : undefined;
    },
    { what: 'the new config to take effect' },
  );
  assert.deepEqual(seen, { name: 'b', gen: 'v2' });
  assert.equal(await metric(p.admin, 'outrigger_config_reloads_total', '{result="success"}'), 2);
  assert.equal(await metric(p.admin, 'outrigger_config_last_reload_successful'), 1);
  const line = p.logs.find((l) => l['msg'] === 'config reloaded');
  assert.equal(line?.['reason'], 'file changed');
  const cfg = JSON.parse((await request(p.admin, { path: '/config' })).body.toString()) as {
    clusters: Record<string, { endpoints: string[] }>;
  };
  assert.deepEqual(cfg.clusters['svc']?.endpoints, [`127.0.0.1:${b.port}`]);
});

test('reloads under continuous keep-alive load: no failed request, no dropped connection, pools kept', async (t) => {
  const svc = await named('svc');
  const extra = await named('extra');
  const app = await named('app');
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, config({ svc: svc.port, app: app.port, gen: 'g0' }));
  const p = await launch(file, false);
  const agents: http.Agent[] = [];
  t.after(async () => {
    for (const ag of agents) ag.destroy();
    await p.proxy.close();
    await Promise.all([svc.close(), extra.close(), app.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // Each client: one keep-alive socket, requests back to back until told to stop.
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const client = async (port: number, host: string): Promise<Set<net.Socket>> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const sockets = new Set<net.Socket>();
    while (!stop) {
      await new Promise<void>((resolve) => {
        const req = http.request({ port, host: '127.0.0.1', path: '/', headers: { host }, agent }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            else failures.push(`${host}: status ${res.statusCode}`);
            resolve();
          });
        });
        req.on('socket', (s) => sockets.add(s));
        req.on('error', (err) => {
          failures.push(`${host}: ${err.message}`);
          resolve();
        });
        req.end();
      });
    }
    return sockets;
  };
  const clients = [
    client(p.outbound, 'svc'),
    client(p.outbound, 'svc'),
    client(p.outbound, 'svc'),
    client(p.inbound, 'app.local'),
    client(p.inbound, 'app.local'),
  ];

  // Reload every 150 ms for ~3 s: the route's header changes every time, the "extra" cluster comes
  // and goes (created, then removed and retired), svc and the app stay as they are.
  const connectionsBefore = { svc: 0, app: 0 };
  await waitFor(() => ok >= 20, { what: 'warm-up traffic' });
  connectionsBefore.svc = svc.connections;
  connectionsBefore.app = app.connections;
  let reloads = 0;
  for (let i = 1; i <= 20; i++) {
    fs.writeFileSync(file, config({ svc: svc.port, app: app.port, gen: `g${i}`, extra: i % 2 === 1 ? extra.port : null }));
    assert.equal(await p.proxy.reload('test'), true, `reload ${i}`);
    reloads++;
    await new Promise((r) => setTimeout(r, 150));
  }
  const during = ok;
  await waitFor(() => ok >= during + 10, { what: 'traffic after the last reload' });
  stop = true;
  const socketSets = await Promise.all(clients);

  assert.deepEqual(failures, []);
  assert.ok(ok > 100, `requests served: ${ok}`);
  // Every client kept its one connection through all the reloads.
  assert.deepEqual(
    socketSets.map((s) => s.size),
    [1, 1, 1, 1, 1],
  );
  // The proxy's pools to the unchanged cluster and app were kept: no new upstream connection.
  assert.equal(svc.connections, connectionsBefore.svc, 'svc upstream saw no new connection across reloads');
  assert.equal(app.connections, connectionsBefore.app, 'app saw no new connection across reloads');
  assert.equal(await metric(p.admin, 'outrigger_config_reloads_total', '{result="success"}'), 1 + reloads);
  // And the reloads did take effect.
  assert.deepEqual(body(await request(p.outbound, { headers: { host: 'svc' } })), { name: 'svc', gen: 'g20' });
});

test('the pool of an unchanged cluster survives reloads that change everything around it', async (t) => {
  const svc = await named('svc');
  const other = await named('other');
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, config({ svc: svc.port }));
  const p = await launch(file, false);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(async () => {
    agent.destroy();
    await p.proxy.close();
    await Promise.all([svc.close(), other.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  assert.equal((await request(p.outbound, { headers: { host: 'svc' }, agent })).status, 200);
  assert.equal(svc.connections, 1);
  for (let i = 0; i < 5; i++) {
    fs.writeFileSync(file, config({ svc: svc.port, gen: `x${i}`, extra: i % 2 === 0 ? other.port : null }));
    assert.equal(await p.proxy.reload('test'), true);
    const r = await request(p.outbound, { headers: { host: 'svc' }, agent });
    assert.deepEqual(body(r), { name: 'svc', gen: `x${i}` });
  }
  assert.equal(svc.connections, 1, 'no new connection to the unchanged cluster');

  // A changed cluster (here: its connect timeout) gets new pools: the counter-check that the
  // assertion above can fail.
  fs.writeFileSync(
    file,
    config({ svc: svc.port }).replace(
      `svc: { endpoints: ["127.0.0.1:${svc.port}"] }`,
      `svc: { endpoints: ["127.0.0.1:${svc.port}"], connectTimeout: 2s }`,
    ),
  );
  assert.equal(await p.proxy.reload('test'), true);
  assert.equal((await request(p.outbound, { headers: { host: 'svc' }, agent })).status, 200);
  assert.equal(svc.connections, 2);
});

test('a removed cluster finishes its in-flight request, then closes its connections', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const svc = await named('svc');
  const slow = await named('slow', gate);
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, config({ svc: svc.port, extra: slow.port }));
  const p = await launch(file, false);
  t.after(async () => {
    release();
    await p.proxy.close();
    await Promise.all([svc.close(), slow.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const upstreamSocketClosed = new Promise<void>((resolve) => slow.server.on('connection', (s) => s.on('close', () => resolve())));
  const inFlight = request(p.outbound, { headers: { host: 'extra-svc' } });
  await waitFor(() => slow.requests.length === 1, { what: 'the slow request to arrive' });

  fs.writeFileSync(file, config({ svc: svc.port, extra: null }));
  assert.equal(await p.proxy.reload('test'), true);
  // The new snapshot no longer routes there...
  assert.equal((await request(p.outbound, { headers: { host: 'extra-svc' } })).status, 404);
  // ...but the request that started on the old one finishes on it.
  release();
  const r = await inFlight;
  assert.equal(r.status, 200);
  assert.equal(body(r).name, 'slow');
  // Then the retired cluster's pool closes its (otherwise keep-alive) upstream connection.
  await upstreamSocketClosed;
});

test('an invalid or deleted config keeps the last good one serving; a valid one recovers', async (t) => {
  const svc = await named('svc');
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, config({ svc: svc.port, gen: 'good' }));
  const p = await launch(file, false);
  t.after(async () => {
    await p.proxy.close();
    await svc.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // Two problems in one file: both reported, in one warning.
  fs.writeFileSync(
    file,
    config({ svc: svc.port, gen: 'bad' }).replace('unknownHosts: reject', 'unknownHosts: maybe').replace('delay: 0s', 'delay: soon'),
  );
  assert.equal(await p.proxy.reload('test'), false);
  const warns = p.logs.filter((l) => l['msg'] !== undefined && String(l['msg']).startsWith('config reload failed'));
  assert.equal(warns.length, 1);
  const errors = warns[0]!['errors'] as string[];
  assert.equal(errors.length, 2, JSON.stringify(errors));
  for (const e of errors) assert.match(e, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: .+`));
  assert.equal(warns[0]!['level'], 'warn');
  assert.deepEqual(body(await request(p.outbound, { headers: { host: 'svc' } })), { name: 'svc', gen: 'good' });
  assert.equal(await metric(p.admin, 'outrigger_config_reloads_total', '{result="failure"}'), 1);
  assert.equal(await metric(p.admin, 'outrigger_config_last_reload_successful'), 0);

  // A deleted file is one more invalid config, not a crash.
  fs.rmSync(file);
  assert.equal(await p.proxy.reload('test'), false);
  assert.equal((await request(p.outbound, { headers: { host: 'svc' } })).status, 200);
  assert.equal(await metric(p.admin, 'outrigger_config_reloads_total', '{result="failure"}'), 2);
  const lastWarn = p.logs.filter((l) => String(l['msg']).startsWith('config reload failed')).at(-1)!;
  assert.match((lastWarn['errors'] as string[])[0]!, /:1:1: cannot read config: ENOENT/);
  // /ready is about serving, not about the last reload.
  assert.equal((await request(p.admin, { path: '/ready' })).status, 200);

  fs.writeFileSync(file, config({ svc: svc.port, gen: 'fixed' }));
  assert.equal(await p.proxy.reload('test'), true);
  assert.deepEqual(body(await request(p.outbound, { headers: { host: 'svc' } })), { name: 'svc', gen: 'fixed' });
  assert.equal(await metric(p.admin, 'outrigger_config_last_reload_successful'), 1);
  assert.equal(await metric(p.admin, 'outrigger_config_reloads_total', '{result="success"}'), 2);
});

test('a changed listener address binds the new socket before the old one closes; a taken port is refused clearly', async (t) => {
  const svc = await named('svc');
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const taken = (blocker.address() as net.AddressInfo).port;
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, config({ svc: svc.port }));
  const p = await launch(file, false);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(async () => {
    agent.destroy();
    await p.proxy.close();
    await svc.close();
    await new Promise<void>((r) => blocker.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const oldPort = p.outbound;
  // A keep-alive connection on the old socket.
  assert.equal((await request(oldPort, { headers: { host: 'svc' }, agent })).status, 200);

  // The port is taken: the reload fails as a whole and says why; the old listener keeps serving.
  fs.writeFileSync(file, config({ svc: svc.port, gen: 'moved', outboundListen: `127.0.0.1:${taken}` }));
  assert.equal(await p.proxy.reload('test'), false);
  const warn = p.logs.filter((l) => String(l['msg']).startsWith('config reload failed')).at(-1)!;
  assert.match(
    (warn['errors'] as string[])[0]!,
    new RegExp(`outbound\\.listen: cannot bind 127\\.0\\.0\\.1:${taken} \\(now on 127\\.0\\.0\\.1:${oldPort}\\): .*EADDRINUSE`),
  );
  assert.equal(body(await request(oldPort, { headers: { host: 'svc' }, agent })).gen, 'g0');

  // A free port: the new socket serves the new config; the old one stops accepting.
  const free = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  fs.writeFileSync(file, config({ svc: svc.port, gen: 'moved', outboundListen: `127.0.0.1:${free}` }));
  assert.equal(await p.proxy.reload('test'), true);
  assert.equal(p.proxy.addresses().outbound?.port, free);
  assert.equal(body(await request(free, { headers: { host: 'svc' } })).gen, 'moved');
  await assert.rejects(request(oldPort, { headers: { host: 'svc' } }), /ECONNREFUSED/);
});

test('SIGHUP (hangup) reloads once: not again when the watcher saw the same change', async (t) => {
  const svc = await named('svc');
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, config({ svc: svc.port, gen: 'h0' }));
  const p = await launch(file, true);
  t.after(async () => {
    await p.proxy.close();
    await svc.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const reloaded = (): Record<string, unknown>[] => p.logs.filter((l) => l['msg'] === 'config reloaded');

  // Unchanged file: SIGHUP still reloads (an explicit request).
  assert.equal(await p.proxy.hangup(), true);
  assert.equal(reloaded().length, 1);
  assert.equal(reloaded()[0]!['reason'], 'SIGHUP');

  // Changed file, SIGHUP at once: one reload, whichever of the two noticed first.
  fs.writeFileSync(file, config({ svc: svc.port, gen: 'h1' }));
  assert.equal(await p.proxy.hangup(), true);
  assert.equal(body(await request(p.outbound, { headers: { host: 'svc' } })).gen, 'h1');
  // Wait past the watcher's debounce and one poll, for a second reload that must not come.
  await new Promise((r) => setTimeout(r, 2600));
  assert.equal(reloaded().length, 2, JSON.stringify(reloaded().map((l) => l['reason'])));
});

test('an empty config file (an in-place write caught half-way) is refused, not applied', async (t) => {
  const svc = await named('svc');
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, config({ svc: svc.port, gen: 'kept' }));
  const p = await launch(file, false);
  t.after(async () => {
    await p.proxy.close();
    await svc.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  fs.writeFileSync(file, '');
  assert.equal(await p.proxy.reload('test'), false);
  const warn = p.logs.filter((l) => String(l['msg']).startsWith('config reload failed')).at(-1)!;
  assert.match((warn['errors'] as string[])[0]!, /:1:1: config file is empty/);
  assert.deepEqual(body(await request(p.outbound, { headers: { host: 'svc' } })), { name: 'svc', gen: 'kept' });
});

test('a certificate file the config names is watched: new content rebuilds the cluster that uses it', async (t) => {
  const { makePki } = await import('./helpers/certs.js');
  const svc = await named('svc');
  const dir = tempDir();
  const pki = await makePki(dir);
  const ca = path.join(dir, 'upstream-ca.pem');
  fs.copyFileSync(pki.ca, ca);
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(
    file,
    config({ svc: svc.port }).replace(
      'drain:',
      `  secure: { endpoints: ["127.0.0.1:${svc.port}"], tls: { ca: ${ca}, serverName: svc.test } }\ndrain:`,
    ),
  );
  const p = await launch(file, true);
  t.after(async () => {
    await p.proxy.close();
    await svc.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(
    p.logs.some((l) => l['msg'] === 'config reloaded'),
    false,
  );
  // A rotated CA bundle: same path, new bytes, written by rename as cert-manager/kubelet do.
  fs.copyFileSync(pki.otherCa, `${ca}.tmp`);
  fs.renameSync(`${ca}.tmp`, ca);
  const line = await waitFor(() => p.logs.find((l) => l['msg'] === 'config reloaded'), { what: 'the reload on the CA change' });
  assert.equal(line['reason'], 'file changed');
  assert.deepEqual(line['created'], ['secure'], 'only the cluster using the file is rebuilt');
  assert.equal((await request(p.outbound, { headers: { host: 'svc' } })).status, 200);
});

test('turning inbound TLS on at the same fixed address is refused with a clear message', async (t) => {
  const { makePki } = await import('./helpers/certs.js');
  const app = await named('app');
  const svc = await named('svc');
  const dir = tempDir();
  const pki = await makePki(dir);
  const server = await pki.issue('server', { uris: ['spiffe://cluster.local/ns/t/sa/server'], ips: ['127.0.0.1'] });
  // A fixed port (port 0 would just mean "another ephemeral port").
  const fixed = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  const file = path.join(dir, 'outrigger.yaml');
  const plain = config({ svc: svc.port, app: app.port }).replace(
    'inbound: { listen: 127.0.0.1:0,',
    `inbound: { listen: 127.0.0.1:${fixed},`,
  );
  fs.writeFileSync(file, plain);
  const p = await launch(file, false);
  t.after(async () => {
    await p.proxy.close();
    await Promise.all([app.close(), svc.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(p.inbound, fixed);
  fs.writeFileSync(
    file,
    plain.replace(
      `app: 127.0.0.1:${app.port} }`,
      `app: 127.0.0.1:${app.port}, tls: { cert: ${server.cert}, key: ${server.key}, ca: ${pki.ca} } }`,
    ),
  );
  assert.equal(await p.proxy.reload('test'), false);
  const warn = p.logs.filter((l) => String(l['msg']).startsWith('config reload failed')).at(-1)!;
  assert.match(
    (warn['errors'] as string[])[0]!,
    new RegExp(`inbound\\.tls: .*needs a new socket on 127\\.0\\.0\\.1:${fixed}.*restart to apply`),
  );
  // Still the plain listener, still serving.
  assert.equal(body(await request(fixed, { headers: { host: 'app' } })).name, 'app');
});
