/**
 * Issue "When a migration goes wrong at 2 am", reproductions 1 and 3 from the command line (each
 * command a child process): while another session holds platform.users, `runsheet run` prints
 * what its snapshot waits for and who holds it (the blocker's pid, refreshed while it waits), and
 * `runsheet cancel` from another process ends it, cancelled, while the lock is still held. The run
 * exits 1.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccount } from '../../app/accounts/accounts.server';
import { findRuns } from '../../app/runs/run-store.server';
import { newSigningKeyPem } from '../../app/runs/run-log-fixtures';
import { migrateStore, openStore, type Store } from '../../app/runtime/store.server';
import { generateSandbox } from '../../app/sandbox/generate-sandbox.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { REAL_PLANS, ROOT, waitFor } from './engine-harness';

const run = promisify(execFile);
const PLAN = '008-add-active-org-tracking';
let storeDb: TestDatabase;
let sandboxDb: TestDatabase;
let store: Store;
let plansDir: string;
let env: NodeJS.ProcessEnv;

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
  [storeDb, sandboxDb] = await Promise.all([createTestDatabase('cli_wait_store'), createTestDatabase('cli_wait_sandbox')]);
  store = openStore(storeDb.url);
  await migrateStore(store);
  for (const [email, role] of [
    ['tpm@example.com', 'tpm'],
    ['engineer@example.com', 'engineer'],
    ['engineer2@example.com', 'engineer'],
  ] as const) {
    await createAccount(store.db, { email, role, actor: { name: 'test' } });
  }
  const client = new pg.Client({ connectionString: sandboxDb.url });
  await client.connect();
  await generateSandbox(client, { users: 300, seed: 5 });
  await client.end();
  // Plan 008 as committed, but its checks wait up to a minute for a lock: the cancel always comes first.
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-cli-wait-'));
  fs.cpSync(path.join(REAL_PLANS, PLAN), path.join(plansDir, PLAN), { recursive: true });
  const planFile = path.join(plansDir, PLAN, 'plan.yaml');
  fs.writeFileSync(planFile, `${fs.readFileSync(planFile, 'utf8')}\ncheck_lock_timeout: 60s\n`);
  env = {
    NODE_ENV: 'test',
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: storeDb.url,
    // One superuser for the whole test store (the two-role set-up has its own test).
    RUNSHEET_ALLOW_SUPERUSER: '1',
    SESSION_SECRET: randomBytes(32).toString('hex'),
    SIGNING_KEY: newSigningKeyPem(),
    TARGET_SANDBOX_URL: sandboxDb.url,
    RUNSHEET_PLANS_DIR: plansDir,
  };
});

afterAll(async () => {
  await store?.close();
  await Promise.all([storeDb?.drop(), sandboxDb?.drop()]);
  fs.rmSync(plansDir, { recursive: true, force: true });
});

describe('runsheet run while another session holds a lock', () => {
  it('prints the wait with the blocker while it is held; runsheet cancel from another process ends it, cancelled, exit 1', async () => {
    for (const item of ['migrations-001-006-applied', 'api-code-ready', 'no-active-migrations', 'backup-taken', 'rollback-plan-documented']) {
      expect((await runsheet('tick', PLAN, '--target', 'sandbox', '--item', item, '--as', 'tpm@example.com')).code).toBe(0);
    }
    const prechecks = await runsheet('prechecks', PLAN, '--target', 'sandbox', '--as', 'tpm@example.com');
    expect(prechecks.code, prechecks.stdout + prechecks.stderr).toBe(0);

    const holder = new pg.Client({ connectionString: sandboxDb.url, application_name: 'psql' });
    await holder.connect();
    const holderPid = Number((await holder.query('select pg_backend_pid() as pid')).rows[0].pid);
    const probe = new pg.Client({ connectionString: sandboxDb.url });
    await probe.connect();
    const stillHeld = async () =>
      (await probe.query(`select exists (select 1 from pg_locks where pid = $1 and granted and relation = 'platform.users'::regclass) as held`, [holderPid])).rows[0].held as boolean;
    await holder.query('begin');
    await holder.query('lock table platform.users in access exclusive mode');
    const sleeping = holder.query('select pg_sleep(60)').catch(() => undefined);
    try {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), 'run', PLAN, '--target', 'sandbox', '--as', 'engineer@example.com'], { env, cwd: ROOT });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.stderr.on('data', (chunk) => (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

      await waitFor('the live wait line naming the blocker', async () => stdout.includes(`waiting for a lock held by pid ${holderPid} (application psql`), 60_000, 100);
      expect(await stillHeld()).toBe(true);
      expect(stdout).toMatch(/check snapshot-counts is waiting for a lock held by pid \d+ .* on platform\.users: \d+ s so far, lock_timeout fires in \d+ s/);

      const [applying] = await findRuns(store.pool, { target: 'sandbox', states: ['applying'] });
      const cancelled = await runsheet('cancel', applying!.id, '--as', 'engineer2@example.com');
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(await exited).toBe(1);
      expect(await stillHeld()).toBe(true);
      expect(stdout, stderr).toMatch(/ended cancelled/);
      expect(stdout).toMatch(/cancelled by engineer2@example\.com/);
      expect(stdout).not.toMatch(/▶ apply/);
    } finally {
      await probe.query('select pg_cancel_backend($1)', [holderPid]);
      await sleeping;
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
      await probe.end();
    }
  });
});
