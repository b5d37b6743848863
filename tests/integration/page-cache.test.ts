/**
 * The kept plan and report pages (app/web/page-cache.server.ts, docs/decisions/035): a page is sent
 * again only while nothing it shows can have changed, always to a viewer the route authorizes on
 * this very request, and always with the request's own CSP nonce. Over HTTP against the real build
 * and server; the changes are made the ways a second instance, the command line or psql make them,
 * never through the server under test. `Server-Timing: page-cache;desc="hit"|"miss"` says which
 * answer was kept.
 *
 * The age step is an hour here so that "nothing changed" really means nothing (the clock is the
 * one input a test cannot hold still); the watch runner's heartbeat is slowed for the same reason.
 * The store and targets live on a PostgreSQL server of this file's own: a snapshot covers every
 * database of its server, and the other test files write to the shared one all the time.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../app/accounts/permissions';
import { setAccountDisabled, setAccountRole } from '../../app/accounts/accounts.server';
import type { Runtime } from '../../app/boot/runtime.server';
import { addNote, openWorkingRun, tickPrerequisite } from '../../app/engine/runs.server';
import { loadPlan } from '../../app/plans/load-plans.server';
import { refreshPlanFacts } from '../../app/plans/plan-overview.server';
import { ensureEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../app/runtime/embedded-postgres.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, freePort, makeSecrets, openRuntime, ROOT, serverEnv, sessionCookieFor, startServer, type StartedServer } from './auth-harness';
import { visibleText } from '../support/visible-text';

const ENGINEER = { email: 'engineer@kept.test', role: 'engineer' as const };
const PLAN_PAGE = '/plans/widget-sku?target=sandbox';

describe('kept pages over HTTP', () => {
  let storeDb: TestDatabase;
  let targetDb: TestDatabase;
  let lockedDb: TestDatabase;
  let ownServer: EmbeddedPostgresHandle;
  let ownServerDir: string;
  let runtime: Runtime;
  let server: StartedServer;
  let plansDir: string;
  let runId: string;
  const cookies = {} as Record<Role, string>;

  beforeAll(async () => {
    await ensureFreshBuild();
    ownServerDir = fs.mkdtempSync(path.join(ROOT, '.data', 'test-runs', 'page-cache-'));
    ownServer = await ensureEmbeddedPostgres(ownServerDir);
    const onOwnServer = (name: string) => createTestDatabase(name, ownServer.adminUrl);
    [storeDb, targetDb, lockedDb] = await Promise.all([onOwnServer('page_cache_store'), onOwnServer('page_cache_target'), onOwnServer('page_cache_locked')]);
    const target = new pg.Client({ connectionString: targetDb.url });
    await target.connect();
    await target.query('create schema shop; create table shop.widgets (id bigint primary key, name text not null)');
    await target.end();
    // A target that answers, but whose ledger its role may not read: the page says so on every view.
    const reader = `kept_reader_${Math.random().toString(36).slice(2, 10)}`;
    const locked = new pg.Client({ connectionString: lockedDb.url });
    await locked.connect();
    await locked.query(`create role ${reader} login password 'reader'; create schema runsheet; create table runsheet.ledger (id bigint); grant usage on schema runsheet to ${reader}`);
    await locked.end();
    const lockedUrl = new URL(lockedDb.url);
    [lockedUrl.username, lockedUrl.password] = [reader, 'reader'];
    plansDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-page-cache-')), 'plans');
    fs.mkdirSync(plansDir);
    fs.cpSync(path.join(ROOT, 'tests/fixtures/plans-neutral/widget-sku'), path.join(plansDir, 'widget-sku'), { recursive: true });
    const env = serverEnv(storeDb.url, makeSecrets(), await freePort(), {
      RUNSHEET_PLANS_DIR: plansDir,
      TARGET_SANDBOX_URL: targetDb.url,
      // A target whose server is gone: nothing is refused there on connect, so a closed port stands in for it.
      TARGET_LOCKED_URL: lockedUrl.toString(),
      TARGET_GONE_URL: `postgres://nobody:nothing@127.0.0.1:${await freePort()}/gone`,
      RUNSHEET_PAGE_AGE_STEP: '1h',
      RUNSHEET_WATCH_POLL: '10m',
      RUNSHEET_WATCH_STALE_AFTER: '1h',
    });
    runtime = await openRuntime(env);
    server = await startServer(env);
    for (const role of ['viewer', 'tpm', 'engineer'] as Role[]) cookies[role] = await sessionCookieFor(runtime, `${role}@kept.test`, role);
    runId = (await openWorkingRun(runtime, { planId: 'widget-sku', target: 'sandbox', kind: 'execute', actor: ENGINEER })).run.id;
    await readFactsNow();
  });

  /**
   * The facts newer than the run's latest change, as after any page view that started a read: a
   * view of a page whose facts are older starts one, whose write makes the next view render again.
   */
  const readFactsNow = async () => {
    const loaded = await loadPlan(plansDir, 'widget-sku');
    if (!loaded?.ok) throw new Error('the widget-sku fixture does not load');
    await refreshPlanFacts(runtime, loaded, runtime.targets.find('sandbox')!);
  };

  afterAll(async () => {
    await server?.stop();
    await runtime?.stop();
    await Promise.all([storeDb?.drop(), targetDb?.drop(), lockedDb?.drop()]);
    await ownServer?.stop();
    fs.rmSync(ownServerDir, { recursive: true, force: true });
  });

  const get = async (url: string, role: Role | null) => {
    const answer = await fetch(`${server.origin}${url}`, { headers: { Accept: 'text/html', ...(role ? { Cookie: cookies[role] } : {}) }, redirect: 'manual' });
    const html = await answer.text();
    return { status: answer.status, html, headers: answer.headers, kept: /desc="(hit|miss)"/.exec(answer.headers.get('Server-Timing') ?? '')?.[1] ?? null };
  };
  const nonceOf = (headers: Headers) => /'nonce-([^']+)'/.exec(headers.get('Content-Security-Policy') ?? '')![1]!;
  /** Two views twice in a row: the second is the kept page, whatever the first was. */
  const viewTwice = async (url: string, role: Role) => {
    const first = await get(url, role);
    const second = await get(url, role);
    return { first, second };
  };

  it('sends a kept page again with the requesting answer\'s own nonce in every script, and nothing else changed', async () => {
    const { first, second } = await viewTwice(PLAN_PAGE, 'viewer');
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.kept).toBe('hit');
    const [firstNonce, secondNonce] = [nonceOf(first.headers), nonceOf(second.headers)];
    expect(firstNonce).not.toBe(secondNonce);
    const noncesInPage = [...second.html.matchAll(/nonce="([^"]*)"/g)].map((match) => match[1]);
    expect(noncesInPage.length).toBeGreaterThan(0);
    expect(new Set(noncesInPage)).toEqual(new Set([secondNonce]));
    expect(second.html).not.toContain(firstNonce);
    // A kept page is shared by the account's sessions: nothing of one session is in it.
    expect(second.html).not.toContain('sessionIdHash');
    expect(second.html.split(secondNonce).join('N')).toBe(first.html.split(firstNonce).join('N'));
    expect(second.headers.get('Cache-Control')).toBe('no-store');
    expect(Number(second.headers.get('Content-Length'))).toBe(Buffer.byteLength(second.html));
  });

  it('renders again once another process changed the store, and shows the change', async () => {
    await viewTwice(PLAN_PAGE, 'viewer');
    // This test's runtime is another process on the same store, as a second instance or the CLI.
    await tickPrerequisite(runtime, { runId, itemId: 'catalogue-agreed', ticked: true, actor: { email: 'tpm@kept.test', role: 'tpm' } });
    await readFactsNow();
    const after = await get(PLAN_PAGE, 'viewer');
    expect(after.kept).toBe('miss');
    expect(visibleText(after.html)).toContain('tpm@kept.test');
    expect((await get(PLAN_PAGE, 'viewer')).kept).toBe('hit');

    // A write by psql to any table of the store counts as well: the page cannot know what it reads.
    const psql = new pg.Client({ connectionString: storeDb.url });
    await psql.connect();
    await psql.query("update accounts set name = name where email = 'engineer@kept.test'");
    await psql.end();
    expect((await get(PLAN_PAGE, 'viewer')).kept).toBe('miss');
  });

  it("renders again when the target's ledger changes, and when the plan's files change", async () => {
    await viewTwice(PLAN_PAGE, 'viewer');
    const target = new pg.Client({ connectionString: targetDb.url });
    await target.connect();
    await target.query('create table shop.gadgets (id bigint primary key)');
    await target.end();
    expect((await get(PLAN_PAGE, 'viewer')).kept).toBe('miss');

    await viewTwice(PLAN_PAGE, 'viewer');
    const planFile = path.join(plansDir, 'widget-sku', 'plan.yaml');
    fs.writeFileSync(planFile, fs.readFileSync(planFile, 'utf8').replace('title: Add a SKU to shop.widgets', 'title: Add a SKU to shop.widgets, kept apart'));
    const edited = await get(PLAN_PAGE, 'viewer');
    expect(edited.kept).toBe('miss');
    expect(visibleText(edited.html)).toContain('Add a SKU to shop.widgets, kept apart');

    // sandbox.sql is outside the plan's checksum, but the page offers an engineer a reset with it.
    expect((await viewTwice(PLAN_PAGE, 'engineer')).second.kept).toBe('hit');
    fs.writeFileSync(path.join(plansDir, 'widget-sku', 'sandbox.sql'), 'create schema if not exists shop;\n');
    const withFixture = await get(PLAN_PAGE, 'engineer');
    expect(withFixture.kept).toBe('miss');
    expect(visibleText(withFixture.html)).toMatch(/fixture/i);
  });

  it('keeps a page per viewer, and asks the route\'s guard on every request', async () => {
    const viewer = (await viewTwice(PLAN_PAGE, 'viewer')).second;
    expect(viewer.kept).toBe('hit');
    const tpm = await get(PLAN_PAGE, 'tpm');
    expect(tpm.kept).toBe('miss');
    expect(tpm.html).toContain('tpm@kept.test');
    expect(tpm.html).not.toContain('viewer@kept.test');

    const signedOut = await get(PLAN_PAGE, null);
    expect(signedOut.status).toBe(302);
    expect(signedOut.headers.get('location')).toMatch(/^\/login/);
    expect(signedOut.html).not.toContain('catalogue');

    // A role changed or an account disabled elsewhere: the next view is judged on the new facts.
    await setAccountRole(runtime.store.db, { email: 'tpm@kept.test', role: 'engineer', actor: { name: 'test' } });
    const promoted = await get(PLAN_PAGE, 'tpm');
    expect(promoted.kept).toBe('miss');
    await setAccountDisabled(runtime.store.db, { email: 'viewer@kept.test', disabled: true, actor: { name: 'test' } });
    const disabled = await get(PLAN_PAGE, 'viewer');
    expect(disabled.status).toBe(302);
    expect(disabled.html).not.toContain('catalogue');
    await setAccountDisabled(runtime.store.db, { email: 'viewer@kept.test', disabled: false, actor: { name: 'test' } });
    cookies.viewer = await sessionCookieFor(runtime, 'viewer@kept.test', 'viewer');
  });

  it('keeps the report page until the run logs another event', async () => {
    const report = `/runs/${runId}/report`;
    const { first, second } = await viewTwice(report, 'engineer');
    expect(first.status).toBe(200);
    expect(second.kept).toBe('hit');
    await addNote(runtime, { runId, actor: ENGINEER, text: 'A note written while the report was kept' });
    const after = await get(report, 'engineer');
    expect(after.kept).toBe('miss');
    expect(visibleText(after.html)).toContain('A note written while the report was kept');
  });

  it('lets everyone who opens a page at once wait for one render of it', async () => {
    await addNote(runtime, { runId, actor: ENGINEER, text: 'Everyone opens the page now' });
    const views = await Promise.all(Array.from({ length: 20 }, () => get(`/runs/${runId}/report`, 'engineer')));
    expect(views.map((view) => view.status)).toEqual(views.map(() => 200));
    expect(views.filter((view) => view.kept === 'miss')).toHaveLength(1);
    expect(views.filter((view) => view.kept === 'hit')).toHaveLength(19);
    const pages = new Set(views.map((view) => view.html.split(nonceOf(view.headers)).join('N')));
    expect(pages.size).toBe(1);
    expect(visibleText(views[0]!.html)).toContain('Everyone opens the page now');
  });

  it('keeps nothing of a target that does not answer, and the page still says why', async () => {
    for (let view = 0; view < 2; view++) {
      const gone = await get('/plans/widget-sku?target=gone', 'viewer');
      expect(gone.status).toBe(200);
      expect(gone.kept).toBeNull();
      expect(visibleText(gone.html)).toMatch(/could not be read/i);
    }
  });

  it("never keeps a page whose loader could not read all it shows, so the next view reads again", async () => {
    for (let view = 0; view < 2; view++) {
      const locked = await get('/plans/widget-sku?target=locked', 'viewer');
      expect(locked.status).toBe(200);
      expect(locked.kept).toBe('miss');
      expect(visibleText(locked.html)).toMatch(/could not be read/i);
    }
  });

  it('keeps no answer but a whole page: a missing plan or run, and single-fetch data, are never marked', async () => {
    for (const url of ['/plans/no-such-plan?target=sandbox', '/runs/00000000-0000-4000-8000-000000000000/report', '/plans/widget-sku?target=nowhere']) {
      const answer = await get(url, 'viewer');
      expect(answer.status, url).toBe(404);
      expect(answer.kept, url).toBeNull();
    }
    const data = await fetch(`${server.origin}/plans/widget-sku.data?target=sandbox&_routes=${encodeURIComponent('routes/plans.$planId')}`, { headers: { Cookie: cookies.viewer } });
    expect(data.status).toBe(200);
    expect(data.headers.get('Server-Timing')).toBeNull();
  });
});
