/**
 * The key reference in docs/configuration.md is generated from src/config/fields.ts; these tests
 * fail when the two disagree (fix: `npm run docs:config`), and when a block of the table is not
 * in the reference at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../src/config/load.js';
import * as F from '../src/config/fields.js';
import { SECTIONS, configReference, withReference } from '../src/config/reference.js';
import { ROOT } from './helpers/paths.js';

const DOC = path.join(ROOT, 'docs', 'configuration.md');

test('docs/configuration.md carries the key reference generated from fields.ts (npm run docs:config)', () => {
  const doc = readFileSync(DOC, 'utf8');
  assert.equal(withReference(doc), doc, 'docs/configuration.md is stale: run `npm run docs:config`');
});

test("every block of fields.ts has a section in the reference, and every key a row (its own, or its nested keys')", () => {
  const inSections = new Set<F.Block>();
  const walk = (s: { block: F.Block; inline?: Readonly<Record<string, { block: F.Block }>> }): void => {
    inSections.add(s.block);
    for (const n of Object.values(s.inline ?? {})) walk(n);
  };
  for (const s of SECTIONS) walk(s);
  const blocks = Object.entries(F).filter(([, v]) => typeof v === 'object' && v !== null && !Array.isArray(v) && !('host' in v));
  assert.ok(blocks.length >= 30, `found ${blocks.length} blocks`);
  for (const [name, block] of blocks) assert.ok(inSections.has(block as F.Block), `${name} has no section in the reference`);
  const text = configReference();
  for (const [name, block] of blocks) {
    for (const key of Object.keys(block)) assert.match(text, new RegExp(`\\| \`([a-z.A-Z[\\]]*\\.)?${key}[\`.[]`), `${name}.${key}`);
  }
});

test('an empty config reads as the defaults the table declares', () => {
  const r = parseConfig('inbound: { app: 127.0.0.1:8080 }\noutbound: {}\nclusters: { c: { endpoints: [127.0.0.1:1] } }\n', 'x.yaml');
  assert.ok(r.ok);
  const c = r.config;
  assert.deepEqual({ ...c.inbound!.limits }, F.defaultsOf(F.LIMITS));
  assert.equal(c.inbound!.timeout, F.INBOUND.timeout.default);
  assert.equal(c.outbound!.unknownHosts, F.OUTBOUND.unknownHosts.default);
  assert.deepEqual({ ...c.drain }, F.defaultsOf(F.DRAIN));
  const cl = c.clusters['c']!;
  assert.equal(cl.loadBalancer, F.CLUSTER.loadBalancer.default);
  assert.equal(cl.connectTimeout, F.CLUSTER.connectTimeout.default);
  assert.deepEqual({ ...cl.retryBudget }, F.defaultsOf(F.RETRY_BUDGET));
});
