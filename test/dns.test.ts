// DNS discovery and the passthrough lookup against a real (fake) authoritative DNS server on
// 127.0.0.1. Waits are on what happened (onUpdate / onError / query counts), never on elapsed time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Client } from 'undici';
import { createLookup, DnsDiscovery, HostResolver, resolveOnce } from '../src/cluster/dns.js';
import type { DnsDiscoveryOptions } from '../src/cluster/dns.js';
import type { Address } from '../src/config/types.js';
import { startDnsServer } from './helpers/dns-server.js';
import type { DnsServer } from './helpers/dns-server.js';
import { waitFor } from './helpers/wait.js';

// Short query timeouts keep the "no answer" cases quick.
const QUICK = { timeout: 100, tries: 1 } as const;

const hosts = (addrs: readonly Address[]): string[] => addrs.map((a) => a.host);

/** A discovery whose callbacks are recorded, in order, for the test to wait on and inspect. */
function watch(opts: Omit<DnsDiscoveryOptions, 'onUpdate' | 'onError'>) {
  const updates: (readonly Address[])[] = [];
  const errors: { err: Error; consecutive: number }[] = [];
  const d = new DnsDiscovery({
    ...opts,
    onUpdate: (a) => updates.push(a),
    onError: (err, consecutive) => errors.push({ err, consecutive }),
  });
  return { d, updates, errors };
}

/** The waits here poll every 5 ms: the refresh periods are 10-20 ms. */
const POLL = { intervalMs: 5 } as const;

describe('DnsDiscovery', () => {
  let dns: DnsServer;
  let servers: Address[];
  before(async () => {
    dns = await startDnsServer();
    servers = [{ host: '127.0.0.1', port: dns.port }];
  });
  after(() => dns.close());

  it('resolves A and AAAA into one sorted set, on the cluster port', async () => {
    dns.set('svc.test', ['10.0.0.2', '10.0.0.1'], ['2001:db8::1']);
    const w = watch({ name: 'svc.test', port: 8080, refresh: 0, servers, resolver: QUICK });
    w.d.start();
    await w.d.firstResult;
    assert.equal(w.updates.length, 1);
    assert.deepEqual(w.updates[0], [
      { host: '10.0.0.1', port: 8080 },
      { host: '10.0.0.2', port: 8080 },
      { host: '2001:db8::1', port: 8080 },
    ]);
    assert.equal(w.d.addresses, w.updates[0]);
    assert.equal(w.d.failures, 0);
    assert.equal(w.errors.length, 0);
    w.d.stop();
  });

  it('picks up a change on refresh, and calls onUpdate only when the set changed', async () => {
    dns.set('change.test', ['10.0.1.1']);
    const w = watch({ name: 'change.test', port: 80, refresh: 20, servers, resolver: QUICK });
    w.d.start();
    await waitFor(() => w.updates.length === 1, POLL);
    // Several more refreshes with the same answer: no update.
    const q = dns.queries;
    await waitFor(() => dns.queries >= q + 6, POLL);
    assert.equal(w.updates.length, 1);
    dns.set('change.test', ['10.0.1.1', '10.0.1.2'], ['::1']);
    await waitFor(() => w.updates.length === 2, POLL);
    assert.deepEqual(hosts(w.updates[1]!), ['10.0.1.1', '10.0.1.2', '::1']);
    w.d.stop();
  });

  it('keeps the last known addresses on failure, reports it, and recovers', async () => {
    dns.set('flaky.test', ['10.0.2.1']);
    const w = watch({ name: 'flaky.test', port: 80, refresh: 20, servers, resolver: QUICK });
    w.d.start();
    await waitFor(() => w.updates.length === 1, POLL);
    dns.fail(true); // SERVFAIL
    await waitFor(() => w.errors.length >= 2, POLL);
    assert.deepEqual(
      w.errors.slice(0, 2).map((e) => e.consecutive),
      [1, 2],
    );
    assert.equal((w.errors[0]!.err as NodeJS.ErrnoException).code, 'ESERVFAIL');
    assert.ok(w.d.failures >= 2);
    assert.deepEqual(hosts(w.d.addresses), ['10.0.2.1']);
    assert.equal(w.updates.length, 1);
    // The name vanishing (NXDOMAIN) does not empty the cluster either.
    dns.fail(false);
    dns.delete('flaky.test');
    const before = w.errors.length;
    await waitFor(() => w.errors.length > before, POLL);
    assert.equal((w.errors.at(-1)!.err as NodeJS.ErrnoException).code, 'ENOTFOUND');
    assert.deepEqual(hosts(w.d.addresses), ['10.0.2.1']);
    dns.set('flaky.test', ['10.0.2.9']);
    await waitFor(() => w.updates.length === 2, POLL);
    assert.deepEqual(hosts(w.updates[1]!), ['10.0.2.9']);
    assert.equal(w.d.failures, 0);
    w.d.stop();
  });

  it('a name that does not exist settles firstResult with zero addresses', async () => {
    const w = watch({ name: 'nowhere.test', port: 80, refresh: 1000, servers, resolver: QUICK });
    w.d.start();
    await w.d.firstResult;
    assert.deepEqual(w.d.addresses, []);
    assert.equal(w.d.failures, 1);
    assert.equal(w.updates.length, 0);
    assert.equal((w.errors[0]!.err as NodeJS.ErrnoException).code, 'ENOTFOUND');
    w.d.stop();
  });

  it('a server that never answers settles firstResult with zero addresses', async () => {
    dns.set('silent.test', ['10.0.3.1']);
    dns.fail(true, 'drop');
    try {
      const w = watch({ name: 'silent.test', port: 80, refresh: 1000, servers, resolver: QUICK });
      w.d.start();
      await w.d.firstResult;
      assert.deepEqual(w.d.addresses, []);
      assert.equal(w.errors.length, 1);
      assert.equal((w.errors[0]!.err as NodeJS.ErrnoException).code, 'ETIMEOUT');
      w.d.stop();
    } finally {
      dns.fail(false);
    }
  });

  it('stop() stops querying', async () => {
    dns.set('stop.test', ['10.0.4.0']);
    let updates = 0;
    let atStop = -1;
    let d: DnsDiscovery | null = null;
    const done = new Promise<void>((resolve) => {
      d = new DnsDiscovery({
        name: 'stop.test',
        port: 80,
        refresh: 10,
        servers,
        resolver: QUICK,
        onUpdate: () => {
          updates++;
          if (updates < 3) {
            dns.set('stop.test', [`10.0.4.${updates}`]);
            return;
          }
          // Inside the callback no query is in flight and every query sent so far has been
          // answered, hence counted by the server: from here on the count must not move.
          d!.stop();
          atStop = dns.queries;
          resolve();
        },
        onError: () => {},
      });
    });
    d!.start();
    await done;
    await d!.firstResult;
    await new Promise((r) => setTimeout(r, 150)); // fifteen refresh periods
    assert.equal(dns.queries, atStop);
    assert.equal(updates, 3);
  });

  it('stop() before any answer settles firstResult', async () => {
    dns.fail(true, 'drop');
    try {
      const w = watch({ name: 'never.test', port: 80, refresh: 10, servers, resolver: { timeout: 5000, tries: 1 } });
      w.d.start();
      await waitFor(() => dns.queries > 0, POLL);
      w.d.stop();
      await w.d.firstResult;
      assert.deepEqual(w.d.addresses, []);
    } finally {
      dns.fail(false);
    }
  });

  it('an IP literal resolves to itself without a query', async () => {
    const q = dns.queries;
    for (const ip of ['10.9.9.9', '::1']) {
      const w = watch({ name: ip, port: 81, refresh: 10, servers, resolver: QUICK });
      w.d.start();
      await w.d.firstResult;
      assert.deepEqual(w.d.addresses, [{ host: ip, port: 81 }]);
      w.d.stop();
    }
    assert.equal(dns.queries, q);
  });

  it('localhost resolves through the system lookup (/etc/hosts), with or without servers', async () => {
    for (const s of [null, servers]) {
      const w = watch({ name: 'localhost', port: 82, refresh: 0, servers: s, resolver: QUICK });
      w.d.start();
      await w.d.firstResult;
      assert.ok(w.d.addresses.length > 0);
      for (const a of w.d.addresses) assert.ok(a.host === '127.0.0.1' || a.host === '::1', a.host);
    }
  });
});

describe('passthrough lookup through the configured resolver', () => {
  let dns: DnsServer;
  let servers: Address[];
  let web: http.Server;
  let webPort: number;
  const seenHosts: string[] = [];
  before(async () => {
    dns = await startDnsServer();
    servers = [{ host: '127.0.0.1', port: dns.port }];
    dns.set('app.mesh.test', ['127.0.0.1'], ['2001:db8::7']);
    dns.set('v6only.test', [], ['::1']);
    web = http.createServer((req, res) => {
      seenHosts.push(req.headers.host ?? '');
      res.end('hello');
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webPort = (web.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => web.close(r));
    await dns.close();
  });

  const lookupP = (fn: ReturnType<typeof createLookup>, name: string, opts: { family?: number; all?: boolean }): Promise<unknown> =>
    new Promise((resolve, reject) =>
      fn(name, opts, (err, address, family) => (err ? reject(err) : resolve(opts.all ? address : { address, family }))),
    );

  it('answers single, family-specific and all-address lookups', async () => {
    const lookup = createLookup(servers, QUICK);
    assert.deepEqual(await lookupP(lookup, 'app.mesh.test', {}), { address: '127.0.0.1', family: 4 });
    assert.deepEqual(await lookupP(lookup, 'app.mesh.test', { family: 6 }), { address: '2001:db8::7', family: 6 });
    assert.deepEqual(await lookupP(lookup, 'app.mesh.test', { all: true }), [
      { address: '127.0.0.1', family: 4 },
      { address: '2001:db8::7', family: 6 },
    ]);
    assert.deepEqual(await lookupP(lookup, 'v6only.test', {}), { address: '::1', family: 6 });
    await assert.rejects(lookupP(lookup, 'unknown.test', {}), { code: 'ENOTFOUND' });
  });

  it('net.connect reaches a host known only to the configured DNS server', async () => {
    const lookup = createLookup(servers, QUICK);
    const sock = net.connect({ host: 'app.mesh.test', port: webPort, lookup, family: 4 });
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    assert.equal(sock.remoteAddress, '127.0.0.1');
    sock.destroy();
  });

  it('an undici Client with connect: { lookup } resolves through it', async () => {
    const q = dns.queries;
    const client = new Client(`http://app.mesh.test:${webPort}`, {
      connect: { lookup: createLookup(servers, QUICK) },
    });
    try {
      const res = await client.request({ path: '/', method: 'GET' });
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), 'hello');
      assert.equal(seenHosts.at(-1), `app.mesh.test:${webPort}`);
      assert.ok(dns.queries > q, 'the configured DNS server was not asked');
    } finally {
      await client.close();
    }
  });

  it('resolveOnce and HostResolver report per-family results', async () => {
    assert.deepEqual(await resolveOnce('app.mesh.test', 9, servers, QUICK), [
      { host: '127.0.0.1', port: 9 },
      { host: '2001:db8::7', port: 9 },
    ]);
    await assert.rejects(resolveOnce('unknown.test', 9, servers, QUICK), { code: 'ENOTFOUND' });
    const r = new HostResolver(servers, QUICK);
    assert.equal(r.custom, true);
    assert.deepEqual(await r.resolveFamilies('v6only.test'), { v4: [], v6: ['::1'], error: null });
    assert.equal(new HostResolver(null).custom, false);
  });

  it('with no servers configured, uses the system lookup', async () => {
    const lookup = createLookup(null);
    assert.deepEqual(await lookupP(lookup, 'localhost', { family: 4 }), { address: '127.0.0.1', family: 4 });
  });
});
