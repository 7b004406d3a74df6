// compileAuthorization: first match wins, default otherwise; principals exact or `*` (any
// authenticated); paths exact or Istio-style prefix (`/api/*` does not match `/api`).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { compileAuthorization } from '../src/security/authz.js';
import type { AuthorizationConfig, AuthzRule } from '../src/config/types.js';

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const ADMIN = 'spiffe://cluster.local/ns/ops/sa/admin';
const rule = (r: Partial<AuthzRule> & Pick<AuthzRule, 'action'>): AuthzRule => ({
  principals: null,
  paths: null,
  methods: null,
  ...r,
});

describe('compileAuthorization', () => {
  test('null config allows everything', () => {
    const a = compileAuthorization(null);
    assert.equal(a.allows(null, 'DELETE', '/anything'), true);
  });

  test('no rules: the default decides', () => {
    assert.equal(compileAuthorization({ default: 'deny', ignoreCase: false, rules: [] }).allows(WEB, 'GET', '/'), false);
    assert.equal(compileAuthorization({ default: 'allow', ignoreCase: false, rules: [] }).allows(null, 'GET', '/'), true);
  });

  const cfg: AuthorizationConfig = {
    default: 'deny',
    ignoreCase: false,
    rules: [
      rule({ action: 'deny', paths: ['/api/admin', '/api/admin/*'] }),
      rule({ action: 'allow', principals: [WEB], paths: ['/api/*'], methods: ['GET', 'HEAD'] }),
      rule({ action: 'allow', principals: ['*'], paths: ['/healthz'] }),
      rule({ action: 'allow', principals: [ADMIN] }),
    ],
  };
  const a = compileAuthorization(cfg);

  test('exact principal, prefix path, method list', () => {
    assert.equal(a.allows(WEB, 'GET', '/api/users'), true);
    assert.equal(a.allows(WEB, 'HEAD', '/api/'), true);
    assert.equal(a.allows(WEB, 'POST', '/api/users'), false, 'method not listed → default deny');
    assert.equal(a.allows(WEB + '/x', 'GET', '/api/users'), false, 'principal is exact, not prefix');
    assert.equal(a.allows('spiffe://cluster.local/ns/shop/sa/WEB', 'GET', '/api/users'), false, 'case-sensitive');
  });

  test('Istio prefix semantics: /api/* does not match /api or /apix', () => {
    assert.equal(a.allows(WEB, 'GET', '/api'), false);
    assert.equal(a.allows(WEB, 'GET', '/apix'), false);
    assert.equal(a.allows(WEB, 'GET', '/api/'), true);
  });

  test('first match wins: an earlier deny beats a later allow', () => {
    assert.equal(a.allows(WEB, 'GET', '/api/admin'), false);
    assert.equal(a.allows(WEB, 'GET', '/api/admin/x'), false);
    assert.equal(a.allows(ADMIN, 'GET', '/api/admin'), false, 'the deny rule has no principals: applies to all');
    assert.equal(a.allows(WEB, 'GET', '/api/administrator'), true, 'exact /api/admin and prefix /api/admin/ only');
  });

  test('* = any authenticated caller, never an anonymous one', () => {
    assert.equal(a.allows(WEB, 'GET', '/healthz'), true);
    assert.equal(a.allows('spiffe://other/x', 'POST', '/healthz'), true);
    assert.equal(a.allows(null, 'GET', '/healthz'), false);
    assert.equal(a.allows('', 'GET', '/healthz'), true, 'non-null principal counts as authenticated');
  });

  test('a rule with no paths or methods covers everything for its principals', () => {
    assert.equal(a.allows(ADMIN, 'DELETE', '/db'), true);
    assert.equal(a.allows(null, 'DELETE', '/db'), false);
  });

  test('lone * path matches every path; * elsewhere is literal', () => {
    const b = compileAuthorization({
      default: 'deny',
      ignoreCase: false,
      rules: [rule({ action: 'allow', paths: ['/a*b'], methods: ['GET'] }), rule({ action: 'allow', paths: ['*'], methods: ['PUT'] })],
    });
    assert.equal(b.allows(null, 'PUT', '/x/y'), true);
    assert.equal(b.allows(null, 'GET', '/a*b'), true);
    assert.equal(b.allows(null, 'GET', '/axb'), false);
    assert.equal(b.allows(null, 'GET', '/a*bc'), false);
  });

  test('default allow with deny rules (deny-list mode)', () => {
    const c = compileAuthorization({
      default: 'allow',
      ignoreCase: false,
      rules: [rule({ action: 'deny', principals: ['*'], methods: ['DELETE'] })],
    });
    assert.equal(c.allows(WEB, 'DELETE', '/x'), false);
    assert.equal(c.allows(null, 'DELETE', '/x'), true, 'anonymous is not matched by *');
    assert.equal(c.allows(WEB, 'GET', '/x'), true);
  });

  test('methods in config are compared upper-case', () => {
    const d = compileAuthorization({ default: 'deny', ignoreCase: false, rules: [rule({ action: 'allow', methods: ['get'] })] });
    assert.equal(d.allows(null, 'GET', '/'), true);
  });

  test('compiled rules do not keep references to the config arrays', () => {
    const paths = ['/x'];
    const e = compileAuthorization({ default: 'deny', ignoreCase: false, rules: [rule({ action: 'allow', paths })] });
    paths.push('/y');
    assert.equal(e.allows(null, 'GET', '/y'), false);
  });
});

describe('authorization paths: the spellings app servers read as the same path', () => {
  const deny = (ignoreCase: boolean) =>
    compileAuthorization({ default: 'allow', ignoreCase, rules: [rule({ action: 'deny', paths: ['/admin', '/Admin/*'] })] });
  test('path parameters, trailing dots and spaces are removed for matching', () => {
    const a = deny(false);
    for (const p of [
      '/admin;x',
      '/admin;a=b;c',
      '/admin.',
      '/admin%20',
      '/admin.%20.',
      '/x/..;/admin',
      '/Admin;v=1/users',
      '/Admin./users',
    ]) {
      assert.equal(a.allows(null, 'GET', p), false, p);
    }
    for (const p of ['/admins', '/adm;in', '/ADMIN', '/admin/', '/a/admin', '/.admin']) assert.equal(a.allows(null, 'GET', p), true, p);
  });
  test('ignoreCase folds both the rules and the path', () => {
    const a = deny(true);
    for (const p of ['/ADMIN', '/aDmIn;x', '/admin/users', '/ADMIN/USERS.']) assert.equal(a.allows(null, 'GET', p), false, p);
    assert.equal(a.allows(null, 'GET', '/Shop'), true);
  });
});
