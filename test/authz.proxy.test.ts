// Authorization over a real inbound listener against the spellings app servers read as the same
// path: `;` parameters (Tomcat, Jetty, Spring), trailing dots and spaces (IIS), case (with
// `ignoreCase`). Denied ones never reach the app; allowed ones reach it spelled as sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rawExchange, startUpstream } from './helpers/servers.js';
import { startProxy } from './helpers/proxy.js';

async function withInbound(ignoreCase: boolean, f: (port: number, seen: string[]) => Promise<void>): Promise<void> {
  const seen: string[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.url ?? '');
    res.end('app');
  });
  const p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
inbound:
  listen: 127.0.0.1:0
  app: 127.0.0.1:${app.port}
  authorization:
    default: allow
    ignoreCase: ${ignoreCase}
    rules:
      - { action: deny, paths: ["/admin", "/admin/*"] }
`);
  try {
    await f(p.inbound, seen);
  } finally {
    await p.close();
    await app.close();
  }
}

async function status(port: number, target: string): Promise<number> {
  const r = await rawExchange(port, `GET ${target} HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n`);
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(r.data)?.[1] ?? 0);
}

test('deny /admin also stops /admin;x, /admin., /admin%20 and /public/..;/admin', async () => {
  await withInbound(false, async (port, seen) => {
    for (const t of [
      '/admin',
      '/admin;x',
      '/admin;jsessionid=1/',
      '/admin.',
      '/admin..',
      '/admin%20',
      '/admin.%20',
      '/admin;x/users',
      '/public/..;/admin',
      '/admin./users',
      '/ad%6Din;',
    ]) {
      assert.equal(await status(port, t), 403, t);
    }
    assert.deepEqual(seen, [], 'nothing denied reached the app');
    // Case is the app's business unless ignoreCase is on.
    assert.equal(await status(port, '/ADMIN'), 200);
    // Allowed requests reach the app spelled as sent (normalised, parameters kept).
    assert.equal(await status(port, '/shop;jsessionid=1/cart.'), 200);
    assert.deepEqual(seen, ['/ADMIN', '/shop;jsessionid=1/cart.']);
  });
});

test('authorization.ignoreCase: /ADMIN and /Admin;x are /admin', async () => {
  await withInbound(true, async (port, seen) => {
    for (const t of ['/ADMIN', '/Admin;x', '/aDmIn/USERS', '/ADMIN.']) assert.equal(await status(port, t), 403, t);
    assert.equal(await status(port, '/Shop'), 200);
    assert.deepEqual(seen, ['/Shop']);
  });
});
