/**
 * Issue 11, reproduction 8: an open event stream kept delivering after its viewer was disabled,
 * and a draft run's stream never ended. Over HTTP against the real server (the stream of the live
 * view), and through the re-check itself on the real store: one query for every open stream.
 * Every wait is for something the stream says; nothing asserts how long it took.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setAccountDisabled } from '../../app/accounts/accounts.server';
import { readSession } from '../../app/auth/session.server';
import type { Runtime } from '../../app/boot/runtime.server';
import { openWorkingRun } from '../../app/engine/runs.server';
import { transitionRun } from '../../app/runs/run-store.server';
import { PREPARING_STREAM_MAX_MS, recheckStreams, watchStream, type StreamEnd, type WatchedStream } from '../../app/web/stream-watch.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ROOT, ensureFreshBuild, freePort, makeSecrets, openRuntime, serverEnv, sessionCookieFor, startServer, type StartedServer } from './auth-harness';

const TPM = { email: 'tpm@stream.test', role: 'tpm' as const };

describe('live-view event streams re-check who is watching (issue 11, reproduction 8)', () => {
  let store: TestDatabase;
  let target: TestDatabase;
  let runtime: Runtime;
  let server: StartedServer;

  beforeAll(async () => {
    await ensureFreshBuild();
    store = await createTestDatabase('stream_store');
    target = await createTestDatabase('stream_target');
    const env = serverEnv(store.url, makeSecrets(), await freePort(), { RUNSHEET_PLANS_DIR: `${ROOT}/tests/fixtures/plans`, TARGET_SANDBOX_URL: target.url });
    runtime = await openRuntime(env);
    server = await startServer(env);
  });

  afterAll(async () => {
    await server?.stop();
    await runtime?.stop();
    await target?.drop();
    await store?.drop();
  });

  /** The plan's draft run on the sandbox (a new one once the last is no longer preparing). */
  async function draftRun(): Promise<string> {
    return (await openWorkingRun(runtime, { planId: 'fixture-ok', target: 'sandbox', kind: 'execute', actor: TPM, newAttempt: true })).run.id;
  }

  interface OpenStream {
    status: number;
    cacheControl: string | null;
    /** Resolves once the text so far contains `marker`. */
    until(marker: string): Promise<string>;
    /** Resolves with everything the stream sent once the server ends it. */
    ended: Promise<string>;
    cancel(): Promise<void>;
  }

  async function openStream(runId: string, cookie: string): Promise<OpenStream> {
    const response = await fetch(`${server.origin}/runs/${runId}/events`, { headers: { Cookie: cookie, Accept: 'text/event-stream' } });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const waiters: { marker: string; resolve: (text: string) => void }[] = [];
    const ended = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
        if (done) return text;
        text += decoder.decode(value, { stream: true });
        for (const waiter of [...waiters]) {
          if (text.includes(waiter.marker)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(text);
          }
        }
      }
    })();
    return {
      status: response.status,
      cacheControl: response.headers.get('cache-control'),
      until: (marker) => (text.includes(marker) ? Promise.resolve(text) : new Promise((resolve) => waiters.push({ marker, resolve }))),
      ended,
      cancel: () => reader.cancel().catch(() => {}),
    };
  }

  it('ends the stream of a viewer who is disabled, and keeps the other viewer\'s until the run ends', async () => {
    const runId = await draftRun();
    const disabled = await openStream(runId, await sessionCookieFor(runtime, 'viewer1@stream.test', 'viewer'));
    const other = await openStream(runId, await sessionCookieFor(runtime, 'viewer2@stream.test', 'viewer'));
    expect(disabled.status).toBe(200);
    expect(disabled.cacheControl).toBe('no-store');
    await disabled.until('event: run-event');
    await other.until('event: run-event');

    await setAccountDisabled(runtime.store.db, { email: 'viewer1@stream.test', disabled: true, actor: { name: 'test' } });
    const said = await disabled.ended;
    expect(said).toMatch(/event: closed\ndata: \{"reason":"signed-out"/);
    expect(said.slice(said.indexOf('event: closed'))).not.toContain('event: run-event');

    // The other viewer was in the same re-check and is still following: it hears the run end.
    await transitionRun(runtime.store, { runId, from: ['draft', 'ready'], to: 'superseded', reason: 'the test retires it', actor: TPM.email, role: TPM.role });
    const otherSaid = await other.ended;
    expect(otherSaid).toMatch(/event: end\ndata: \{"state":"superseded"/);
    expect(otherSaid).not.toContain('event: closed');
  });

  it('ends the stream of a session that signed out', async () => {
    const cookie = await sessionCookieFor(runtime, 'viewer3@stream.test', 'viewer');
    const stream = await openStream(await draftRun(), cookie);
    await stream.until('event: run-event');
    const signOut = await fetch(`${server.origin}/logout`, {
      method: 'POST',
      headers: { Cookie: cookie, Origin: server.origin, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'intent=logout',
      redirect: 'manual',
    });
    expect(signOut.status).toBeGreaterThanOrEqual(300);
    expect(await stream.ended).toMatch(/event: closed\ndata: \{"reason":"signed-out"/);
  });

  it('checks every open stream of a process in one query, and ends those whose viewer left or whose draft was followed 30 minutes', async () => {
    // One run no longer preparing (superseded: its own poll ends its streams), then a new draft beside it.
    const settled = await draftRun();
    await transitionRun(runtime.store, { runId: settled, from: ['draft', 'ready'], to: 'superseded', reason: 'the test retires it', actor: TPM.email, role: TPM.role });
    const runId = await draftRun();
    expect(runId).not.toBe(settled);
    const sessionOf = async (email: string) => {
      const cookie = await sessionCookieFor(runtime, email, 'viewer');
      return (await readSession(runtime, new Request('http://localhost/', { headers: { Cookie: cookie } })))!;
    };
    const staying = await sessionOf('stay@stream.test');
    const leaving = await sessionOf('leave@stream.test');
    const proxied = await sessionOf('proxied@stream.test');

    // Its own pool on the same store, so that every query of the re-check is counted.
    const pool = new pg.Pool({ connectionString: store.url, max: 2 });
    let queries = 0;
    const query = pool.query.bind(pool);
    pool.query = ((...args: Parameters<typeof query>) => {
      queries++;
      return query(...args);
    }) as typeof pool.query;
    const ends = new Map<string, StreamEnd>();
    const stream = (name: string, fields: Omit<WatchedStream, 'end'>): WatchedStream => ({ ...fields, end: (why) => ends.set(name, why) });
    const long = Date.now() - PREPARING_STREAM_MAX_MS - 1000;
    const watched = [
      stream('staying', { runId, accountId: staying.accountId, sessionIdHash: staying.sessionIdHash, openedAt: Date.now() }),
      stream('leaving', { runId, accountId: leaving.accountId, sessionIdHash: leaving.sessionIdHash, openedAt: Date.now() }),
      stream('proxied', { runId, accountId: proxied.accountId, openedAt: Date.now() }),
      stream('draft for long', { runId, accountId: staying.accountId, sessionIdHash: staying.sessionIdHash, openedAt: long }),
      stream('settled for long', { runId: settled, accountId: staying.accountId, sessionIdHash: staying.sessionIdHash, openedAt: long }),
      stream('no such run', { runId: '00000000-0000-4000-8000-000000000000', accountId: staying.accountId, sessionIdHash: staying.sessionIdHash, openedAt: Date.now() }),
    ];
    const unwatch = watched.map((entry) => watchStream(pool, entry));
    try {
      await setAccountDisabled(runtime.store.db, { email: 'leave@stream.test', disabled: true, actor: { name: 'test' } });
      await recheckStreams(pool);
      expect(queries).toBe(1);
      expect(Object.fromEntries([...ends].map(([name, why]) => [name, why.reason]))).toEqual({
        leaving: 'signed-out',
        'draft for long': 'preparing-too-long',
        'no such run': 'run-gone',
      });
      // The proxy-vouched account is judged by its account alone: disabling it ends its stream too.
      await setAccountDisabled(runtime.store.db, { email: 'proxied@stream.test', disabled: true, actor: { name: 'test' } });
      await recheckStreams(pool);
      expect(queries).toBe(2);
      expect(ends.get('proxied')?.reason).toBe('signed-out');
      expect(ends.has('staying')).toBe(false);
      expect(ends.has('settled for long')).toBe(false);
    } finally {
      for (const stop of unwatch) stop();
      await pool.end();
    }
  });
});
