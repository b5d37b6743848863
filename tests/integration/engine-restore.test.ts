/**
 * Issue "After the run" (docs/decisions/031), keeping what a rollback destroys, with plan 008 on a
 * sandbox: users change their active organization through the sandbox API, the engineer rolls
 * back, and the backup holds exactly those values; a re-apply plus a restore brings them back
 * (compared row by row with the target), skipping and naming a row that is gone and rows a
 * constraint refuses now; the restore is refused to TPMs and viewers, and without the target's
 * name typed.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, rollbackRun } from '../../app/engine/engine.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { restoreRun } from '../../app/engine/restore.server';
import { eventsOf } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { loadSigningKey } from '../../app/runs/signing.server';
import { verifyStoredRunLog } from '../../app/runs/verify-run-log.server';
import { setActiveOrganization } from '../../app/sandbox/platform-api.server';
import { listBackups } from '../../app/targets/backups.server';
import { loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import { loadChecklist, performChecklistIntent } from '../../app/web/plan-page.server';
import type { SignedInUser } from '../../app/auth/require.server';
import { ENGINEER, REAL_PLANS, ROOT, startEngineHarness, TPM, VIEWER, type EngineHarness } from './engine-harness';

const PLAN = '008-add-active-org-tracking';
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const execFileAsync = promisify(execFile);
let harness: EngineHarness;
let target: pg.Pool;

async function appliedRun(): Promise<string> {
  const { run } = await openWorkingRun(harness.deps, { planId: PLAN, target: 'sandbox', kind: 'execute', actor: TPM, newAttempt: true });
  for (const item of thawPlan(run.frozenPlan).plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
  }
  await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  const done = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
  expect(done.state).toBe('applied');
  return run.id;
}

const activeOrgs = async (): Promise<{ id: string; active_org_id: string | null }[]> =>
  (await target.query('select id::text, active_org_id::text from platform.users order by id')).rows;

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: REAL_PLANS, targets: [{ name: 'sandbox', sandboxUsers: 400 }] });
  target = harness.targets.get('sandbox')!.pool;
});

afterAll(async () => {
  await harness?.close();
});

describe('a rollback of plan 008 keeps every active_org_id, and a restore after a re-apply puts them back', () => {
  let chosen: { userId: string; orgId: string }[];
  let beforeRollback: { id: string; active_org_id: string | null }[];
  let rolledBackRun: string;
  let reappliedRun: string;

  it('users choose another organization through the sandbox API; the rollback copies exactly the values it drops', async () => {
    rolledBackRun = await appliedRun();
    // Six users with two memberships or more pick one that is not the backfill's default (their earliest).
    const { rows: users } = await target.query<{ user_id: string; org_id: string }>(`
      select m.user_id::text, (array_agg(m.organization_id::text order by m.joined_at desc, m.organization_id desc))[1] as org_id
        from platform.organization_members as m group by m.user_id having count(*) >= 2 order by m.user_id limit 6`);
    expect(users).toHaveLength(6);
    chosen = [];
    for (const [index, user] of users.entries()) {
      const token = `restore-test-token-${index}`;
      await target.query('insert into platform.api_tokens (token_hash, user_id) values ($1, $2)', [createHash('sha256').update(token).digest('hex'), user.user_id]);
      const reply = await setActiveOrganization(target, `Bearer ${token}`, { organizationId: user.org_id });
      expect(reply).toMatchObject({ status: 200, body: { success: true, activeOrgId: user.org_id } });
      chosen.push({ userId: user.user_id, orgId: user.org_id });
    }
    beforeRollback = await activeOrgs();
    expect(chosen.every(({ userId, orgId }) => beforeRollback.find((row) => row.id === userId)!.active_org_id === orgId)).toBe(true);

    const done = await rollbackRun(harness.deps, { runId: rolledBackRun, actor: ENGINEER });
    expect(done.state).toBe('rolled_back');
    const copies = done.outcome!.rollback!.backups!;
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatchObject({ object: { kind: 'column', schema: 'platform', table: 'users', column: 'active_org_id' }, keyColumns: ['id'], columns: ['id', 'active_org_id'], rows: beforeRollback.length });
    expect(copies[0]!.backupTable).toBe(`"runsheet_backup"."r_${rolledBackRun.replace(/-/g, '')}_users_active_org_id"`);
    const { rows: copied } = await target.query(`select id::text, active_org_id::text from ${copies[0]!.backupTable} order by id`);
    expect(copied).toEqual(beforeRollback);
    const { rows: column } = await target.query(`select 1 from information_schema.columns where table_schema = 'platform' and table_name = 'users' and column_name = 'active_org_id'`);
    expect(column).toEqual([]);

    const events = await readRunEvents(harness.store.pool, rolledBackRun);
    expect(eventsOf(events, 'backup.taken').map((event) => event.payload.copy)).toEqual(copies);
    const { rows: recorded } = await target.query('select backup_table, run_id::text, rows, sha256 from runsheet.backups');
    expect(recorded).toEqual([{ backup_table: copies[0]!.backupTable, run_id: rolledBackRun, rows: String(copies[0]!.rows), sha256: copies[0]!.sha256 }]);
    expect(await verifyStoredRunLog(harness.store.pool, rolledBackRun, [loadSigningKey(harness.signingKeyPem).publicKeyPem])).toMatchObject({ ok: true });
  });

  it('after a re-apply the backfill chose defaults; a TPM, a viewer and an engineer who did not type the target are refused', async () => {
    const runId = await appliedRun();
    reappliedRun = runId;
    const reapplied = await activeOrgs();
    expect(chosen.filter(({ userId, orgId }) => reapplied.find((row) => row.id === userId)!.active_org_id !== orgId)).toHaveLength(6);
    await expect(restoreRun(harness.deps, { runId, actor: TPM, typedTargetName: 'sandbox' })).rejects.toMatchObject({ kind: 'permission' });
    await expect(restoreRun(harness.deps, { runId, actor: VIEWER, typedTargetName: 'sandbox' })).rejects.toMatchObject({ kind: 'permission' });
    await expect(restoreRun(harness.deps, { runId, actor: ENGINEER })).rejects.toMatchObject({ kind: 'invalid_input' });
    // The checklist offers the restore; its intent is refused to a TPM there too.
    const plan = (await loadPlan(REAL_PLANS, PLAN)) as ValidPlan;
    const tpmUser: SignedInUser = { accountId: 'tpm', email: TPM.email, name: 'TPM', role: 'tpm', via: 'session' };
    const view = await loadChecklist(harness.deps, { plan, target: harness.deps.targets.get('sandbox'), targets: harness.deps.targets.list(), user: tpmUser });
    expect(view.restore).toEqual({ runId, fromRunId: rolledBackRun, backups: [`"runsheet_backup"."r_${rolledBackRun.replace(/-/g, '')}_users_active_org_id"`] });
    expect(view.may.restore).toBe(false);
    expect(await performChecklistIntent(harness.deps, { plan, target: harness.deps.targets.get('sandbox'), user: tpmUser, intent: { intent: 'restore', runId, typedTargetName: 'sandbox' } })).toMatchObject({ kind: 'refused', status: 403 });
    const events = await readRunEvents(harness.store.pool, runId);
    expect(eventsOf(events, 'action.refused').map((event) => event.payload.action)).toEqual(['restore', 'restore', 'restore']);
    expect(eventsOf(events, 'restore.refused')[0]!.payload.reason).toContain("type the target's name (sandbox)");
    expect(await activeOrgs()).toEqual(reapplied);
  });

  it('restores every value by primary key, skipping a user who is gone and values whose organization is gone, each named', async () => {
    // One user left (deleted); one chosen organization was deleted (the foreign key set its users' choice to NULL).
    const gone = chosen[5]!;
    const deletedOrg = chosen[4]!.orgId;
    await target.query('delete from platform.users where id = $1', [gone.userId]);
    await target.query('delete from platform.organizations where id = $1', [deletedOrg]);

    const beforeRestore = await activeOrgs();
    const result = await restoreRun(harness.deps, { runId: reappliedRun, actor: ENGINEER, typedTargetName: 'sandbox' });
    expect(result.fromRunId).toBe(rolledBackRun);
    const refusedByForeignKey = beforeRollback.filter((row) => row.active_org_id === deletedOrg).map((row) => row.id);
    expect(refusedByForeignKey).toContain(chosen[4]!.userId);
    // The row that is gone first, then each refused one in key order.
    expect(result.skipped.map((row) => row.key.id)).toEqual([gone.userId, ...refusedByForeignKey]);
    expect(result.skipped.find((row) => row.key.id === gone.userId)!.reason).toBe('the row no longer exists in platform.users');
    for (const row of result.skipped.filter((entry) => entry.key.id !== gone.userId)) expect(row.reason).toMatch(/violates foreign key constraint "users_active_org_id_fkey" \(23503\)$/);
    expect(result.objects[0]).toMatchObject({ rows: beforeRollback.length, skipped: result.skipped.length });
    expect(result.objects[0]!.restored).toBeGreaterThanOrEqual(4);
    expect(result.objects[0]!.restored + result.objects[0]!.unchanged + result.objects[0]!.skipped).toBe(beforeRollback.length);

    // Row by row against the target: every user still there has the value the rollback kept; a refused one keeps what it had.
    const skippedIds = new Set(result.skipped.map((row) => row.key.id));
    const expected = beforeRollback.filter((row) => row.id !== gone.userId).map((row) => (skippedIds.has(row.id) ? beforeRestore.find((now) => now.id === row.id)! : row));
    expect(await activeOrgs()).toEqual(expected);
    expect(chosen.slice(0, 4).every(({ userId, orgId }) => expected.find((row) => row.id === userId)!.active_org_id === orgId)).toBe(true);

    const events = await readRunEvents(harness.store.pool, reappliedRun);
    expect(eventsOf(events, 'restore.finished')[0]!.payload).toMatchObject({ fromRunId: rolledBackRun, ok: true, skipped: result.skipped });
    const { rows: recorded } = await target.query('select run_id::text, from_run_id::text, restored, skipped, restored_by from runsheet.restores');
    expect(recorded).toEqual([{ run_id: reappliedRun, from_run_id: rolledBackRun, restored: String(result.objects[0]!.restored), skipped: String(result.skipped.length), restored_by: ENGINEER.email }]);
    expect(await verifyStoredRunLog(harness.store.pool, reappliedRun, [loadSigningKey(harness.signingKeyPem).publicKeyPem])).toMatchObject({ ok: true });
  });

  it('npx runsheet backups lists them on the target', async () => {
    const { stdout } = await execFileAsync(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), 'backups', '--target', 'sandbox'], {
      cwd: ROOT,
      env: {
        NODE_ENV: 'test',
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: harness.storeDb.url,
        RUNSHEET_ALLOW_SUPERUSER: '1',
        SESSION_SECRET: 'x'.repeat(48),
        SIGNING_KEY: harness.signingKeyPem,
        TARGET_SANDBOX_URL: harness.targets.get('sandbox')!.db.url,
      },
    });
    expect(stdout.trim()).toMatch(new RegExp(`^"runsheet_backup"\\."r_${rolledBackRun.replace(/-/g, '')}_users_active_org_id"  run ${rolledBackRun}  ${PLAN}  ${beforeRollback.length} rows  \\d+ bytes  taken \\S+  restored 1×$`));
  });

  it('lists the backups with their age for cleanup, and never drops one', async () => {
    const listed = await listBackups(target);
    expect(listed).toEqual([expect.objectContaining({ runId: rolledBackRun, planId: PLAN, rows: beforeRollback.length, restores: 1 })]);
    expect(listed[0]!.ageMs).toBeGreaterThanOrEqual(0);
    const { rows } = await target.query(`select count(*)::int as n from ${listed[0]!.backupTable}`);
    expect(rows[0].n).toBe(beforeRollback.length);
  });

  it('refuses a restore from a copy changed since the rollback took it, or dropped from the target, saying which and what to do', async () => {
    const [copy] = (await listBackups(target)).map((backup) => backup.backupTable);
    const reapplied = await activeOrgs();
    // Someone edits the kept values by hand: the copy no longer matches its recorded checksum.
    const { rows } = await target.query<{ id: string; active_org_id: string | null }>(`select id::text, active_org_id::text from ${copy} where active_org_id is not null order by id limit 1`);
    await target.query(`update ${copy} set active_org_id = null where id = $1`, [rows[0]!.id]);
    const changed = await restoreRun(harness.deps, { runId: reappliedRun, actor: ENGINEER, typedTargetName: 'sandbox' }).catch((error: unknown) => error);
    expect(changed).toMatchObject({ kind: 'state' });
    expect((changed as Error).message).toMatch(new RegExp(`^Refused: the copy ${escapeRegExp(copy!)} changed since run ${rolledBackRun}'s rollback took it \\(sha256 now [0-9a-f]{12}, recorded [0-9a-f]{12}\\): nothing was restored`));
    await target.query(`update ${copy} set active_org_id = $2 where id = $1`, [rows[0]!.id, rows[0]!.active_org_id]);

    // Someone drops it: the restore says so before anything changes, and where the remaining copies are listed.
    await target.query(`drop table ${copy}`);
    const dropped = await restoreRun(harness.deps, { runId: reappliedRun, actor: ENGINEER, typedTargetName: 'sandbox' }).catch((error: unknown) => error);
    expect(dropped).toMatchObject({ kind: 'state' });
    expect((dropped as Error).message).toBe(
      `Refused: the copy ${copy} that run ${rolledBackRun}'s rollback kept is no longer on sandbox (dropped?): nothing was restored; npx runsheet backups --target sandbox lists the copies that remain.`,
    );
    expect(await activeOrgs()).toEqual(reapplied);
    const events = await readRunEvents(harness.store.pool, reappliedRun);
    expect(eventsOf(events, 'restore.refused').slice(-2).map((event) => event.payload.fromRunId)).toEqual([rolledBackRun, rolledBackRun]);
    expect(eventsOf(events, 'restore.started')).toHaveLength(1);
  });
});
