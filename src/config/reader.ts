/**
 * Typed reading of a parsed YAML document for the config schema: every value is read from its
 * YAML node, so each problem carries the position of the node it is about. Readers never throw;
 * they record a problem and return `undefined`, and the schema substitutes the default so that
 * one pass finds every problem in the file.
 *
 * Null handling (one rule for the whole file): a key written with no value (`key:` or `key: ~`)
 * counts as not written, except for keys whose value is a map, where it counts as an empty map
 * (`healthCheck:` enables health checking with defaults; `outbound:` enables the listener).
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import { parseAddress } from './address.js';
import { parseDuration } from './duration.js';
import type { Address } from './types.js';

/** A problem before it is given a file and a line/column: `at` is a character offset. */
export interface RawProblem {
  readonly at: number;
  readonly message: string;
}

/** One value in the document, as found under a key or at a list index. */
export interface Field {
  /** the resolved node (aliases followed); a Scalar with value null for a YAML null */
  readonly node: unknown;
  /** key path for messages, e.g. `outbound.routes[2].timeout` */
  readonly path: string;
  /** offset where problems about this value are reported */
  readonly at: number;
}

/** A YAML map whose keys were checked against the allowed set. */
export interface MapView {
  readonly path: string;
  /** offset of the map itself: where "missing required key" problems point */
  readonly at: number;
  /** keys written with a non-null value */
  readonly fields: ReadonlyMap<string, Field>;
  /** keys written with a null value (see the module comment) */
  readonly nulls: ReadonlyMap<string, Field>;
}

/** One entry of a free-form map (cluster names, header names). */
export interface Entry {
  readonly key: string;
  readonly keyAt: number;
  readonly field: Field;
}

/** setTimeout's ceiling: a longer delay fires at once (with a warning) instead of never. */
export const MAX_DURATION_MS = 2 ** 31 - 1;
/** Aliases expanded per document; bounds the work of "billion laughs" files. */
const MAX_ALIASES = 100;
const MAX_SHOWN = 40;

/** `a.b` key paths; the root's path is the empty string. */
export function joinPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function prefix(path: string): string {
  return path === '' ? '' : `${path}: `;
}

interface Ranged {
  range?: readonly [number, number, number] | null;
}

function startOf(node: unknown): number | null {
  const r = (node as Ranged | null)?.range;
  return r ? r[0] : null;
}

/** True for a missing node and for a YAML null (`~`, `null`, or nothing at all). */
export function isNullNode(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null);
}

/** Levenshtein distance, for "did you mean" hints on short keys. */
function distance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] as number;
      prev[j] = Math.min(up + 1, (prev[j - 1] as number) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] as number;
}

/** The closest candidate to `word`, if it is close enough to be a plausible typo. */
export function suggest(word: string, candidates: readonly string[]): string | null {
  const w = word.toLowerCase();
  let best: string | null = null;
  let bestD = Infinity;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i] as string;
    const d = distance(w, c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best === null) return null;
  const limit = Math.max(1, Math.min(3, Math.floor(best.length / 3)));
  return bestD <= limit ? best : null;
}

function show(text: string): string {
  const t = text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}...` : text;
  return JSON.stringify(t);
}

/** Reads one document; collects problems instead of throwing. One instance per parse. */
export class Reader {
  readonly problems: RawProblem[] = [];
  private aliases = 0;
  private aliasProblemReported = false;

  constructor(
    /** null for an empty file (there is nothing to resolve) */
    private readonly doc: Document.Parsed | null,
    private readonly lineCounter: LineCounter,
  ) {}

  report(at: number, message: string): void {
    this.problems.push({ at, message });
  }

  /** `LINE:COL` of an offset, for messages that point at a second place. */
  lineCol(at: number): string {
    const p = this.lineCounter.linePos(at);
    return `${p.line}:${p.col}`;
  }

  /** Follows aliases (bounded), so that anchors can be reused anywhere in the file. */
  resolve(node: unknown, at: number): unknown {
    let n = node;
    while (isAlias(n)) {
      if (++this.aliases > MAX_ALIASES) {
        if (!this.aliasProblemReported) {
          this.aliasProblemReported = true;
          this.report(at, `too many aliases (at most ${MAX_ALIASES})`);
        }
        return null;
      }
      n = this.doc === null ? null : n.resolve(this.doc);
    }
    return n;
  }

  /** A field for a node found at `fallbackAt` (the key, for a value written as nothing). */
  field(node: unknown, path: string, fallbackAt: number, zeroWidthOk = false): Field {
    // An empty value (`key:`) has a zero-width range just after the colon; point at the key.
    // An empty list item (`-`) has one just after the dash, which is where it should point.
    const r = (node as Ranged | null)?.range;
    const at = r && (r[1] > r[0] || zeroWidthOk) ? r[0] : fallbackAt;
    return { node: this.resolve(node, at), path, at };
  }

  /** How a value is described in "expected X, got Y". */
  describe(node: unknown): string {
    if (isNullNode(node)) return 'nothing';
    if (isMap(node)) return 'a map';
    if (isSeq(node)) return 'a list';
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v === 'string') return show(v);
      return node.source ?? String(v);
    }
    return 'an unsupported value';
  }

  expected(f: Field, what: string): undefined {
    this.report(f.at, `${prefix(f.path)}expected ${what}, got ${this.describe(f.node)}`);
    return undefined;
  }

  /** Key text of a map key: strings as written; numbers and booleans by their source text. */
  private keyText(key: unknown): string | null {
    if (!isScalar(key) || key.value === null) return null;
    if (typeof key.value === 'string') return key.value;
    if (typeof key.value === 'number' || typeof key.value === 'boolean') return key.source ?? String(key.value);
    return null;
  }

  /** Iterates a map's pairs with duplicate detection; `normalize` gives a key's normal form. */
  private pairs(f: Field, normalize: (k: string) => string, each: (key: string, keyAt: number, value: Field) => void): boolean {
    if (isNullNode(f.node)) return true;
    if (!isMap(f.node)) {
      this.expected(f, 'a map');
      return false;
    }
    const seen = new Map<string, number>();
    const items = f.node.items;
    for (let i = 0; i < items.length; i++) {
      const pair = items[i];
      if (pair === undefined) continue;
      const keyNode = this.resolve(pair.key, startOf(pair.key) ?? f.at);
      const keyAt = startOf(pair.key) ?? f.at;
      const raw = this.keyText(keyNode);
      if (raw === null) {
        this.report(keyAt, `${prefix(f.path)}expected a string key, got ${this.describe(keyNode)}`);
        continue;
      }
      const key = normalize(raw);
      const first = seen.get(key);
      if (first !== undefined) {
        this.report(keyAt, `duplicate key ${show(raw)}${f.path === '' ? '' : ` in ${f.path}`} (first at ${this.lineCol(first)})`);
        continue;
      }
      seen.set(key, keyAt);
      each(key, keyAt, this.field(pair.value, joinPath(f.path, raw), keyAt));
    }
    return true;
  }

  /**
   * Reads a map with a fixed set of keys; unknown keys are problems (with a "did you mean" hint).
   * A null value reads as an empty map when `nullIsEmpty` (a key's value, see the module
   * comment), else as a problem (an empty list item). Returns null when the value is not a map.
   */
  map(f: Field, allowed: readonly string[], nullIsEmpty = false): MapView | null {
    if (!nullIsEmpty && isNullNode(f.node)) return this.expected(f, 'a map') ?? null;
    const fields = new Map<string, Field>();
    const nulls = new Map<string, Field>();
    const ok = this.pairs(
      f,
      (k) => k,
      (key, keyAt, value) => {
        if (!allowed.includes(key)) {
          const hint = suggest(key, allowed);
          const where = f.path === '' ? ' at top level' : ` in ${f.path}`;
          const msg =
            key === '<<'
              ? `merge keys (<<) are not supported${where}; repeat the keys or use an alias for the whole map`
              : `unknown key ${show(key)}${where}${hint === null ? '' : ` (did you mean "${hint}"?)`}`;
          this.report(keyAt, msg);
          return;
        }
        (isNullNode(value.node) ? nulls : fields).set(key, value);
      },
    );
    return ok ? { path: f.path, at: f.at, fields, nulls } : null;
  }

  /** Reads a free-form map (names chosen by the operator); keys pass through `normalize`. */
  entries(f: Field, normalize: (k: string) => string = (k) => k): Entry[] | null {
    const out: Entry[] = [];
    const ok = this.pairs(f, normalize, (key, keyAt, field) => {
      out.push({ key, keyAt, field });
    });
    return ok ? out : null;
  }

  /** A key's value, or undefined when the key is absent or null. */
  opt(m: MapView, key: string): Field | undefined {
    return m.fields.get(key);
  }

  /** A block-valued key: absent → null; written with no value → an empty map. */
  block(m: MapView, key: string, allowed: readonly string[]): MapView | null {
    const f = m.fields.get(key) ?? m.nulls.get(key);
    return f === undefined ? null : this.map(f, allowed, true);
  }

  /**
   * A required key. Absent: a problem at the enclosing map. Written as null: returned, so that
   * the typed reader reports "expected X, got nothing" at the key.
   */
  req(m: MapView, key: string): Field | undefined {
    const f = m.fields.get(key) ?? m.nulls.get(key);
    if (f === undefined) this.report(m.at, `${prefix(m.path)}missing required key "${key}"`);
    return f;
  }

  /** True when the key was written, with or without a value. */
  has(m: MapView, key: string): boolean {
    return m.fields.has(key) || m.nulls.has(key);
  }

  list(f: Field): Field[] | undefined {
    if (!isSeq(f.node)) return this.expected(f, 'a list');
    const items = f.node.items;
    const out: Field[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) out[i] = this.field(items[i], `${f.path}[${i}]`, f.at, true);
    return out;
  }

  /**
   * A string. Plain scalars that YAML reads as numbers or booleans are taken as written
   * (`x-version: 1.10` is "1.10", not "1.1"), since every string field here is a name or value.
   */
  string(f: Field): string | undefined {
    const n = f.node;
    if (isScalar(n)) {
      if (typeof n.value === 'string') return n.value;
      if ((typeof n.value === 'number' || typeof n.value === 'boolean') && n.type === 'PLAIN' && n.source !== undefined) {
        return n.source;
      }
    }
    return this.expected(f, 'a string');
  }

  nonEmptyString(f: Field): string | undefined {
    const s = this.string(f);
    if (s === '') {
      this.report(f.at, `${prefix(f.path)}must not be empty`);
      return undefined;
    }
    return s;
  }

  private rawNumber(f: Field): number | undefined {
    const n = f.node;
    return isScalar(n) && typeof n.value === 'number' && Number.isFinite(n.value) ? n.value : undefined;
  }

  /** An integer in [min, max]. */
  integer(f: Field, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = this.rawNumber(f);
    if (v !== undefined && Number.isInteger(v) && v >= min && v <= max) return v;
    const what =
      max === Number.MAX_SAFE_INTEGER
        ? min === 1
          ? 'a positive integer'
          : min === 0
            ? 'a non-negative integer'
            : `an integer of at least ${min}`
        : `an integer from ${min} to ${max}`;
    return this.expected(f, what);
  }

  /** A number in [min, max]; with `aboveMin`, strictly greater than min. */
  number(f: Field, min: number, max: number, aboveMin = false): number | undefined {
    const v = this.rawNumber(f);
    if (v !== undefined && (aboveMin ? v > min : v >= min) && v <= max) return v;
    const what =
      max === Number.MAX_SAFE_INTEGER
        ? aboveMin && min === 0
          ? 'a positive number'
          : `a number of at least ${min}`
        : `a number from ${min} to ${max}`;
    return this.expected(f, what);
  }

  boolean(f: Field): boolean | undefined {
    const n = f.node;
    if (isScalar(n) && typeof n.value === 'boolean') return n.value;
    return this.expected(f, 'true or false');
  }

  /** A duration in ms; `positive` rejects 0 where 0 cannot mean "none". */
  duration(f: Field, positive: boolean): number | undefined {
    const n = f.node;
    if (!isScalar(n) || (typeof n.value !== 'string' && typeof n.value !== 'number')) {
      return this.expected(f, 'a duration such as 250ms, 5s, 1m');
    }
    const ms = parseDuration(n.value);
    if (ms === null) {
      const text = typeof n.value === 'string' ? n.value : (n.source ?? String(n.value));
      this.report(f.at, `${prefix(f.path)}invalid duration ${show(text)}: use e.g. 250ms, 5s, 1m`);
      return undefined;
    }
    if (ms > MAX_DURATION_MS) {
      this.report(f.at, `${prefix(f.path)}duration ${show(String(n.value))} is too long: at most 596h`);
      return undefined;
    }
    if (positive && ms === 0) {
      this.report(f.at, `${prefix(f.path)}must be greater than 0`);
      return undefined;
    }
    return ms;
  }

  /** A `host:port` address; `listen` addresses may use port 0 (any free port). */
  address(f: Field, listen: boolean): Address | undefined {
    const n = f.node;
    if (!isScalar(n) || typeof n.value !== 'string') return this.expected(f, 'an address (host:port)');
    const s = n.value;
    const a = parseAddress(s);
    const port = /:([0-9]+)$/.exec(s);
    if (a === null && port !== null && Number(port[1]) > 65535 && parseAddress(`${s.slice(0, port.index)}:0`) !== null) {
      this.report(f.at, `${prefix(f.path)}port must be from ${listen ? 0 : 1} to 65535, got ${port[1]}`);
      return undefined;
    }
    if (a === null) {
      this.report(f.at, `${prefix(f.path)}invalid address ${show(s)}: use host:port, e.g. 127.0.0.1:8080 or [::1]:8080`);
      return undefined;
    }
    if (a.port === 0 && !listen) {
      this.report(f.at, `${prefix(f.path)}port must be from 1 to 65535, got 0`);
      return undefined;
    }
    return a;
  }

  /** One of a fixed set of strings. */
  oneOf<T extends string>(f: Field, values: readonly T[]): T | undefined {
    const s = this.string(f);
    if (s === undefined) return undefined;
    if ((values as readonly string[]).includes(s)) return s as T;
    const hint = suggest(s, values);
    this.report(
      f.at,
      `${prefix(f.path)}invalid value ${show(s)}: expected ${values.join(' or ').replace(/ or (?=.* or )/g, ', ')}${hint === null ? '' : ` (did you mean "${hint}"?)`}`,
    );
    return undefined;
  }
}
