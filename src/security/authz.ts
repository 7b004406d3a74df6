/**
 * Inbound authorization: the `inbound.authorization` rules compiled once per config snapshot into
 * an `Authorizer` whose `allows()` runs on every inbound request without allocating.
 *
 * Semantics (docs/security.md, "Authorization"):
 * - rules are evaluated in order; the first rule whose principals, paths and methods all match
 *   decides (allow or deny); when none matches, `default` decides;
 * - principals: exact URI strings (the client certificate's URI SAN), `*` = any authenticated
 *   caller (principal non-null); a null list = any caller, authenticated or not;
 * - paths: exact, or a prefix ending in `*`. As in Istio's AuthorizationPolicy ("prefix match:
 *   `abc*` matches `abc` and `abcd`"), the `*` is a plain string prefix: `/api/*` matches `/api/`
 *   and `/api/x` but NOT `/api` — write `["/api", "/api/*"]` to cover both. A lone `*` matches
 *   every path. A `*` anywhere else is a literal character;
 * - methods: upper-case, exact.
 *
 * The path given to `allows()` must be the normalised path without query (`normalizePath(...)
 * .path`), the same one that is forwarded; matching a raw path would reopen the
 * `/%61pi` / `//api` bypasses. Rules then match its `authorizationPath` spelling: `;` path
 * parameters and trailing dots and spaces of segments removed, lower-cased with `ignoreCase`
 * (so `deny /admin` also stops `/admin;x`, `/admin.`, `/admin%20` and, with ignoreCase, `/ADMIN`).
 */
import type { AuthorizationConfig, AuthzRule } from '../config/types.js';
import { authorizationPath } from './normalize.js';

/** Decides whether an inbound request may reach the app. */
export interface Authorizer {
  /**
   * @param principal the caller's URI SAN from `verifyClientSocket`, null when unauthenticated
   * @param method upper-case request method as parsed by Node
   * @param path normalised path without query
   */
  allows(principal: string | null, method: string, path: string): boolean;
}

interface CompiledRule {
  readonly allow: boolean;
  /** null = any caller */
  readonly principals: ReadonlySet<string> | null;
  /** `*` in the list: any non-null principal */
  readonly anyAuthenticated: boolean;
  /** null = any path */
  readonly exactPaths: ReadonlySet<string> | null;
  readonly prefixes: readonly string[];
  /** null = any method */
  readonly methods: ReadonlySet<string> | null;
}

function compileRule(r: AuthzRule, ignoreCase: boolean): CompiledRule {
  let principals: Set<string> | null = null;
  let anyAuthenticated = false;
  if (r.principals !== null) {
    principals = new Set();
    for (const p of r.principals) {
      if (p === '*') anyAuthenticated = true;
      else principals.add(p);
    }
  }
  let exactPaths: Set<string> | null = null;
  const prefixes: string[] = [];
  if (r.paths !== null) {
    exactPaths = new Set();
    for (const raw of r.paths) {
      const p = ignoreCase ? raw.toLowerCase() : raw;
      if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
      else exactPaths.add(p);
    }
  }
  return {
    allow: r.action === 'allow',
    principals,
    anyAuthenticated,
    exactPaths,
    prefixes,
    methods: r.methods === null ? null : new Set(r.methods.map((m) => m.toUpperCase())),
  };
}

class CompiledAuthorizer implements Authorizer {
  readonly #rules: readonly CompiledRule[];
  readonly #defaultAllow: boolean;
  readonly #ignoreCase: boolean;

  constructor(rules: readonly CompiledRule[], defaultAllow: boolean, ignoreCase: boolean) {
    this.#rules = rules;
    this.#defaultAllow = defaultAllow;
    this.#ignoreCase = ignoreCase;
  }

  allows(principal: string | null, method: string, normalized: string): boolean {
    const rules = this.#rules;
    const path = authorizationPath(normalized, this.#ignoreCase);
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i] as CompiledRule;
      if (r.principals !== null) {
        const hit = principal !== null && (r.anyAuthenticated || r.principals.has(principal));
        if (!hit) continue;
      }
      if (r.methods !== null && !r.methods.has(method)) continue;
      if (r.exactPaths !== null && !r.exactPaths.has(path)) {
        const prefixes = r.prefixes;
        let hit = false;
        for (let j = 0; j < prefixes.length; j++) {
          if (path.startsWith(prefixes[j] as string)) {
            hit = true;
            break;
          }
        }
        if (!hit) continue;
      }
      return r.allow;
    }
    return this.#defaultAllow;
  }
}

const ALLOW_ALL: Authorizer = Object.freeze({
  allows: (): boolean => true,
});

/**
 * Compile the authorization block of a config snapshot. `null` (no `authorization` block)
 * compiles to an authorizer that allows everything.
 */
export function compileAuthorization(a: AuthorizationConfig | null): Authorizer {
  if (a === null) return ALLOW_ALL;
  const rules: CompiledRule[] = [];
  for (const r of a.rules) rules.push(compileRule(r, a.ignoreCase));
  return new CompiledAuthorizer(rules, a.default === 'allow', a.ignoreCase);
}
