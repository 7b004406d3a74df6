// `npm run demo`: the summary's parsing of the admin API, the demo configs' validity, and a real
// three-second run against dist/cli.js (built by `npm test` before the tests run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { ejectedEndpoints, parseMetrics, renderSidecar } from '../src/demo/summary.js';
import { CLI, ROOT } from './helpers/paths.js';

const DEMO = fileURLToPath(new URL('../src/demo/index.js', import.meta.url));
const CONFIG_DIR = path.join(ROOT, 'config', 'demo');

test('parseMetrics reads Prometheus text, labels and escapes included', () => {
  const text = [
    '# HELP outrigger_requests_total Requests.',
    '# TYPE outrigger_requests_total counter',
    'outrigger_requests_total{direction="inbound",route="app",cluster="app",code="200"} 7',
    'outrigger_requests_total{direction="outbound",route="a\\"b",cluster="c",code="503"} 2',
    'process_cpu_seconds_total 1.5',
    '',
  ].join('\n');
  assert.deepEqual(parseMetrics(text), [
    { name: 'outrigger_requests_total', labels: { direction: 'inbound', route: 'app', cluster: 'app', code: '200' }, value: 7 },
    { name: 'outrigger_requests_total', labels: { direction: 'outbound', route: 'a"b', cluster: 'c', code: '503' }, value: 2 },
    { name: 'process_cpu_seconds_total', labels: {}, value: 1.5 },
  ]);
});

test('renderSidecar summarises requests, retries, errors, breakers and ejections', () => {
  const metrics = [
    'outrigger_requests_total{direction="inbound",route="app",cluster="app",code="200"} 7',
    'outrigger_requests_total{direction="inbound",route="app",cluster="app",code="504"} 1',
    'outrigger_requests_total{direction="outbound",route="r",cluster="c",code="200"} 3',
    'outrigger_upstream_retries_total{cluster="c"} 4',
    'outrigger_upstream_errors_total{cluster="c",reason="upstream_timeout"} 2',
    'outrigger_upstream_errors_total{cluster="d",reason="upstream_reset"} 0',
    'outrigger_circuit_breaker_state{cluster="reports"} 2',
    'outrigger_circuit_breaker_state{cluster="c"} 0',
  ].join('\n');
  const clusters = JSON.stringify({
    clusters: {
      c: {
        endpoints: [
          { address: '127.0.0.1:1', ejected: true, healthy: true },
          { address: '127.0.0.1:2', ejected: false, healthy: true },
        ],
      },
    },
  });
  assert.equal(
    renderSidecar('svc', metrics, clusters),
    'svc                  in 8 (2xx 7, 5xx 1) | out 3 (2xx 3) | retries 4 | errors upstream_timeout 2 | breaker reports open | ejected c/127.0.0.1:1',
  );
  assert.match(renderSidecar('svc', null, null), /admin API not answering/);
  assert.deepEqual(ejectedEndpoints('not json'), []);
});

test('the demo configs are valid', () => {
  const files = readdirSync(CONFIG_DIR).filter((f) => f.endsWith('.yaml'));
  assert.deepEqual(files.sort(), ['asset-consumer.yaml', 'asset-dashboard-bff.yaml', 'asset-mgr-ms-1.yaml', 'asset-mgr-ms-2.yaml']);
  for (const f of files) {
    const r = parseConfig(readFileSync(path.join(CONFIG_DIR, f), 'utf8'), f);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  }
});

test('npm run demo -- --duration 3: traffic flows through all sidecars and the summary shows it', async () => {
  assert.ok(existsSync(CLI), 'dist/cli.js is not built: npm run build (npm test does it first)');
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [DEMO, '--duration', '3', '--random-ports', '--cli', CLI, '--config-dir', CONFIG_DIR],
      { timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err.code as number | null), stdout, stderr }),
    );
  });
  assert.equal(code, 0, stderr + stdout);
  const final = stdout.slice(stdout.lastIndexOf('── '));
  for (const name of ['asset-dashboard-bff', 'asset-consumer', 'asset-mgr-ms-1', 'asset-mgr-ms-2']) {
    const line = final.split('\n').find((l) => l.startsWith(name));
    assert.ok(line, `${name} in:\n${final}`);
    // Every sidecar's inbound listener saw requests: the traffic crossed the whole mesh.
    assert.match(line, /^\S+\s+in [1-9]\d* /, line);
  }
  // The failing endpoint shows up as 5xx at the entry point.
  assert.match(final, /client → asset-dashboard-bff: sent [1-9]\d* · .*5\d\d×/);
});
