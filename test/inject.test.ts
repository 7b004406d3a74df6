// `outrigger inject`: every workload kind, --legacy, --transparent, idempotence, pass-through of
// other documents, errors, argument parsing; every output validated against the Kubernetes
// schemas of `kubernetes-models`, and the injected probe scripts run against a real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import * as core from 'kubernetes-models/v1';
import * as apps from 'kubernetes-models/apps/v1';
import * as batch from 'kubernetes-models/batch/v1';
import { DEFAULT_INJECT_OPTIONS, inject, injectDetailed, InjectError, OUTRIGGER_VERSION, parseInjectArgs } from '../src/inject/index.js';
import type { InjectOptions } from '../src/inject/index.js';
import { FIXTURES, ROOT } from './helpers/paths.js';

type Obj = Record<string, any>;
type Model = new (data: unknown) => { validate(): void };
const MODELS: Record<string, Model> = {
  'v1/Pod': core.Pod as unknown as Model,
  'v1/Service': core.Service as unknown as Model,
  'v1/ConfigMap': core.ConfigMap as unknown as Model,
  'v1/Namespace': core.Namespace as unknown as Model,
  'v1/ReplicationController': core.ReplicationController as unknown as Model,
  'apps/v1/Deployment': apps.Deployment as unknown as Model,
  'apps/v1/StatefulSet': apps.StatefulSet as unknown as Model,
  'apps/v1/DaemonSet': apps.DaemonSet as unknown as Model,
  'apps/v1/ReplicaSet': apps.ReplicaSet as unknown as Model,
  'batch/v1/Job': batch.Job as unknown as Model,
  'batch/v1/CronJob': batch.CronJob as unknown as Model,
};
/** Fields of a Container that the sidecar may use: kubernetes-models ignores unknown keys. */
const CONTAINER_KEYS = new Set([
  'name',
  'image',
  'restartPolicy',
  'command',
  'args',
  'ports',
  'env',
  'resources',
  'securityContext',
  'volumeMounts',
  'startupProbe',
  'livenessProbe',
  'readinessProbe',
  'lifecycle',
]);

const WORKLOADS = readFileSync(path.join(FIXTURES, 'k8s', 'workloads.yaml'), 'utf8');
const OTHER = readFileSync(path.join(FIXTURES, 'k8s', 'other.yaml'), 'utf8');

function opts(over: Partial<InjectOptions> = {}): InjectOptions {
  return { ...DEFAULT_INJECT_OPTIONS, ...over };
}

/** Parses a stream, validating every document against its Kubernetes schema. */
function objects(text: string): Obj[] {
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(text)) {
    assert.equal(doc.errors.length, 0, String(doc.errors[0]));
    const o = doc.toJS() as Obj | null;
    if (o === null) continue;
    const model = MODELS[`${o['apiVersion']}/${o['kind']}`];
    if (model !== undefined) {
      const { apiVersion: _a, kind: _k, ...data } = o;
      assert.doesNotThrow(() => new model(data).validate(), `${o['kind']}/${o['metadata']?.name}`);
    }
    out.push(o);
  }
  return out;
}

function podSpec(o: Obj): Obj {
  if (o['kind'] === 'Pod') return o['spec'];
  if (o['kind'] === 'CronJob') return o['spec'].jobTemplate.spec.template.spec;
  return o['spec'].template.spec;
}

function podMeta(o: Obj): Obj {
  if (o['kind'] === 'Pod') return o['metadata'];
  if (o['kind'] === 'CronJob') return o['spec'].jobTemplate.spec.template.metadata;
  return o['spec'].template.metadata;
}

function byName(list: Obj[] | undefined, name: string): Obj | undefined {
  return (list ?? []).find((c) => c['name'] === name);
}

function assertSidecar(c: Obj, o: InjectOptions): void {
  for (const k of Object.keys(c)) assert.ok(CONTAINER_KEYS.has(k), `unexpected container key ${k}`);
  assert.equal(c['image'], o.image);
  assert.deepEqual(c['args'], ['run', '--config', '/etc/outrigger/outrigger.yaml']);
  assert.deepEqual(c['volumeMounts'], [{ name: 'outrigger-config', mountPath: '/etc/outrigger', readOnly: true }]);
  const env = c['env'] as Obj[];
  assert.deepEqual(byName(env, 'POD_NAME')?.['valueFrom'], { fieldRef: { fieldPath: 'metadata.name' } });
  assert.deepEqual(byName(env, 'POD_NAMESPACE')?.['valueFrom'], { fieldRef: { fieldPath: 'metadata.namespace' } });
  assert.deepEqual(c['resources'], {
    requests: { cpu: o.cpuRequest, memory: o.memoryRequest },
    limits: { cpu: o.cpuLimit, memory: o.memoryLimit },
  });
  const sc = c['securityContext'];
  assert.equal(sc.runAsUser, 1337);
  assert.equal(sc.runAsNonRoot, true);
  assert.equal(sc.readOnlyRootFilesystem, true);
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
  assert.match(c['livenessProbe'].exec.command[2], new RegExp(`port:${o.adminPort},path:'/live'`));
  assert.match(c['readinessProbe'].exec.command[2], new RegExp(`port:${o.adminPort},path:'/ready'`));
  assert.deepEqual(c['ports'], [{ name: 'outrigger-in', containerPort: o.inboundPort, protocol: 'TCP' }]);
}

test('native mode: every workload kind gets the sidecar as a restartable init container', () => {
  const o = opts();
  const r = injectDetailed(WORKLOADS, o);
  assert.deepEqual(r.injected, [
    'Deployment/web',
    'StatefulSet/db',
    'DaemonSet/agent',
    'ReplicaSet/rs',
    'Job/report',
    'CronJob/nightly',
    'Pod/debug',
  ]);
  const docs = objects(r.output);
  assert.equal(docs.length, 9);
  for (const d of docs.filter((x) => x['kind'] !== 'Service' && x['kind'] !== 'ConfigMap')) {
    const spec = podSpec(d);
    const sidecar = spec.initContainers[0];
    assert.equal(sidecar.name, 'outrigger', d['kind']);
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.match(sidecar.startupProbe.exec.command[2], /path:'\/ready'/);
    assert.equal(sidecar.lifecycle, undefined);
    assertSidecar(sidecar, o);
    assert.ok(spec.containers.every((c: Obj) => c['name'] !== 'outrigger'));
    assert.deepEqual(byName(spec.volumes, 'outrigger-config'), {
      name: 'outrigger-config',
      configMap: { name: `${d['metadata'].name}-outrigger` },
    });
    // Never subPath: a subPath mount does not receive ConfigMap updates.
    assert.ok(!JSON.stringify(spec).includes('subPath'));
    assert.equal(podMeta(d).annotations['outrigger.io/injected'], 'true');
    assert.equal(podMeta(d).annotations['outrigger.io/version'], OUTRIGGER_VERSION);
    // Explicit-proxy mode: the app finds the outbound listener through HTTP_PROXY.
    for (const c of spec.containers) assert.ok(byName(c.env, 'HTTP_PROXY'), `${d['kind']} HTTP_PROXY`);
  }
  const db = podSpec(docs.find((d) => d['kind'] === 'StatefulSet')!);
  // The app's own init containers come after the sidecar (they get the proxy too).
  assert.deepEqual(
    db.initContainers.map((c: Obj) => c['name']),
    ['outrigger', 'migrate'],
  );
  // An app's own HTTP_PROXY is kept, not overridden.
  assert.equal(byName(db.containers[0].env, 'HTTP_PROXY')?.['value'], 'http://corporate-proxy:3128');
  // 10 s < drain 25 s + 5 s margin.
  assert.equal(db.terminationGracePeriodSeconds, 30);
  const web = docs.find((d) => d['kind'] === 'Deployment')!;
  assert.equal(podSpec(web).terminationGracePeriodSeconds, undefined, 'the default 30 s is enough');
  assert.deepEqual(podMeta(web).labels, { app: 'web' });
});

test('--legacy: first regular container with a postStart hook that waits for /ready', () => {
  const o = opts({ legacy: true });
  const docs = objects(inject(WORKLOADS, o));
  const workloads = docs.filter((x) => x['kind'] !== 'Service' && x['kind'] !== 'ConfigMap');
  assert.equal(workloads.length, 7);
  for (const d of workloads) {
    const spec = podSpec(d);
    const sidecar = spec.containers[0];
    assert.equal(sidecar.name, 'outrigger');
    assert.equal(sidecar.restartPolicy, undefined);
    assert.equal(sidecar.startupProbe, undefined);
    assert.match(sidecar.lifecycle.postStart.exec.command[2], /path:'\/ready'/);
    assertSidecar(sidecar, o);
    assert.ok((spec.initContainers ?? []).every((c: Obj) => !String(c['name']).startsWith('outrigger')));
    assert.equal(podMeta(d).annotations['kubectl.kubernetes.io/default-container'], spec.containers[1].name);
  }
});

test('--transparent: outrigger-init runs iptables.sh as root with NET_ADMIN and NET_RAW, before the sidecar', () => {
  const o = opts({
    transparent: true,
    excludeInboundPorts: [9090, 22, 9090],
    excludeOutboundPorts: [5432],
    excludeOutboundCidrs: ['169.254.169.254/32'],
  });
  const docs = objects(inject(WORKLOADS, o));
  const dep = podSpec(docs.find((d) => d['kind'] === 'Deployment')!);
  assert.deepEqual(
    dep.initContainers.map((c: Obj) => c['name']),
    ['outrigger-init', 'outrigger'],
  );
  const init = dep.initContainers[0];
  assert.deepEqual(init.command, ['/usr/local/bin/outrigger-iptables']);
  assert.deepEqual(init.args, [
    '--inbound-port',
    '15006',
    '--outbound-port',
    '15001',
    '--proxy-uid',
    '1337',
    '--exclude-inbound-ports',
    '22,9090',
    '--exclude-outbound-ports',
    '5432',
    '--exclude-outbound-cidrs',
    '169.254.169.254/32',
  ]);
  assert.equal(init.securityContext.runAsUser, 0);
  assert.equal(init.securityContext.runAsNonRoot, false);
  assert.deepEqual(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  assert.equal(init.restartPolicy, undefined, 'a plain init container: it must finish first');
  // Transparent mode needs no HTTP_PROXY in the app.
  assert.equal(byName(dep.containers[0].env, 'HTTP_PROXY'), undefined);
  const db = podSpec(docs.find((d) => d['kind'] === 'StatefulSet')!);
  assert.deepEqual(
    db.initContainers.map((c: Obj) => c['name']),
    ['outrigger-init', 'outrigger', 'migrate'],
  );

  const legacy = objects(inject(WORKLOADS, opts({ transparent: true, legacy: true })));
  const lDep = podSpec(legacy.find((d) => d['kind'] === 'Deployment')!);
  assert.deepEqual(
    lDep.initContainers.map((c: Obj) => c['name']),
    ['outrigger-init'],
  );
  assert.equal(lDep.containers[0].name, 'outrigger');
});

test('running inject twice gives byte-identical output, in every mode', () => {
  const modes: Partial<InjectOptions>[] = [{}, { legacy: true }, { transparent: true }, { legacy: true, transparent: true }];
  for (const m of modes) {
    const once = inject(WORKLOADS, opts(m));
    assert.notEqual(once, WORKLOADS);
    const twice = injectDetailed(once, opts(m));
    assert.equal(twice.output, once, JSON.stringify(m));
    assert.deepEqual(twice.injected, []);
    // Even with other options: the annotation, not the option set, decides.
    assert.equal(inject(once, opts({ legacy: !m.legacy, image: 'other:2' })), once);
  }
});

test('non-workload documents, opted-out and hostNetwork pods pass through byte for byte', () => {
  const r = injectDetailed(OTHER, opts({ transparent: true }));
  assert.equal(r.output, OTHER);
  assert.deepEqual(r.injected, []);
  assert.deepEqual(
    r.skipped.map((s) => s.workload),
    ['Deployment/opted-out', 'Pod/node-agent'],
  );
  objects(r.output);
  // In a mixed stream, the Service and ConfigMap keep their exact text, comments and all.
  const out = inject(WORKLOADS, opts());
  const service = WORKLOADS.slice(0, WORKLOADS.indexOf('---\n# the web tier'));
  assert.ok(out.startsWith(service));
  assert.ok(out.includes('labels: { app: web } # keep this comment'), 'comments in changed documents survive');
  assert.ok(out.trimEnd().endsWith('...'), 'the document end marker survives');
});

test('a List of workloads is injected item by item', () => {
  const list =
    'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec:\n    containers: [{name: a, image: a}]\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n  spec: {ports: [{port: 80}]}\n';
  const [doc] = objects(inject(list, opts()));
  assert.equal(doc?.['items'][0].spec.initContainers[0].name, 'outrigger');
  assert.deepEqual(doc?.['items'][1], { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80 }] } });
});

test('ConfigMap name: {name} template, fixed name, per-template annotation', () => {
  const pod = (ann: string) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: [{name: a, image: a}]\n${ann}`;
  const cm = (text: string) => podSpec(objects(text)[0]!).volumes[0].configMap.name;
  assert.equal(cm(inject(pod(''), opts())), 'p-outrigger');
  assert.equal(cm(inject(pod(''), opts({ configMap: 'mesh' }))), 'mesh');
  const annotated =
    'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {outrigger.io/config-map: special}\nspec:\n  containers: [{name: a, image: a}]\n';
  assert.equal(cm(inject(annotated, opts())), 'special');
  const unnamed = 'apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: job-\nspec:\n  containers: [{name: a, image: a}]\n';
  assert.equal(cm(inject(unnamed, opts())), 'job-outrigger');
});

test('invalid YAML is a clear error with its position', () => {
  const bad = 'apiVersion: v1\nkind: Pod\n---\nkind: Deployment\nspec:\n  template: [unclosed\n';
  assert.throws(
    () => inject(bad, opts()),
    (e: unknown) => {
      assert.ok(e instanceof InjectError);
      assert.match(e.message, /^\d+:\d+: invalid YAML: Flow sequence/);
      assert.doesNotMatch(e.message, / at line |\n/, 'one line, the position only once');
      assert.ok(e.line >= 6, e.message);
      return true;
    },
  );
  assert.throws(() => inject('a: b\n c: d\n', opts()), InjectError);
});

test('templates that cannot take the sidecar are refused with a clear error', () => {
  const named = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: outrigger, image: x}\n';
  assert.throws(() => inject(named, opts()), /Pod\/p: a container is already named "outrigger"/);
  const port =
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: a\n    ports: [{containerPort: 15001}]\n';
  assert.throws(() => inject(port, opts()), /uses port 15001/);
  const vol =
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: a}]\n  volumes: [{name: outrigger-config, emptyDir: {}}]\n';
  assert.throws(() => inject(vol, opts()), /volume is already named "outrigger-config"/);
});

test('parseInjectArgs: defaults, stdin, every option, errors', () => {
  assert.deepEqual(parseInjectArgs([]), { file: null, opts: DEFAULT_INJECT_OPTIONS });
  assert.deepEqual(parseInjectArgs(['-']), { file: null, opts: DEFAULT_INJECT_OPTIONS });
  const r = parseInjectArgs([
    'app.yaml',
    '--image',
    'reg/o:1',
    '--config-map',
    'cm',
    '--inbound-port',
    '16006',
    '--outbound-port',
    '16001',
    '--admin-port',
    '16000',
    '--legacy',
    '--transparent',
    '--exclude-inbound-ports',
    '22, 9090',
    '--exclude-outbound-ports',
    '5432',
    '--exclude-outbound-cidrs',
    '10.0.0.0/8',
    '--no-proxy-env',
    '--drain-seconds',
    '40',
    '--cpu-request',
    '50m',
    '--memory-request',
    '64Mi',
    '--cpu-limit',
    '500m',
    '--memory-limit',
    '512Mi',
  ]);
  assert.deepEqual(r, {
    file: 'app.yaml',
    opts: {
      image: 'reg/o:1',
      configMap: 'cm',
      inboundPort: 16006,
      outboundPort: 16001,
      adminPort: 16000,
      legacy: true,
      transparent: true,
      excludeInboundPorts: [22, 9090],
      excludeOutboundPorts: [5432],
      excludeOutboundCidrs: ['10.0.0.0/8'],
      proxyEnv: false,
      drainSeconds: 40,
      cpuRequest: '50m',
      memoryRequest: '64Mi',
      cpuLimit: '500m',
      memoryLimit: '512Mi',
    },
  });
  const err = (argv: string[], re: RegExp) => {
    const res = parseInjectArgs(argv);
    assert.ok('error' in res, argv.join(' '));
    assert.match(res.error, re);
  };
  err(['--bogus'], /bogus/);
  err(['a.yaml', 'b.yaml'], /at most one FILE/);
  err(['--inbound-port', '70000'], /--inbound-port: not a port: 70000/);
  err(['--admin-port', '15001'], /must differ/);
  err(['--exclude-outbound-ports', '1,x'], /not a port: x/);
  err(['--memory-limit', 'lots'], /not a Kubernetes quantity/);
  err(['--exclude-outbound-cidrs', '10.0.0.1'], /not a CIDR/);
  err(['--image'], /image/);
});

test('--drain-seconds raises a shorter terminationGracePeriodSeconds, never lowers one', () => {
  const pod = (grace: string) => `apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n${grace}  containers: [{name: a, image: a}]\n`;
  const grace = (text: string) => podSpec(objects(text)[0]!).terminationGracePeriodSeconds;
  assert.equal(grace(inject(pod(''), opts({ drainSeconds: 60 }))), 65);
  assert.equal(grace(inject(pod('  terminationGracePeriodSeconds: 120\n'), opts())), 120);
  assert.equal(grace(inject(pod('  terminationGracePeriodSeconds: 0\n'), opts())), 30);
});

test('OUTRIGGER_VERSION is the package version', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(OUTRIGGER_VERSION, pkg.version);
});

/** Runs `command` (an exec probe or hook from an injected manifest) and resolves its exit code. */
function run(command: string[]): Promise<number> {
  return new Promise((resolve) => {
    const [bin, ...args] = command;
    execFile(bin === 'node' ? process.execPath : bin!, args, (err) => {
      resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1);
    });
  });
}

test('the injected exec probes and the postStart hook really test the admin API', async () => {
  const seen: string[] = [];
  let readyAfter = 0;
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    const ok = req.url === '/live' || (req.url === '/ready' && seen.filter((u) => u === '/ready').length > readyAfter);
    res.statusCode = ok ? 200 : 503;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: a}]\n';
    const native = podSpec(objects(inject(pod, opts({ adminPort: port })))[0]!).initContainers[0];
    const legacy = podSpec(objects(inject(pod, opts({ adminPort: port, legacy: true })))[0]!).containers[0];

    assert.equal(await run(native.livenessProbe.exec.command), 0);
    assert.equal(await run(native.readinessProbe.exec.command), 0);
    readyAfter = Infinity; // draining: /ready answers 503
    assert.equal(await run(native.startupProbe.exec.command), 1);
    assert.equal(await run(native.readinessProbe.exec.command), 1);
    // The hook polls until /ready answers 200: two 503s first.
    seen.length = 0;
    readyAfter = 2;
    assert.equal(await run(legacy.lifecycle.postStart.exec.command), 0);
    assert.deepEqual(seen, ['/ready', '/ready', '/ready']);
  } finally {
    await new Promise((r) => server.close(r));
  }
  // Nothing listening: the probe fails instead of hanging.
  const closed = podSpec(
    objects(
      inject('apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: a}]\n', opts({ adminPort: port })),
    )[0]!,
  ).initContainers[0];
  assert.equal(await run(closed.livenessProbe.exec.command), 1);
});

test('HTTP_PROXY/http_proxy and NO_PROXY/no_proxy are one setting each: an app that sets any spelling gets none of that pair, and a warning', () => {
  const text = `
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api } }
    spec:
      containers:
        - name: api
          image: api:1
          env:
            - { name: http_proxy, value: "http://corp:3128" }
        - name: worker
          image: worker:1
          env:
            - { name: NO_PROXY, value: ".internal" }
        - name: plain
          image: plain:1
`;
  const r = injectDetailed(text, opts());
  const spec = podSpec(objects(r.output)[0]!);
  const env = (name: string) =>
    (spec.containers.find((c: Obj) => c['name'] === name)!.env as Obj[]).map((e) => `${e['name']}=${e['value']}`);
  assert.deepEqual(env('api'), ['http_proxy=http://corp:3128', 'NO_PROXY=localhost,127.0.0.1,::1', 'no_proxy=localhost,127.0.0.1,::1']);
  assert.deepEqual(env('worker'), ['NO_PROXY=.internal', 'HTTP_PROXY=http://127.0.0.1:15001', 'http_proxy=http://127.0.0.1:15001']);
  assert.deepEqual(env('plain'), [
    'HTTP_PROXY=http://127.0.0.1:15001',
    'http_proxy=http://127.0.0.1:15001',
    'NO_PROXY=localhost,127.0.0.1,::1',
    'no_proxy=localhost,127.0.0.1,::1',
  ]);
  assert.equal(r.warnings.length, 2);
  assert.match(
    r.warnings[0]!,
    /^Deployment\/api: container "api" sets http_proxy itself, so HTTP_PROXY and http_proxy are left as they are/,
  );
  assert.match(r.warnings[1]!, /^Deployment\/api: container "worker" sets NO_PROXY itself, so NO_PROXY and no_proxy are left/);
});

test('a Service that targets an app port directly is a warning outside --transparent', () => {
  const text = `
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  selector: { app: api }
  ports: [ { port: 80, targetPort: http }, { port: 9090, targetPort: 9090 } ]
---
apiVersion: v1
kind: Service
metadata: { name: api-mesh, namespace: shop }
spec:
  selector: { app: api }
  ports: [ { port: 80, targetPort: 15006 } ]
---
apiVersion: v1
kind: Service
metadata: { name: other-ns, namespace: default }
spec:
  selector: { app: api }
  ports: [ { port: 8080 } ]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api, tier: backend } }
    spec:
      containers:
        - name: api
          image: api:1
          ports: [ { name: http, containerPort: 8080 }, { containerPort: 9090 } ]
`;
  const r = injectDetailed(text, opts());
  assert.deepEqual(
    r.warnings.map((w) => w.replace(/, which bypasses.*/, '')),
    ['Service/api targets port 8080 of Deployment/api directly', 'Service/api targets port 9090 of Deployment/api directly'],
  );
  assert.match(
    r.warnings[0]!,
    /point its targetPort at 15006, and have the app listen on 127\.0\.0\.1 \(or fence it with a NetworkPolicy\), or use --transparent/,
  );
  // With --transparent, iptables sends that port through the sidecar anyway.
  assert.deepEqual(injectDetailed(text, opts({ transparent: true })).warnings, []);
});
