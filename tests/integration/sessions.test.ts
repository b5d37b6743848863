/**
 * Sign-in, sessions and throttling over HTTP against the real server (bin/start.js) on a test
 * database: cookie flags, a new session id at every sign-in, sign-out and disabling ending
 * sessions at once, expiry, and store-backed throttling of failed sign-ins.
 */
import http from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAccount } from '../../app/accounts/accounts.server';
import { THROTTLE_POLICY } from '../../app/auth/throttle.server';
import type { Runtime } from '../../app/boot/runtime.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { cookiePair, ensureFreshBuild, freePort, makeSecrets, openRuntime, serverEnv, startServer, type StartedServer } from './auth-harness';

const PASSWORD = 'correct horse battery staple';

describe('sign-in and sessions over HTTP', () => {
  let database: TestDatabase;
  let runtime: Runtime;
  let server: StartedServer;
  let sql: pg.Client;

  beforeAll(async () => {
    await ensureFreshBuild();
    database = await createTestDatabase('sessions');
    const env = serverEnv(database.url, makeSecrets(), await freePort());
    runtime = await openRuntime(env);
    server = await startServer(env);
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    for (const [email, role] of [
      ['tpm@sessions.test', 'tpm'],
      ['admin@sessions.test', 'admin'],
      ['engineer@sessions.test', 'engineer'],
      ['throttled@sessions.test', 'viewer'],
    ] as const) {
      await createAccount(runtime.store.db, { email, role, password: PASSWORD, actor: { name: 'test' } });
    }
  });

  afterAll(async () => {
    await server?.stop();
    await sql?.end();
    await runtime?.stop();
    await database?.drop();
  });

  beforeEach(async () => {
    await sql.query('delete from login_attempts');
  });

  interface LoginOptions {
    cookie?: string;
    redirectTo?: string;
    /** The local (loopback) address to connect from: the server sees it as the client's address. */
    from?: string;
  }

  async function login(email: string, password: string, options: LoginOptions | string = {}) {
    const { cookie, redirectTo, from } = typeof options === 'string' ? { cookie: options } : options;
    const headers: Record<string, string> = {
      Origin: server.origin,
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'text/html',
    };
    if (cookie) headers.Cookie = cookie;
    const body = new URLSearchParams({ intent: 'login', email, password, ...(redirectTo !== undefined ? { redirectTo } : {}) }).toString();
    if (from) return loginFrom(from, headers, body);
    const response = await fetch(`${server.origin}/login`, { method: 'POST', headers, body, redirect: 'manual' });
    return { status: response.status, setCookie: response.headers.get('set-cookie'), location: response.headers.get('location'), retryAfter: response.headers.get('retry-after'), body: await response.text() };
  }

  /** fetch cannot choose its local address; node:http can (127.0.0.0/8 is all loopback on Linux). */
  function loginFrom(localAddress: string, headers: Record<string, string>, body: string) {
    return new Promise<{ status: number; setCookie: string | null; location: string | null; retryAfter: string | null; body: string }>((resolve, reject) => {
      const request = http.request(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/login',
          method: 'POST',
          localAddress,
          // The Host the browser would send: Remix refuses an action whose Origin and Host differ.
          headers: { ...headers, Host: new URL(server.origin).host, 'Content-Length': String(Buffer.byteLength(body)) },
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => {
            const header = (name: string) => {
              const value = response.headers[name];
              return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
            };
            resolve({ status: response.statusCode ?? 0, setCookie: header('set-cookie'), location: header('location'), retryAfter: header('retry-after'), body: text });
          });
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  async function get(path: string, cookie: string) {
    const response = await fetch(`${server.origin}${path}`, { headers: { Cookie: cookie, Accept: 'text/html' }, redirect: 'manual' });
    await response.text();
    return { status: response.status, location: response.headers.get('location') };
  }

  async function post(path: string, cookie: string, form: Record<string, string>) {
    const response = await fetch(`${server.origin}${path}`, {
      method: 'POST',
      headers: { Cookie: cookie, Origin: server.origin, 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'text/html' },
      body: new URLSearchParams(form).toString(),
      redirect: 'manual',
    });
    await response.text();
    return { status: response.status, location: response.headers.get('location'), setCookie: response.headers.get('set-cookie') };
  }

  const signedIn = async (cookie: string, path = '/admin/accounts') => {
    const answer = await get(path, cookie);
    return !(answer.status === 302 && answer.location?.startsWith('/login'));
  };

  it('sets an httpOnly, SameSite=Lax, Secure cookie holding only a signed id, and stores only its hash', async () => {
    const answer = await login('admin@sessions.test', PASSWORD);
    expect(answer.status).toBe(302);
    expect(answer.location).toBe('/admin/accounts');
    const setCookie = answer.setCookie!;
    expect(setCookie).toMatch(/^runsheet_session=/);
    expect(setCookie).toMatch(/; HttpOnly/i);
    expect(setCookie).toMatch(/; SameSite=Lax/i);
    expect(setCookie).toMatch(/; Secure/i);
    expect(setCookie).toMatch(/; Path=\//i);
    expect(setCookie).toMatch(/; Max-Age=43200/i);
    const value = decodeURIComponent(cookiePair(setCookie).split('=').slice(1).join('='));
    // Remix signs "<base64 JSON of the id>.<HMAC>": no account data rides in the cookie.
    const [payload, signature] = value.split('.');
    expect(signature).toBeTruthy();
    const id = JSON.parse(Buffer.from(payload!, 'base64').toString('utf8')) as string;
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const { rows } = await sql.query('select id_hash from sessions');
    expect(rows.map((row) => row.id_hash)).not.toContain(id);
    expect(await signedIn(cookiePair(setCookie))).toBe(true);
    // A cookie with a forged signature is no session.
    expect(await signedIn(`runsheet_session=${encodeURIComponent(`${payload}.AAAA`)}`)).toBe(false);
  });

  it('gives a new session id at every sign-in and ends the session the request came with', async () => {
    const first = cookiePair((await login('tpm@sessions.test', PASSWORD)).setCookie!);
    const second = cookiePair((await login('tpm@sessions.test', PASSWORD, first)).setCookie!);
    expect(second).not.toBe(first);
    expect(await signedIn(second, '/plans/x')).toBe(true);
    expect(await signedIn(first, '/plans/x')).toBe(false);
  });

  it('signing out ends the session at once and clears the cookie', async () => {
    const cookie = cookiePair((await login('admin@sessions.test', PASSWORD)).setCookie!);
    expect(await signedIn(cookie)).toBe(true);
    const out = await post('/logout', cookie, { intent: 'logout' });
    expect(out.status).toBe(303);
    expect(out.location).toBe('/login');
    expect(out.setCookie).toMatch(/runsheet_session=;.*(Max-Age=0|Expires=Thu, 01 Jan 1970)/i);
    expect(await signedIn(cookie)).toBe(false);
  });

  it('POST /logout with no body at all signs out too (it answered 500), and is still refused from another origin (repro 13)', async () => {
    const cookie = cookiePair((await login('admin@sessions.test', PASSWORD)).setCookie!);
    const bare = (origin: string) =>
      fetch(`${server.origin}/logout`, { method: 'POST', headers: { Cookie: cookie, Origin: origin }, redirect: 'manual' }).then(async (response) => ({
        status: response.status,
        location: response.headers.get('location'),
        setCookie: response.headers.get('set-cookie'),
        body: await response.text(),
      }));
    const foreign = await bare('https://evil.example');
    expect(foreign.status).toBe(403);
    expect(await signedIn(cookie)).toBe(true);

    const out = await bare(server.origin);
    expect(out.status).toBe(303);
    expect(out.location).toBe('/login');
    expect(out.setCookie).toMatch(/runsheet_session=;.*(Max-Age=0|Expires=Thu, 01 Jan 1970)/i);
    expect(await signedIn(cookie)).toBe(false);
  });

  it('disabling an account (from the admin page) ends its sessions at once; enabling does not revive them', async () => {
    const engineer = cookiePair((await login('engineer@sessions.test', PASSWORD)).setCookie!);
    const admin = cookiePair((await login('admin@sessions.test', PASSWORD)).setCookie!);
    expect((await get('/plans/x', engineer)).location ?? '').not.toMatch(/^\/login/);
    expect((await post('/admin/accounts', admin, { intent: 'disable', email: 'engineer@sessions.test' })).status).toBe(200);
    expect((await get('/plans/x', engineer)).location).toMatch(/^\/login\?redirectTo=/);
    expect((await login('engineer@sessions.test', PASSWORD)).status).toBe(403);
    expect((await post('/admin/accounts', admin, { intent: 'enable', email: 'engineer@sessions.test' })).status).toBe(200);
    expect((await get('/plans/x', engineer)).location).toMatch(/^\/login/);
    const { rows } = await sql.query("select actor, action, subject from audit_log where action in ('account.disable', 'account.enable') order by id");
    expect(rows).toEqual([
      { actor: 'admin@sessions.test', action: 'account.disable', subject: 'engineer@sessions.test' },
      { actor: 'admin@sessions.test', action: 'account.enable', subject: 'engineer@sessions.test' },
    ]);
  });

  it('ends a session past its absolute lifetime or idle timeout', async () => {
    const absolute = cookiePair((await login('admin@sessions.test', PASSWORD)).setCookie!);
    await sql.query("update sessions set expires_at = now() - interval '1 second'");
    expect(await signedIn(absolute)).toBe(false);
    const idle = cookiePair((await login('admin@sessions.test', PASSWORD)).setCookie!);
    await sql.query("update sessions set last_seen_at = now() - interval '61 minutes'");
    expect(await signedIn(idle)).toBe(false);
  });

  it('audits sign-ins and failed sign-ins with the address', async () => {
    await login('admin@sessions.test', 'wrong password!!');
    await login('nobody@sessions.test', 'whatever password');
    const { rows } = await sql.query(
      "select actor, action, outcome, reason, ip from audit_log where action like 'sign-in%' order by id desc limit 2",
    );
    expect(rows[0]).toMatchObject({ actor: 'nobody@sessions.test', action: 'sign-in.failed', outcome: 'failed', reason: 'no such account' });
    expect(rows[1]).toMatchObject({ actor: 'admin@sessions.test', action: 'sign-in.failed', reason: 'wrong password' });
    expect(rows[0].ip).toMatch(/127\.0\.0\.1/);
  });

  it('slows repeated failures for one account from one address, then locks that pair, in the store (even the right password waits)', async () => {
    const email = 'throttled@sessions.test';
    const { slowAfter, lockAfter } = THROTTLE_POLICY.pair;
    for (let attempt = 1; attempt <= slowAfter; attempt++) expect((await login(email, `wrong ${attempt} xxxxxxxx`)).status).toBe(401);
    const slowed = await login(email, PASSWORD);
    expect(slowed.status).toBe(429);
    expect(Number(slowed.retryAfter)).toBeGreaterThan(0);
    expect(slowed.body).toContain('Too many failed sign-ins');
    // Waiting out the delay (moved in the store, as another process would see it) lets an attempt through.
    const wait = async () => sql.query("update login_attempts set last_failure_at = now() - interval '61 seconds'");
    await wait();
    expect((await login(email, PASSWORD)).status).toBe(302);
    // A success clears the account's counter; now fail up to the lock.
    for (let attempt = 1; attempt <= lockAfter; attempt++) {
      await wait();
      expect((await login(email, `wrong ${attempt} xxxxxxxx`)).status).toBe(401);
    }
    await wait();
    const locked = await login(email, PASSWORD);
    expect(locked.status).toBe(429);
    expect(Number(locked.retryAfter)).toBeGreaterThan(60);
    const { rows } = await sql.query("select failures, locked_until > now() as locked from login_attempts where scope = 'pair' and email = $1", [email]);
    expect(rows[0]).toEqual({ failures: lockAfter, locked: true });
    // The lock and the failures age out after their window.
    await sql.query("update login_attempts set locked_until = now() - interval '1 second', last_failure_at = now() - interval '16 minutes'");
    expect((await login(email, PASSWORD)).status).toBe(302);
    const audit = await sql.query("select count(*)::int as n from audit_log where action = 'sign-in.throttled' and subject = $1", [email]);
    expect(audit.rows[0].n).toBe(2);
  });

  it('slows failures from one address across many accounts', async () => {
    const { slowAfter } = THROTTLE_POLICY.address;
    for (let attempt = 1; attempt <= slowAfter; attempt++) {
      expect((await login(`spray${attempt}@sessions.test`, 'some wrong password')).status).toBe(401);
    }
    // A different account, never tried before, from the same address: slowed.
    expect((await login('tpm@sessions.test', PASSWORD)).status).toBe(429);
  });
  it('never sends a signed-in visitor of /login, or one who just signed in, to another host (issue 11, reproduction 5)', async () => {
    const hostile = ['/..//evil.example', '/./\\evil.example', '/%2e%2e//evil.example', '/.%2E//evil.example', '/..\\/evil.example', '/\t/evil.example', '//evil.example'];
    const cookie = cookiePair((await login('tpm@sessions.test', PASSWORD)).setCookie!);
    for (const redirectTo of hostile) {
      const answer = await get(`/login?${new URLSearchParams({ redirectTo })}`, cookie);
      expect(answer.status, redirectTo).toBe(302);
      expect(new URL(answer.location!, server.origin).origin, `${redirectTo} → ${answer.location}`).toBe(server.origin);
      const signIn = await login('tpm@sessions.test', PASSWORD, { redirectTo });
      expect(signIn.status, redirectTo).toBe(302);
      expect(new URL(signIn.location!, server.origin).origin, `${redirectTo} → ${signIn.location}`).toBe(server.origin);
    }
    // A path on this site is kept, normalised.
    expect((await get(`/login?${new URLSearchParams({ redirectTo: '/runs/./x/../?plan=a' })}`, cookie)).location).toBe('/runs/?plan=a');
  });

  /** The delay after the last failure, moved in the store as another process would see it. */
  const waitOutTheDelay = async () => sql.query("update login_attempts set last_failure_at = now() - interval '61 seconds'");
  // The reproduction's numbers: about ten failures lock an account for fifteen minutes.
  const FAILURES_THAT_LOCK = 10;
  it('locks a pair after as many failures as the reproduction took', () => expect(THROTTLE_POLICY.pair.lockAfter).toBe(FAILURES_THAT_LOCK));

  it('failures from one address never lock the right password out from another address (issue 11, reproduction 6)', async () => {
    const email = 'engineer@sessions.test';
    for (let attempt = 1; attempt <= FAILURES_THAT_LOCK; attempt++) {
      await waitOutTheDelay();
      expect((await login(email, `wrong ${attempt} xxxxxxxx`, { from: '127.0.0.2' })).status).toBe(401);
    }
    await waitOutTheDelay();
    // The address that failed is locked out of this account…
    const locked = await login(email, PASSWORD, { from: '127.0.0.2' });
    expect(locked.status).toBe(429);
    expect(Number(locked.retryAfter)).toBeGreaterThan(60);
    // …and the owner, from another address, signs in.
    const owner = await login(email, PASSWORD, { from: '127.0.0.3' });
    expect(owner.status).toBe(302);
    expect(owner.setCookie).toMatch(/^runsheet_session=/);
  });

  it('an admin unlocks an account\'s sign-in from the accounts page, audited (issue 11, reproduction 6)', async () => {
    const email = 'throttled@sessions.test';
    for (let attempt = 1; attempt <= FAILURES_THAT_LOCK; attempt++) {
      await waitOutTheDelay();
      await login(email, `wrong ${attempt} xxxxxxxx`, { from: '127.0.0.4' });
    }
    await waitOutTheDelay();
    expect((await login(email, PASSWORD, { from: '127.0.0.4' })).status).toBe(429);
    const admin = cookiePair((await login('admin@sessions.test', PASSWORD)).setCookie!);
    const page = await fetch(`${server.origin}/admin/accounts`, { headers: { Cookie: admin, Accept: 'text/html' } }).then((response) => response.text());
    expect(page.replaceAll('<!-- -->', '')).toContain(`Unlock sign-in<span class="sr-only"> of ${email}`);
    expect((await post('/admin/accounts', admin, { intent: 'unlock', email })).status).toBe(200);
    expect((await login(email, PASSWORD, { from: '127.0.0.4' })).status).toBe(302);
    const { rows } = await sql.query("select actor, actor_role, subject, outcome from audit_log where action = 'account.unlock'");
    expect(rows).toEqual([{ actor: 'admin@sessions.test', actor_role: 'admin', subject: email, outcome: 'ok' }]);
    // A TPM may not unlock (the accounts page is the admin's).
    const tpm = cookiePair((await login('tpm@sessions.test', PASSWORD)).setCookie!);
    expect((await post('/admin/accounts', tpm, { intent: 'unlock', email })).status).toBe(403);
  });
});
