/**
 * Config loading: YAML text → every problem with its `FILE:LINE:COL`, or a validated, defaulted,
 * deep-frozen `Config` snapshot with the hash of the text and the files it names. Pure and
 * synchronous apart from reading the file, so the CLI (`validate`), startup and hot reload all
 * share one path. The schema itself lives in `schema.ts`.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { isNullNode, Reader, type RawProblem } from './reader.js';
import { buildConfig } from './schema.js';
import type { ConfigProblem, LoadResult } from './types.js';

/** `FILE:LINE:COL: message`, the one format every config problem is shown in. */
/** The one problem of a file that holds no YAML document. */
export const EMPTY_FILE = 'config file is empty; write {} for every default (and write config files atomically: temp file + rename)';

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

/**
 * Parses and validates config text. `file` is used in problems as given and, resolved, as the
 * base of relative TLS file paths (which the returned config holds as absolute paths, also
 * listed in `files`). Never throws.
 */
export function parseConfig(text: string, file: string): LoadResult {
  return parseWithHash(text, file, sha256(text));
}

/**
 * Reads and parses a config file. An unreadable file is one problem at 1:1
 * (`cannot read config: ENOENT: ...`); never rejects.
 */
export async function loadConfigFile(file: string): Promise<LoadResult> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const message = `cannot read config: ${e instanceof Error ? e.message : String(e)}`;
    return { ok: false, problems: [{ file, line: 1, col: 1, message }] };
  }
  return parseWithHash(bytes.toString('utf8'), file, sha256(bytes));
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function parseWithHash(text: string, file: string, hash: string): LoadResult {
  const lineCounter = new LineCounter();
  const raw: RawProblem[] = [];
  let built: ReturnType<typeof buildConfig> | null = null;
  try {
    built = parseInto(text, file, lineCounter, raw);
  } catch (e) {
    // The walker is written not to throw; this keeps a bug in it from taking down a reload.
    raw.push({ at: 0, message: `internal error while reading config: ${e instanceof Error ? e.message : String(e)}` });
  }
  if (raw.length > 0 || built === null) return { ok: false, problems: toProblems(raw, file, lineCounter) };
  return { ok: true, config: deepFreeze(built.config), hash, files: Object.freeze([...built.files]) };
}

function parseInto(text: string, file: string, lineCounter: LineCounter, raw: RawProblem[]): ReturnType<typeof buildConfig> | null {
  // uniqueKeys off: the schema reports duplicate keys itself, with where the first one is.
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  for (let i = 0; i < docs.length; i++) {
    const errors = docs[i]!.errors;
    for (let j = 0; j < errors.length; j++) {
      const e = errors[j]!;
      raw.push({ at: e.pos[0], message: lowerFirst(e.message.replace(/\s+/g, ' ').trim()) });
    }
  }
  // A syntax error leaves a partial tree; checking it against the schema would only add noise.
  if (raw.length > 0) return null;

  const nonEmpty = docs.filter((d) => !isNullNode(d.contents));
  if (nonEmpty.length > 1) {
    const second = nonEmpty[1]!;
    raw.push({ at: second.range[0], message: `expected one YAML document, found ${nonEmpty.length}` });
  }
  const doc = nonEmpty[0] ?? docs[0];
  const baseDir = path.dirname(path.resolve(file));
  if (doc === undefined) {
    // No document at all (zero bytes, blanks, comments): refused by validate, run and reload
    // alike. At reload it is what a reader sees between the truncate and the write of an
    // in-place edit, and applying it would drop every route and cluster; `{}` says "defaults".
    raw.push({ at: 0, message: EMPTY_FILE });
    return null;
  }
  const r = new Reader(doc, lineCounter);
  const root = r.field(doc.contents, '', 0);
  const built = buildConfig(r, root, baseDir);
  for (let i = 0; i < r.problems.length; i++) raw.push(r.problems[i]!);
  return built;
}

function lowerFirst(s: string): string {
  return s.length > 0 ? s.charAt(0).toLowerCase() + s.slice(1) : s;
}

function toProblems(raw: readonly RawProblem[], file: string, lineCounter: LineCounter): ConfigProblem[] {
  const sorted = [...raw].sort((a, b) => a.at - b.at);
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i]!;
    const pos = lineCounter.linePos(p.at);
    const line = Math.max(1, pos.line);
    const col = Math.max(1, pos.col);
    const key = `${line}:${col}:${p.message}`;
    // An anchor reused through aliases would otherwise report its problems once per use.
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ file, line, col, message: p.message });
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
