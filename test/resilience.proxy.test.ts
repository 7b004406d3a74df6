// Retries, the retry budget and the circuit breaker end to end: a real proxy, fault-injecting
// upstreams (status codes, hangs, resets, refused connections, half-sent bodies), assertions on
// what crossed the wire, the access log, /metrics and /clusters. No timing assertions: short
// configured durations, and waits that poll for a state.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { closedPort, request, startUpstream, type Upstream } from './helpers/servers.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';
import { config, route, service, type ConfigParts } from './helpers/config.js';
import { clusters, faultServer, fetchOutcome, metrics, metricValue, resetAfter, statusUpstream } from './resilience.helpers.js';
import { waitFor } from './helpers/wait.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('retries through the proxy', () => {
  let p: TestProxy;
  let good: Upstream;
  let dead: number;
  let rstFirst: Awaited<ReturnType<typeof faultServer>>;
  let rstOnly: Awaited<ReturnType<typeof faultServer>>;
  let rstBig: Awaited<ReturnType<typeof resetAfter>>;
  let half: Awaited<ReturnType<typeof faultServer>>;
  let five03: Upstream;
  let five00: Upstream;
  let four09: Upstream;
  let hang: Upstream;
  let seq = 0;

  before(async () => {
    good = await startUpstream((req, res, body) => {
      const out = JSON.stringify({ method: req.method, url: req.url, sha: sha(body), len: body.length });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
    dead = await closedPort();
    rstFirst = await faultServer((s) => s.resetAndDestroy());
    rstOnly = await faultServer((s) => s.resetAndDestroy());
    rstBig = await resetAfter(100 * 1024);
    half = await faultServer((s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
      setTimeout(() => s.destroy(), 20);
    });
    five03 = await statusUpstream(() => 503);
    five00 = await statusUpstream(() => 500);
    four09 = await statusUpstream(() => 409);
    hang = await startUpstream(() => undefined, { readBody: false });
    const G = `127.0.0.1:${good.port}`;
    const fast = 'backoff: { base: 1ms, max: 4ms }';
    p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
outbound:
  listen: 127.0.0.1:0
  routes:
    - { name: cf, match: { host: cf }, cluster: cf }
    - { name: rst-default, match: { host: rst-default }, cluster: rstonly }
    - { name: rst, match: { host: rst }, cluster: rst, retries: { attempts: 2, on: [reset], ${fast} } }
    - { name: rst-only, match: { host: rst-only }, cluster: rstonly, retries: { attempts: 2, on: [reset], ${fast} } }
    - { name: rst-ni, match: { host: rst-ni }, cluster: rstonly, retries: { attempts: 1, on: [reset], nonIdempotent: true, ${fast} } }
    - { name: s5xx, match: { host: s5xx }, cluster: s5xx, retries: { attempts: 2, on: [5xx], ${fast} } }
    - { name: gw, match: { host: gw }, cluster: gw, retries: { attempts: 2, on: [gateway-error], ${fast} } }
    - { name: code, match: { host: code }, cluster: code, retries: { attempts: 2, on: [409], ${fast} } }
    - { name: pertry, match: { host: pertry }, cluster: pertry, retries: { attempts: 2, on: [reset], perTryTimeout: 100ms, ${fast} } }
    - { name: pertry-only, match: { host: pertry-only }, cluster: hang, retries: { attempts: 1, on: [reset], perTryTimeout: 100ms, ${fast} } }
    - { name: deadline, match: { host: deadline }, cluster: hang, timeout: 500ms, retries: { attempts: 5, on: [reset], perTryTimeout: 300ms, ${fast} } }
    - { name: body, match: { host: body }, cluster: body, retries: { attempts: 2, on: [reset], ${fast} } }
    - { name: bigbody, match: { host: bigbody }, cluster: bigbody, retries: { attempts: 2, on: [reset], ${fast} } }
    - { name: half, match: { host: half }, cluster: half, retries: { attempts: 2, on: [reset, 5xx], ${fast} } }
clusters:
  cf: { endpoints: ["127.0.0.1:${dead}", "${G}"] }
  rst: { endpoints: ["${rstFirst.address}", "${G}"] }
  rstonly: { endpoints: ["${rstOnly.address}"] }
  s5xx: { endpoints: ["127.0.0.1:${five03.port}", "${G}"] }
  gw: { endpoints: ["127.0.0.1:${five00.port}", "${G}"] }
  code: { endpoints: ["127.0.0.1:${four09.port}", "${G}"] }
  pertry: { endpoints: ["127.0.0.1:${hang.port}", "${G}"] }
  hang: { endpoints: ["127.0.0.1:${hang.port}"] }
  body: { endpoints: ["${rstFirst.address}", "${G}"] }
  bigbody: { endpoints: ["${rstBig.address}", "${G}"] }
  half: { endpoints: ["${half.address}", "${G}"] }
`);
  });

  after(async () => {
    await p.close();
    await Promise.all([
      good.close(),
      rstFirst.close(),
      rstOnly.close(),
      rstBig.close(),
      half.close(),
      five03.close(),
      five00.close(),
      four09.close(),
      hang.close(),
    ]);
  });

  /** One request with a unique path; returns the reply and its access-log line. */
  async function send(host: string, opts: { method?: string; body?: Buffer } = {}) {
    const path = `/r${++seq}`;
    const r = await request(p.outbound, {
      path,
      headers: { host },
      ...(opts.method === undefined ? {} : { method: opts.method }),
      ...(opts.body === undefined ? {} : { body: opts.body }),
    });
    const line = await waitFor(() => p.access().find((l) => l['path'] === path), { what: `access line for ${path}` });
    return { r, line };
  }

  test('without a retries block a connect failure is retried once, on another endpoint, even for POST', async () => {
    for (let i = 0; i < 4; i++) {
      const { r, line } = await send('cf', { method: 'POST', body: Buffer.from('x') });
      assert.equal(r.status, 200);
      assert.equal(line['upstream'], `127.0.0.1:${good.port}`);
      assert.ok(line['attempts'] === 1 || line['attempts'] === 2);
    }
    // round-robin sent half of the first tries to the dead endpoint: those were retried
    assert.ok(p.access().some((l) => l['route'] === 'cf' && l['attempts'] === 2));
  });

  test('without a retries block a reset is not retried', async () => {
    const before = rstOnly.state.connections;
    const { r, line } = await send('rst-default');
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-outrigger-error'], 'upstream_reset');
    assert.equal(line['attempts'], 1);
    assert.equal(rstOnly.state.connections - before, 1);
  });

  test('on: [reset] retries a GET on another endpoint', async () => {
    const { r, line } = await send('rst');
    assert.equal(r.status, 200);
    assert.equal(line['attempts'], 2, 'first try on the resetting endpoint, the retry avoided it');
    assert.equal(line['upstream'], `127.0.0.1:${good.port}`);
  });

  test('the only endpoint is retried when there is no other, up to attempts', async () => {
    const before = rstOnly.state.connections;
    const { r, line } = await send('rst-only');
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-outrigger-error'], 'upstream_reset');
    assert.equal(line['attempts'], 3);
    assert.equal(rstOnly.state.connections - before, 3);
  });

  test('POST is retried after a reset only with nonIdempotent', async () => {
    let before = rstOnly.state.connections;
    let { r, line } = await send('rst-only', { method: 'POST', body: Buffer.from('a') });
    assert.equal(r.status, 502);
    assert.equal(line['attempts'], 1);
    assert.equal(rstOnly.state.connections - before, 1);
    before = rstOnly.state.connections;
    ({ r, line } = await send('rst-ni', { method: 'POST', body: Buffer.from('a') }));
    assert.equal(r.status, 502);
    assert.equal(line['attempts'], 2);
    assert.equal(rstOnly.state.connections - before, 2);
  });

  test('5xx retries any 5xx; gateway-error does not retry 500; a listed 409 is retried', async () => {
    let { r, line } = await send('s5xx');
    assert.equal(r.status, 200);
    assert.equal(line['attempts'], 2);
    assert.equal(five03.requests.length, 1);
    ({ r, line } = await send('gw'));
    assert.equal(r.status, 500, '500 is not a gateway error: forwarded as is');
    assert.equal(line['attempts'], 1);
    ({ r, line } = await send('code'));
    assert.equal(r.status, 200);
    assert.equal(line['attempts'], 2);
    assert.equal(four09.requests.length, 1);
  });

  test('a 5xx that is not retried reaches the client with its body', async () => {
    // the second request of the gw cluster lands on the good endpoint; the third on the 500 one
    const { r } = await send('gw');
    const again = r.status === 500 ? r : (await send('gw')).r;
    assert.equal(again.status, 500);
    assert.equal(again.body.toString(), 'ok');
  });

  test('perTryTimeout ends a try, counts as upstream_timeout and is retried elsewhere', async () => {
    const { r, line } = await send('pertry');
    assert.equal(r.status, 200);
    assert.equal(line['attempts'], 2);
    assert.equal(line['upstream'], `127.0.0.1:${good.port}`);
    const text = await metrics(p.admin);
    assert.ok(metricValue(text, 'outrigger_upstream_errors_total', { cluster: 'pertry', reason: 'upstream_timeout' }) >= 1);
    assert.ok(metricValue(text, 'outrigger_upstream_retries_total', { cluster: 'pertry' }) >= 1);
  });

  test('every try timing out ends in 504 upstream_timeout', async () => {
    const { r, line } = await send('pertry-only');
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-outrigger-error'], 'upstream_timeout');
    assert.equal(line['attempts'], 2);
  });

  test('retries never extend the route timeout', async () => {
    // perTryTimeout 300ms × 6 tries would be 1.8 s; the route's 500ms ends the exchange
    // before a third try can start
    const { r, line } = await send('deadline');
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-outrigger-error'], 'upstream_timeout');
    assert.ok((line['attempts'] as number) <= 2, `attempts ${String(line['attempts'])}`);
  });

  test('a body within 64 KiB is replayed intact to the retry', async () => {
    const body = randomBytes(40 * 1024);
    const { r, line } = await send('body', { method: 'PUT', body });
    assert.equal(r.status, 200);
    assert.equal(line['attempts'], 2);
    const seen = JSON.parse(r.body.toString()) as { sha: string; len: number };
    assert.equal(seen.len, body.length);
    assert.equal(seen.sha, sha(body));
  });

  test('a body that streamed past 64 KiB is not retried', async () => {
    const body = randomBytes(300 * 1024);
    const before = rstBig.state.connections;
    const { r, line } = await send('bigbody', { method: 'PUT', body });
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-outrigger-error'], 'upstream_reset');
    assert.equal(line['attempts'], 1);
    assert.equal(rstBig.state.connections - before, 1);
  });

  test('a connect failure is retried whatever the body size (nothing was streamed)', async () => {
    const body = randomBytes(300 * 1024);
    let retried = false;
    for (let i = 0; i < 2; i++) {
      const { r, line } = await send('cf', { method: 'POST', body });
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body.toString()) as { sha: string }).sha, sha(body));
      if (line['attempts'] === 2) retried = true;
    }
    assert.ok(retried);
  });

  test('never retried once response bytes reached the client', async () => {
    const before = good.requests.length;
    const outcome = await fetchOutcome(p.outbound, 'half', '/half');
    assert.equal(outcome, 'cut');
    const line = await waitFor(() => p.access().find((l) => l['path'] === '/half'));
    assert.equal(line['attempts'], 1);
    assert.equal(good.requests.length, before);
    const text = await metrics(p.admin);
    // a short body on a closing connection: reset or protocol error, by undici's reading
    assert.ok(metricValue(text, 'outrigger_upstream_errors_total', { cluster: 'half' }) >= 1);
  });
});

describe('retry budget', () => {
  test('a storm against an always-failing upstream stays within (1 + ratio) × requests + minPerSecond × seconds', async () => {
    const failing = await statusUpstream(() => 503);
    const p = await startProxy(
      config(
        service(
          'storm',
          failing.port,
          { retryBudget: { ratio: 0.2, minPerSecond: 5 } },
          { retries: { attempts: 3, on: ['5xx'], backoff: { base: '1ms', max: '2ms' } } },
        ),
      ),
    );
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    try {
      const N = 300;
      const t0 = Date.now();
      let sent = 0;
      const worker = async () => {
        while (sent < N) {
          sent++;
          const r = await request(p.outbound, { headers: { host: 'storm' }, agent });
          assert.equal(r.status, 503);
        }
      };
      await Promise.all(Array.from({ length: 20 }, worker));
      const seconds = (Date.now() - t0) / 1000;
      const attempts = failing.requests.length;
      // the bound counts every clock second the storm touched
      const bound = 1.2 * N + 5 * Math.ceil(seconds + 1);
      assert.ok(attempts <= bound, `${attempts} upstream attempts > ${bound}`);
      assert.ok(attempts > N, 'some retries were made');
      const text = await metrics(p.admin);
      const retries = metricValue(text, 'outrigger_upstream_retries_total', { cluster: 'storm' });
      const refused = metricValue(text, 'outrigger_upstream_retry_budget_exhausted_total', { cluster: 'storm' });
      assert.equal(retries, attempts - N);
      assert.ok(refused > 0, 'refusals are counted');
      assert.equal((await clusters(p.admin))['storm']?.retryBudget.refused, refused);
      const warns = p.logs.filter((l) => l['msg'] === 'retry budget exhausted: retries refused');
      assert.equal(warns.length, 1, 'one warning for the episode, not one per refusal');
      await waitFor(() => p.logs.find((l) => l['msg'] === 'retry budget no longer exhausted'), { what: 'episode end' });
    } finally {
      agent.destroy();
      await p.close();
      await failing.close();
    }
  });
});

describe('circuit breaker through the proxy', () => {
  /** The service `b` behind a breaker that opens at 50 % of 4 requests, plus `more` parts. */
  const breakerYaml = (port: number, resetTimeout = '1s', ...more: ConfigParts[]) =>
    config(
      service('b', port, { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 4, window: '10s', resetTimeout } }),
      ...more,
    );

  test('opens on failures, fails fast without touching the upstream, one probe closes it; gauge and warnings follow', async () => {
    let status = 500;
    const up = await statusUpstream(() => status);
    const p = await startProxy(breakerYaml(up.port));
    try {
      for (let i = 0; i < 4; i++) assert.equal((await request(p.outbound, { headers: { host: 'b' } })).status, 500);
      const seen = up.requests.length;
      const r = await request(p.outbound, { headers: { host: 'b' } });
      assert.equal(r.status, 503);
      assert.equal(r.headers['x-outrigger-error'], 'circuit_open');
      assert.equal(up.requests.length, seen, 'an open circuit never touches the upstream');
      let text = await metrics(p.admin);
      assert.equal(metricValue(text, 'outrigger_circuit_breaker_state', { cluster: 'b' }), 2);
      assert.ok(metricValue(text, 'outrigger_upstream_errors_total', { cluster: 'b', reason: 'circuit_open' }) >= 1);
      assert.equal((await clusters(p.admin))['b']?.circuitBreaker, 'open');
      // after resetTimeout: half-open, and the probe decides
      status = 200;
      await waitFor(async () => metricValue(await metrics(p.admin), 'outrigger_circuit_breaker_state', { cluster: 'b' }) === 1, {
        what: 'half-open',
      });
      assert.equal((await request(p.outbound, { headers: { host: 'b' } })).status, 200);
      text = await metrics(p.admin);
      assert.equal(metricValue(text, 'outrigger_circuit_breaker_state', { cluster: 'b' }), 0);
      for (let i = 0; i < 5; i++) assert.equal((await request(p.outbound, { headers: { host: 'b' } })).status, 200);
      const warns = p.logs.filter(
        (l) => l['level'] === 'warn' && typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('circuit breaker'),
      );
      assert.deepEqual(
        warns.map((l) => l['msg']),
        ['circuit breaker opened: requests fail with 503 circuit_open', 'circuit breaker closed'],
      );
    } finally {
      await p.close();
      await up.close();
    }
  });

  test('a failed probe opens it again; while half-open only the probe reaches the upstream', async () => {
    let failing = true;
    const fail = await statusUpstream(() => (failing ? 502 : 200));
    const p = await startProxy(breakerYaml(fail.port));
    try {
      for (let i = 0; i < 4; i++) await request(p.outbound, { headers: { host: 'b' } });
      assert.equal((await request(p.outbound, { headers: { host: 'b' } })).headers['x-outrigger-error'], 'circuit_open');
      await waitFor(async () => (await clusters(p.admin))['b']?.circuitBreaker === 'half-open', { what: 'half-open' });
      const before = fail.requests.length;
      assert.equal((await request(p.outbound, { headers: { host: 'b' } })).status, 502, 'the probe reached the upstream and failed');
      assert.equal(fail.requests.length, before + 1);
      assert.equal((await clusters(p.admin))['b']?.circuitBreaker, 'open');
      assert.equal((await request(p.outbound, { headers: { host: 'b' } })).headers['x-outrigger-error'], 'circuit_open');
      failing = false;
      await waitFor(async () => (await clusters(p.admin))['b']?.circuitBreaker === 'half-open', { what: 'half-open again' });
      assert.equal((await request(p.outbound, { headers: { host: 'b' } })).status, 200);
      assert.equal((await clusters(p.admin))['b']?.circuitBreaker, 'closed');
      // one warning each way for the whole outage, however many probe cycles it had
      const warns = p.logs.filter((l) => l['level'] === 'warn' && String(l['msg']).startsWith('circuit breaker'));
      assert.equal(warns.length, 2);
    } finally {
      await p.close();
      await fail.close();
    }
  });

  test('4xx are not failures', async () => {
    const up = await statusUpstream(() => 404);
    const p = await startProxy(breakerYaml(up.port));
    try {
      for (let i = 0; i < 12; i++) assert.equal((await request(p.outbound, { headers: { host: 'b' } })).status, 404);
      assert.equal(up.requests.length, 12);
      assert.equal((await clusters(p.admin))['b']?.circuitBreaker, 'closed');
    } finally {
      await p.close();
      await up.close();
    }
  });

  test('resets, timeouts and refused connections are failures', async () => {
    const rst = await faultServer((s) => s.resetAndDestroy());
    const hang = await startUpstream(() => undefined, { readBody: false });
    const dead = await closedPort();
    const p = await startProxy(
      config(
        service('r', rst.address, { circuitBreaker: { volumeThreshold: 3, resetTimeout: '1m' } }),
        service('t', hang.port, { circuitBreaker: { volumeThreshold: 3, resetTimeout: '1m' } }, { timeout: '50ms' }),
        service('d', dead, { circuitBreaker: { volumeThreshold: 3, resetTimeout: '1m' } }),
      ),
    );
    try {
      for (const [host, reason] of [
        ['r', 'upstream_reset'],
        ['t', 'upstream_timeout'],
        ['d', 'upstream_connect_failure'],
      ] as const) {
        const seen: string[] = [];
        for (let i = 0; i < 4; i++) {
          const r = await request(p.outbound, { headers: { host } });
          seen.push(String(r.headers['x-outrigger-error']));
        }
        assert.equal(seen[0], reason);
        assert.equal(seen.at(-1), 'circuit_open', `${host}: ${seen.join(',')}`);
        assert.equal((await clusters(p.admin))[host]?.circuitBreaker, 'open');
      }
    } finally {
      await p.close();
      await Promise.all([rst.close(), hang.close()]);
    }
  });

  test('a retry refused by the circuit that just opened answers with the failure it was retrying', async () => {
    const rst = await faultServer((s) => s.resetAndDestroy());
    const p = await startProxy(
      config(
        service(
          'r',
          rst.address,
          { circuitBreaker: { volumeThreshold: 1, resetTimeout: '1m' } },
          { retries: { attempts: 2, on: ['reset'], backoff: { base: '1ms', max: '2ms' } } },
        ),
      ),
    );
    try {
      // the first try's reset opens the circuit (1 of 1 failed); its retry is refused
      const r = await request(p.outbound, { path: '/x', headers: { host: 'r' } });
      assert.equal(r.status, 502);
      assert.equal(r.headers['x-outrigger-error'], 'upstream_reset');
      assert.equal(rst.state.connections, 1);
      const line = await waitFor(() => p.access().find((l) => l['path'] === '/x'));
      assert.equal(line['error'], 'upstream_reset');
      const text = await metrics(p.admin);
      assert.equal(metricValue(text, 'outrigger_upstream_errors_total', { cluster: 'r', reason: 'circuit_open' }), 1);
      // a new request is refused by the open circuit itself
      assert.equal((await request(p.outbound, { headers: { host: 'r' } })).headers['x-outrigger-error'], 'circuit_open');
      assert.equal(rst.state.connections, 1);
    } finally {
      await p.close();
      await rst.close();
    }
  });

  test('survives a reload that leaves the cluster alone; a changed cluster starts closed', async () => {
    const up = await statusUpstream(() => 503);
    const p = await startProxy(breakerYaml(up.port, '1m'));
    try {
      for (let i = 0; i < 4; i++) await request(p.outbound, { headers: { host: 'b' } });
      assert.equal((await request(p.outbound, { headers: { host: 'b' } })).headers['x-outrigger-error'], 'circuit_open');
      p.write(breakerYaml(up.port, '1m', { routes: [route('other', { cluster: 'b' })] }));
      assert.equal(await p.proxy.reload('test'), true);
      assert.equal((await request(p.outbound, { headers: { host: 'other' } })).headers['x-outrigger-error'], 'circuit_open');
      assert.equal(metricValue(await metrics(p.admin), 'outrigger_circuit_breaker_state', { cluster: 'b' }), 2);
      // changing the cluster builds a new one (and a new breaker); its gauge is not removed by
      // the old cluster retiring
      p.write(breakerYaml(up.port, '2m'));
      assert.equal(await p.proxy.reload('test'), true);
      const fresh = await request(p.outbound, { headers: { host: 'b' } });
      assert.equal(fresh.status, 503);
      assert.equal(fresh.headers['x-outrigger-error'], undefined, "the upstream's own 503, not circuit_open");
      assert.equal((await clusters(p.admin))['b']?.circuitBreaker, 'closed');
      await new Promise((r) => setTimeout(r, 50));
      assert.match(await metrics(p.admin), /^outrigger_circuit_breaker_state\{cluster="b"\} 0$/m);
    } finally {
      await p.close();
      await up.close();
    }
  });
});
