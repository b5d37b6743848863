/**
 * The route × identity matrix. The routes come from the built app's own manifest
 * (build/server/index.js → `routes`), never from the permission table; every route must be in
 * ROUTE_ACCESS, and every route answers as ROUTE_ACCESS says:
 * - every loader is fetched (GET) as anonymous, viewer, tpm, engineer and admin;
 * - every action is POSTed, once per intent, as each of them, as anonymous asking for JSON,
 *   once from a foreign Origin, and once with no Origin at all;
 * - every refusal of a state-changing request leaves one audit row;
 * - no answer carries a configured secret;
 * - every endpoint of the JSON API (API_ACCESS) is sent with every role's API token, no token, a
 *   cookie session (refused: the API takes bearer tokens only) and a revoked and an expired token.
 * Requests go over HTTP to the real server (bin/start.js: server/index.ts + the build) on a test database.
 */
import type { ServerBuild } from '@remix-run/node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANY_INTENT, API_ACCESS, ROLES, ROUTE_ACCESS, accessAllows, roleCan, type Access, type Role, type RouteAccess } from '../../app/accounts/permissions';
import { findAccount } from '../../app/accounts/accounts.server';
import { createApiToken, revokeApiToken } from '../../app/accounts/api-tokens.server';
import { API_ROUTES, apiPath } from '../../app/api/api-contract';
import type { Runtime } from '../../app/boot/runtime.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import {
  ensureFreshBuild,
  freePort,
  importBuild,
  makeSecrets,
  openRuntime,
  pemBody,
  serverEnv,
  sessionCookieFor,
  startServer,
  type StartedServer,
  type TestSecrets,
} from './auth-harness';

type Identity = 'anonymous' | Role;
const IDENTITIES: Identity[] = ['anonymous', ...ROLES];
const FOREIGN_ORIGIN = 'https://evil.example';

interface ManifestRoute {
  id: string;
  path?: string;
  index?: boolean;
  parentId?: string;
  hasLoader: boolean;
  hasAction: boolean;
  /** A page (has a component) rather than a resource route. */
  isPage: boolean;
}

export function manifestRoutes(build: Pick<ServerBuild, 'routes'>): ManifestRoute[] {
  return Object.values(build.routes).map((route) => ({
    id: route.id,
    path: route.path,
    index: route.index,
    parentId: route.parentId,
    hasLoader: typeof route.module.loader === 'function',
    hasAction: typeof route.module.action === 'function',
    isPage: typeof route.module.default === 'function',
  }));
}

/** What is wrong between the manifest and the table: a route missing, or a loader/action the table does not cover. */
export function tableProblems(routes: ManifestRoute[], table: Readonly<Record<string, RouteAccess>>): string[] {
  const problems: string[] = [];
  for (const route of routes) {
    const entry = table[route.id];
    if (!entry) {
      problems.push(`${route.id}: missing from ROUTE_ACCESS (app/auth/permissions.ts)`);
      continue;
    }
    if (route.hasLoader && !entry.loader) problems.push(`${route.id}: has a loader but ROUTE_ACCESS gives it no loader access`);
    if (route.hasAction && (!entry.actions || Object.keys(entry.actions).length === 0)) {
      problems.push(`${route.id}: has an action but ROUTE_ACCESS lists no intents for it`);
    }
  }
  return problems;
}

/** The URL a route answers at, with dynamic segments filled in; undefined for a pathless layout. */
export function routeUrl(routes: ManifestRoute[], route: ManifestRoute): string | undefined {
  const byId = new Map(routes.map((entry) => [entry.id, entry]));
  if (route.id === 'root') return undefined;
  if (route.path === undefined && !route.index) return undefined;
  const segments: string[] = [];
  for (let current: ManifestRoute | undefined = route; current; current = current.parentId ? byId.get(current.parentId) : undefined) {
    if (current.path) segments.unshift(current.path);
  }
  const filled = segments
    .join('/')
    .split('/')
    .filter((segment) => segment && !segment.endsWith('?'))
    .map((segment) => (segment === '*' ? 'matrix-splat' : segment.startsWith(':') ? `matrix-${segment.slice(1)}` : segment));
  return `/${filled.join('/')}`;
}

describe('route manifest vs ROUTE_ACCESS (the check itself)', () => {
  const fake = (id: string, extra: Partial<ManifestRoute> = {}): ManifestRoute => ({ id, hasLoader: false, hasAction: false, isPage: true, ...extra });
  it('reports a route the table does not know', () => {
    expect(tableProblems([fake('routes/runs.$runId', { hasLoader: true })], { 'routes/_index': { loader: 'view' } })).toEqual([
      'routes/runs.$runId: missing from ROUTE_ACCESS (app/auth/permissions.ts)',
    ]);
  });
  it('reports an action the table gives no intents', () => {
    expect(tableProblems([fake('routes/x', { hasAction: true })], { 'routes/x': {} })).toHaveLength(1);
  });
  it('builds URLs from the manifest', () => {
    const routes = [fake('root'), fake('routes/plans.$planId', { path: 'plans/:planId', parentId: 'root' }), fake('routes/_index', { index: true, parentId: 'root' })];
    expect(routeUrl(routes, routes[1]!)).toBe('/plans/matrix-planId');
    expect(routeUrl(routes, routes[2]!)).toBe('/');
  });
});

describe('route × identity matrix over HTTP (real build, real server)', () => {
  let database: TestDatabase;
  let secrets: TestSecrets;
  let runtime: Runtime;
  let server: StartedServer;
  let build: ServerBuild;
  let routes: ManifestRoute[];
  let admin: pg.Client;

  beforeAll(async () => {
    await ensureFreshBuild();
    build = await importBuild();
    routes = manifestRoutes(build);
    database = await createTestDatabase('route_matrix');
    secrets = makeSecrets();
    const env = serverEnv(database.url, secrets, await freePort());
    runtime = await openRuntime(env);
    server = await startServer(env);
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
  });

  afterAll(async () => {
    await server?.stop();
    await admin?.end();
    await runtime?.stop();
    await database?.drop();
  });

  const secretValues = () => [secrets.sessionSecret, pemBody(secrets.signingKeyPem), database.url, new URL(database.url).password].filter((value) => value.length >= 8);

  async function cookieFor(identity: Identity): Promise<string | undefined> {
    // A fresh session per request: a successful sign-out must not spoil the next request.
    return identity === 'anonymous' ? undefined : sessionCookieFor(runtime, `${identity}@matrix.test`, identity);
  }

  interface Answer {
    status: number;
    location: string | null;
    body: string;
  }

  async function send(
    method: 'GET' | 'POST',
    url: string,
    options: { identity: Identity; origin?: string | null; accept?: string; body?: { intent: string } | 'json' },
  ): Promise<Answer> {
    const headers: Record<string, string> = { Accept: options.accept ?? 'text/html' };
    const cookie = await cookieFor(options.identity);
    if (cookie) headers.Cookie = cookie;
    if (options.origin !== null) headers.Origin = options.origin ?? server.origin;
    let body: string | undefined;
    if (options.body === 'json') {
      headers['Content-Type'] = 'application/json';
      body = '{}';
    } else if (options.body) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams({ intent: options.body.intent }).toString();
    }
    const response = await fetch(`${server.origin}${url}`, { method, headers, body, redirect: 'manual' });
    return { status: response.status, location: response.headers.get('location'), body: await response.text() };
  }

  /** The guards' answer to a signed-out request (a successful sign-out redirects to plain /login). */
  const isLoginRedirect = (answer: Answer) => answer.status >= 300 && answer.status < 400 && (answer.location ?? '').startsWith('/login?redirectTo=');

  /** Expected answer of a request with a same-origin Origin: a short description, or undefined when it matches. */
  function mismatch(access: Access, identity: Identity, answer: Answer, reference?: Answer): string | undefined {
    if (answer.status >= 500) return `server error ${answer.status}`;
    if (access === 'bearer-token' || access === 'api-token') {
      // No cookies: every identity gets what anonymous gets, never a sign-in page or our 403.
      if (isLoginRedirect(answer)) return 'sent to sign in (a bearer-token route must ignore cookies)';
      if (reference && answer.status !== reference.status) return `status ${answer.status} differs from anonymous (${reference.status})`;
      return undefined;
    }
    const role = identity === 'anonymous' ? undefined : identity;
    if (accessAllows(access, role)) {
      if (answer.status === 401 || answer.status === 403 || isLoginRedirect(answer)) return `refused (${answer.status}) although allowed`;
      return undefined;
    }
    if (identity === 'anonymous') return isLoginRedirect(answer) ? undefined : `expected a redirect to /login, got ${answer.status} ${answer.location ?? ''}`;
    return answer.status === 403 ? undefined : `expected 403, got ${answer.status}`;
  }

  it('every route of the manifest is in ROUTE_ACCESS, with its loader and action covered', () => {
    expect(routes.length).toBeGreaterThan(3);
    expect(tableProblems(routes, ROUTE_ACCESS)).toEqual([]);
  });

  it('every loader answers each identity as the table says', async () => {
    const problems: string[] = [];
    for (const route of routes.filter((entry) => entry.hasLoader)) {
      const url = routeUrl(routes, route);
      const access = ROUTE_ACCESS[route.id]?.loader;
      if (!url || !access) continue;
      const anonymous = await send('GET', url, { identity: 'anonymous' });
      for (const identity of IDENTITIES) {
        const answer = identity === 'anonymous' ? anonymous : await send('GET', url, { identity });
        const wrong = mismatch(access, identity, answer, anonymous);
        if (wrong) problems.push(`GET ${url} (${route.id}, needs ${access}) as ${identity}: ${wrong}`);
        for (const secret of secretValues()) if (answer.body.includes(secret)) problems.push(`GET ${url} as ${identity}: the answer contains a secret`);
      }
      if (access !== 'public' && access !== 'bearer-token' && access !== 'api-token') {
        const json = await send('GET', url, { identity: 'anonymous', accept: 'application/json' });
        if (json.status !== 401) problems.push(`GET ${url} as anonymous asking for JSON: expected 401, got ${json.status}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every action and intent answers each identity, a foreign Origin and a missing Origin as the table says, and refusals are audited', async () => {
    const problems: string[] = [];
    let expectedRefusals = 0;
    const refusalsBefore = await countRefusals();
    const actionRoutes = routes.filter((entry) => entry.hasAction);
    expect(actionRoutes.length).toBeGreaterThan(0);
    for (const route of actionRoutes) {
      const path = routeUrl(routes, route);
      if (!path) continue;
      const url = route.index ? `${path}?index` : path;
      for (const [intent, access] of Object.entries(ROUTE_ACCESS[route.id]?.actions ?? {})) {
        const body = intent === ANY_INTENT ? ('json' as const) : { intent };
        const label = `POST ${url} intent=${intent} (${route.id}, needs ${access})`;
        const anonymous = await send('POST', url, { identity: 'anonymous', body });
        for (const identity of IDENTITIES) {
          const answer = identity === 'anonymous' ? anonymous : await send('POST', url, { identity, body });
          const wrong = mismatch(access, identity, answer, anonymous);
          if (wrong) problems.push(`${label} as ${identity}: ${wrong}`);
          if (access !== 'public' && access !== 'bearer-token' && !accessAllows(access, identity === 'anonymous' ? undefined : identity)) expectedRefusals++;
        }
        // Any identity the table allows (anonymous for public routes): only the Origin may cause a refusal.
        const allowed = IDENTITIES.find((identity) => accessAllows(access, identity === 'anonymous' ? undefined : identity))!;
        const foreign = await send('POST', url, { identity: allowed, body, origin: FOREIGN_ORIGIN });
        const noOrigin = await send('POST', url, { identity: allowed, body, origin: null });
        if (access === 'bearer-token') {
          if (foreign.status !== anonymous.status) problems.push(`${label} from ${FOREIGN_ORIGIN}: ${foreign.status}, expected the same as same-origin (${anonymous.status}): the Origin check must not apply`);
        } else if (access === 'api-token') {
          // Exempt only with a bearer token (the API endpoint block below): a cookie-carrying request is judged.
          if (foreign.status !== 403) problems.push(`${label} as ${allowed} from ${FOREIGN_ORIGIN} without a bearer token: expected 403, got ${foreign.status}`);
          if (noOrigin.status !== 403) problems.push(`${label} as ${allowed} without Origin and without a bearer token: expected 403, got ${noOrigin.status}`);
          expectedRefusals += 2;
        } else {
          if (foreign.status !== 403) problems.push(`${label} as ${allowed} from ${FOREIGN_ORIGIN}: expected 403, got ${foreign.status}`);
          if (noOrigin.status !== 403) problems.push(`${label} as ${allowed} without Origin/Sec-Fetch-Site/Referer: expected 403, got ${noOrigin.status}`);
          expectedRefusals += 2;
          const json = await send('POST', url, { identity: 'anonymous', body, accept: 'application/json' });
          if (access !== 'public') {
            expectedRefusals++;
            if (json.status !== 401) problems.push(`${label} as anonymous asking for JSON: expected 401, got ${json.status}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect((await countRefusals()) - refusalsBefore).toBe(expectedRefusals);
  });

  it('a refusal is recorded with who, role, what, why and address, and the log cannot be changed', async () => {
    await send('POST', '/admin/accounts', { identity: 'engineer', body: { intent: 'disable' } });
    const { rows } = await admin.query(
      "select actor, actor_role, subject, reason, ip, detail, at from audit_log where action = 'request.refused' and actor = 'engineer@matrix.test' order by id desc limit 1",
    );
    expect(rows[0]).toMatchObject({ actor: 'engineer@matrix.test', actor_role: 'engineer', subject: 'POST /admin/accounts', reason: 'role engineer lacks manage-accounts' });
    expect(rows[0].detail).toMatchObject({ intent: 'disable', needed: 'manage-accounts' });
    expect(rows[0].ip).toMatch(/127\.0\.0\.1/);
    await expect(admin.query('update audit_log set reason = null')).rejects.toThrow(/append-only/);
    await expect(admin.query('delete from audit_log')).rejects.toThrow(/append-only/);
    await expect(admin.query('truncate audit_log')).rejects.toThrow(/append-only/);
  });

  it('every JSON API endpoint answers every role\'s token, no token, a cookie session, a revoked and an expired token as API_ACCESS says', async () => {
    const tokens = new Map<Role, string>();
    for (const role of ROLES) {
      await sessionCookieFor(runtime, `${role}@matrix.test`, role);
      const account = (await findAccount(runtime.store.db, { email: `${role}@matrix.test` }))!;
      tokens.set(role, (await createApiToken(runtime.store.db, { account: account.email, name: 'matrix', actor: { name: account.email, role, accountId: account.id } })).token);
    }
    const engineer = (await findAccount(runtime.store.db, { email: 'engineer@matrix.test' }))!;
    const engineerActor = { name: engineer.email, role: 'engineer' as const, accountId: engineer.id };
    const revoked = await createApiToken(runtime.store.db, { account: engineer.email, name: 'revoked', actor: engineerActor });
    await revokeApiToken(runtime.store.db, { tokenId: revoked.info.id, actor: engineerActor });
    const expired = await createApiToken(runtime.store.db, { account: engineer.email, name: 'expired', actor: engineerActor });
    await admin.query("update api_tokens set created_at = now() - interval '2 days', expires_at = now() - interval '1 minute' where id = $1", [expired.info.id]);

    const problems: string[] = [];
    const call = async (method: string, url: string, headers: Record<string, string>) => {
      const response = await fetch(`${server.origin}${url}`, { method, headers: { Accept: 'application/json', ...(method === 'POST' ? { 'Content-Type': 'application/json' } : {}), ...headers }, body: method === 'POST' ? '{}' : undefined, redirect: 'manual' });
      const text = await response.text();
      let kind: string | undefined;
      try {
        kind = (JSON.parse(text) as { error?: { kind?: string } }).error?.kind;
      } catch {
        kind = undefined;
      }
      return { status: response.status, kind, type: response.headers.get('content-type') ?? '' };
    };
    expect(API_ROUTES.length).toBe(Object.keys(API_ACCESS).length);
    for (const route of API_ROUTES) {
      const url = apiPath(route.key, { planId: 'matrix-plan', runId: '00000000-0000-4000-8000-000000000000' });
      const label = `${route.key} (needs ${API_ACCESS[route.key]})`;
      for (const role of ROLES) {
        const answer = await call(route.method, url, { Authorization: `Bearer ${tokens.get(role)}`, Origin: FOREIGN_ORIGIN });
        const needed = API_ACCESS[route.key];
        const allowed = needed === 'signed-in' || roleCan(role, needed);
        if (answer.status >= 500) problems.push(`${label} with ${role}'s token: server error ${answer.status}`);
        else if (allowed && (answer.status === 401 || answer.status === 403)) problems.push(`${label} with ${role}'s token: refused (${answer.status}) although allowed`);
        else if (!allowed && (answer.status !== 403 || answer.kind !== 'permission')) problems.push(`${label} with ${role}'s token: expected 403 permission, got ${answer.status} ${answer.kind}`);
      }
      const refusals: [string, Record<string, string>][] = [
        ['no token', {}],
        ['a cookie session', { Cookie: (await cookieFor('engineer'))!, Origin: server.origin }],
        ['a revoked token', { Authorization: `Bearer ${revoked.token}` }],
        ['an expired token', { Authorization: `Bearer ${expired.token}` }],
        ['a malformed token', { Authorization: 'Bearer rs_nope' }],
      ];
      for (const [what, headers] of refusals) {
        const answer = await call(route.method, url, { Origin: server.origin, ...headers });
        if (answer.status !== 401 || answer.kind !== 'unauthenticated' || !answer.type.startsWith('application/json')) problems.push(`${label} with ${what}: expected 401 JSON unauthenticated, got ${answer.status} ${answer.kind ?? answer.type}`);
      }
    }
    const unknown = await call('GET', '/api/v1/no-such-endpoint', { Authorization: `Bearer ${tokens.get('viewer')}` });
    expect(unknown).toMatchObject({ status: 404, kind: 'not_found' });
    expect(problems).toEqual([]);
  });

  async function countRefusals(): Promise<number> {
    const { rows } = await admin.query("select count(*)::int as n from audit_log where action = 'request.refused'");
    return rows[0].n as number;
  }
});
