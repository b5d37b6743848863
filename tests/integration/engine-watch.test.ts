/**
 * Issue "After the run" (docs/decisions/030), the watch window, with plan 008 on a sandbox target
 * and a watch of a few seconds' period: each round's results recorded and signed (unchanged rounds
 * as a count); a regression injected by SQL mid-watch turns the run watch_alarm naming the check,
 * its expected and actual values and when it last passed; a clean window ends watched (and opens
 * require_watched_on elsewhere); with two runner processes only one runs the watch, and when its
 * process is killed the other takes over.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mayRollBackFrom } from '../../db/run-lifecycle';
import { executeRun, rollbackRun } from '../../app/engine/engine.server';
import { evaluateGates } from '../../app/engine/gates.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { advanceWatch, claimWatches, endWatch, extendWatch, readWatch } from '../../app/engine/watch.server';
import { eventsOf } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { findRun } from '../../app/runs/run-store.server';
import { loadSigningKey } from '../../app/runs/signing.server';
import { verifyStoredRunLog } from '../../app/runs/verify-run-log.server';
import { ENGINEER, REAL_PLANS, ROOT, startEngineHarness, TPM, VIEWER, waitFor, type EngineHarness } from './engine-harness';
import type { WatchWorkerJob } from './watch-worker';
import { loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import { loadChecklist, performChecklistIntent } from '../../app/web/plan-page.server';
import type { SignedInUser } from '../../app/auth/require.server';
import { testAdminUrl } from '../support/databases';

const TPM_USER: SignedInUser = { accountId: 'tpm', email: TPM.email, name: 'TPM', role: 'tpm', via: 'session' };
const VIEWER_USER: SignedInUser = { accountId: 'viewer', email: VIEWER.email, name: 'Viewer', role: 'viewer', via: 'session' };

const PLAN = '008-add-active-org-tracking';
const RUNNER = 'test-runner:1';
let harness: EngineHarness;
let plansDir: string;

/** Plan 008 with a watch: its verification and data-quality checks named, and one check only the watch runs. */
function writeWatchPlan(forDuration: string, options: { slowCheck?: boolean } = {}): void {
  const file = path.join(plansDir, PLAN, 'plan.yaml');
  const document = parseDocument(fs.readFileSync(path.join(REAL_PLANS, PLAN, 'plan.yaml'), 'utf8'));
  document.set('watch', {
    for: forDuration,
    every: '1s',
    checks: ['column-added', 'index-valid-partial', 'active-org-is-a-membership'],
    extra_checks: [
      {
        id: 'index-in-use',
        kind: 'sql',
        title: 'pg_stat_user_indexes knows idx_users_active_org',
        sql: "SELECT count(*) AS known FROM pg_stat_user_indexes WHERE schemaname = 'platform' AND indexrelname = 'idx_users_active_org'",
        expect: { type: 'value', column: 'known', op: '=', value: 1 },
      },
      // A check that takes seconds: something can happen to the target while a round runs.
      ...(options.slowCheck
        ? [{ id: 'users-counted-slowly', kind: 'sql', title: 'platform.users counted, slowly', sql: 'SELECT count(*) AS users FROM platform.users, pg_sleep(3)', expect: { type: 'value', column: 'users', op: '>', value: 0 } }]
        : []),
    ],
  });
  fs.writeFileSync(file, document.toString());
}

async function appliedRun(forDuration: string, options: { slowCheck?: boolean } = {}): Promise<string> {
  writeWatchPlan(forDuration, options);
  const { run } = await openWorkingRun(harness.deps, { planId: PLAN, target: 'sandbox', kind: 'execute', actor: TPM, newAttempt: true });
  for (const item of thawPlan(run.frozenPlan).plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
  }
  await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  const done = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
  expect(done.outcome?.failure).toBeUndefined();
  expect(done.state).toBe('watching');
  applied.push(run.id);
  return run.id;
}

/** Runs a test applied: each is rolled back after its test (if the test did not), so the next one applies again. */
const applied: string[] = [];
afterEach(async () => {
  for (const runId of applied.splice(0)) {
    const run = await findRun(harness.store.pool, runId);
    if (run && mayRollBackFrom(run.state)) await rollbackRun(harness.deps, { runId, actor: ENGINEER }).catch(() => {});
  }
});

/** Claims and advances the watch as runner RUNNER until `until` says it did what was awaited. */
async function advanceUntil(runId: string, want: 'round' | 'closed'): Promise<void> {
  await waitFor(`a watch ${want}`, async () => {
    await claimWatches(harness.deps, { runner: RUNNER, runId });
    return (await advanceWatch(harness.deps, runId, { runner: RUNNER })) === want;
  });
}

const stateOf = async (runId: string) => (await findRun(harness.store.pool, runId))!.state;
const logVerifies = async (runId: string) => verifyStoredRunLog(harness.store.pool, runId, [loadSigningKey(harness.signingKeyPem).publicKeyPem]);

beforeAll(async () => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-watch-plans-'));
  fs.cpSync(path.join(REAL_PLANS, PLAN), path.join(plansDir, PLAN), { recursive: true });
  harness = await startEngineHarness({
    plansDir,
    targets: [
      { name: 'sandbox', sandboxUsers: 300 },
      { name: 'production', sandboxUsers: 50, rules: { require_watched_on: ['sandbox'] } },
    ],
  });
});

afterAll(async () => {
  await harness?.close();
  fs.rmSync(plansDir, { recursive: true, force: true });
});

describe('the watch window of plan 008', () => {
  it('records rounds (changed ones in full, unchanged ones as a count), alarms on a regression naming the check, and keeps watching in watch_alarm', async () => {
    const runId = await appliedRun('6s');
    const watch = (await readWatch(harness.store.pool, runId))!;
    expect(watch.checks).toEqual(['column-added', 'index-valid-partial', 'active-org-is-a-membership', 'index-in-use']);
    const started = eventsOf(await readRunEvents(harness.store.pool, runId), 'watch.started')[0]!;
    expect(started.payload).toMatchObject({ everyMs: 1_000, forMs: 6_000 });

    await advanceUntil(runId, 'round');
    await advanceUntil(runId, 'round');
    let events = await readRunEvents(harness.store.pool, runId);
    expect(eventsOf(events, 'watch.runner').map((event) => event.payload)).toEqual([{ runner: RUNNER, previous: null, reason: 'first claim: nobody ran the watch yet' }]);
    const rounds = eventsOf(events, 'watch.round');
    // The second round changed nothing: the log keeps only the first, in full.
    expect(rounds).toHaveLength(1);
    expect(rounds[0]!.payload).toMatchObject({ round: 1, runner: RUNNER, passed: true, failed: [], unchanged: [], unchangedRounds: 0 });
    expect(rounds[0]!.payload.results.map((result) => result.checkId)).toEqual(['column-added', 'index-valid-partial', 'active-org-is-a-membership', 'index-in-use']);
    expect((await readWatch(harness.store.pool, runId))!.unchanged_rounds).toBe(1);

    // A user's active organization now points at one they are not a member of.
    await harness.targets.get('sandbox')!.pool.query(`
      update platform.users as u
         set active_org_id = (select o.id from platform.organizations as o
                               where not exists (select 1 from platform.organization_members as m where m.user_id = u.id and m.organization_id = o.id)
                               order by o.id limit 1)
       where u.id = (select id from platform.users where active_org_id is not null order by id limit 1)`);
    await advanceUntil(runId, 'round');
    expect(await stateOf(runId)).toBe('watch_alarm');
    events = await readRunEvents(harness.store.pool, runId);
    const alarm = eventsOf(events, 'watch.alarm');
    expect(alarm).toHaveLength(1);
    expect(alarm[0]!.payload).toMatchObject({
      round: 3,
      checkId: 'active-org-is-a-membership',
      title: "Every active_org_id is one of the user's own memberships",
      expected: { type: 'value', column: 'offenders', op: '=', value: 0 },
      actual: '1',
    });
    // It last passed in round 2 (unchanged, so kept only as a count): after round 1, before the alarm.
    const lastPassedAt = alarm[0]!.payload.lastPassedAt!;
    expect(lastPassedAt > rounds[0]!.payload.results.find((result) => result.checkId === 'active-org-is-a-membership')!.ranAt).toBe(true);
    expect(lastPassedAt < alarm[0]!.payload.ranAt).toBe(true);
    const third = eventsOf(events, 'watch.round').at(-1)!;
    expect(third.payload).toMatchObject({ round: 3, passed: false, failed: ['active-org-is-a-membership'], unchangedRounds: 1 });
    expect(third.payload.results.map((result) => result.checkId)).toEqual(['active-org-is-a-membership']);
    expect(third.payload.unchanged).toEqual(['column-added', 'index-valid-partial', 'index-in-use']);
    expect(await logVerifies(runId)).toMatchObject({ ok: true });

    // The watch goes on in watch_alarm: the same failure again is no second alarm; then the window closes, not clean.
    await advanceUntil(runId, 'closed');
    events = await readRunEvents(harness.store.pool, runId);
    expect(eventsOf(events, 'watch.alarm')).toHaveLength(1);
    expect(eventsOf(events, 'watch.ended')[0]!.payload).toMatchObject({ reason: 'window_closed', clean: false, alarms: 1 });
    expect(await stateOf(runId)).toBe('watch_alarm');
    expect((await findRun(harness.store.pool, runId))!.outcome?.watch).toMatchObject({ endedBy: 'window_closed', alarms: [{ checkId: 'active-org-is-a-membership', round: 3 }] });
    expect(await logVerifies(runId)).toMatchObject({ ok: true });

    const rolledBack = await rollbackRun(harness.deps, { runId, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
  });

  it('ends watched when the window closes clean, which opens require_watched_on on production; a TPM may extend it, a viewer may not', async () => {
    const runId = await appliedRun('3s');
    // The same checksum on production: its gate waits for a clean window on sandbox.
    const production = (await openWorkingRun(harness.deps, { planId: PLAN, target: 'production', kind: 'execute', actor: TPM, newAttempt: true })).run;
    expect(production.planChecksum).toBe((await findRun(harness.store.pool, runId))!.planChecksum);
    const before = (await evaluateGates(harness.deps, production)).find((gate) => gate.id === 'watched-on:sandbox')!;
    expect(before).toMatchObject({ passed: false });

    await expect(extendWatch(harness.deps, { runId, actor: VIEWER, byMs: 1_000 })).rejects.toMatchObject({ kind: 'permission' });
    const extended = await extendWatch(harness.deps, { runId, actor: TPM, byMs: 1_000, note: 'one more round' });
    expect(extended.outcome?.watch?.endsAt).toBe(eventsOf(await readRunEvents(harness.store.pool, runId), 'watch.extended')[0]!.payload.endsAt);

    await advanceUntil(runId, 'closed');
    expect(await stateOf(runId)).toBe('watched');
    const events = await readRunEvents(harness.store.pool, runId);
    const ended = eventsOf(events, 'watch.ended')[0]!;
    expect(ended.payload).toMatchObject({ reason: 'window_closed', clean: true, alarms: 0 });
    // Rounds that changed nothing are a count, never events.
    const kept = eventsOf(events, 'watch.round').length;
    expect(ended.payload.rounds).toBeGreaterThan(kept);
    expect(ended.payload.rounds).toBe(kept + ended.payload.unchangedRounds + eventsOf(events, 'watch.round').slice(1).reduce((sum, event) => sum + event.payload.unchangedRounds, 0));
    expect(await logVerifies(runId)).toMatchObject({ ok: true });

    const after = (await evaluateGates(harness.deps, production)).find((gate) => gate.id === 'watched-on:sandbox')!;
    expect(after).toMatchObject({ passed: true });
    // The ledger still says applied, and the applied-on rule counts a watched run.
    const rolledBack = await rollbackRun(harness.deps, { runId, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
  });

  it('with two runner processes only one runs the watch; when its process is killed the other takes over; a TPM ends it early with a note', { timeout: 240_000 }, async () => {
    const runId = await appliedRun('120s');
    const job: WatchWorkerJob = {
      storeUrl: harness.storeDb.url,
      plansDir,
      signingKeyPem: harness.signingKeyPem,
      targets: [{ name: 'sandbox', url: harness.targets.get('sandbox')!.db.url }],
      // A heartbeat every 250 ms; stale after 5 s, so a runner slowed down by a busy machine is not taken over.
      pollMs: 250,
      staleAfterMs: 5_000,
    };
    const workers = [startWorker(job), startWorker(job)];
    try {
      const firstClaim = await waitFor('a runner', async () => eventsOf(await readRunEvents(harness.store.pool, runId), 'watch.runner')[0], 60_000);
      const first = firstClaim.payload.runner;
      const firstWorker = workers.find((worker) => first.endsWith(`:${worker.pid}`))!;
      const other = workers.find((worker) => worker !== firstWorker)!;
      await waitFor('three rounds', async () => ((await readWatch(harness.store.pool, runId))!.rounds >= 3 ? true : undefined), 60_000);
      let events = await readRunEvents(harness.store.pool, runId);
      expect(eventsOf(events, 'watch.runner')).toHaveLength(1);
      expect(new Set(eventsOf(events, 'watch.round').map((event) => event.payload.runner))).toEqual(new Set([first]));

      firstWorker.kill('SIGKILL');
      const takeover = await waitFor('a takeover', async () => eventsOf(await readRunEvents(harness.store.pool, runId), 'watch.runner')[1], 60_000);
      expect(takeover.payload).toMatchObject({ runner: expect.stringMatching(new RegExp(`:${other.pid}$`)), previous: first });
      expect(takeover.payload.reason).toMatch(/^took over: the watch's runner .* had not sent a heartbeat for \d+ s$/);
      const roundsAtTakeover = (await readWatch(harness.store.pool, runId))!.rounds;
      await waitFor('a round by the new runner', async () => ((await readWatch(harness.store.pool, runId))!.rounds > roundsAtTakeover ? true : undefined), 60_000);
      expect((await readWatch(harness.store.pool, runId))!.runner).toBe(takeover.payload.runner);

      await expect(endWatch(harness.deps, { runId, actor: TPM, note: '  ' })).rejects.toMatchObject({ kind: 'invalid_input' });
      // The checklist shows the strip; a viewer may not end the watch there, a TPM may.
      const plan = (await loadPlan(plansDir, PLAN)) as ValidPlan;
      const page = (user: SignedInUser) => ({ plan, target: harness.deps.targets.get('sandbox'), user });
      const view = await loadChecklist(harness.deps, { ...page(TPM_USER), targets: harness.deps.targets.list() });
      expect(view.watch).toMatchObject({ runId, running: true, strip: { checks: ['column-added', 'index-valid-partial', 'active-org-is-a-membership', 'index-in-use'], ended: null } });
      expect(view.watch!.strip.rounds[0]).toMatchObject({ round: 1, passed: true });
      expect(view.may.endWatch).toBe(true);
      expect(await performChecklistIntent(harness.deps, { ...page(VIEWER_USER), intent: { intent: 'end-watch', runId, note: 'no' } })).toMatchObject({ kind: 'refused', status: 403 });
      expect(await performChecklistIntent(harness.deps, { ...page(TPM_USER), intent: { intent: 'end-watch', runId, note: 'error logs and query times checked by hand: all clear' } })).toMatchObject({
        kind: 'done',
        message: 'Watch ended early: the run is watched.',
      });
      const ended = (await findRun(harness.store.pool, runId))!;
      expect(ended.state).toBe('watched');
      events = await readRunEvents(harness.store.pool, runId);
      expect(eventsOf(events, 'watch.ended')[0]!.payload).toMatchObject({ reason: 'ended_early', clean: true, note: 'error logs and query times checked by hand: all clear' });
      expect(await logVerifies(runId)).toMatchObject({ ok: true });
    } finally {
      for (const worker of workers) worker.kill('SIGKILL');
    }
    const rolledBack = await rollbackRun(harness.deps, { runId, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
  });

  it('a round whose target cannot be reached is recorded as such, with no alarm; the next reachable round is kept in full', async () => {
    const runId = await appliedRun('120s');
    await advanceUntil(runId, 'round');
    // The target refuses every new connection, and its open ones are gone: a database down for a while.
    const database = harness.targets.get('sandbox')!.db.name;
    const admin = new pg.Client({ connectionString: testAdminUrl() });
    await admin.connect();
    try {
      await admin.query(`alter database ${pg.escapeIdentifier(database)} allow_connections false`);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [database]);
      await advanceUntil(runId, 'round');
    } finally {
      await admin.query(`alter database ${pg.escapeIdentifier(database)} allow_connections true`);
      await admin.end();
    }
    expect(await stateOf(runId)).toBe('watching');
    let events = await readRunEvents(harness.store.pool, runId);
    expect(eventsOf(events, 'watch.alarm')).toEqual([]);
    const outage = eventsOf(events, 'watch.round').at(-1)!;
    expect(outage.payload).toMatchObject({ round: 2, runner: RUNNER, passed: false, failed: [], results: [], unchanged: [] });
    expect(outage.payload.unreachable).toMatch(/^the target sandbox could not be reached: .*not currently accepting connections/);

    // Back: the next round runs every check again and is kept in full, all passing.
    await advanceUntil(runId, 'round');
    events = await readRunEvents(harness.store.pool, runId);
    const back = eventsOf(events, 'watch.round').at(-1)!;
    expect(back.payload).toMatchObject({ round: 3, passed: true, failed: [], unchanged: [] });
    expect(back.payload.unreachable).toBeUndefined();
    expect(back.payload.results.map((result) => result.checkId)).toEqual(['column-added', 'index-valid-partial', 'active-org-is-a-membership', 'index-in-use']);
    expect(eventsOf(events, 'watch.alarm')).toEqual([]);
    expect(await logVerifies(runId)).toMatchObject({ ok: true });
    // The strip draws the outage as its own mark, neither passed nor failing.
    const plan = (await loadPlan(plansDir, PLAN)) as ValidPlan;
    const view = await loadChecklist(harness.deps, { plan, target: harness.deps.targets.get('sandbox'), targets: harness.deps.targets.list(), user: TPM_USER });
    expect(view.watch!.strip.rounds.map((round) => [round.round, round.passed, round.unreachable])).toEqual([
      [1, true, null],
      [2, false, outage.payload.unreachable],
      [3, true, null],
    ]);
  });

  it('a target lost in the middle of a round makes it an outage round, not an alarm for the check it cut short', { timeout: 120_000 }, async () => {
    const runId = await appliedRun('120s', { slowCheck: true });
    await advanceUntil(runId, 'round');
    const database = harness.targets.get('sandbox')!.db.name;
    const admin = new pg.Client({ connectionString: testAdminUrl() });
    await admin.connect();
    try {
      const round = advanceUntil(runId, 'round');
      // The slow check is running: now the target goes down (its sessions ended, no new ones accepted).
      await waitFor('the slow check to run', async () => {
        const { rows } = await admin.query<{ n: number }>(
          "select count(*)::int as n from pg_stat_activity where datname = $1 and state = 'active' and query like '%pg_sleep(3)%' and pid <> pg_backend_pid()",
          [database],
        );
        return rows[0]!.n > 0;
      });
      await admin.query(`alter database ${pg.escapeIdentifier(database)} allow_connections false`);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [database]);
      await round;
    } finally {
      await admin.query(`alter database ${pg.escapeIdentifier(database)} allow_connections true`);
      await admin.end();
    }
    expect(await stateOf(runId)).toBe('watching');
    const events = await readRunEvents(harness.store.pool, runId);
    expect(eventsOf(events, 'watch.alarm')).toEqual([]);
    const outage = eventsOf(events, 'watch.round').at(-1)!;
    expect(outage.payload).toMatchObject({ round: 2, passed: false, failed: [], results: [] });
    // In the server's words: a new connection refused, or a pooled one that was ended under it.
    expect(outage.payload.unreachable).toMatch(/^the target sandbox could not be reached: (.*not currently accepting connections|terminating connection due to administrator command)/);
  });

  it('a rollback started while watching ends the watch first', async () => {
    const runId = await appliedRun('120s');
    await advanceUntil(runId, 'round');
    const rolledBack = await rollbackRun(harness.deps, { runId, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
    const events = await readRunEvents(harness.store.pool, runId);
    const ended = eventsOf(events, 'watch.ended')[0]!;
    expect(ended.payload).toMatchObject({ reason: 'rolled_back', clean: true });
    expect(events.findIndex((event) => event.type === 'watch.ended')).toBeLessThan(events.findIndex((event) => event.type === 'phase.started' && event.payload.phase === 'rollback'));
    expect((await readWatch(harness.store.pool, runId))!.status).toBe('ended');
    expect(await advanceWatch(harness.deps, runId, { runner: RUNNER })).toBe('idle');
  });
});

describe('npx runsheet watch <run>', () => {
  it('runs the watch in the command line where no server runs, printing rounds, unchanged ones and the end as they come', { timeout: 120_000 }, async () => {
    const runId = await appliedRun('120s');
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), 'watch', runId], {
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
        RUNSHEET_PLANS_DIR: plansDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitFor('two rounds printed', async () => stdout.includes('Round 2: unchanged.'), 60_000);
      await endWatch(harness.deps, { runId, actor: TPM, note: 'seen enough' });
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr).toBe('');
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^Watch: column-added, index-valid-partial, active-org-is-a-membership, index-in-use every 1s until \d{4}-.+Z\.$/);
    expect(lines.slice(1, 3)).toEqual([expect.stringMatching(/^Run: applied → watching \(the plan's watch: 4 check\(s\) every 1s for 2m\)\.$/), expect.stringMatching(/^Runner .+: first claim: nobody ran the watch yet\.$/)]);
    expect(lines[3]).toBe('Round 1: all passed; changed: column-added passed, index-valid-partial passed, active-org-is-a-membership passed, index-in-use passed.');
    expect(lines[4]).toBe('Round 2: unchanged.');
    expect(lines.slice(-2)).toEqual(['Watch ended (ended early): clean, ' + lines.at(-2)!.split('clean, ')[1], 'Run: watching → watched (tpm@example.com ended the watch early: seen enough).']);
    expect(lines.at(-2)).toMatch(/^Watch ended \(ended early\): clean, \d+ round\(s\); note: seen enough\.$/);
    await rollbackRun(harness.deps, { runId, actor: ENGINEER });
  });
});

function startWorker(job: WatchWorkerJob): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'tests/integration/watch-worker.ts')], {
    cwd: ROOT,
    env: { ...process.env, WATCH_WORKER: JSON.stringify(job) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
