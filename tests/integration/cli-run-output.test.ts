/**
 * Issue 10, reproduction 7 (first half) and 13 (second half), and what `npx runsheet run` prints
 * when something fails: the command line as a child process (bin/runsheet.js) on a real store
 * and target (DATABASE_URL mode).
 * - A run whose post-execution checks failed exits 1 (it exited 0: applied and verified).
 * - A failure shows the server's DETAIL and HINT, and the session that blocked the statement.
 * - The create_index_concurrently kind's INVALID-index events are printed as they happen.
 * - `runsheet runs | head` ends quietly when the pipe closes (it crashed with EPIPE).
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSecrets, ROOT } from './auth-harness';
import { createTestDatabase, type TestDatabase } from '../support/databases';

const execFileAsync = promisify(execFile);
const ENGINEER = 'engineer@example.com';

let storeDb: TestDatabase;
let targetDb: TestDatabase;
let plansDir: string;
let env: NodeJS.ProcessEnv;
let target: pg.Client;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command line as a child process, standard input closed (a password is then generated). */
function runsheet(...args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), ...args], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

function writePlan(id: string, yaml: string, files: Record<string, string>): void {
  fs.mkdirSync(path.join(plansDir, id), { recursive: true });
  fs.writeFileSync(path.join(plansDir, id, 'plan.yaml'), `id: ${id}\ntitle: ${id}\n${yaml}`);
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(plansDir, id, name), content);
}

beforeAll(async () => {
  [storeDb, targetDb] = await Promise.all([createTestDatabase('cli_out_store'), createTestDatabase('cli_out_target')]);
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-cli-out-'));
  const secrets = makeSecrets();
  env = {
    NODE_ENV: 'test',
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: storeDb.url,
    // One superuser for the whole test store (the two-role set-up has its own test).
    RUNSHEET_ALLOW_SUPERUSER: '1',
    SESSION_SECRET: secrets.sessionSecret,
    SIGNING_KEY: secrets.signingKeyPem,
    TARGET_SANDBOX_URL: targetDb.url,
    RUNSHEET_PLANS_DIR: plansDir,
    RUNSHEET_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-cli-out-data-')),
  };
  target = new pg.Client({ connectionString: targetDb.url });
  await target.connect();

  writePlan(
    'post-fails',
    [
      'apply:',
      '  - { id: create, title: Create, file: apply.sql }',
      'verification:',
      '  - { id: table-present, kind: sql, title: Present, sql: "SELECT 1 FROM pg_tables WHERE tablename = \'post_t\'", expect: { type: exists } }',
      'post_execution:',
      '  data_quality:',
      '    - { id: no-rows-expected, kind: sql, title: The table is empty, sql: "SELECT id FROM public.post_t", expect: { type: no_rows } }',
      'rollback:',
      '  steps:',
      '    - { id: drop, title: Drop, file: rollback.sql }',
      '',
    ].join('\n'),
    { 'apply.sql': 'CREATE TABLE public.post_t (id int);\nINSERT INTO public.post_t VALUES (1);\n', 'rollback.sql': 'DROP TABLE IF EXISTS public.post_t;\n' },
  );
  writePlan(
    'raises',
    'apply:\n  - { id: raise, title: Raise, file: apply.sql }\nrollback:\n  steps:\n    - { id: undo, title: Undo, file: rollback.sql }\n',
    {
      'apply.sql': "SELECT 1;\nDO $$ BEGIN RAISE EXCEPTION 'the data is not ready' USING DETAIL = 'three rows lack an owner', HINT = 'run the owner backfill first'; END $$;\n",
      'rollback.sql': 'SELECT 1;\n',
    },
  );
  writePlan(
    'blocked',
    'apply:\n  - { id: alter, title: Alter, file: apply.sql, lock_timeout: 1s }\nrollback:\n  steps:\n    - { id: undo, title: Undo, file: rollback.sql }\n',
    { 'apply.sql': 'ALTER TABLE public.locked_t ADD COLUMN n int;\n', 'rollback.sql': 'ALTER TABLE public.locked_t DROP COLUMN IF EXISTS n;\n' },
  );
  writePlan(
    'index-rebuild',
    'apply:\n  - { id: email-key, kind: create_index_concurrently, title: Index, file: index.sql, index: { schema: public, name: dup_t_email_key } }\n' +
      'rollback:\n  steps:\n    - { id: drop-index, title: Drop, file: rollback.sql, transactional: false }\n',
    { 'index.sql': 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS dup_t_email_key ON public.dup_t (email);\n', 'rollback.sql': 'DROP INDEX CONCURRENTLY IF EXISTS public.dup_t_email_key;\n' },
  );

  const added = await runsheet('users', 'add', ENGINEER, '--role', 'engineer');
  expect(added.code, added.stderr).toBe(0);
});

afterAll(async () => {
  await target?.end();
  await Promise.all([storeDb?.drop(), targetDb?.drop()]);
  fs.rmSync(plansDir, { recursive: true, force: true });
  if (env?.RUNSHEET_DATA_DIR) fs.rmSync(env.RUNSHEET_DATA_DIR, { recursive: true, force: true });
});

describe('npx runsheet run: exit code and what it prints', () => {
  it('exits 1 when post-execution failed after the apply committed and verified (repro 7)', async () => {
    const result = await runsheet('run', 'post-fails', '--target', 'sandbox', '--as', ENGINEER);
    expect(result.code, result.stdout).toBe(1);
    expect(result.stdout).toMatch(/✓ step create: 2\/2 statements/);
    expect(result.stdout).toContain('verification: passed');
    expect(result.stdout).toContain('post-execution: FAILED (no-rows-expected)');
    expect(result.stdout).toContain('failed phase(s): post_execution');
  });

  it("shows the server's DETAIL and HINT of a failed statement, and exits 1", async () => {
    const result = await runsheet('run', 'raises', '--target', 'sandbox', '--as', ENGINEER);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/failed at step raise, line 2, SQLSTATE P0001: the data is not ready/);
    expect(result.stdout).toContain('DETAIL: three rows lack an owner');
    expect(result.stdout).toContain('HINT: run the owner backfill first');
  });

  it('names the session that blocked a statement until its lock_timeout', async () => {
    await target.query('CREATE TABLE public.locked_t (id int)');
    const holder = new pg.Client({ connectionString: targetDb.url, application_name: 'holding-psql' });
    await holder.connect();
    try {
      const pid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE public.locked_t IN ACCESS EXCLUSIVE MODE');
      const result = await runsheet('run', 'blocked', '--target', 'sandbox', '--as', ENGINEER);
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/SQLSTATE 55P03/);
      expect(result.stdout).toMatch(new RegExp(`blocked by pid ${pid} \\(application holding-psql, user \\w+, idle in transaction, .*\\) holding AccessExclusiveLock on (public\\.)?locked_t: LOCK TABLE public\\.locked_t`));
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });

  it("prints the create_index_concurrently kind's INVALID index found and dropped", async () => {
    await target.query(`CREATE TABLE public.dup_t (id int, email text); INSERT INTO public.dup_t VALUES (1, 'a'), (2, 'a')`);
    await expect(target.query('CREATE UNIQUE INDEX CONCURRENTLY dup_t_email_key ON public.dup_t (email)')).rejects.toMatchObject({ code: '23505' });
    await target.query(`UPDATE public.dup_t SET email = 'b' WHERE id = 2`);
    const result = await runsheet('run', 'index-rebuild', '--target', 'sandbox', '--as', ENGINEER);
    expect(result.stdout).toMatch(/index public\.dup_t_email_key was left INVALID by an earlier build; dropping it/);
    expect(result.stdout).toMatch(/dropped the INVALID index public\.dup_t_email_key/);
    expect(result.stdout).toContain('ended applied');
    expect(result.code).toBe(0);
  });
});

describe('a closed pipe (repro 13)', () => {
  it('`runsheet runs | head -n 2` prints two lines and ends without an error', async () => {
    const { stdout, stderr } = await execFileAsync('bash', ['-c', `set -o pipefail; "${process.execPath}" bin/runsheet.js runs | head -n 2`], { env, cwd: ROOT });
    expect(stdout.trim().split('\n')).toHaveLength(2);
    expect(stderr).not.toMatch(/EPIPE|Error/);
  });

  it('a reader that has gone before the first line is written ends the command quietly, with its own exit code', async () => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), 'runs'], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    // Like `head -n 0`: the read end closes before the command has printed anything.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    expect(stderr).not.toMatch(/EPIPE|Error|Unhandled/);
    expect(code).toBe(0);
  });
});
