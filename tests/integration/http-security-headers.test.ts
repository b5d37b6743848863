/**
 * Security headers on every kind of response, checked over HTTP against the real built server
 * (bin/start.js, NODE_ENV=production): pages, redirects, refusals, static assets, 404s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { readEnv } from '../../app/runtime/env.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, freePort, makeSecrets, openRuntime, serverEnv, sessionCookieFor, startServer, type StartedServer, type TestSecrets } from './auth-harness';

describe('security headers over HTTP (production build)', () => {
  let database: TestDatabase;
  let secrets: TestSecrets;
  let runtime: Runtime;
  let server: StartedServer;

  beforeAll(async () => {
    await ensureFreshBuild();
    database = await createTestDatabase('headers');
    secrets = makeSecrets();
    const env = serverEnv(database.url, secrets, await freePort());
    runtime = await openRuntime(env);
    server = await startServer(env);
  });

  afterAll(async () => {
    await server?.stop();
    await runtime?.stop();
    await database?.drop();
  });

  function expectSecurityHeaders(headers: Headers, what: string) {
    const csp = headers.get('content-security-policy');
    expect(csp, what).toBeTruthy();
    const directives = new Map(csp!.split(';').map((part) => part.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
    expect(directives.get('default-src'), what).toEqual(["'self'"]);
    expect(directives.get('script-src')?.some((value) => /^'nonce-[A-Za-z0-9+/=]{16,}'$/.test(value)), what).toBe(true);
    expect(csp, what).not.toContain('unsafe-eval');
    expect(directives.get('script-src'), what).not.toContain("'unsafe-inline'");
    expect(directives.get('frame-ancestors'), what).toEqual(["'none'"]);
    expect(directives.get('object-src'), what).toEqual(["'none'"]);
    expect(headers.get('x-content-type-options'), what).toBe('nosniff');
    expect(headers.get('referrer-policy'), what).toMatch(/^(same-origin|no-referrer|strict-origin(-when-cross-origin)?)$/);
    expect(headers.get('x-frame-options'), what).toBe('DENY');
    expect(headers.get('x-powered-by'), what).toBeNull();
  }

  it('a page carries them, and every inline script carries the per-response nonce', async () => {
    const first = await fetch(`${server.origin}/login`);
    const html = await first.text();
    expect(first.status).toBe(200);
    expectSecurityHeaders(first.headers, 'GET /login');
    const nonce = /'nonce-([^']+)'/.exec(first.headers.get('content-security-policy')!)![1]!;
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((match) => match[0]);
    expect(scripts.length).toBeGreaterThan(0);
    for (const tag of scripts) expect(tag).toContain(`nonce="${nonce}"`);
    const second = await fetch(`${server.origin}/login`);
    await second.text();
    expect(/'nonce-([^']+)'/.exec(second.headers.get('content-security-policy')!)![1]).not.toBe(nonce);
  });

  it('redirects, refusals, 404s and static assets carry them too', async () => {
    const redirect = await fetch(`${server.origin}/admin/accounts`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expectSecurityHeaders(redirect.headers, 'redirect');
    const refused = await fetch(`${server.origin}/login`, {
      method: 'POST',
      headers: { Origin: 'https://evil.example', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'intent=login&email=a%40b.c&password=x',
    });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toMatch(/cross-origin/);
    expectSecurityHeaders(refused.headers, 'cross-origin refusal');
    const missing = await fetch(`${server.origin}/no-such-page`);
    await missing.text();
    expect(missing.status).toBe(404);
    expectSecurityHeaders(missing.headers, '404');
    const html = await (await fetch(`${server.origin}/login`)).text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1] ?? /href="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeTruthy();
    const script = await fetch(`${server.origin}${asset}`);
    await script.text();
    expect(script.status).toBe(200);
    expectSecurityHeaders(script.headers, 'static asset');
  });
  it('says Cache-Control: no-store on every answer to a signed-in request: pages, .data, JSON, streams, redirects, actions (issue 11, reproduction 11)', async () => {
    const viewer = await sessionCookieFor(runtime, 'viewer@headers.test', 'viewer');
    const admin = await sessionCookieFor(runtime, 'admin@headers.test', 'admin');
    const missingRun = '00000000-0000-4000-8000-000000000000';
    const reads: [string, string, string][] = [
      ['page', '/', viewer],
      ['page', '/runs', viewer],
      ['page', '/admin/accounts', admin],
      ['single-fetch data', '/_root.data', viewer],
      ['single-fetch data', '/runs.data', viewer],
      ['single-fetch data', '/admin/accounts.data', admin],
      ['JSON', `/runs/${missingRun}/events.json`, viewer],
      ['redirect of a signed-in visitor of /login', '/login', viewer],
      ['404 page', '/no-such-page', viewer],
      ['403 refusal', '/admin/accounts', viewer],
    ];
    for (const [what, path, cookie] of reads) {
      const response = await fetch(`${server.origin}${path}`, { headers: { Cookie: cookie, Accept: what === 'JSON' ? 'application/json' : 'text/html' }, redirect: 'manual' });
      await response.text();
      expect(response.headers.get('cache-control'), `${what} ${path} (${response.status})`).toBe('no-store');
    }
    const action = await fetch(`${server.origin}/admin/accounts`, {
      method: 'POST',
      headers: { Cookie: admin, Origin: server.origin, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'intent=enable&email=viewer%40headers.test',
      redirect: 'manual',
    });
    await action.text();
    expect(action.status).toBe(200);
    expect(action.headers.get('cache-control'), 'an action').toBe('no-store');
    // The public signing key may be cached; hashed assets keep their long cache.
    const key = await fetch(`${server.origin}/signing-key.pem`);
    await key.text();
    expect(key.headers.get('cache-control')).toMatch(/public/);
    const html = await (await fetch(`${server.origin}/login`)).text();
    const asset = /(?:src|href)="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const script = await fetch(`${server.origin}${asset}`, { headers: { Cookie: viewer } });
    await script.text();
    expect(script.headers.get('cache-control')).toMatch(/max-age=31536000/);
  });

  it('sends no Strict-Transport-Security unless RUNSHEET_HSTS asks for it (issue 11, reproduction 11)', async () => {
    const page = await fetch(`${server.origin}/login`);
    await page.text();
    expect(page.headers.get('strict-transport-security')).toBeNull();
    const hstsDatabase = await createTestDatabase('headers_hsts');
    const hsts = await startServer(serverEnv(hstsDatabase.url, secrets, await freePort(), { RUNSHEET_HSTS: 'max-age=31536000; includeSubDomains' }));
    try {
      for (const path of ['/login', '/admin/accounts', '/favicon.svg', '/no-such-page']) {
        const response = await fetch(`${hsts.origin}${path}`, { redirect: 'manual' });
        await response.text();
        expect(response.headers.get('strict-transport-security'), path).toBe('max-age=31536000; includeSubDomains');
      }
    } finally {
      await hsts.stop();
      await hstsDatabase.drop();
    }
    expect(() => readEnv({ NODE_ENV: 'production', RUNSHEET_HSTS: 'max-age=forever' })).toThrow(/RUNSHEET_HSTS: must be "max-age=<seconds>"/);
  });
});
