// Config file watching (src/config/watch.ts) against real temp directories: in-place writes,
// atomic rename writers, the Kubernetes ConfigMap `..data` symlink swap, delete/recreate, bursts,
// content-neutral touches, a second file in the set, SIGHUP-style check(), and polling fallback.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { watchFiles, type FileWatcher, type WatchOptions } from '../src/config/watch.js';

/** Debounce short enough for a fast suite; poll far off so tests exercise fs.watch, not the poll. */
const FAST: WatchOptions = { debounceMs: 50, pollMs: 60_000 };

function tempDir(t: TestContext): string {
  // The watcher is deliberately non-persistent (watchers and timers unref'd), so nothing would keep
  // the event loop alive while a test awaits a file event: node:test would cancel the test with
  // "Promise resolution is still pending but the event loop has already resolved". In the proxy the
  // listeners keep the loop alive; here a ref'd interval stands in for them.
  const keepAlive = setInterval(() => {}, 60_000);
  t.after(() => clearInterval(keepAlive));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-watch-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A watcher plus a queue of onChange calls. `next()` resolves at the next onChange and gives the
 * content of `readBack` as the callback saw it (what a reload would have loaded).
 */
function harness(t: TestContext, files: string[], readBack: string, opts: WatchOptions = FAST) {
  const seen: string[] = [];
  const waiters: Array<(content: string) => void> = [];
  const rechecks: Array<(changed: boolean) => void> = [];
  const read = (): string => {
    try {
      return fs.readFileSync(readBack, 'utf8');
    } catch {
      return '<missing>';
    }
  };
  const w: FileWatcher = watchFiles(
    files,
    () => {
      const content = read();
      seen.push(content);
      waiters.shift()?.(content);
    },
    { ...opts, onRecheck: (changed) => rechecks.shift()?.(changed) },
  );
  t.after(() => w.close());
  return {
    w,
    seen,
    next: (): Promise<string> => new Promise((resolve) => waiters.push(resolve)),
    nextRecheck: (): Promise<boolean> => new Promise((resolve) => rechecks.push(resolve)),
  };
}

test('in-place write triggers onChange with the new content', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, 'a: 1\n');
  const h = harness(t, [file], file);
  const changed = h.next();
  fs.writeFileSync(file, 'a: 2\n');
  assert.equal(await changed, 'a: 2\n');
  assert.deepEqual(h.seen, ['a: 2\n']);
});

test('write-to-temp then rename over the file (vim, atomic writers) is seen', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, 'a: 1\n');
  const h = harness(t, [file], file);
  const changed = h.next();
  const tmp = path.join(dir, '.outrigger.yaml.swp');
  fs.writeFileSync(tmp, 'a: renamed\n');
  fs.renameSync(tmp, file);
  assert.equal(await changed, 'a: renamed\n');
  // The watch survives the inode swap: a second atomic write is seen too.
  const again = h.next();
  fs.writeFileSync(tmp, 'a: renamed again\n');
  fs.renameSync(tmp, file);
  assert.equal(await again, 'a: renamed again\n');
});

test('Kubernetes ConfigMap ..data symlink swap is seen', async (t) => {
  const dir = tempDir(t);
  const v1 = '..2026_11_25_10_00_00.123456789';
  const v2 = '..2026_11_25_10_05_00.987654321';
  fs.mkdirSync(path.join(dir, v1));
  fs.writeFileSync(path.join(dir, v1, 'outrigger.yaml'), 'version: 1\n');
  fs.symlinkSync(v1, path.join(dir, '..data'));
  fs.symlinkSync('..data/outrigger.yaml', path.join(dir, 'outrigger.yaml'));
  const file = path.join(dir, 'outrigger.yaml');
  assert.equal(fs.readFileSync(file, 'utf8'), 'version: 1\n');

  const h = harness(t, [file], file);
  const changed = h.next();
  // The kubelet's atomic writer: new timestamped dir, ..data_tmp -> it, rename over ..data, rm old.
  fs.mkdirSync(path.join(dir, v2));
  fs.writeFileSync(path.join(dir, v2, 'outrigger.yaml'), 'version: 2\n');
  fs.symlinkSync(v2, path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  fs.rmSync(path.join(dir, v1), { recursive: true });
  assert.equal(await changed, 'version: 2\n');
  assert.equal(await h.w.check(), false, 'the swap was fully absorbed by the watch-driven re-check');
});

test('delete counts as a change, and so does recreating it with the old content', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, 'a: 1\n');
  const h = harness(t, [file], file);
  const gone = h.next();
  fs.unlinkSync(file);
  assert.equal(await gone, '<missing>');
  const back = h.next();
  fs.writeFileSync(file, 'a: 1\n');
  assert.equal(await back, 'a: 1\n');
  assert.deepEqual(h.seen, ['<missing>', 'a: 1\n']);
});

test('a burst of 20 writes gives one onChange that sees the final content', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, 'n: 0\n');
  const h = harness(t, [file], file);
  const changed = h.next();
  for (let i = 1; i <= 20; i++) fs.writeFileSync(file, `n: ${i}\n`);
  assert.equal(await changed, 'n: 20\n');
  // Nothing left unseen: a forced re-check finds no further change.
  assert.equal(await h.w.check(), false);
  // All 20 writes happen before the loop sees any event, so this is one call in practice; allow a
  // second in case a filesystem delivers events in two batches. Without the debounce it is ~20.
  assert.ok(h.seen.length <= 2, `burst collapsed (${h.seen.length} onChange calls)`);
});

test('touching a file or rewriting the same bytes is not a change', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, 'a: 1\n');
  const h = harness(t, [file], file);

  // The event-driven re-check runs and finds nothing.
  let rechecked = h.nextRecheck();
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(file, later, later);
  assert.equal(await rechecked, false);
  rechecked = h.nextRecheck();
  fs.writeFileSync(file, 'a: 1\n');
  assert.equal(await rechecked, false);
  assert.deepEqual(h.seen, []);

  // And the watcher is still live: a real change afterwards is seen.
  const changed = h.next();
  fs.writeFileSync(file, 'a: 2\n');
  assert.equal(await changed, 'a: 2\n');
  assert.deepEqual(h.seen, ['a: 2\n']);
});

test('a second file in the set (a cert in another directory) triggers onChange', async (t) => {
  const dir = tempDir(t);
  const certDir = path.join(dir, 'certs');
  fs.mkdirSync(certDir);
  const file = path.join(dir, 'outrigger.yaml');
  const cert = path.join(certDir, 'tls.crt');
  fs.writeFileSync(file, 'a: 1\n');
  fs.writeFileSync(cert, 'CERT 1\n');
  const h = harness(t, [file, cert], cert);
  const changed = h.next();
  fs.writeFileSync(cert, 'CERT 2\n');
  assert.equal(await changed, 'CERT 2\n');
});

test('check() reports whether content changed, and calls onChange when it did', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, 'a: 1\n');
  // Debounce and poll far away: only check() can notice anything here.
  const h = harness(t, [file], file, { debounceMs: 60_000, pollMs: 60_000 });
  assert.equal(await h.w.check(), false);
  fs.writeFileSync(file, 'a: 2\n');
  assert.equal(await h.w.check(), true);
  assert.deepEqual(h.seen, ['a: 2\n']);
  assert.equal(await h.w.check(), false);
  h.w.close();
  fs.writeFileSync(file, 'a: 3\n');
  assert.equal(await h.w.check(), false, 'a closed watcher checks nothing');
  assert.deepEqual(h.seen, ['a: 2\n']);
});

test('setFiles: an added file is baselined (no change) then watched; a removed one is ignored', async (t) => {
  const dir = tempDir(t);
  const a = path.join(dir, 'a.yaml');
  const otherDir = path.join(dir, 'other');
  fs.mkdirSync(otherDir);
  const b = path.join(otherDir, 'b.pem');
  fs.writeFileSync(a, 'a\n');
  fs.writeFileSync(b, 'b\n');
  const h = harness(t, [a], b, { debounceMs: 60_000, pollMs: 60_000 });
  h.w.setFiles([b]);
  assert.equal(await h.w.check(), false, 'adding a file is not a change');
  fs.writeFileSync(a, 'a changed\n');
  assert.equal(await h.w.check(), false, 'a file no longer in the set is not watched');
  fs.writeFileSync(b, 'b changed\n');
  assert.equal(await h.w.check(), true);
  assert.deepEqual(h.seen, ['b changed\n']);
});

test('a directory that does not exist yet is polled until the file appears', async (t) => {
  const dir = tempDir(t);
  const missing = path.join(dir, 'later');
  const file = path.join(missing, 'outrigger.yaml');
  const warnings: string[] = [];
  const h = harness(t, [file], file, { debounceMs: 50, pollMs: 50, onWarning: (m) => warnings.push(m) });
  const changed = h.next();
  fs.mkdirSync(missing);
  fs.writeFileSync(file, 'late: true\n');
  assert.equal(await changed, 'late: true\n');
  // The poll has set up a real watch by now; the next change arrives either way.
  const again = h.next();
  fs.writeFileSync(file, 'late: again\n');
  assert.equal(await again, 'late: again\n');
});

test('a watched directory replaced wholesale is picked up again', async (t) => {
  const dir = tempDir(t);
  const conf = path.join(dir, 'conf');
  fs.mkdirSync(conf);
  const file = path.join(conf, 'outrigger.yaml');
  fs.writeFileSync(file, 'gen: 1\n');
  const h = harness(t, [file], file, { debounceMs: 50, pollMs: 50 });
  const changed = h.next();
  const fresh = path.join(dir, 'conf.new');
  fs.mkdirSync(fresh);
  fs.writeFileSync(path.join(fresh, 'outrigger.yaml'), 'gen: 2\n');
  fs.renameSync(conf, path.join(dir, 'conf.old'));
  fs.renameSync(fresh, conf);
  assert.equal(await changed, 'gen: 2\n');
  const again = h.next();
  fs.writeFileSync(file, 'gen: 3\n');
  assert.equal(await again, 'gen: 3\n');
});

test('onChange throwing or rejecting is reported, not thrown, and watching continues', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'outrigger.yaml');
  fs.writeFileSync(file, 'a: 1\n');
  const warnings: string[] = [];
  let calls = 0;
  const w = watchFiles(
    [file],
    () => {
      calls++;
      if (calls === 1) throw new Error('boom');
      return Promise.reject(new Error('async boom')) as unknown as void;
    },
    { debounceMs: 60_000, pollMs: 60_000, onWarning: (m) => warnings.push(m) },
  );
  t.after(() => w.close());
  fs.writeFileSync(file, 'a: 2\n');
  assert.equal(await w.check(), true);
  fs.writeFileSync(file, 'a: 3\n');
  assert.equal(await w.check(), true);
  await new Promise((resolve) => setImmediate(resolve)); // let the rejection handler run
  assert.equal(calls, 2);
  assert.deepEqual(warnings, ['config onChange threw', 'config onChange rejected']);
});
