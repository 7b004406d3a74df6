// The Kubernetes example in docker/k8s and the compose topology: every outrigger.yaml in a
// ConfigMap is a valid config (the config loader's `parseConfig`), the injected manifests are
// exactly what `inject` makes of the source today, everything passes the Kubernetes schemas,
// and every ConfigMap a sidecar mounts exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import * as core from 'kubernetes-models/v1';
import * as apps from 'kubernetes-models/apps/v1';
import { parseConfig } from '../src/config/load.js';
import { DEFAULT_INJECT_OPTIONS, inject } from '../src/inject/index.js';
import { ROOT } from './helpers/paths.js';

type Obj = Record<string, any>;
type Model = new (data: unknown) => { validate(): void };
const MODELS: Record<string, Model> = {
  'v1/Namespace': core.Namespace as unknown as Model,
  'v1/Service': core.Service as unknown as Model,
  'v1/ConfigMap': core.ConfigMap as unknown as Model,
  'apps/v1/Deployment': apps.Deployment as unknown as Model,
};
const K8S = path.join(ROOT, 'docker', 'k8s');
const read = (name: string) => readFileSync(path.join(K8S, name), 'utf8');

function objects(text: string): Obj[] {
  return parseAllDocuments(text).map((doc) => {
    assert.equal(doc.errors.length, 0, String(doc.errors[0]));
    const o = doc.toJS() as Obj;
    const model = MODELS[`${o['apiVersion']}/${o['kind']}`];
    assert.ok(model, `no schema for ${o['apiVersion']}/${o['kind']}`);
    const { apiVersion: _a, kind: _k, ...data } = o;
    new model(data).validate();
    return o;
  });
}

const CONFIG_MAPS = objects(read('outrigger-configmaps.yaml'));

test('every outrigger.yaml in the example ConfigMaps is a valid config', () => {
  assert.deepEqual(
    CONFIG_MAPS.map((c) => c['metadata'].name),
    ['asset-consumer-outrigger', 'asset-dashboard-bff-outrigger', 'asset-mgr-ms-outrigger'],
  );
  for (const cm of CONFIG_MAPS) {
    const text = cm['data']['outrigger.yaml'] as string;
    const r = parseConfig(text, cm['metadata'].name);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    const c = r.config;
    assert.equal(c.admin.listen.host, '127.0.0.1');
    assert.equal(c.inbound?.listen.port, 15006);
    assert.deepEqual(
      c.outbound?.routes.map((x) => x.match.path),
      [{ prefix: '/assetconsumer' }, { prefix: '/assetdashboard' }, { prefix: '/assetmgrms' }],
    );
    const mgr = c.outbound!.routes[2]!;
    assert.deepEqual(mgr.split, [
      { cluster: 'asset-mgr-ms-v1', weight: 90 },
      { cluster: 'asset-mgr-ms-v2', weight: 10 },
    ]);
    assert.equal(mgr.retries?.attempts, 2);
    assert.deepEqual(c.clusters['asset-mgr-ms-v1']?.dns, { name: 'asset-mgr-ms-v1-svc.shop.svc.cluster.local', port: 8080, refresh: 5000 });
    assert.ok(c.clusters['asset-mgr-ms-v1']?.circuitBreaker);
    assert.equal(c.drain.delay + c.drain.timeout, DEFAULT_INJECT_OPTIONS.drainSeconds * 1000);
    // The validator is real: a typo must not pass.
    assert.equal(parseConfig(text.replace('unknownHosts', 'unknownHost'), 'typo').ok, false);
  }
});

test('the checked-in injected manifests are what inject makes of the source', () => {
  const source = read('asset-management.yaml');
  const injected = read('asset-management.injected.yaml');
  assert.equal(
    inject(source, DEFAULT_INJECT_OPTIONS),
    injected,
    'regenerate: node dist/cli.js inject docker/k8s/asset-management.yaml > docker/k8s/asset-management.injected.yaml',
  );
  const docs = objects(injected);
  const names = new Set(CONFIG_MAPS.map((c) => c['metadata'].name as string));
  const deployments = docs.filter((d) => d['kind'] === 'Deployment');
  assert.equal(deployments.length, 4);
  for (const d of deployments) {
    const spec = d['spec'].template.spec;
    assert.equal(spec.initContainers[0].name, 'outrigger');
    const cm = spec.volumes.find((v: Obj) => v['name'] === 'outrigger-config').configMap.name;
    assert.ok(names.has(cm), `${d['metadata'].name} mounts ConfigMap ${cm}, which the example defines`);
    assert.equal(d['metadata'].namespace, 'shop');
  }
  // Each Service's selector finds a Deployment, and targets the sidecar's inbound listener.
  for (const s of docs.filter((d) => d['kind'] === 'Service')) {
    assert.equal(s['spec'].ports[0].port, 8080);
    assert.equal(s['spec'].ports[0].targetPort, 15006);
    const sel = s['spec'].selector as Record<string, string>;
    assert.ok(
      deployments.some((d) => Object.entries(sel).every(([k, v]) => d['spec'].template.metadata.labels[k] === v)),
      s['metadata'].name,
    );
  }
});

test('compose.yaml: three services, each with a sidecar sharing its network namespace', () => {
  const compose = parse(readFileSync(path.join(ROOT, 'docker', 'compose.yaml'), 'utf8'), { merge: true }) as Obj;
  const services = compose['services'] as Record<string, Obj>;
  for (const name of ['asset-consumer', 'asset-dashboard-bff', 'asset-mgr-ms']) {
    const app = services[name];
    const sidecar = services[`${name}-outrigger`];
    assert.ok(app && sidecar, name);
    assert.equal(sidecar['network_mode'], `service:${name}`);
    assert.equal(sidecar['user'], '1337:1337');
    assert.equal(sidecar['read_only'], true);
    assert.ok((sidecar['volumes'] as string[]).some((v) => v.endsWith(':/etc/outrigger:ro')));
    assert.doesNotMatch(String(sidecar['image']), /:latest$/);
    const cfg = readFileSync(path.join(ROOT, 'docker', (sidecar['volumes'] as string[])[0]!.split(':')[0]!, 'outrigger.yaml'), 'utf8');
    const r = parseConfig(cfg, name);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  }
});
