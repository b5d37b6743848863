/**
 * Security headers on every kind of response, checked over HTTP against the real built server
 * (bin/start.js, NODE_ENV=production): pages, redirects, refusals, static assets, 404s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, freePort, makeSecrets, serverEnv, startServer, type StartedServer } from './auth-harness';

describe('security headers over HTTP (production build)', () => {
  let database: TestDatabase;
  let server: StartedServer;

  beforeAll(async () => {
    await ensureFreshBuild();
    database = await createTestDatabase('headers');
    server = await startServer(serverEnv(database.url, makeSecrets(), await freePort()));
  });

  afterAll(async () => {
    await server?.stop();
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
});
