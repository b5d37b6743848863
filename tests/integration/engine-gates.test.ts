/**
 * Issue "Execution engine", done-when: the four-eyes and staging-before-production gates refuse
 * and then allow, on the engine and from the command line. Rules come from runsheet.config.ts
 * (staging: require_signoff; production: require_signoff, require_applied_on [staging],
 * confirm_target_name, require_lint_clean).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import runsheetConfig from '../../runsheet.config';
import { createAccount } from '../../app/accounts/accounts.server';
import { executeRun } from '../../app/engine/engine.server';
import { openWorkingRun, getRun, runRunChecks, signOff, tickPrerequisite } from '../../app/engine/runs.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { createTargetRegistry } from '../../app/targets/target-registry.server';
import { listAudit } from '../../app/audit/audit-log.server';
import { readRunEvents } from '../../app/runs/run-log.server';
import { migrateStore, openStore, type Store } from '../../app/runtime/store.server';
import { generateSandbox } from '../../app/sandbox/generate-sandbox.server';
import { newSigningKeyPem } from '../../app/runs/run-log-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ENGINE_PLANS, ENGINEER, ledgerRows, ROOT, startEngineHarness, TPM, type EngineHarness } from './engine-harness';
import { RunsheetError } from '../../app/runtime/errors';
import { findRuns } from '../../app/runs/run-store.server';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

const openGateIds = (error: unknown) => (error as RunsheetError).gates!.map((gate) => gate.id);

describe('gates on the engine', () => {
  let harness: EngineHarness;

  beforeAll(async () => {
    harness = await startEngineHarness({
      plansDir: ENGINE_PLANS,
      targets: [
        { name: 'staging', rules: runsheetConfig.targets.staging },
        { name: 'production', rules: runsheetConfig.targets.production },
      ],
    });
  });

  afterAll(async () => {
    await harness?.close();
  });

  const open = (target: string) => openRun(harness.deps, { planId: 'create-table', target, kind: 'execute', actor: TPM });

  it('four-eyes: refuses without a sign-off and with only the executor\'s, allows with another person\'s', async () => {
    const run = await open('staging');
    expect(run.state).toBe('draft');
    const unsigned = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER }).catch((error) => error);
    expect(unsigned).toMatchObject({ kind: 'gate' });
    expect(openGateIds(unsigned)).toEqual(['signoff']);
    expect(unsigned.message).toMatch(/nobody has signed off yet/);

    await signOff(harness.deps, { runId: run.id, actor: ENGINEER });
    expect((await getRun(harness.deps, run.id)).state).toBe('ready');
    const self = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER }).catch((error) => error);
    expect(openGateIds(self)).toEqual(['signoff']);
    expect(self.message).toMatch(/signed off only by engineer@example.com, who cannot also execute/);

    await signOff(harness.deps, { runId: run.id, actor: TPM });
    const applied = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(applied).toMatchObject({ state: 'applied', outcome: { verified: true } });
    const refusals = (await readRunEvents(harness.store.pool, run.id)).filter((event) => event.type === 'execute.refused');
    expect(refusals).toHaveLength(2);
  });

  it('staging before production, and the typed target name: refuses, then allows', async () => {
    // The previous test applied and verified this checksum on staging.
    expect(await findRuns(harness.store.pool, { target: 'staging', states: ['applied'] })).toHaveLength(1);
    {
      const production = await open('production');
      await signOff(harness.deps, { runId: production.id, actor: TPM });
      const typedWrong = await executeRun(harness.deps, { runId: production.id, actor: ENGINEER, typedTargetName: 'prod' }).catch((error) => error);
      expect(openGateIds(typedWrong)).toEqual(['confirm-target-name']);
      expect(typedWrong.message).toMatch(/typed "prod", not "production"/);

      // Staging rebuilt (its ledger gone): the gate is open again, although the store remembers the run.
      const staging = harness.targets.get('staging')!.pool;
      await staging.query('alter schema runsheet rename to runsheet_before_rebuild');
      try {
        const refused = await executeRun(harness.deps, { runId: production.id, actor: ENGINEER, typedTargetName: 'production' }).catch((error) => error);
        expect(openGateIds(refused)).toEqual(['applied-on:staging']);
        expect(refused.message).toMatch(/does not record checksum .* as applied/);
      } finally {
        await staging.query('alter schema runsheet_before_rebuild rename to runsheet');
      }

      const applied = await executeRun(harness.deps, { runId: production.id, actor: ENGINEER, typedTargetName: 'production' });
      expect(applied).toMatchObject({ state: 'applied', outcome: { verified: true } });
      expect(await ledgerRows(harness.targets.get('production')!.pool)).toHaveLength(1);
    }
  });

  it('refuses production when staging never applied the checksum', async () => {
    const other = await startEngineHarness({
      plansDir: ENGINE_PLANS,
      targets: [
        { name: 'staging', rules: runsheetConfig.targets.staging },
        { name: 'production', rules: runsheetConfig.targets.production },
      ],
    });
    try {
      const run = await openRun(other.deps, { planId: 'create-table', target: 'production', kind: 'execute', actor: TPM });
      await signOff(other.deps, { runId: run.id, actor: TPM });
      const refused = await executeRun(other.deps, { runId: run.id, actor: ENGINEER, typedTargetName: 'production' }).catch((error) => error);
      expect(openGateIds(refused)).toEqual(['applied-on:staging']);
      expect(refused.message).toMatch(/no run on staging applied and verified this checksum/);
    } finally {
      await other.close();
    }
  });
});

describe('gates from the command line (plan 008)', () => {
  const PLAN = '008-add-active-org-tracking';
  let storeDb: TestDatabase;
  let stagingDb: TestDatabase;
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

  /** Ticks every required prerequisite and runs the pre-checks, as the TPM. */
  async function prepare(target: string): Promise<void> {
    for (const item of ['migrations-001-006-applied', 'api-code-ready', 'no-active-migrations', 'backup-taken', 'rollback-plan-documented']) {
      const ticked = await runsheet('tick', PLAN, '--target', target, '--item', item, '--as', 'tpm@example.com');
      expect(ticked.code, ticked.stderr).toBe(0);
    }
    const prechecks = await runsheet('prechecks', PLAN, '--target', target, '--as', 'tpm@example.com');
    expect(prechecks.code, prechecks.stdout + prechecks.stderr).toBe(0);
  }

  beforeAll(async () => {
    [storeDb, stagingDb, productionDb] = await Promise.all([createTestDatabase('cli_engine_store'), createTestDatabase('cli_staging'), createTestDatabase('cli_production')]);
    store = openStore(storeDb.url);
    await migrateStore(store);
    for (const [email, role] of [
      ['tpm@example.com', 'tpm'],
      ['engineer@example.com', 'engineer'],
      ['viewer@example.com', 'viewer'],
    ] as const) {
      await createAccount(store.db, { email, role, actor: { name: 'test' } });
    }
    for (const db of [stagingDb, productionDb]) {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await generateSandbox(client, { users: 500, seed: 3 });
      await client.end();
    }
    env = {
      NODE_ENV: 'test',
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: storeDb.url,
      // One superuser for the whole test store (the two-role set-up has its own test).
      RUNSHEET_ALLOW_SUPERUSER: '1',
      SESSION_SECRET: randomBytes(32).toString('hex'),
      SIGNING_KEY: newSigningKeyPem(),
      TARGET_STAGING_URL: stagingDb.url,
      TARGET_PRODUCTION_URL: productionDb.url,
    };
  });

  afterAll(async () => {
    await store?.close();
    await Promise.all([storeDb?.drop(), stagingDb?.drop(), productionDb?.drop()]);
  });

  it('refuses a missing account or a role without the right, with exit 1 and an audit entry', async () => {
    const nobody = await runsheet('run', PLAN, '--target', 'staging', '--as', 'nobody@example.com');
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/Refused: no account has the e-mail nobody@example.com/);
    const viewer = await runsheet('run', PLAN, '--target', 'staging', '--as', 'viewer@example.com');
    expect(viewer.code).toBe(1);
    expect(viewer.stderr).toMatch(/viewer@example.com \(viewer\) may not execute/);
    const audit = await listAudit(store.db, { about: 'viewer@example.com' });
    expect(audit[0]).toMatchObject({ action: 'execute', outcome: 'refused' });
    expect((await runsheet('run', PLAN, '--as', 'engineer@example.com')).code).toBe(2);
  });

  it('four-eyes needs two authenticated people: the local command line may not sign off, nor execute where a sign-off is required', async () => {
    await prepare('staging');
    const signOffRefused = await runsheet('sign-off', PLAN, '--target', 'staging', '--as', 'tpm@example.com');
    expect(signOffRefused.code).toBe(1);
    expect(signOffRefused.stderr).toMatch(/Refused: the local command line may not sign-off \(a sign-off is the second person of four-eyes, and --as is not authentication\): use the dashboard, or an API token/);
    const executeRefused = await runsheet('run', PLAN, '--target', 'staging', '--as', 'engineer@example.com');
    expect(executeRefused.code).toBe(1);
    expect(executeRefused.stderr).toMatch(/the local command line may not execute \(target staging requires a sign-off by another person/);

    // Every event the command line caused says so, with the OS user and host that ran it.
    const [runOnStaging] = await findRuns(store.pool, { planId: PLAN, target: 'staging' });
    const events = await readRunEvents(store.pool, runOnStaging!.id);
    const ticks = events.filter((event) => event.type === 'prerequisite.ticked');
    expect(ticks.length).toBeGreaterThan(0);
    for (const tick of ticks) expect(tick.payload.via).toEqual({ channel: 'cli', osUser: os.userInfo().username, host: os.hostname() });
    expect(events.filter((event) => event.type === 'action.refused').map((event) => event.payload.action)).toEqual(['sign-off', 'execute']);
    const audit = await listAudit(store.db, { about: 'tpm@example.com' });
    expect(audit[0]).toMatchObject({ action: 'sign-off', outcome: 'refused' });
  });

  it('a rollback from the command line shows what it runs and removes, and asks --confirm NAME where execute does (reproduction 9)', async () => {
    // Applied through the dashboard's path (two people, signed in): staging, then production.
    const deps = {
      store,
      plansDir: path.join(ROOT, 'plans'),
      signingKeyPem: env.SIGNING_KEY!,
      targets: createTargetRegistry({ addresses: new Map([['staging', { url: stagingDb.url }], ['production', { url: productionDb.url }]]), config: runsheetConfig }),
    };
    const web = (email: string, role: 'tpm' | 'engineer') => ({ email, role, via: { channel: 'web' as const, auth: 'session' as const } });
    try {
      for (const target of ['staging', 'production']) {
        const { run } = await openWorkingRun(deps, { planId: PLAN, target, kind: 'execute', actor: web('tpm@example.com', 'tpm'), newAttempt: true });
        const { plan } = thawPlan(run.frozenPlan);
        for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
          await tickPrerequisite(deps, { runId: run.id, itemId: item.id, ticked: true, actor: web('tpm@example.com', 'tpm') });
        }
        await runRunChecks(deps, { runId: run.id, phase: 'pre', actor: web('tpm@example.com', 'tpm') });
        await signOff(deps, { runId: run.id, actor: web('tpm@example.com', 'tpm') });
        const applied = await executeRun(deps, { runId: run.id, actor: web('engineer@example.com', 'engineer'), typedTargetName: target });
        expect(applied.state).toBe('applied');
      }
    } finally {
      await deps.targets.close();
    }
    const unconfirmed = await runsheet('rollback', PLAN, '--target', 'production', '--as', 'engineer@example.com');
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stdout).toMatch(/The rollback of run .* on production runs:/);
    expect(unconfirmed.stdout).toContain('and removes: column platform.users.active_org_id');
    expect(unconfirmed.stderr).toMatch(/typed the target's name \(production\)/);
    const confirmed = await runsheet('rollback', PLAN, '--target', 'production', '--as', 'engineer@example.com', '--confirm', 'production');
    expect(confirmed.code, confirmed.stdout + confirmed.stderr).toBe(0);
    expect(confirmed.stdout).toMatch(/ended rolled_back/);
  });
});
