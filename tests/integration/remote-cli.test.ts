/**
 * Issue 12, done-when: a live server (bin/start.js, embedded store and sandbox) driven through the
 * remote command line (RUNSHEET_URL + RUNSHEET_TOKEN) as three service-account tokens: the
 * engineer's pipeline runs the pre-checks, the TPM's ticks and signs off, the engineer's runs plan
 * 008 on the sandbox to applied (following the event stream), a viewer token is refused 403 on
 * execute; one token cannot both sign off and execute a run (staging, four-eyes); a service account
 * never signs off a run it opened; a revoked and an expired token get 401 (exit 2); an unknown path
 * is a 404 in JSON; the events written through the API carry `via: api` with the token's id, and
 * the report says so.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { buildRunReport, runReportMarkdown } from '../../app/runs/run-report';
import type { RunEvent } from '../../app/runs/run-events';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { embeddedServerEnv, freePort, openRuntime, ROOT, startServer, type StartedServer } from './auth-harness';

const PLAN = '008-add-active-org-tracking';
const PREREQUISITES = ['migrations-001-006-applied', 'migration-007-not-needed', 'api-code-ready', 'no-active-migrations', 'backup-taken', 'rollback-plan-documented'];

let dataDir: string;
let staging: TestDatabase;
let server: StartedServer;
let runtime: Runtime;
const tokens: Record<'tpm' | 'engineer' | 'viewer', { token: string; id: string }> = {} as never;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function runsheet(args: string[], remoteToken?: string): Promise<Ran> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    RUNSHEET_DATA_DIR: dataDir,
    TARGET_STAGING_URL: staging.url,
    ...(remoteToken ? { RUNSHEET_URL: server.origin, RUNSHEET_TOKEN: remoteToken } : {}),
  };
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), ...args], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

const api = (path: string, token: string | undefined, init: RequestInit = {}) =>
  fetch(`${server.origin}/api/v1${path}`, { ...init, headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), 'Content-Type': 'application/json', ...(init.headers as Record<string, string>) } });

async function serviceAccountToken(name: string, role: string): Promise<{ token: string; id: string }> {
  const added = await runsheet(['service-accounts', 'add', name, '--role', role]);
  expect(added.code, added.stderr).toBe(0);
  const created = await runsheet(['tokens', 'create', name, '--name', `${name} in CI`]);
  expect(created.code, created.stderr).toBe(0);
  const token = /Token \(shown once[^:]*\): (rs_[0-9a-f]{16}_[A-Za-z0-9_-]{43})/.exec(created.stdout)?.[1];
  expect(token, created.stdout).toBeDefined();
  return { token: token!, id: token!.slice(3, 19) };
}

/** Every event of a run, through the API's event stream (it ends once the run is final). */
async function eventsOf(runId: string, token: string): Promise<(RunEvent & { seq: number })[]> {
  const text = await (await api(`/runs/${runId}/events`, token, { headers: { Accept: 'text/event-stream' } })).text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: run-event'))
    .map((block) => JSON.parse(block.split('\n').find((line) => line.startsWith('data: '))!.slice(6)) as RunEvent & { seq: number });
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-remote-'));
  staging = await createTestDatabase('remote_staging');
  const port = await freePort();
  server = await startServer(embeddedServerEnv(dataDir, port, { TARGET_STAGING_URL: staging.url }));
  runtime = await openRuntime({ NODE_ENV: 'production', RUNSHEET_DATA_DIR: dataDir, PORT: String(port), TARGET_STAGING_URL: staging.url });
  tokens.tpm = await serviceAccountToken('ci-tpm', 'tpm');
  tokens.engineer = await serviceAccountToken('ci-deploy', 'engineer');
  tokens.viewer = await serviceAccountToken('ci-viewer', 'viewer');
}, 240_000);

afterAll(async () => {
  await runtime?.stop();
  await server?.stop();
  await staging?.drop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('the remote command line against a live server', () => {
  let runId: string;

  it('the engineer pipeline runs the pre-checks; the TPM pipeline ticks and signs off; --as is refused', async () => {
    const prechecks = await runsheet(['prechecks', PLAN, '--target', 'sandbox'], tokens.engineer.token);
    expect(prechecks.code, prechecks.stdout + prechecks.stderr).toBe(0);
    runId = /Opened run ([0-9a-f-]{36})/.exec(prechecks.stdout)![1]!;
    expect(prechecks.stdout).toMatch(/PASS/);

    // Checks outside a run go through the API too, with the local output and exit code.
    const check = await runsheet(['check', PLAN, '--target', 'sandbox', '--phase', 'pre'], tokens.engineer.token);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(new RegExp(`${PLAN} on sandbox, phase pre \\(checksum [0-9a-f]{12}\\)`));
    expect(check.stdout).toMatch(/\d+ passed, 0 failed/);
    const sandboxReset = await runsheet(['sandbox', 'reset'], tokens.engineer.token);
    expect(sandboxReset.code).toBe(2);
    expect(sandboxReset.stderr).toMatch(/works on the store of this machine only: unset RUNSHEET_URL/);

    const withAs = await runsheet(['tick', PLAN, '--target', 'sandbox', '--item', PREREQUISITES[0]!, '--as', 'engineer@runsheet.local'], tokens.tpm.token);
    expect(withAs.code).toBe(2);
    expect(withAs.stderr).toMatch(/--as is refused in remote mode/);

    for (const item of PREREQUISITES) {
      const tick = await runsheet(['tick', PLAN, '--target', 'sandbox', '--item', item], tokens.tpm.token);
      expect(tick.code, tick.stderr).toBe(0);
      expect(tick.stdout).toContain(`Run ${runId}`);
      expect(tick.stdout).toContain(`Ticked ${item} as ci-tpm@service.invalid`);
    }
    const signOff = await runsheet(['sign-off', PLAN, '--target', 'sandbox'], tokens.tpm.token);
    expect(signOff.code, signOff.stderr).toBe(0);
    expect(signOff.stdout).toContain('Signed off by ci-tpm@service.invalid.');
  });

  it('a viewer token is refused 403 on execute, over the API and from the command line', async () => {
    const response = await api(`/runs/${runId}/execute`, tokens.viewer.token, { method: 'POST', body: '{}' });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: { kind: 'permission', message: expect.stringMatching(/may not execute/) } });
    const run = await runsheet(['run', PLAN, '--target', 'sandbox'], tokens.viewer.token);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/Forbidden: the role of ci-viewer@service\.invalid \(viewer\)/);
  });

  it('the engineer pipeline runs plan 008 on the sandbox to applied, printing progress from the event stream', async () => {
    const run = await runsheet(['run', PLAN, '--target', 'sandbox'], tokens.engineer.token);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain(`Run ${runId} (execute, ready)`);
    expect(run.stdout).toMatch(/▶ apply/);
    expect(run.stdout).toMatch(/✓ step /);
    expect(run.stdout).toContain(`Run ${runId} ended applied.`);
    expect(run.stdout).toMatch(/verification: passed/);
  }, 180_000);

  it("the events written through the API carry via: api with the token's id, and the report shows it", async () => {
    const events = await eventsOf(runId, tokens.viewer.token);
    const via = (type: string) => (events.find((event) => event.type === type)?.payload as { via?: unknown } | undefined)?.via;
    expect(via('run.created')).toEqual({ channel: 'api', tokenId: tokens.engineer.id });
    expect(via('prerequisite.ticked')).toEqual({ channel: 'api', tokenId: tokens.tpm.id });
    expect(via('signoff')).toEqual({ channel: 'api', tokenId: tokens.tpm.id });
    expect(via('execute.started')).toEqual({ channel: 'api', tokenId: tokens.engineer.id });

    const detail = (await (await api(`/runs/${runId}`, tokens.viewer.token)).json()) as { run: { state: string; outcome: never; signedOffBy: string; executedBy: string } };
    expect(detail.run).toMatchObject({ state: 'applied', signedOffBy: 'ci-tpm@service.invalid', executedBy: 'ci-deploy@service.invalid' });
    const report = buildRunReport(events, detail.run.outcome);
    expect(report.actions[0]).toMatchObject({ action: 'execute', actor: 'ci-deploy@service.invalid', via: `API token ${tokens.engineer.id}` });
    const markdown = runReportMarkdown(
      { runId, planId: PLAN, planTitle: null, planChecksum: 'x', target: 'sandbox', targetLabel: 'Sandbox', kind: 'execute', state: 'applied', createdBy: 'ci-deploy@service.invalid', createdAt: '', signedOffBy: 'ci-tpm@service.invalid', signedOffAt: null, executedBy: 'ci-deploy@service.invalid', startedAt: null, finishedAt: null, durationMs: null },
      report,
      { status: 'unsigned', eventCount: events.length, checkpointCount: 0, signedSeq: 0, head: null, firstBadSeq: null, reason: null, anchors: { status: 'none', reason: 'none' } } as never,
    );
    expect(markdown).toContain(`Apply by ci-deploy@service.invalid via API token ${tokens.engineer.id}`);
    expect(markdown).toContain(`**Signed off by**: ci-tpm@service.invalid`);
    expect(markdown).toContain(`via API token ${tokens.tpm.id}`);
  });

  it('four-eyes with tokens (staging): one token cannot sign off and execute one run; a service account never signs off a run it opened', async () => {
    const opened = await runsheet(['tick', PLAN, '--target', 'staging', '--item', PREREQUISITES[0]!], tokens.tpm.token);
    expect(opened.code, opened.stderr).toBe(0);
    const ownSignOff = await runsheet(['sign-off', PLAN, '--target', 'staging'], tokens.tpm.token);
    expect(ownSignOff.code).toBe(1);
    expect(ownSignOff.stderr).toMatch(/a service account never signs off its own run/);

    const engineerSignOff = await runsheet(['sign-off', PLAN, '--target', 'staging'], tokens.engineer.token);
    expect(engineerSignOff.code, engineerSignOff.stderr).toBe(0);
    const execute = await runsheet(['run', PLAN, '--target', 'staging'], tokens.engineer.token);
    expect(execute.code).toBe(1);
    expect(execute.stderr).toMatch(/Signed off by a person other than the executor \(four-eyes\): signed off only by ci-deploy@service\.invalid, who cannot also execute/);
    expect(execute.stdout).not.toMatch(/▶ apply/);
  });

  it('a revoked and an expired token get 401 (exit 2); no token and a malformed one too; an unknown path is a 404 in JSON', async () => {
    const spare = await runsheet(['tokens', 'create', 'ci-deploy', '--name', 'to revoke']);
    const spareToken = /: (rs_\S+)/.exec(spare.stdout.split('\n').find((line) => line.startsWith('Token (shown once'))!)![1]!;
    expect((await runsheet(['runs'], spareToken)).code).toBe(0);
    const revoke = await runsheet(['tokens', 'revoke', spareToken.slice(3, 19)]);
    expect(revoke.code, revoke.stderr).toBe(0);
    const revoked = await runsheet(['runs'], spareToken);
    expect(revoked.code).toBe(2);
    expect(revoked.stderr).toMatch(/was revoked/);
    expect((await api('/runs', spareToken)).status).toBe(401);

    const expiring = await runsheet(['tokens', 'create', 'ci-deploy', '--name', 'to expire', '--days', '1']);
    const expiringToken = /: (rs_\S+)/.exec(expiring.stdout.split('\n').find((line) => line.startsWith('Token (shown once'))!)![1]!;
    await runtime.store.pool.query("update api_tokens set created_at = now() - interval '2 days', expires_at = now() - interval '1 second' where id = $1", [expiringToken.slice(3, 19)]);
    const expired = await runsheet(['runs'], expiringToken);
    expect(expired.code).toBe(2);
    expect(expired.stderr).toMatch(/expired at/);
    const expiredAnswer = await api(`/runs/${runId}/execute`, expiringToken, { method: 'POST', body: '{}', headers: { Origin: 'https://evil.example' } });
    expect(expiredAnswer.status).toBe(401);
    expect(await expiredAnswer.json()).toMatchObject({ error: { kind: 'unauthenticated' } });

    expect((await api('/runs', undefined)).status).toBe(401);
    expect((await runsheet(['runs'], 'rs_not-a-token')).code).toBe(2);

    const unknown = await api('/no/such/thing', tokens.viewer.token);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toMatch(/application\/json/);
    expect(await unknown.json()).toMatchObject({ error: { kind: 'not_found', message: expect.stringMatching(/No endpoint GET \/api\/v1\/no\/such\/thing/) } });
  });

  it('the audit log has each token created, used from a new address, and revoked', async () => {
    const { rows } = await runtime.store.pool.query<{ action: string }>("select action from audit_log where action like 'token.%' or action = 'service-account.create'");
    const actions = rows.map((row) => row.action);
    expect(actions.filter((action) => action === 'service-account.create')).toHaveLength(3);
    expect(actions.filter((action) => action === 'token.create').length).toBeGreaterThanOrEqual(5);
    expect(actions).toContain('token.new-address');
    expect(actions).toContain('token.revoke');
  });
});
