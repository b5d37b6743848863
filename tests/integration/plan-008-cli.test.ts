/**
 * Issue "Foundation", done-when: `runsheet check` on plan 008 passes its pre-checks on a fresh
 * sandbox, fails verification for the right reasons, and after the migration is applied by hand
 * (psql, outside Runsheet) passes verification with the seed's Step 4 backfill figure, while the
 * plan shows as drift (schema facts present, no ledger row), not as applied.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import { planOnTarget, refreshPlanFacts } from '../../app/plans/plan-overview.server';
import { migrateStore, openStore, type Store } from '../../app/runtime/store.server';
import { generateSandbox } from '../../app/sandbox/generate-sandbox.server';
import { createTargetRegistry } from '../../app/targets/target-registry.server';
import { DEFAULT_TARGET_RULES } from '../../app/runtime/target-config';
import { createTestDatabase, type TestDatabase } from '../support/databases';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const PLAN = '008-add-active-org-tracking';

let storeDb: TestDatabase;
let sandboxDb: TestDatabase;
let env: NodeJS.ProcessEnv;

async function runsheet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(root, 'bin/runsheet.js'), ...args], { env, cwd: root });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

interface JsonReport {
  passed: boolean;
  results: { checkId: string; passed: boolean; actual: unknown; reason?: string; error?: { sqlstate?: string } }[];
}

beforeAll(async () => {
  [storeDb, sandboxDb] = await Promise.all([createTestDatabase('cli_store'), createTestDatabase('cli_sandbox')]);
  const client = new pg.Client({ connectionString: sandboxDb.url });
  await client.connect();
  await generateSandbox(client, { users: 3_000, seed: 11 });
  await client.end();
  const { privateKey } = generateKeyPairSync('ed25519');
  env = {
    NODE_ENV: 'test',
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: storeDb.url,
    // One superuser for the whole test store (the two-role set-up has its own test).
    RUNSHEET_ALLOW_SUPERUSER: '1',
    SESSION_SECRET: randomBytes(32).toString('hex'),
    SIGNING_KEY: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    TARGET_SANDBOX_URL: sandboxDb.url,
  };
});

afterAll(async () => {
  await Promise.all([storeDb?.drop(), sandboxDb?.drop()]);
});

describe('npx runsheet check, plan 008 on a fresh sandbox', () => {
  it('passes the pre-checks (exit 0)', async () => {
    const { code, stdout } = await runsheet('check', PLAN, '--phase', 'pre', '--json');
    const report = JSON.parse(stdout) as JsonReport;
    expect(report.results.filter((result) => !result.passed)).toEqual([]);
    expect(report.results.length).toBeGreaterThanOrEqual(5);
    expect(code).toBe(0);
  });

  it('fails verification before the migration, for the right reasons (exit 1)', async () => {
    const { code, stdout } = await runsheet('check', PLAN, '--phase', 'verify', '--json');
    expect(code).toBe(1);
    const report = JSON.parse(stdout) as JsonReport;
    const byId = Object.fromEntries(report.results.map((result) => [result.checkId, result]));
    expect(byId['column-added']).toMatchObject({ passed: false, reason: expect.stringMatching(/expected 1 row, got 0/) });
    expect(byId['index-valid-partial']?.passed).toBe(false);
    expect(byId['functions-exist']?.passed).toBe(false);
    // The backfill checks cannot run without the column: undefined_column, said as such.
    expect(byId['backfill-complete']?.error?.sqlstate).toBe('42703');
  });

  it('after the migration is applied by hand, passes verification and shows drift, not applied', async () => {
    const migration = path.join(root, 'plans', PLAN, '008_add_active_org_tracking.sql');
    await run('psql', ['--no-psqlrc', '-v', 'ON_ERROR_STOP=1', '-q', '-f', migration, sandboxDb.url], { env: { NODE_ENV: 'test', PATH: process.env.PATH } });

    const { code, stdout } = await runsheet('check', PLAN, '--phase', 'verify', '--json');
    const report = JSON.parse(stdout) as JsonReport;
    expect(report.results.filter((result) => !result.passed)).toEqual([]);
    expect(code).toBe(0);

    // The seed's Step 4 query, verbatim, run outside Runsheet.
    const client = new pg.Client({ connectionString: sandboxDb.url });
    await client.connect();
    const { rows } = await client.query(`SELECT
        COUNT(*) as total_users,
        COUNT(active_org_id) as users_with_active_org,
        ROUND(100.0 * COUNT(active_org_id) / COUNT(*), 2) as backfill_percentage
      FROM platform.users`);
    await client.end();
    const step4 = rows[0] as { total_users: string; users_with_active_org: string; backfill_percentage: string };
    const recorded = report.results.find((result) => result.checkId === 'backfill-percentage')!.actual as { rows: Record<string, unknown>[] };
    expect(Number(recorded.rows[0]!.backfill_percentage)).toBe(Number(step4.backfill_percentage));
    expect(Number(step4.backfill_percentage)).toBeGreaterThan(90);
    expect(Number(step4.backfill_percentage)).toBeLessThan(100);

    // The plan's state on the target: schema facts present, no ledger row → drift.
    const store: Store = openStore(storeDb.url);
    const targets = createTargetRegistry({ addresses: new Map([['sandbox', { url: sandboxDb.url }]]), config: { targets: { sandbox: { ...DEFAULT_TARGET_RULES, label: 'Sandbox' } } } });
    try {
      await migrateStore(store);
      const plan = (await loadPlan(path.join(root, 'plans'), PLAN)) as ValidPlan;
      const target = targets.get('sandbox');
      const deps = { store, plansDir: path.join(root, 'plans'), targets };
      const facts = await refreshPlanFacts(deps, plan, target);
      expect(facts.schema.backfill?.percentage).toBe(Number(step4.backfill_percentage));
      const cell = await planOnTarget(deps, plan, target);
      expect(cell.ledger?.state).toBe('not_applied');
      expect(cell.state).toBe('drift');
    } finally {
      await targets.close();
      await store.close();
    }
  });

  it('refuses an unknown plan with exit 2 and an unreachable target with exit 3', async () => {
    expect((await runsheet('check', 'no-such-plan')).code).toBe(2);
    env.TARGET_NOWHERE_URL = 'postgres://nobody:secret@127.0.0.1:1/none';
    const unreachable = await runsheet('check', PLAN, '--target', 'nowhere');
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toMatch(/Cannot reach target "nowhere"/);
    expect(unreachable.stderr).not.toMatch(/secret/);
  });
});
