/**
 * The plan page of a plan other than 008 speaks of that plan only; an action the plan cannot take
 * (rehearsing a plan with a CONCURRENTLY step) is disabled with its reason and opens no run; and
 * every place that shows a plan error shows its line (the plans list, the plan page, `runsheet
 * check`). Over HTTP against the real build and server, on a test store and target.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { executeRun } from '../../app/engine/engine.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { visibleText } from '../support/visible-text';
import { ensureFreshBuild, freePort, makeSecrets, openRuntime, ROOT, serverEnv, sessionCookieFor, startServer, type StartedServer } from './auth-harness';

const execute = promisify(execFile);

/** Words of plan 008 and of its runbook that no other plan's page may show. */
export const WORDS_OF_008 = [
  '008',
  'seed',
  'Target Database',
  'Steps 3–6',
  'Step 3',
  'Step 4',
  'Step 5',
  'Step 6',
  'helper function',
  'Helper functions',
  'active_org',
  'organization',
  'WS2',
];

/** The words of 008 the text contains, as words (a run id or checksum that happens to hold "008" does not count). */
export function wordsOf008In(text: string): string[] {
  // A word starts after a non-word character; a number also ends before one ("organizations" counts, "a7008f" does not),
  // and is not the fraction of a measured figure ("0.008 s" or "1,008 rows" are not plan 008).
  const escape = (word: string) => word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return WORDS_OF_008.filter((word) => {
    const isNumber = /^\d+$/.test(word);
    const before = isNumber ? '(^|[^\\w.,])' : '(^|[^\\w])';
    const after = /\d$/.test(word) ? '($|[^\\w])' : '';
    return new RegExp(`${before}${escape(word)}${after}`, 'i').test(text);
  });
}

describe('plan pages over HTTP', () => {
  let storeDb: TestDatabase;
  let targetDb: TestDatabase;
  let runtime: Runtime;
  let server: StartedServer;
  let env: Record<string, string>;
  let engineer: string;
  let plansDir: string;

  beforeAll(async () => {
    await ensureFreshBuild();
    [storeDb, targetDb] = await Promise.all([createTestDatabase('plan_pages_store'), createTestDatabase('plan_pages_target')]);
    const target = new pg.Client({ connectionString: targetDb.url });
    await target.connect();
    await target.query('create schema shop; create table shop.widgets (id bigint primary key, name text not null)');
    await target.query("insert into shop.widgets select n, 'widget ' || n from generate_series(1, 50) as n");
    await target.end();
    plansDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-plan-pages-')), 'plans');
    fs.mkdirSync(plansDir);
    fs.cpSync(path.join(ROOT, 'tests/fixtures/plans-neutral/widget-sku'), path.join(plansDir, 'widget-sku'), { recursive: true });
    fs.cpSync(path.join(ROOT, 'tests/fixtures/plans/bad-sql'), path.join(plansDir, 'bad-sql'), { recursive: true });
    env = serverEnv(storeDb.url, makeSecrets(), await freePort(), { RUNSHEET_PLANS_DIR: plansDir, TARGET_SANDBOX_URL: targetDb.url });
    runtime = await openRuntime(env);
    server = await startServer(env);
    engineer = await sessionCookieFor(runtime, 'engineer@pages.test', 'engineer');
  });

  afterAll(async () => {
    await server?.stop();
    await runtime?.stop();
    await Promise.all([storeDb?.drop(), targetDb?.drop()]);
  });

  const get = async (url: string) => {
    const response = await fetch(`${server.origin}${url}`, { headers: { Cookie: engineer, Accept: 'text/html' }, redirect: 'manual' });
    return { status: response.status, html: await response.text() };
  };

  it("shows none of 008's words on the page of another plan, and numbers its steps by position", async () => {
    const { status, html } = await get('/plans/widget-sku?target=sandbox');
    expect(status).toBe(200);
    const text = visibleText(html);
    expect(text).toContain('Add a SKU to shop.widgets');
    expect(wordsOf008In(text)).toEqual([]);
    expect(text).toMatch(/Step 1 · Add the sku column/);
    expect(text).toMatch(/Step 2 · Build the unique index on sku/);
  });

  it('disables Rehearse with the reason on a plan with a non-transactional step, and a rehearse posted anyway opens no run', async () => {
    const { html } = await get('/plans/widget-sku?target=sandbox');
    const button = /<button[^>]*value="rehearse"[^>]*>/.exec(html)?.[0] ?? '';
    expect(button).toMatch(/disabled/);
    expect(visibleText(html)).toMatch(/cannot be rehearsed: step\(s\) index-sku, drop-index are not transactional/);

    const response = await fetch(`${server.origin}/plans/widget-sku?target=sandbox`, {
      method: 'POST',
      headers: { Cookie: engineer, Origin: server.origin, 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams({ intent: 'rehearse' }).toString(),
      redirect: 'manual',
    });
    expect(response.status).toBe(409);
    const { rows } = await runtime.store.pool.query("select count(*)::int as n from runs where plan_id = 'widget-sku'");
    expect(rows[0].n).toBe(0);
  });

  it('shows the line of each plan error on the plans list and on the plan page', async () => {
    for (const url of ['/', '/plans/bad-sql']) {
      const text = visibleText((await get(url)).html);
      expect(text, url).toContain('plans/bad-sql/apply.sql:2');
      expect(text, url).toContain('plans/bad-sql/rollback.sql:4');
    }
  });

  it("names the run's steps in its report as the plan does, with none of 008's words", async () => {
    const actor = { email: 'engineer@pages.test', role: 'engineer' as const };
    const { run } = await openWorkingRun(runtime, { planId: 'widget-sku', target: 'sandbox', kind: 'execute', actor });
    await tickPrerequisite(runtime, { runId: run.id, itemId: 'catalogue-agreed', ticked: true, actor });
    await runRunChecks(runtime, { runId: run.id, phase: 'pre', actor });
    expect((await executeRun(runtime, { runId: run.id, actor })).state).toBe('applied');
    const { status, html } = await get(`/runs/${run.id}/report`);
    expect(status).toBe(200);
    const text = visibleText(html);
    expect(text).toContain('Run report: Add a SKU to shop.widgets');
    expect(text).toContain('Step 1 · Add the sku column');
    expect(text).toContain('Step 2 · Build the unique index on sku');
    expect(wordsOf008In(text)).toEqual([]);
  });

  it('runsheet check names the line of each plan error', async () => {
    const result = await execute(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), 'check', 'bad-sql'], { env: { ...process.env, ...env }, cwd: ROOT }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('plans/bad-sql/rollback.sql:4 rollback.steps[0].file');
    expect(result.stderr).toContain('plans/bad-sql/apply.sql:2 apply[0].file');
  });
});
