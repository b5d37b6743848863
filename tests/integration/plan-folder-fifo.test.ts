/**
 * Issue 11, reproduction 9, through both front ends: a FIFO in a plan folder froze the whole
 * server and `runsheet plans`. Both must answer, with the plan reported invalid and why.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ROOT, ensureFreshBuild, freePort, makeSecrets, openRuntime, serverEnv, sessionCookieFor, startServer, type StartedServer } from './auth-harness';

describe('a FIFO in a plan folder (issue 11, reproduction 9)', () => {
  let root: string;
  let plansDir: string;
  let database: TestDatabase;
  let runtime: Runtime;
  let server: StartedServer;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-fifo-'));
    plansDir = path.join(root, 'plans');
    fs.mkdirSync(plansDir);
    fs.cpSync(path.join(ROOT, 'tests', 'fixtures', 'plans', 'fixture-ok'), path.join(plansDir, 'fixture-ok'), { recursive: true });
    fs.mkdirSync(path.join(plansDir, 'fifo-plan'));
    execFileSync('mkfifo', [path.join(plansDir, 'fifo-plan', 'plan.yaml')]);
    // A FIFO the plan does not name sits beside a good plan's files.
    execFileSync('mkfifo', [path.join(plansDir, 'fixture-ok', 'scratch')]);

    await ensureFreshBuild();
    database = await createTestDatabase('plan_fifo');
    const env = serverEnv(database.url, makeSecrets(), await freePort(), { RUNSHEET_PLANS_DIR: plansDir });
    runtime = await openRuntime(env);
    server = await startServer(env);
  });

  afterAll(async () => {
    await server?.stop();
    await runtime?.stop();
    await database?.drop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('runsheet plans answers, exit 2, with the FIFO plan invalid and the good one valid', async () => {
    // The kill is a safety net (the command used to wait for ever); nothing asserts how long it took.
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(process.execPath, [path.join(ROOT, 'bin', 'runsheet.js'), 'plans', '--json'], { cwd: ROOT, env: { ...process.env, RUNSHEET_PLANS_DIR: plansDir }, timeout: 50_000 }, (error, out) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout: out }),
      );
    });
    expect(code).toBe(2);
    const plans = JSON.parse(stdout) as { id: string; ok: boolean; errors?: { file: string; message: string }[] }[];
    expect(plans.map((plan) => [plan.id, plan.ok])).toEqual([
      ['fifo-plan', false],
      ['fixture-ok', true],
    ]);
    expect(plans[0]!.errors).toEqual([expect.objectContaining({ file: 'plans/fifo-plan/plan.yaml', message: expect.stringMatching(/FIFO.*not a regular file/) })]);
  });

  it('the plans page answers, shows the FIFO plan invalid with why, and the server keeps answering', async () => {
    const cookie = await sessionCookieFor(runtime, 'viewer@fifo.test', 'viewer');
    for (let visit = 0; visit < 6; visit++) {
      const response = await fetch(`${server.origin}/`, { headers: { Cookie: cookie, Accept: 'text/html' }, signal: AbortSignal.timeout(50_000) });
      const html = (await response.text()).replaceAll('<!-- -->', '');
      expect(response.status).toBe(200);
      expect(html).toContain('fifo-plan');
      expect(html).toMatch(/FIFO \(named pipe\), not a regular file/);
    }
    expect((await fetch(`${server.origin}/login`, { signal: AbortSignal.timeout(50_000) })).status).toBe(200);
  });
});
