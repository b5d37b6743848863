/**
 * Issue "Safe at production scale", done-when (lint as a gate): on a target that requires
 * lint-clean plans, a plan held to squawk's lock rules (lint_gate: strict) that builds an index
 * the blocking way is refused until an engineer waives that finding in the run, with a reason.
 * The waiver names plan, checksum, file, line and rule, who and why; it is a 'lint.waived' event
 * in the run log, honoured by that run's gate only. From the engine and from `runsheet waive`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccount } from '../../app/accounts/accounts.server';
import { executeRun } from '../../app/engine/engine.server';
import { openWorkingRun, getRun, readRunDetail } from '../../app/engine/runs.server';
import { waiveLintFinding } from '../../app/engine/waive-lint.server';
import { newSigningKeyPem } from '../../app/runs/run-log-fixtures';
import { readRunEvents } from '../../app/runs/run-log.server';
import { migrateStore, openStore, type Store } from '../../app/runtime/store.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ENGINEER, ROOT, startEngineHarness, TPM, type EngineHarness } from './engine-harness';
import { RunsheetError } from '../../app/runtime/errors';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

const PLANS = path.join(ROOT, 'tests/fixtures/plans-big-table');
const PLAN = 'lint-strict';
const FILE = 'plans-big-table/lint-strict/apply.sql';
const FINDING = { file: 'apply.sql', line: 2, rule: 'require-concurrent-index-creation' };
const REASON = 'public.lint_t holds 40 rows on this target: the build takes milliseconds';

describe('waivers on the engine', () => {
  let harness: EngineHarness;

  beforeAll(async () => {
    harness = await startEngineHarness({ plansDir: PLANS, targets: [{ name: 'strict', rules: { require_lint_clean: true } }] });
    await harness.targets.get('strict')!.pool.query('create table public.lint_t (id int primary key, n int); insert into public.lint_t select g, g % 7 from generate_series(1, 40) as g');
  });

  afterAll(async () => {
    await harness?.close();
  });

  const lintGate = async (runId: string) => (await readRunDetail(harness.deps, runId, { gates: true })).gates!.find((gate) => gate.id === 'lint-clean')!;

  it('keeps the gate closed on a finding the strict gate counts, names it, and refuses to execute', async () => {
    const run = await openRun(harness.deps, { planId: PLAN, target: 'strict', kind: 'execute', actor: TPM });
    expect(run.state).toBe('draft');
    expect(await lintGate(run.id)).toMatchObject({ passed: false, detail: `not waived: ${FILE}:2 require-concurrent-index-creation` });
    const refusal = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER }).catch((error) => error);
    expect(refusal).toMatchObject({ kind: 'gate' });
    expect((refusal as RunsheetError).gates!.map((gate) => gate.id)).toEqual(['lint-clean']);
  });

  it('refuses a waiver from a TPM, without a real reason, or of a finding the plan does not have; all logged', async () => {
    const run = await openRun(harness.deps, { planId: PLAN, target: 'strict', kind: 'execute', actor: TPM });
    await expect(waiveLintFinding(harness.deps, { runId: run.id, finding: FINDING, reason: REASON, actor: TPM })).rejects.toMatchObject({ kind: 'permission' });
    await expect(waiveLintFinding(harness.deps, { runId: run.id, finding: FINDING, reason: 'ok', actor: ENGINEER })).rejects.toThrow(/reason of at least 10 characters/);
    const unknown = await waiveLintFinding(harness.deps, { runId: run.id, finding: { ...FINDING, line: 7 }, reason: REASON, actor: ENGINEER }).catch((error) => error);
    expect(unknown).toMatchObject({ kind: 'invalid_input' });
    expect(unknown.message).toContain(`Its findings: ${FILE}:2 require-concurrent-index-creation`);
    const refused = (await readRunEvents(harness.store.pool, run.id)).filter((event) => event.type === 'action.refused');
    expect(refused.map((event) => [event.actor, event.payload.action])).toEqual([
      [TPM.email, 'execute'],
      [ENGINEER.email, 'lint.waived'],
      [ENGINEER.email, 'lint.waived'],
    ]);
  });

  it('a waiver by an engineer opens the gate of that run only, and is in its log with who and why', async () => {
    const run = await openRun(harness.deps, { planId: PLAN, target: 'strict', kind: 'execute', actor: TPM });
    const { waiver, event } = await waiveLintFinding(harness.deps, { runId: run.id, finding: FINDING, reason: `  ${REASON}  `, actor: ENGINEER });
    expect(event!.type).toBe('lint.waived');
    expect(event!.actor).toBe(ENGINEER.email);
    expect(event!.role).toBe('engineer');
    expect(event!.payload).toEqual({
      planId: PLAN,
      checksum: run.planChecksum,
      file: FILE,
      line: 2,
      rule: 'require-concurrent-index-creation',
      level: 'warning',
      message: expect.any(String),
      reason: REASON,
    });
    expect(waiver).toMatchObject({ planId: PLAN, checksum: run.planChecksum, file: FILE, line: 2, by: ENGINEER.email, reason: REASON });
    // Waiving it again changes nothing.
    expect((await waiveLintFinding(harness.deps, { runId: run.id, finding: FINDING, reason: REASON, actor: ENGINEER })).event).toBeUndefined();

    expect((await getRun(harness.deps, run.id)).state).toBe('ready');
    expect(await lintGate(run.id)).toMatchObject({ passed: true, detail: expect.stringContaining(`waived: ${FILE}:2 require-concurrent-index-creation by ${ENGINEER.email} (${REASON})`) });

    const applied = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(applied).toMatchObject({ state: 'applied', outcome: { verified: true } });
    // The next attempt (one open run per plan and target: a new one once this one ran) carries no waiver.
    const other = await openRun(harness.deps, { planId: PLAN, target: 'strict', kind: 'execute', actor: TPM });
    expect(other.id).not.toBe(run.id);
    expect((await lintGate(other.id)).passed).toBe(false);
    const started = (await readRunEvents(harness.store.pool, run.id)).find((item) => item.type === 'execute.started')!;
    expect((started.payload.gates as { id: string; passed: boolean }[]).find((gate) => gate.id === 'lint-clean')).toMatchObject({ passed: true });
    await expect(waiveLintFinding(harness.deps, { runId: run.id, finding: FINDING, reason: REASON, actor: ENGINEER })).rejects.toThrow(/is applied; a finding is waived before the run executes/);
  });
});

describe('runsheet waive', () => {
  let storeDb: TestDatabase;
  let productionDb: TestDatabase;
  let store: Store;
  let env: NodeJS.ProcessEnv;
  const run = promisify(execFile);

  async function runsheet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), ...args], { env, cwd: ROOT });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failure = error as { code: number; stdout: string; stderr: string };
      return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
    }
  }

  beforeAll(async () => {
    [storeDb, productionDb] = await Promise.all([createTestDatabase('cli_waive_store'), createTestDatabase('cli_waive_production')]);
    store = openStore(storeDb.url);
    await migrateStore(store);
    await createAccount(store.db, { email: 'engineer@example.com', role: 'engineer', actor: { name: 'test' } });
    await createAccount(store.db, { email: 'tpm@example.com', role: 'tpm', actor: { name: 'test' } });
    env = {
      NODE_ENV: 'test',
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: storeDb.url,
      // One superuser for the whole test store (the two-role set-up has its own test).
      RUNSHEET_ALLOW_SUPERUSER: '1',
      SESSION_SECRET: randomBytes(32).toString('hex'),
      SIGNING_KEY: newSigningKeyPem(),
      RUNSHEET_PLANS_DIR: PLANS,
      // production's rules (runsheet.config.ts) require lint-clean plans.
      TARGET_PRODUCTION_URL: productionDb.url,
    };
  });

  afterAll(async () => {
    await store?.close();
    await Promise.all([storeDb?.drop(), productionDb?.drop()]);
  });

  it('waives a finding for the open run as an engineer (exit 0), and refuses a TPM (1) and a bad line (2)', async () => {
    const args = ['waive', PLAN, '--target', 'production', '--rule', FINDING.rule, '--file', FILE, '--line', '2', '--reason', REASON];
    const tpm = await runsheet(...args, '--as', 'tpm@example.com');
    expect(tpm.code).toBe(1);
    expect(tpm.stderr).toMatch(/tpm@example.com \(tpm\) may not execute/);
    const badLine = await runsheet(...args.slice(0, -4), '--line', 'two', '--reason', REASON, '--as', 'engineer@example.com');
    expect(badLine.code).toBe(2);

    const waived = await runsheet(...args, '--as', 'engineer@example.com');
    expect(waived.code, waived.stdout + waived.stderr).toBe(0);
    expect(waived.stdout).toMatch(new RegExp(`Waived require-concurrent-index-creation at ${FILE}:2 for run [0-9a-f-]{36} by engineer@example.com: ${REASON}`));
    expect(waived.stdout).toMatch(/✓ No squawk finding about locks or rewrites, unless waived \(strict\): every finding the gate counts is waived/);
    const { rows } = await store.pool.query(`select actor, payload from run_events where type = 'lint.waived'`);
    expect(rows).toEqual([{ actor: 'engineer@example.com', payload: expect.objectContaining({ planId: PLAN, file: FILE, line: 2, rule: FINDING.rule, reason: REASON }) }]);
  });
});
