/**
 * Issue "After the run" (docs/decisions/031), done-when: "Plan 008 on the sandbox: users change
 * their active organization through the sandbox API, the engineer rolls back, the backup holds
 * exactly those values, a re-apply plus restore brings them back (psql comparison in the test);
 * the restore is refused to TPMs and viewers." Everything over HTTP to a real server (bin/start.js):
 * the users call the sandbox API stand-in (/sandbox-api/api/auth/set-active-org) with their bearer
 * tokens; the engineer applies, rolls back, applies again and restores through the plan page's
 * forms (with Origin, as a browser posts them); a TPM's and a viewer's restore posts are refused
 * 403 and audited. What the target holds is read with psql, row by row.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { eventsOf } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { findRun, findRuns } from '../../app/runs/run-store.server';
import { generateSandbox } from '../../app/sandbox/generate-sandbox.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, freePort, makeSecrets, openRuntime, ROOT, serverEnv, sessionCookieFor, startServer, type StartedServer, postForm } from './auth-harness';
import { waitFor } from './engine-harness';

const PLAN = '008-add-active-org-tracking';
const execFileAsync = promisify(execFile);

describe('plan 008 on the sandbox over HTTP: a rollback keeps what users chose through the sandbox API, and a restore after a re-apply puts it back', () => {
  let store: TestDatabase;
  let target: TestDatabase;
  let runtime: Runtime;
  let server: StartedServer;
  let sql: pg.Client;
  let engineer: string;

  /** What psql prints for `query` on the target: one line per row, columns separated by "|". */
  async function psql(query: string): Promise<string[]> {
    const { stdout } = await execFileAsync('psql', ['--no-psqlrc', '-X', '-v', 'ON_ERROR_STOP=1', '-A', '-t', '-F', '|', '-c', query, target.url], { env: { NODE_ENV: 'test', PATH: process.env.PATH } });
    return stdout.split('\n').filter((line) => line !== '');
  }
  const activeOrgs = () => psql('select id, coalesce(active_org_id::text, \'NULL\') from platform.users order by id');

  async function post(cookie: string, form: Record<string, string>): Promise<{ status: number; body: string; location: string | null }> {
    return postForm(server.origin, `/plans/${PLAN}?target=sandbox`, cookie, form);
  }

  /** The engineer prepares the plan's working run through the checklist, executes it, and waits for `applied`. */
  async function applyOverHttp(): Promise<string> {
    const prerequisites = ['migrations-001-006-applied', 'api-code-ready', 'no-active-migrations', 'backup-taken', 'rollback-plan-documented'];
    for (const itemId of prerequisites) expect((await post(engineer, { intent: 'tick', itemId, ticked: 'true' })).status).toBe(200);
    const checks = await post(engineer, { intent: 'run-checks', phase: 'pre' });
    expect(checks.status, checks.body.slice(0, 300)).toBe(200);
    const runId = (await findRuns(runtime.store.pool, { planId: PLAN, target: 'sandbox' }))[0]!.id;
    const execute = await post(engineer, { intent: 'execute' });
    expect(execute.status, execute.body.slice(0, 300)).toBe(302);
    expect(execute.location).toBe(`/runs/${runId}`);
    await waitFor('the apply', async () => (await findRun(runtime.store.pool, runId))!.state === 'applied', 120_000);
    return runId;
  }

  beforeAll(async () => {
    await ensureFreshBuild();
    [store, target] = await Promise.all([createTestDatabase('restore_http_store'), createTestDatabase('restore_http_target')]);
    sql = new pg.Client({ connectionString: target.url });
    await sql.connect();
    await generateSandbox(sql, { users: 300, seed: 31 });
    const env = serverEnv(store.url, makeSecrets(), await freePort(), { RUNSHEET_PLANS_DIR: `${ROOT}/plans`, TARGET_SANDBOX_URL: target.url });
    runtime = await openRuntime(env);
    server = await startServer(env);
    engineer = await sessionCookieFor(runtime, 'engineer@restore.test', 'engineer');
  });

  afterAll(async () => {
    await server?.stop();
    await sql?.end().catch(() => {});
    await runtime?.stop();
    await target?.drop();
    await store?.drop();
  });

  let chosen: { userId: string; orgId: string }[];
  let beforeRollback: string[];
  let rolledBackRun: string;
  let reappliedRun: string;

  it('users choose another organization through the sandbox API over HTTP; the engineer rolls back; the backup holds exactly those values', { timeout: 240_000 }, async () => {
    rolledBackRun = await applyOverHttp();
    // Six users with two memberships or more pick one that is not the backfill's default (their earliest).
    const { rows: users } = await sql.query<{ user_id: string; org_id: string }>(`
      select m.user_id::text, (array_agg(m.organization_id::text order by m.joined_at desc, m.organization_id desc))[1] as org_id
        from platform.organization_members as m group by m.user_id having count(*) >= 2 order by m.user_id limit 6`);
    expect(users).toHaveLength(6);
    const defaults = new Map((await activeOrgs()).map((line) => line.split('|') as [string, string]));
    chosen = [];
    for (const [index, user] of users.entries()) {
      expect(defaults.get(user.user_id)).not.toBe(user.org_id);
      const token = `restore-http-token-${index}`;
      await sql.query('insert into platform.api_tokens (token_hash, user_id) values ($1, $2)', [createHash('sha256').update(token).digest('hex'), user.user_id]);
      const response = await fetch(`${server.origin}/sandbox-api/api/auth/set-active-org`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ organizationId: user.org_id }),
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ success: true, activeOrgId: user.org_id });
      chosen.push({ userId: user.user_id, orgId: user.org_id });
    }
    // A token the API does not know changes nothing.
    const stranger = await fetch(`${server.origin}/sandbox-api/api/auth/set-active-org`, {
      method: 'POST',
      headers: { Authorization: 'Bearer nobody', 'Content-Type': 'application/json' },
      body: JSON.stringify({ organizationId: users[0]!.org_id }),
    });
    expect(stranger.status).toBe(401);
    beforeRollback = await activeOrgs();
    expect(beforeRollback.length).toBeGreaterThanOrEqual(300);
    for (const { userId, orgId } of chosen) expect(beforeRollback).toContain(`${userId}|${orgId}`);

    const rollback = await post(engineer, { intent: 'rollback', runId: rolledBackRun });
    expect(rollback.status, rollback.body.slice(0, 300)).toBe(302);
    await waitFor('the rollback', async () => (await findRun(runtime.store.pool, rolledBackRun))!.state === 'rolled_back', 120_000);

    // The column is gone from the table; its values, every user's, are in the run's backup table.
    expect(await psql(`select column_name from information_schema.columns where table_schema = 'platform' and table_name = 'users' and column_name = 'active_org_id'`)).toEqual([]);
    const backupTable = `runsheet_backup.r_${rolledBackRun.replace(/-/g, '')}_users_active_org_id`;
    expect(await psql(`select id, coalesce(active_org_id::text, 'NULL') from ${backupTable} order by id`)).toEqual(beforeRollback);
    const taken = eventsOf(await readRunEvents(runtime.store.pool, rolledBackRun), 'backup.taken');
    expect(taken.map((event) => event.payload.copy)).toEqual([expect.objectContaining({ backupTable: `"runsheet_backup"."r_${rolledBackRun.replace(/-/g, '')}_users_active_org_id"`, rows: beforeRollback.length })]);
  });

  it('after a re-apply, a TPM\'s and a viewer\'s restore posts are refused 403 and audited; the engineer\'s brings every value back', { timeout: 240_000 }, async () => {
    expect((await post(engineer, { intent: 'new-attempt' })).status).toBe(200);
    reappliedRun = await applyOverHttp();
    expect(reappliedRun).not.toBe(rolledBackRun);
    // The backfill chose each user's earliest organization again: the six choices are gone.
    const reapplied = await activeOrgs();
    for (const { userId, orgId } of chosen) expect(reapplied).not.toContain(`${userId}|${orgId}`);

    for (const [email, role] of [
      ['tpm@restore.test', 'tpm'],
      ['viewer@restore.test', 'viewer'],
    ] as const) {
      const refused = await post(await sessionCookieFor(runtime, email, role), { intent: 'restore', runId: reappliedRun, typedTargetName: 'sandbox' });
      expect(refused.status, `${role}: ${refused.body.slice(0, 300)}`).toBe(403);
      const { rows } = await runtime.store.pool.query<{ actor_role: string; subject: string; detail: { intent: string; needed: string } }>(
        "select actor_role, subject, detail from audit_log where action = 'request.refused' and actor = $1 order by id desc limit 1",
        [email],
      );
      expect(rows[0]).toEqual({ actor_role: role, subject: `POST /plans/${PLAN}`, detail: { intent: 'restore', needed: 'restore' } });
    }
    expect(await activeOrgs()).toEqual(reapplied);
    expect(eventsOf(await readRunEvents(runtime.store.pool, reappliedRun), 'restore.finished')).toEqual([]);

    const restore = await post(engineer, { intent: 'restore', runId: reappliedRun, typedTargetName: 'sandbox' });
    expect(restore.status, restore.body.slice(0, 300)).toBe(200);
    expect(restore.body).toContain(`from run ${rolledBackRun.slice(0, 8)}; 0 row(s) skipped`);

    // Row by row, as psql reads it: every user's active organization is what it was before the rollback.
    expect(await activeOrgs()).toEqual(beforeRollback);
    const finished = eventsOf(await readRunEvents(runtime.store.pool, reappliedRun), 'restore.finished');
    expect(finished).toHaveLength(1);
    expect(finished[0]!).toMatchObject({ actor: 'engineer@restore.test', payload: { fromRunId: rolledBackRun, ok: true, skipped: [] } });
    expect(await psql('select run_id, from_run_id, skipped, restored_by from runsheet.restores')).toEqual([`${reappliedRun}|${rolledBackRun}|0|engineer@restore.test`]);
  });
});
