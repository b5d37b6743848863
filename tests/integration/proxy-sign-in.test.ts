/**
 * Single sign-on through a trusted proxy, in-process through Remix's own request handler on the
 * real build (so the peer address, context.clientAddress, can be chosen per request).
 */
import { createRequestHandler, type ServerBuild } from '@remix-run/node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccount, createServiceAccount, setAccountDisabled } from '../../app/accounts/accounts.server';
import type { Runtime } from '../../app/boot/runtime.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, importBuild, makeSecrets, openRuntime, serverEnv, sessionCookieFor } from './auth-harness';

const PROXY = '10.9.8.7';
const HEADER = 'x-auth-request-email';

describe('proxy sign-in', () => {
  let database: TestDatabase;
  let build: ServerBuild;
  let withProxy: Runtime;
  let withoutProxy: Runtime;
  let sql: pg.Client;

  beforeAll(async () => {
    await ensureFreshBuild();
    build = await importBuild();
    database = await createTestDatabase('proxy');
    const env = serverEnv(database.url, makeSecrets(), 3000);
    withProxy = await openRuntime({ ...env, TRUSTED_PROXY_ADDRESSES: `${PROXY}, 10.9.8.8`, TRUSTED_PROXY_EMAIL_HEADER: HEADER });
    withoutProxy = await openRuntime({ ...env, TRUSTED_PROXY_EMAIL_HEADER: HEADER });
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    await createAccount(withProxy.store.db, { email: 'boss@proxy.test', role: 'admin', actor: { name: 'test' } });
  });

  afterAll(async () => {
    await sql?.end();
    await withProxy?.stop();
    await withoutProxy?.stop();
    await database?.drop();
  });

  async function get(runtime: Runtime, clientAddress: string, headers: Record<string, string>, path = '/admin/accounts') {
    const handler = createRequestHandler(build, 'production');
    const response = await handler(new Request(`http://localhost:3000${path}`, { headers: { Accept: 'text/html', ...headers } }), {
      runtime,
      cspNonce: 'test-nonce',
      clientAddress,
    });
    return { status: response.status, location: response.headers.get('location'), body: await response.text() };
  }

  it('signs in the account the trusted proxy names', async () => {
    const answer = await get(withProxy, PROXY, { [HEADER]: 'Boss@Proxy.test' });
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('boss@proxy.test');
    // IPv4-mapped IPv6 is the same peer.
    expect((await get(withProxy, `::ffff:${PROXY}`, { [HEADER]: 'boss@proxy.test' })).status).toBe(200);
    const { rows } = await sql.query("select actor, action from audit_log where action = 'sign-in.proxy'");
    expect(rows).toEqual([{ actor: 'boss@proxy.test', action: 'sign-in.proxy' }]);
  });

  it('ignores the header when the request does not come from a trusted address', async () => {
    const answer = await get(withProxy, '10.9.8.6', { [HEADER]: 'boss@proxy.test', 'x-forwarded-for': PROXY });
    expect(answer.status).toBe(302);
    expect(answer.location).toMatch(/^\/login\?redirectTo=/);
    expect((await get(withProxy, '127.0.0.1', { [HEADER]: 'boss@proxy.test' })).status).toBe(302);
  });

  it('is off when TRUSTED_PROXY_ADDRESSES is not set, whatever the peer', async () => {
    expect((await get(withoutProxy, PROXY, { [HEADER]: 'boss@proxy.test' })).status).toBe(302);
  });

  it('uses the cookie session, not the header, for an untrusted peer', async () => {
    const cookie = await sessionCookieFor(withProxy, 'viewer@proxy.test', 'viewer');
    const answer = await get(withProxy, '192.0.2.1', { Cookie: cookie, [HEADER]: 'boss@proxy.test' });
    expect(answer.status).toBe(403);
  });

  it('makes an unknown e-mail a viewer, audited', async () => {
    const answer = await get(withProxy, PROXY, { [HEADER]: 'newcomer@proxy.test' });
    expect(answer.status).toBe(403);
    const { rows } = await sql.query("select role from accounts where email = 'newcomer@proxy.test'");
    expect(rows).toEqual([{ role: 'viewer' }]);
    const audit = await sql.query("select actor, action, subject, detail from audit_log where action = 'account.create' and subject = 'newcomer@proxy.test'");
    expect(audit.rows).toEqual([{ actor: 'proxy', action: 'account.create', subject: 'newcomer@proxy.test', detail: { role: 'viewer', name: '', password: 'none' } }]);
  });

  it('refuses a disabled account even when the proxy vouches for it', async () => {
    await createAccount(withProxy.store.db, { email: 'gone@proxy.test', role: 'admin', actor: { name: 'test' } });
    await setAccountDisabled(withProxy.store.db, { email: 'gone@proxy.test', disabled: true, actor: { name: 'test' } });
    expect((await get(withProxy, PROXY, { [HEADER]: 'gone@proxy.test' })).status).toBe(302);
  });

  it('never signs in a service account, nor makes one, whoever vouches for it', async () => {
    await createServiceAccount(withProxy.store.db, { name: 'ci-proxy', role: 'engineer', actor: { name: 'test' } });
    expect((await get(withProxy, PROXY, { [HEADER]: 'ci-proxy@service.invalid' }, '/')).status).toBe(302);
    expect((await get(withProxy, PROXY, { [HEADER]: 'made-up@service.invalid' }, '/')).status).toBe(302);
    const { rows } = await sql.query("select email from accounts where email like '%@service.invalid'");
    expect(rows).toEqual([{ email: 'ci-proxy@service.invalid' }]);
  });

  it('ignores a header that is not an e-mail address', async () => {
    expect((await get(withProxy, PROXY, { [HEADER]: 'not an email' })).status).toBe(302);
  });
});
