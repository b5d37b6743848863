/**
 * Issue "The whole team watching one migration", items 3 and 4: two server processes on one store.
 * A page the second keeps shows a change made through the first at its next view.
 * A run executed on the first (waiting on a lock another session holds on the target) is watched
 * live on the second; both list the same watchers (presence lives in the store); a cancel sent to
 * the second ends the run the first drives; an account disabled through the first loses its
 * stream on the second. Every wait is for something a stream says or the store holds; nothing
 * asserts how long it took.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { appendRunEvent } from '../../app/runs/run-log.server';
import { findRuns } from '../../app/runs/run-store.server';
import { LISTENER_APPLICATION_NAME } from '../../app/runtime/store-notifications.server';
import { generateSandbox } from '../../app/sandbox/generate-sandbox.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ROOT, ensureFreshBuild, freePort, makeSecrets, openRuntime, serverEnv, sessionCookieFor, startServer, type StartedServer, postForm } from './auth-harness';
import { openEventStream, type OpenEventStream } from './event-stream';
import { waitFor } from './engine-harness';

const PLAN = 'e2e-lock-wait';

describe('two app instances on one store (issue 15)', () => {
  let store: TestDatabase;
  let target: TestDatabase;
  let runtime: Runtime;
  let first: StartedServer;
  let second: StartedServer;
  let locker: pg.Client;
  const streams: OpenEventStream[] = [];

  beforeAll(async () => {
    await ensureFreshBuild();
    [store, target] = await Promise.all([createTestDatabase('two_store'), createTestDatabase('two_target')]);
    const sandbox = new pg.Client({ connectionString: target.url });
    await sandbox.connect();
    await generateSandbox(sandbox, { users: 200, seed: 15 });
    await sandbox.end();
    const env = serverEnv(store.url, makeSecrets(), await freePort(), { RUNSHEET_PLANS_DIR: `${ROOT}/tests/fixtures/e2e-plans`, TARGET_SANDBOX_URL: target.url });
    runtime = await openRuntime(env);
    [first, second] = await Promise.all([startServer(env), startServer({ ...env, PORT: String(await freePort()) })]);
    locker = new pg.Client({ connectionString: target.url });
    await locker.connect();
  });

  afterAll(async () => {
    for (const stream of streams) await stream.cancel();
    await locker?.end().catch(() => {});
    await Promise.all([first?.stop(), second?.stop()]);
    await runtime?.stop();
    await target?.drop();
    await store?.drop();
  });

  async function post(server: StartedServer, path: string, cookie: string, form: Record<string, string>): Promise<{ status: number; body: string; location: string | null }> {
    return postForm(server.origin, path, cookie, form);
  }

  async function watch(server: StartedServer, runId: string, cookie: string): Promise<OpenEventStream> {
    const stream = await openEventStream(`${server.origin}/runs/${runId}/events`, cookie);
    streams.push(stream);
    expect(stream.status).toBe(200);
    return stream;
  }

  it('watches a run driven by the other instance live, lists the same watchers on both, cancels across them, and ends a disabled viewer\'s stream', async () => {
    const engineer = await sessionCookieFor(runtime, 'engineer@two.test', 'engineer');
    const admin = await sessionCookieFor(runtime, 'admin@two.test', 'admin');
    const planPath = `/plans/${PLAN}?target=sandbox`;

    const tick = await post(first, planPath, engineer, { intent: 'tick', itemId: 'understood', ticked: 'true' });
    expect(tick.status, tick.body).toBe(200);
    const [run] = await findRuns(runtime.store.pool, { planId: PLAN, target: 'sandbox' });
    expect(run?.state).toBe('ready');
    const runId = run!.id;

    const onFirst = await watch(first, runId, await sessionCookieFor(runtime, 'viewer1@two.test', 'viewer'));
    const onSecond = await watch(second, runId, await sessionCookieFor(runtime, 'viewer2@two.test', 'viewer'));
    const leaving = await watch(second, runId, await sessionCookieFor(runtime, 'viewer3@two.test', 'viewer'));

    // Both instances list the same audience: each learns of the other's viewers through the store.
    for (const stream of [onFirst, onSecond]) {
      const seen = await stream.untilEvent('watchers', (watchers: { email: string }[]) => watchers.length === 3);
      expect(seen.map((watcher: { email: string }) => watcher.email).sort()).toEqual(['viewer1@two.test', 'viewer2@two.test', 'viewer3@two.test']);
    }

    // Disabled through the first instance's admin page: the stream on the second ends, saying why.
    expect((await post(first, '/admin/accounts', admin, { intent: 'disable', email: 'viewer3@two.test' })).status).toBe(200);
    const said = await leaving.ended;
    expect(said).toMatch(/event: closed\ndata: \{"reason":"signed-out"/);
    const afterLeaving = await onFirst.untilEvent('watchers', (watchers: { email: string }[]) => watchers.length === 2);
    expect(afterLeaving.map((watcher: { email: string }) => watcher.email).sort()).toEqual(['viewer1@two.test', 'viewer2@two.test']);

    // Executed on the first, waiting on the lock: the second's viewer sees the wait as it happens.
    await locker.query('begin');
    await locker.query('lock table platform.users in access exclusive mode');
    const execute = await post(first, planPath, engineer, { intent: 'execute' });
    // Started in the background: the answer sends the engineer to the live view.
    expect(execute.status, execute.body).toBe(302);
    expect(execute.location).toBe(`/runs/${runId}`);
    const wait = await onSecond.untilEvent<{ type: string; payload: { relation: string | null } }>('run-event', (event) => event.type === 'wait.started');
    expect(wait.payload.relation).toMatch(/users/);

    // Cancelled on the second instance, while the lock is still held: the first stops driving it.
    const cancel = await post(second, `/runs/${runId}`, engineer, { intent: 'cancel' });
    expect(cancel.status, cancel.body).toBe(200);
    const end = await onSecond.untilEvent('end', () => true);
    expect(end.state).toBe('cancelled');
    const { rows } = await locker.query<{ held: boolean }>("select count(*) > 0 as held from pg_locks where relation = 'platform.users'::regclass and mode = 'AccessExclusiveLock' and granted");
    expect(rows[0]!.held).toBe(true);
    await locker.query('rollback');

    // The first instance's viewer got every event the second's did, in order, none twice.
    const firstEnd = await onFirst.untilEvent('end', () => true);
    expect(firstEnd.state).toBe('cancelled');
    expect(onFirst.seqs()).toEqual(onSecond.seqs());
    expect(onSecond.seqs()).toEqual(Array.from({ length: onSecond.seqs().length }, (_, index) => index + 1));
    await waitFor('the run to be cancelled in the store', async () => (await findRuns(runtime.store.pool, { planId: PLAN, target: 'sandbox' }))[0]?.state === 'cancelled');
  });

  it('falls back to polling when the notification connection is killed mid-run, says so, and misses no event', async () => {
    const engineer = await sessionCookieFor(runtime, 'engineer@two.test', 'engineer');
    const planPath = `/plans/${PLAN}?target=sandbox`;
    expect((await post(first, planPath, engineer, { intent: 'new-attempt' })).status).toBeLessThan(400);
    expect((await post(first, planPath, engineer, { intent: 'tick', itemId: 'understood', ticked: 'true' })).status).toBe(200);
    const runId = (await findRuns(runtime.store.pool, { planId: PLAN, target: 'sandbox' }))[0]!.id;
    const viewer = await watch(second, runId, await sessionCookieFor(runtime, 'viewer1@two.test', 'viewer'));
    await viewer.untilEvent('feed', (feed: { mode: string }) => feed.mode === 'live');

    await locker.query('begin');
    await locker.query('lock table platform.users in access exclusive mode');
    expect((await post(first, planPath, engineer, { intent: 'execute' })).status).toBe(302);
    await viewer.untilEvent<{ type: string }>('run-event', (event) => event.type === 'wait.started');

    // Every instance's listening connection dies; what the run writes meanwhile is announced to no one.
    const killed = await runtime.store.pool.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and datname = current_database()`, [LISTENER_APPLICATION_NAME]);
    expect(killed.rowCount).toBeGreaterThanOrEqual(2);
    await appendRunEvent(runtime.store.pool, { runId, actor: 'tpm@two.test', role: 'tpm', type: 'note.added', payload: { text: 'written while no instance listens' } });
    await locker.query('rollback');

    await viewer.untilEvent('feed', (feed: { mode: string }) => feed.mode === 'polling');
    const end = await viewer.untilEvent('end', () => true);
    expect(end.state).toBe('applied');
    const notes = viewer.events().filter((sent) => sent.event === 'run-event' && JSON.parse(sent.data).type === 'note.added');
    expect(notes.map((sent) => JSON.parse(sent.data).payload.text)).toContain('written while no instance listens');
    const { rows } = await runtime.store.pool.query<{ seq: number }>('select seq from run_events where run_id = $1 and seq <= $2 order by seq', [runId, end.lastSeq]);
    expect(viewer.seqs()).toEqual(rows.map((row) => row.seq));
    // It said so where it happened: live first, then polling once the connection died.
    expect(viewer.events().filter((sent) => sent.event === 'feed').map((sent) => JSON.parse(sent.data).mode).slice(0, 2)).toEqual(['live', 'polling']);
  });

  it("shows on the second instance's plan page, at the next view, a note posted through the first while the second kept the page", async () => {
    const engineer = await sessionCookieFor(runtime, 'engineer@two.test', 'engineer');
    const viewer = await sessionCookieFor(runtime, 'viewer4@two.test', 'viewer');
    const planPath = `/plans/${PLAN}?target=sandbox`;
    const view = async () => {
      const answer = await fetch(`${second.origin}${planPath}`, { headers: { Cookie: viewer, Accept: 'text/html' } });
      expect(answer.status).toBe(200);
      return { html: await answer.text(), kept: answer.headers.get('Server-Timing') };
    };
    const note = `Kept on the second, written on the first ${Date.now()}`;
    // Viewed twice: the second view is served from the second instance's page cache (docs/decisions/035).
    await view();
    const kept = await view();
    expect(kept.kept).toMatch(/page-cache/);
    expect(kept.html).not.toContain(note);

    const added = await post(first, planPath, engineer, { intent: 'add-note', text: note });
    expect(added.status, added.body).toBe(200);
    const next = await view();
    expect(next.html).toContain(note);
  });
});
