/**
 * Config file watching for hot reload (docs/configuration.md, "Reload semantics").
 *
 * Owns: noticing that any file of a set (the config, TLS certs/keys/CAs) changed *content*, and
 * telling the caller once per burst. It does not parse or validate anything: the caller reloads
 * and keeps the last good config when the new one is invalid.
 *
 * Why it is built this way:
 * - We watch each file's *directory*, never the file: editors that write-then-rename and the
 *   Kubernetes ConfigMap volume replace the inode, and an inotify watch on the old inode then goes
 *   silent. A ConfigMap update only renames `..data_tmp` over `..data`, so the only event may name
 *   `..data`; every event in the directory therefore schedules a (debounced) re-check.
 * - Change means "sha256 of the content differs", read through symlinks. mtime/inode are useless
 *   here (a ConfigMap swap changes the inode without changing bytes; `touch` changes mtime only).
 * - fs.watch can miss events (some overlay/network filesystems, a watched directory that is itself
 *   replaced), so a poll re-hashes every `pollMs` (default 2 s, the documented reload bound). The
 *   files are small; hashing them every 2 s costs less than being clever with stat.
 * - Nothing here may throw into the event loop or keep the process alive: watchers are
 *   non-persistent, timers unref'd, callbacks guarded.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** A live watch over a set of files. */
export interface FileWatcher {
  /**
   * Replace the watched set (after a reload the config may name other cert files). Files already
   * in the set keep their last seen hash; new files are hashed now, so adding a file is not itself
   * a change.
   */
  setFiles(files: readonly string[]): void;
  /** Stop watching and polling; release every watcher and timer. Idempotent. */
  close(): void;
  /**
   * Re-check now (e.g. on SIGHUP). Resolves true if any content hash changed since the last check;
   * in that case `onChange` has been called too (exactly as for a watch event), so a caller that
   * reloads from `onChange` must not reload again on `true`. Resolves false after `close()`.
   */
  check(): Promise<boolean>;
}

/** Options of {@link watchFiles}. */
export interface WatchOptions {
  /** Quiet period after the last directory event before re-checking. Default 200 ms. */
  debounceMs?: number;
  /** Interval of the safety-net poll (re-hash every file). Default 2000 ms. */
  pollMs?: number;
  /**
   * Degraded modes and callback failures (a directory that cannot be watched, so only polling
   * works; `onChange` throwing or rejecting). Default: ignored. Must not throw.
   */
  onWarning?: (message: string, err: unknown) => void;
  /**
   * Called after every completed re-check with whether it found a change. A diagnostic/test hook:
   * it lets a test wait for "the watcher looked" instead of sleeping. Must not throw.
   */
  onRecheck?: (changed: boolean) => void;
}

const DEFAULT_DEBOUNCE_MS = 200;
const DEFAULT_POLL_MS = 2000;

/** Hash of a missing or unreadable file: a value no sha256 hex digest can equal. */
const UNREADABLE = 'unreadable';

/** One watched directory: its fs.watch handle (null: only polled) and the inode it watches. */
interface DirWatch {
  watcher: fs.FSWatcher | null;
  /** `dev:ino` of the directory when the watch was set up; a different value means it was replaced. */
  identity: string | null;
}

/**
 * Watch `files` and call `onChange` (once per burst of changes) when the content of any of them
 * changes, disappears, or reappears. See the module header for the mechanics.
 *
 * The files are hashed synchronously here, as the baseline. Create the watcher *before* the first
 * load of the config: a write that lands between the two then shows up as a change (one extra
 * reload) instead of being missed.
 */
export function watchFiles(files: readonly string[], onChange: () => void, opts: WatchOptions = {}): FileWatcher {
  return new Watcher(files, onChange, opts);
}

function hashFileSync(file: string): string {
  try {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return UNREADABLE;
  }
}

async function hashFile(file: string): Promise<string> {
  try {
    return createHash('sha256')
      .update(await fs.promises.readFile(file))
      .digest('hex');
  } catch {
    return UNREADABLE;
  }
}

function dirIdentity(dir: string): string | null {
  try {
    const st = fs.statSync(dir);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

class Watcher implements FileWatcher {
  /** Absolute path → last seen content hash. */
  private hashes = new Map<string, string>();
  private readonly dirs = new Map<string, DirWatch>();
  private readonly onChange: () => void;
  private readonly debounceMs: number;
  private readonly onWarning: (message: string, err: unknown) => void;
  private readonly onRecheck: ((changed: boolean) => void) | null;
  private debounceTimer: NodeJS.Timeout | null = null;
  private readonly pollTimer: NodeJS.Timeout;
  /** Tail of the serialised re-check chain: re-checks never overlap, so hashes update in order. */
  private chain: Promise<boolean> = Promise.resolve(false);
  /** Re-checks queued or running; the poll does not pile more onto a slow filesystem. */
  private queued = 0;
  private closed = false;
  private readonly onDirEvent = (): void => this.schedule();

  constructor(files: readonly string[], onChange: () => void, opts: WatchOptions) {
    this.onChange = onChange;
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.onWarning = opts.onWarning ?? noop;
    this.onRecheck = opts.onRecheck ?? null;
    this.setFiles(files);
    this.pollTimer = setInterval(() => this.poll(), opts.pollMs ?? DEFAULT_POLL_MS);
    this.pollTimer.unref();
  }

  setFiles(files: readonly string[]): void {
    if (this.closed) return;
    const next = new Map<string, string>();
    for (let i = 0; i < files.length; i++) {
      const abs = path.resolve(files[i]!);
      if (next.has(abs)) continue;
      // Content now is the baseline: the caller loads these files around this call.
      next.set(abs, this.hashes.get(abs) ?? hashFileSync(abs));
    }
    this.hashes = next;
    const wanted = new Set<string>();
    for (const abs of next.keys()) wanted.add(path.dirname(abs));
    for (const [dir, w] of this.dirs) {
      if (!wanted.has(dir)) {
        w.watcher?.close();
        this.dirs.delete(dir);
      }
    }
    for (const dir of wanted) if (!this.dirs.has(dir)) this.dirs.set(dir, this.watchDir(dir));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pollTimer);
    if (this.debounceTimer !== null) clearTimeout(this.debounceTimer);
    this.debounceTimer = null;
    for (const w of this.dirs.values()) w.watcher?.close();
    this.dirs.clear();
  }

  check(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    // Queue behind any running re-check so this one reads the files as they are *now*.
    this.queued++;
    const run = this.chain
      .then(() => this.recheck())
      .catch((err: unknown) => {
        // recheck guards every callback; this only keeps one surprise from poisoning the chain.
        this.onWarning('config re-check failed', err);
        return false;
      })
      .finally(() => {
        this.queued--;
      });
    this.chain = run;
    return run;
  }

  private watchDir(dir: string): DirWatch {
    const identity = dirIdentity(dir);
    if (identity === null) return { watcher: null, identity: null }; // polled until it appears
    try {
      // persistent: false — a config watch must never keep the process alive on its own.
      const watcher = fs.watch(dir, { persistent: false }, this.onDirEvent);
      const entry: DirWatch = { watcher, identity };
      watcher.on('error', (err) => {
        // Typically the directory was removed. Drop the watch; the poll re-creates it once the
        // directory's identity differs from the one recorded here.
        watcher.close();
        if (entry.watcher === watcher) {
          entry.watcher = null;
          entry.identity = 'failed';
        }
        this.onWarning(`config watch on ${dir} failed; polling`, err);
        this.schedule();
      });
      return entry;
    } catch (err) {
      this.onWarning(`cannot watch ${dir}; polling only`, err);
      return { watcher: null, identity };
    }
  }

  /** Debounced re-check: bursts of directory events collapse into one. */
  private schedule(): void {
    if (this.closed) return;
    if (this.debounceTimer !== null) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = null;
      void this.check();
    }, this.debounceMs);
    this.debounceTimer.unref();
  }

  private poll(): void {
    if (this.closed) return;
    // Re-establish a watch when its directory appeared, vanished or was replaced (the old watch
    // then follows a dead inode and never fires again). A directory that exists but cannot be
    // watched keeps its identity, so we do not retry (and warn) on every tick.
    for (const [dir, w] of this.dirs) {
      if (dirIdentity(dir) === w.identity) continue;
      w.watcher?.close();
      this.dirs.set(dir, this.watchDir(dir));
    }
    if (this.queued === 0) void this.check();
  }

  private async recheck(): Promise<boolean> {
    if (this.closed) return false;
    let changed = false;
    // Iterate a copy of the names and compare against the live map at each step: setFiles may
    // replace the set while we await reads, and its copy must see the hashes we update.
    const files = [...this.hashes.keys()];
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const now = await hashFile(file);
      const last = this.hashes.get(file);
      if (last !== undefined && now !== last) {
        this.hashes.set(file, now);
        changed = true;
      }
    }
    if (this.closed) return false;
    if (changed) this.notify();
    if (this.onRecheck !== null) guard(this.onRecheck, changed, this.onWarning);
    return changed;
  }

  private notify(): void {
    try {
      const r: unknown = this.onChange();
      // onChange is typed void, but an async reload function is assignable to it: never let its
      // rejection become an unhandled rejection.
      if (r instanceof Promise) r.catch((err: unknown) => this.onWarning('config onChange rejected', err));
    } catch (err) {
      this.onWarning('config onChange threw', err);
    }
  }
}

function guard(fn: (changed: boolean) => void, changed: boolean, warn: (m: string, e: unknown) => void): void {
  try {
    fn(changed);
  } catch (err) {
    warn('config onRecheck threw', err);
  }
}

function noop(): void {}
