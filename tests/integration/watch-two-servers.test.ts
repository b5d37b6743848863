/**
 * Issue "After the run" (docs/decisions/030), done-when: "with two server processes only one runs
 * the watch, and when its process is killed the other takes over". Two whole servers (bin/start.js,
 * as `npm start` runs it) on one store and one sandbox target, with a short heartbeat
 * (RUNSHEET_WATCH_POLL, RUNSHEET_WATCH_STALE_AFTER). An engineer applies a copy of plan 008 with a
 * watch of a few seconds' period through the first server's checklist; the store then says which
 * server runs the watch (the `run_watches` claim and the run log's `watch.runner` and rounds), only
 * that one records rounds; SIGKILL of that server, and the other takes the claim over, records the
 * next rounds (one changed by SQL, kept in full under its name) and closes the window `watched`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { readWatch } from '../../app/engine/watch.server';
import { eventsOf } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { findRun, findRuns } from '../../app/runs/run-store.server';
import { loadSigningKey } from '../../app/runs/signing.server';
import { verifyStoredRunLog } from '../../app/runs/verify-run-log.server';
import { generateSandbox } from '../../app/sandbox/generate-sandbox.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, freePort, makeSecrets, openRuntime, ROOT, serverEnv, sessionCookieFor, startServer, type StartedServer, type TestSecrets, postForm } from './auth-harness';
import { waitFor } from './engine-harness';

const PLAN = '008-add-active-org-tracking';
const WINDOW_S = 30;

/** Plan 008 with a watch every second for WINDOW_S seconds; one extra check counts organizations, so the test can change a round on purpose. */
function writeWatchPlan(plansDir: string): string[] {
  fs.cpSync(path.join(ROOT, 'plans', PLAN), path.join(plansDir, PLAN), { recursive: true });
  const file = path.join(plansDir, PLAN, 'plan.yaml');
  const document = parseDocument(fs.readFileSync(file, 'utf8'));
  document.set('watch', {
    for: `${WINDOW_S}s`,
    every: '1s',
    checks: ['column-added', 'active-org-is-a-membership'],
    extra_checks: [
      {
        id: 'organizations-counted',
        kind: 'sql',
        title: 'platform.organizations has rows',
        sql: 'SELECT count(*) AS organizations FROM platform.organizations',
        expect: { type: 'value', column: 'organizations', op: '>', value: 0 },
      },
    ],
  });
  fs.writeFileSync(file, document.toString());
  const prerequisites = document.toJSON().prerequisites as { id: string; required?: boolean }[];
  return prerequisites.filter((item) => item.required !== false).map((item) => item.id);
}

describe('the watch window on two server processes', () => {
  let store: TestDatabase;
  let target: TestDatabase;
  let plansDir: string;
  let secrets: TestSecrets;
  let runtime: Runtime;
  let servers: StartedServer[] = [];
  let sandbox: pg.Client;
  let required: string[];

  beforeAll(async () => {
    await ensureFreshBuild();
    [store, target] = await Promise.all([createTestDatabase('watch2_store'), createTestDatabase('watch2_target')]);
    sandbox = new pg.Client({ connectionString: target.url });
    await sandbox.connect();
    await generateSandbox(sandbox, { users: 200, seed: 16 });
    plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-watch2-plans-'));
    required = writeWatchPlan(plansDir);
    secrets = makeSecrets();
    // A heartbeat every 250 ms; another server takes over after 4 s of silence (a busy machine's slow poll is not a death).
    const env = serverEnv(store.url, secrets, await freePort(), { RUNSHEET_PLANS_DIR: plansDir, TARGET_SANDBOX_URL: target.url, RUNSHEET_WATCH_POLL: '250ms', RUNSHEET_WATCH_STALE_AFTER: '4s' });
    runtime = await openRuntime(env);
    servers = await Promise.all([startServer(env), startServer({ ...env, PORT: String(await freePort()) })]);
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.kill('SIGKILL')));
    await sandbox?.end().catch(() => {});
    await runtime?.stop();
    await target?.drop();
    await store?.drop();
    if (plansDir) fs.rmSync(plansDir, { recursive: true, force: true });
  });

  async function post(server: StartedServer, cookie: string, form: Record<string, string>): Promise<{ status: number; body: string; location: string | null }> {
    return postForm(server.origin, `/plans/${PLAN}?target=sandbox`, cookie, form);
  }

  it('only one server runs the watch; when its process is killed the other takes over, records the next rounds and closes the window watched', { timeout: 240_000 }, async () => {
    const engineer = await sessionCookieFor(runtime, 'engineer@watch2.test', 'engineer');
    const [first] = servers;
    for (const itemId of required) {
      const tick = await post(first!, engineer, { intent: 'tick', itemId, ticked: 'true' });
      expect(tick.status, tick.body).toBe(200);
    }
    const checks = await post(first!, engineer, { intent: 'run-checks', phase: 'pre' });
    expect(checks.status, checks.body).toBe(200);
    const runId = (await findRuns(runtime.store.pool, { planId: PLAN, target: 'sandbox' }))[0]!.id;
    const execute = await post(first!, engineer, { intent: 'execute' });
    expect(execute.status, execute.body).toBe(302);
    expect(execute.location).toBe(`/runs/${runId}`);
    await waitFor('the apply to end in the watch', async () => (await findRun(runtime.store.pool, runId))!.state === 'watching', 120_000);

    // One server claims the watch; it is named in the claim row and in the run log.
    const claim = await waitFor('a first claim', async () => eventsOf(await readRunEvents(runtime.store.pool, runId), 'watch.runner')[0], 60_000);
    const owner = servers.find((server) => claim.payload.runner.endsWith(`:${server.pid}`));
    expect(owner, `the runner ${claim.payload.runner} is one of the servers (${servers.map((server) => server.pid).join(', ')})`).toBeDefined();
    const other = servers.find((server) => server !== owner)!;
    expect(claim.payload).toMatchObject({ previous: null, reason: 'first claim: nobody ran the watch yet' });

    // Several rounds later, every round was the owner's: the other server never claimed nor ran one.
    await waitFor('three rounds', async () => ((await readWatch(runtime.store.pool, runId))!.rounds >= 3 ? true : undefined), 60_000);
    let events = await readRunEvents(runtime.store.pool, runId);
    expect(eventsOf(events, 'watch.runner')).toHaveLength(1);
    const ownerRounds = eventsOf(events, 'watch.round');
    expect(ownerRounds.length).toBeGreaterThanOrEqual(1);
    expect(new Set(ownerRounds.map((event) => event.payload.runner))).toEqual(new Set([claim.payload.runner]));
    expect((await readWatch(runtime.store.pool, runId))!.runner).toBe(claim.payload.runner);

    // The owner dies without a word: its heartbeat stops, and the other server takes the claim over.
    await owner!.kill('SIGKILL');
    const takeover = await waitFor('a takeover', async () => eventsOf(await readRunEvents(runtime.store.pool, runId), 'watch.runner')[1], 60_000);
    expect(takeover.payload).toMatchObject({ runner: expect.stringMatching(new RegExp(`:${other.pid}$`)), previous: claim.payload.runner });
    expect(takeover.payload.reason).toMatch(/^took over: the watch's runner .* had not sent a heartbeat for \d+ s$/);
    expect((await readWatch(runtime.store.pool, runId))!.runner).toBe(takeover.payload.runner);

    // A change the watch sees (one more organization): the new runner's round is kept in full, under its name.
    await sandbox.query(`insert into platform.organizations (name, slug) values ('Watch takeover', 'watch-takeover')`);
    const changed = await waitFor(
      'a round by the new runner',
      async () => eventsOf(await readRunEvents(runtime.store.pool, runId), 'watch.round').find((event) => event.payload.runner === takeover.payload.runner),
      60_000,
    );
    expect(changed.payload).toMatchObject({ passed: true, failed: [] });
    expect(changed.payload.results.map((result) => result.checkId)).toEqual(['organizations-counted']);

    // The window closes clean, closed by the server still alive.
    await waitFor('the window to close', async () => (await findRun(runtime.store.pool, runId))!.state === 'watched', (WINDOW_S + 60) * 1000, 250);
    events = await readRunEvents(runtime.store.pool, runId);
    expect(eventsOf(events, 'watch.runner')).toHaveLength(2);
    expect(eventsOf(events, 'watch.ended')[0]!.payload).toMatchObject({ reason: 'window_closed', clean: true, alarms: 0 });
    const watch = (await readWatch(runtime.store.pool, runId))!;
    expect(watch).toMatchObject({ status: 'ended', runner: takeover.payload.runner });
    // Rounds kept in full after the takeover are the new runner's only.
    const afterTakeover = events.filter((event) => event.seq > takeover.seq && event.type === 'watch.round');
    expect(new Set(afterTakeover.map((event) => (event.payload as { runner: string }).runner))).toEqual(new Set([takeover.payload.runner]));
    expect(await verifyStoredRunLog(runtime.store.pool, runId, [loadSigningKey(secrets.signingKeyPem).publicKeyPem])).toMatchObject({ ok: true });
  });
});
