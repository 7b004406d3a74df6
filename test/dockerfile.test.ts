// Static lint of docker/Dockerfile and .dockerignore (no Docker engine in CI): the properties
// the Kubernetes manifests rely on (UID 1337, tini, the iptables script path, ports, config
// path), pinned base images, a multi-stage build that ships production dependencies only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './helpers/paths.js';
import { IPTABLES_SCRIPT, probeScript, PROXY_UID } from '../src/inject/sidecar.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

/** Instructions with continuation lines joined and comment lines dropped, as Docker reads them. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const start = i + 1;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = lines[i]!.trim();
      line = line.slice(0, -1) + ' ' + (next.startsWith('#') ? '' : next);
    }
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!, line: start });
  }
  return out;
}

const TEXT = readFileSync(path.join(ROOT, 'docker', 'Dockerfile'), 'utf8');
const INS = instructions(TEXT);
const ARGS = new Map(INS.filter((i) => i.op === 'ARG').map((i) => i.args.split('=') as [string, string]));
const stages = INS.filter((i) => i.op === 'FROM');
const last = INS.slice(INS.lastIndexOf(stages[stages.length - 1]!));

function image(from: Instruction): string {
  const ref = from.args.split(/\s+/)[0]!;
  return ref.replace(/^\$\{?(\w+)\}?$/, (_, name: string) => ARGS.get(name) ?? ref);
}

test('multi-stage build on a pinned current Node LTS slim image', () => {
  assert.ok(stages.length >= 2, 'multi-stage');
  for (const s of stages) {
    const ref = image(s);
    assert.match(ref, /^node:24(\.\d+)*-(bookworm-)?slim$/, `line ${s.line}: ${ref}`);
    assert.doesNotMatch(ref, /:latest$|^[^:]+$/, 'no latest or untagged images');
  }
  assert.ok(
    INS.some((i) => i.op === 'RUN' && /npm ci(?!.*--omit=dev)/.test(i.args)),
    'a build stage installs dev dependencies',
  );
  assert.ok(
    INS.some((i) => i.op === 'RUN' && /npm ci .*--omit=dev/.test(i.args)),
    'production dependencies only',
  );
  assert.ok(INS.some((i) => i.op === 'RUN' && /npm run build/.test(i.args)));
  // The runtime stage copies node_modules from the production-only stage, not from the build.
  const copies = last.filter((i) => i.op === 'COPY' && i.args.includes('node_modules'));
  assert.equal(copies.length, 1);
  const from = /--from=(\S+)/.exec(copies[0]!.args)?.[1];
  const prodStage = stages.find((s) => s.args.endsWith(` AS ${from}`) || s.args.endsWith(` as ${from}`));
  assert.ok(prodStage, 'node_modules comes from a named stage');
  const prodRuns = INS.slice(INS.indexOf(prodStage), INS.indexOf(stages[stages.indexOf(prodStage) + 1]!)).filter((i) => i.op === 'RUN');
  assert.ok(
    prodRuns.every((i) => !/npm ci(?!.*--omit=dev)/.test(i.args)),
    'that stage never installs dev dependencies',
  );
  assert.ok(
    last.some((i) => i.op === 'COPY' && /--from=\S+ \S*dist/.test(i.args)),
    'dist comes from the build stage',
  );
  assert.ok(!last.some((i) => i.op === 'COPY' && /^src\b/.test(i.args)), 'no TypeScript in the runtime image');
});

test('runtime: UID 1337, tini as PID 1, ports, config path, memory flags, iptables script', () => {
  const user = last.filter((i) => i.op === 'USER');
  assert.equal(user.at(-1)?.args, `${PROXY_UID}:${PROXY_UID}`);
  const entry = last.find((i) => i.op === 'ENTRYPOINT');
  assert.ok(entry);
  const argv = JSON.parse(entry.args) as string[];
  assert.deepEqual(argv.slice(0, 2), ['/usr/bin/tini', '--'], 'tini forwards SIGTERM to node and reaps probes');
  assert.ok(argv.includes('/app/dist/cli.js'));
  assert.ok(last.some((i) => i.op === 'RUN' && /apt-get install[^&]*\btini\b/.test(i.args) && /\biptables\b/.test(i.args)));
  assert.deepEqual(
    last
      .find((i) => i.op === 'EXPOSE')
      ?.args.split(/\s+/)
      .sort(),
    ['15000', '15001', '15006'],
  );
  const env = last
    .filter((i) => i.op === 'ENV')
    .map((i) => i.args)
    .join(' ');
  assert.match(env, /OUTRIGGER_CONFIG=\/etc\/outrigger\/outrigger\.yaml/);
  assert.match(env, /NODE_OPTIONS="[^"]*--max-old-space-size=\d+/);
  assert.match(env, /NODE_OPTIONS="[^"]*--max-semi-space-size=\d+/);
  assert.ok(last.some((i) => i.op === 'COPY' && i.args === `docker/iptables.sh ${IPTABLES_SCRIPT}`));
  // The HEALTHCHECK runs the same probe inject writes into the manifests.
  const health = last.find((i) => i.op === 'HEALTHCHECK');
  assert.ok(health);
  assert.deepEqual(JSON.parse(health.args.slice(health.args.indexOf('CMD ') + 4)), ['node', '-e', probeScript(15000, '/ready')]);
  // Documented in the header: ports and the config path.
  const header = TEXT.slice(0, TEXT.indexOf('ARG'));
  for (const word of ['15000', '15001', '15006', '/etc/outrigger/outrigger.yaml', 'OUTRIGGER_CONFIG', 'subPath']) {
    assert.ok(header.includes(word), `header documents ${word}`);
  }
});

test('.dockerignore keeps the context small but keeps what the Dockerfile copies', () => {
  const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const p of ['node_modules', 'dist', '.git']) assert.ok(ignore.includes(p), p);
  const copied = INS.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  for (const src of copied) {
    assert.ok(existsSync(path.join(ROOT, src)) || src === 'config', `${src} exists`);
    assert.ok(!ignore.some((p) => src === p || src.startsWith(`${p}/`)), `${src} is not ignored`);
  }
});
