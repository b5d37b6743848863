/**
 * What the plan and report pages send, and what they fetch afterwards (issue 15): the plan page's
 * first answer carries no check SQL (a disclosure fetches it from /plans/:id/sql.json, which the
 * roles that may view the plan page may read, and nobody else); a run's whole log is reachable page by
 * page from /runs/:id/events.json, seqs 1…N without a gap; the report's statement digest read in
 * the store is the one digestStatements gives. Over HTTP against the real build and server.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleCan, type Role } from '../../app/accounts/permissions';
import type { Runtime } from '../../app/boot/runtime.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { checkSql, loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import type { SqlCheck } from '../../app/plans/plan-schema';
import { appendRunEvent } from '../../app/runs/run-log.server';
import { digestStatements, INITIAL_EVENTS_PAGE, STATEMENT_DIGEST, type ReportStatement } from '../../app/runs/run-report';
import { readReportSummaryDigest, writeReportSummary } from '../../app/runs/run-store.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, freePort, makeSecrets, openRuntime, ROOT, serverEnv, sessionCookieFor, startServer, type StartedServer } from './auth-harness';

const ROLES: Role[] = ['viewer', 'tpm', 'engineer', 'admin'];
const ENGINEER = { email: 'engineer@payloads.test', role: 'engineer' as const };

describe('page payloads over HTTP', () => {
  let storeDb: TestDatabase;
  let targetDb: TestDatabase;
  let runtime: Runtime;
  let server: StartedServer;
  let plan: ValidPlan;
  const cookies = {} as Record<Role, string>;
  let runId: string;

  beforeAll(async () => {
    await ensureFreshBuild();
    [storeDb, targetDb] = await Promise.all([createTestDatabase('page_payloads_store'), createTestDatabase('page_payloads_target')]);
    const target = new pg.Client({ connectionString: targetDb.url });
    await target.connect();
    await target.query('create schema shop; create table shop.widgets (id bigint primary key, name text not null)');
    await target.query("insert into shop.widgets select n, 'widget ' || n from generate_series(1, 50) as n");
    await target.end();
    const plansDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-page-payloads-')), 'plans');
    fs.mkdirSync(plansDir);
    fs.cpSync(path.join(ROOT, 'tests/fixtures/plans-neutral/widget-sku'), path.join(plansDir, 'widget-sku'), { recursive: true });
    const env = serverEnv(storeDb.url, makeSecrets(), await freePort(), { RUNSHEET_PLANS_DIR: plansDir, TARGET_SANDBOX_URL: targetDb.url });
    runtime = await openRuntime(env);
    server = await startServer(env);
    for (const role of ROLES) cookies[role] = await sessionCookieFor(runtime, `${role}@payloads.test`, role);
    const loaded = await loadPlan(plansDir, 'widget-sku');
    if (!loaded?.ok) throw new Error('the widget-sku fixture does not load');
    plan = loaded;

    const { run } = await openWorkingRun(runtime, { planId: 'widget-sku', target: 'sandbox', kind: 'execute', actor: ENGINEER });
    runId = run.id;
    await tickPrerequisite(runtime, { runId, itemId: 'catalogue-agreed', ticked: true, actor: ENGINEER });
    await runRunChecks(runtime, { runId, phase: 'pre', actor: ENGINEER });
  });

  afterAll(async () => {
    await server?.stop();
    await runtime?.stop();
    await Promise.all([storeDb?.drop(), targetDb?.drop()]);
  });

  const get = (url: string, headers: Record<string, string> = {}) => fetch(`${server.origin}${url}`, { headers, redirect: 'manual' });

  /** The stored pre-check results of the run, with the SQL each ran. */
  const storedResults = async () =>
    (await runtime.store.pool.query<{ id: string; check_id: string; sql_text: string }>("select id::text, check_id, sql_text from check_results where run_id = $1 and sql_text <> '' order by id", [runId])).rows;

  it("sends no check's SQL in the plan page's first answer, only a disclosure that fetches it", async () => {
    const results = await storedResults();
    expect(results.length).toBeGreaterThan(0);
    const html = await (await get('/plans/widget-sku?target=sandbox', { Cookie: cookies.viewer, Accept: 'text/html' })).text();
    const data = await (await get(`/plans/widget-sku.data?target=sandbox&_routes=${encodeURIComponent('routes/plans.$planId')}`, { Cookie: cookies.viewer })).text();
    for (const { check_id, sql_text } of results) {
      // Its longest line, as the markup escapes it and as the loader data (JSON) does.
      const line = sql_text.split('\n').reduce((longest, candidate) => (candidate.trim().length > longest.length ? candidate.trim() : longest), '');
      expect(line.length, check_id).toBeGreaterThan(15);
      const escaped = line.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&#x27;').replace(/"/g, '&quot;');
      expect(html.includes(line) || html.includes(escaped), `${check_id} in the HTML`).toBe(false);
      expect(data.includes(JSON.stringify(line).slice(1, -1)), `${check_id} in the loader data`).toBe(false);
      expect(html).toContain(`data-sql-on-demand="${check_id}"`);
    }
  });

  it('serves a check SQL on demand to every role that may view the plan page, exactly as the plan file words it, and refuses the others and a signed-out request', async () => {
    const check = plan.plan.prechecks.find((candidate) => candidate.id === 'sku-absent') as SqlCheck;
    const stored = (await storedResults()).find((row) => row.check_id === 'sku-absent')!;
    for (const role of ROLES) {
      const answer = await get(`/plans/widget-sku/sql.json?result=${stored.id}`, { Cookie: cookies[role], Accept: 'application/json' });
      if (!roleCan(role, 'view')) {
        // The same rule as the plan page itself (ROUTE_ACCESS: view).
        expect(answer.status, role).toBe(403);
        expect(await answer.text(), role).not.toContain('pg_attribute');
        continue;
      }
      expect(answer.status, role).toBe(200);
      const body = (await answer.json()) as { checkId: string; sql: string; planChecksum: string };
      expect(body, role).toMatchObject({ checkId: 'sku-absent', planChecksum: plan.checksum });
      expect(body.sql.trim(), role).toBe(checkSql(plan, check).trim());
    }
    const signedOut = await get(`/plans/widget-sku/sql.json?result=${stored.id}`, { Accept: 'application/json' });
    expect(signedOut.status).toBe(401);
    expect(await signedOut.text()).not.toContain('pg_attribute');
    const signedOutPage = await get(`/plans/widget-sku/sql.json?result=${stored.id}`, { Accept: 'text/html' });
    expect(signedOutPage.status).toBe(302);
    expect(signedOutPage.headers.get('location')).toMatch(/^\/login/);

    // Another plan's result, an unknown one and a malformed id: refused with what to do.
    const otherPlan = await get(`/plans/some-other-plan/sql.json?result=${stored.id}`, { Cookie: cookies.viewer });
    expect(otherPlan.status).toBe(404);
    expect(((await otherPlan.json()) as { error: string }).error).toContain('Reload the plan page');
    expect((await get('/plans/widget-sku/sql.json?result=999999999', { Cookie: cookies.viewer })).status).toBe(404);
    const malformed = await get('/plans/widget-sku/sql.json?result=drop', { Cookie: cookies.viewer });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: string }).error).toContain('?result=');
  });

  it('reaches the whole log of a long run page by page, seqs 1…N without a gap, and refuses a signed-out request', async () => {
    const run = { id: runId };
    for (let index = 0; index < 1_234; index++) {
      await appendRunEvent(runtime.store.pool, { runId: run.id, actor: ENGINEER.email, role: ENGINEER.role, type: 'note.added', payload: { text: `note ${index}` } });
    }
    const { rows } = await runtime.store.pool.query<{ n: number }>('select max(seq)::int as n from run_events where run_id = $1', [run.id]);
    const total = rows[0]!.n;
    expect(total).toBeGreaterThan(1_234);

    // The report's first answer carries one small page of events, never the log.
    const report = await (await get(`/runs/${run.id}/report`, { Cookie: cookies.viewer, Accept: 'text/html' })).text();
    expect((report.match(/data-event-row=/g) ?? []).length).toBe(INITIAL_EVENTS_PAGE);

    const seqs: number[] = [];
    let afterSeq = 0;
    for (let page = 0; page < 100; page++) {
      const answer = await get(`/runs/${run.id}/events.json?afterSeq=${afterSeq}&limit=200`, { Cookie: cookies.viewer, Accept: 'application/json' });
      expect(answer.status).toBe(200);
      const body = (await answer.json()) as { events: { seq: number }[]; lastSeq: number; hasMore: boolean };
      seqs.push(...body.events.map((event) => event.seq));
      afterSeq = body.lastSeq;
      if (!body.hasMore) break;
    }
    expect(seqs).toEqual(Array.from({ length: total }, (_, index) => index + 1));

    const signedOut = await get(`/runs/${run.id}/events.json?afterSeq=0&limit=200`, { Accept: 'application/json' });
    expect(signedOut.status).toBe(401);
    expect(await signedOut.text()).not.toContain('note 0');
  });

  it("cuts a long statement list to the same digest in the store as digestStatements does", async () => {
    const statements: ReportStatement[] = Array.from({ length: 240 }, (_, index) => ({
      seq: 100 + index,
      stepId: 'backfill',
      stepLabel: 'Step 1 · Backfill',
      index,
      line: 3,
      command: 'UPDATE',
      // A few slow batches in the middle, one without a duration, and ties broken by order.
      durationMs: index === 17 ? null : index % 50 === 25 ? 900 + index : 10 + (index % 7),
      rowCount: 1_000,
      notices: [],
      sql: `UPDATE shop.widgets SET name = name WHERE id > ${index * 1_000}`,
    }));
    const summary = { phases: [], actions: [], statements, issues: [] };
    await writeReportSummary(runtime.store.db, { runId, throughSeq: 1_000_000, head: 'a'.repeat(64), summary });
    const fromStore = (await readReportSummaryDigest(runtime.store.db, runId, STATEMENT_DIGEST))!;
    const expected = digestStatements(statements);
    expect(fromStore.statementCount).toBe(240);
    expect(fromStore.slowestSeqs).toEqual(expected.slowestSeqs);
    expect(fromStore.summary.statements).toEqual(expected.statements);
    expect(expected.statements.length).toBe(STATEMENT_DIGEST.first + STATEMENT_DIGEST.slowest + STATEMENT_DIGEST.last);
    expect(fromStore.summary.phases).toEqual([]);
  });
});
