/**
 * The live view's feed on a real store: what an announcement says, what the timed pass costs
 * with several runs followed, and that an event whose announcement was lost still arrives.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { RUN_EVENTS_CHANNEL, stopStoreListener } from '../runtime/store-notifications.server';
import { followRunEvents } from './run-event-feed.server';
import type { RunEvent } from './run-events';
import { createRun, statementCompleted } from './run-log-fixtures';
import { appendRunEvent, inStoreTransaction, parseRunEventsAnnouncement, runEventsAnnouncement } from './run-log.server';

let database: TestDatabase;
let store: Store;
/** The pool of the instance that serves the viewers (the writer is another: `store`). */
let viewerPool: pg.Pool;
/** Every statement the viewers' instance sent through its pool, in order. */
const viewerStatements: { text: string; values: unknown[] }[] = [];

beforeAll(async () => {
  database = await createTestDatabase('run_event_feed');
  store = openStore(database.url);
  await migrateStore(store);
  viewerPool = new pg.Pool({ connectionString: database.url, max: 4 });
  const query = viewerPool.query.bind(viewerPool) as (...args: unknown[]) => unknown;
  (viewerPool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const [first, values] = args as [string | { text: string; values?: unknown[] }, unknown[] | undefined];
    viewerStatements.push(typeof first === 'string' ? { text: first, values: values ?? [] } : { text: first.text, values: first.values ?? values ?? [] });
    return query(...args);
  };
});

afterAll(async () => {
  await stopStoreListener(viewerPool);
  await viewerPool?.end();
  await store?.close();
  await database?.drop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Follows a run from its start and collects what the feed hands over. */
function follow(runId: string, afterSeq = 0) {
  const received: RunEvent[] = [];
  const modes: string[] = [];
  /** Hand-overs with the run's state: the first is the end of the follower's own backlog read. */
  const reports: string[] = [];
  const stop = followRunEvents(viewerPool, { runId, afterSeq }, {
    events: (events, state) => {
      received.push(...events);
      if (state !== undefined) reports.push(state);
    },
    gone: () => modes.push('gone'),
    mode: (mode) => modes.push(mode),
    failed: (message) => modes.push(`failed: ${message}`),
  });
  return { received, modes, reports, stop };
}

/**
 * Appends an event in the writer's own BEGIN … COMMIT: appendRunEvent joins it and leaves the
 * announcement to whoever opened it, who here never sends it (as a NOTIFY lost to a full queue).
 */
async function appendUnannounced(runId: string, index: number): Promise<void> {
  const client = await store.pool.connect();
  try {
    await client.query('begin');
    await appendRunEvent(client, { runId, actor: 'system', ...statementCompleted(index) });
    await client.query('commit');
  } finally {
    // Destroyed, not pooled: it still holds the announcement nobody sent.
    client.release(true);
  }
}

/** The feed's reads of one run's events (the statement that carries them to the streams). */
const readsOf = (runId: string) => viewerStatements.filter((statement) => statement.text.includes('left join lateral') && statement.values[0] === runId);

async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('the run event feed', () => {
  it('announces appended events with the run and the newest seq the transaction wrote', async () => {
    const runId = await createRun(store.pool);
    await appendRunEvent(store.pool, { runId, actor: 'system', ...statementCompleted(0) });
    const listener = new pg.Client({ connectionString: database.url });
    await listener.connect();
    try {
      const payloads: string[] = [];
      listener.on('notification', (message) => payloads.push(message.payload ?? ''));
      await listener.query(`listen ${RUN_EVENTS_CHANNEL}`);
      const client = await store.pool.connect();
      try {
        // Two events in one transaction (as a transition writes them): one announcement, of the later seq.
        await inStoreTransaction(client, async (inside) => {
          await appendRunEvent(inside, { runId, actor: 'system', ...statementCompleted(1) });
          await appendRunEvent(inside, { runId, actor: 'system', ...statementCompleted(2) });
        });
      } finally {
        client.release();
      }
      await until(() => payloads.length > 0, 'the announcement');
      await sleep(200);
      expect(payloads).toEqual([`${runId}:3`]);
    } finally {
      await listener.end();
    }
  });

  it('checks every followed run in one statement per timed pass, and reads only a run with news', async () => {
    const runIds = await Promise.all([0, 1, 2, 3].map(() => createRun(store.pool)));
    const followers = runIds.map((runId) => follow(runId));
    try {
      await until(() => followers.every((follower) => follower.modes.includes('live')), 'the feed to listen');
      // Each follower reads its own backlog when it opens, and the feed catches up once it listens.
      await sleep(1_000);
      viewerStatements.length = 0;
      // One timed pass falls in this window (every 5 s); the next is after it.
      await sleep(7_000);
      expect(viewerStatements.length, viewerStatements.map((statement) => statement.text).join('\n---\n')).toBe(1);
      expect(runIds.flatMap(readsOf)).toEqual([]);

      // A run with an event nobody announced: the next pass finds it and reads that run alone.
      viewerStatements.length = 0;
      await appendUnannounced(runIds[1]!, 0);
      await until(() => followers[1]!.received.length === 1, 'the unannounced event', 10_000);
      await sleep(200);
      expect(readsOf(runIds[1]!)).toHaveLength(1);
      expect([runIds[0]!, runIds[2]!, runIds[3]!].flatMap(readsOf)).toEqual([]);
      expect(followers.map((follower) => follower.received.length)).toEqual([0, 1, 0, 0]);
    } finally {
      for (const follower of followers) follower.stop();
    }
  });

  it('delivers an event whose announcement was lost at the next timed pass', async () => {
    const runId = await createRun(store.pool);
    const follower = follow(runId);
    try {
      await until(() => follower.modes.includes('live'), 'the feed to listen');
      await appendUnannounced(runId, 0);
      await until(() => follower.received.length === 1, 'the unannounced event', 10_000);
      expect(follower.received.map((event) => event.seq)).toEqual([1]);
      // Announced events still come at once, and each exactly once.
      await appendRunEvent(store.pool, { runId, actor: 'system', ...statementCompleted(1) });
      await until(() => follower.received.length === 2, 'the announced event', 2_000);
      expect(follower.received.map((event) => event.seq)).toEqual([1, 2]);
      // An announcement of what the feed has already read costs no read.
      viewerStatements.length = 0;
      await store.pool.query('select pg_notify($1, $2)', [RUN_EVENTS_CHANNEL, `${runId}:2`]);
      await sleep(500);
      expect(readsOf(runId)).toEqual([]);
      expect(follower.received.map((event) => event.seq)).toEqual([1, 2]);
    } finally {
      follower.stop();
    }
  });
});

describe('a stream that claims more than the log holds', () => {
  it('does not stop the feed for the other viewers of the run', async () => {
    const runId = await createRun(store.pool);
    // ?after= and Last-Event-ID come from the browser: the first viewer says it has seq 1000.
    const claimant = follow(runId, 1_000);
    const viewer = follow(runId);
    try {
      await until(() => viewer.modes.includes('live') && viewer.reports.length > 0 && claimant.reports.length > 0, 'the feed to listen and both backlogs');
      await appendRunEvent(store.pool, { runId, actor: 'system', ...statementCompleted(0) });
      await until(() => viewer.received.length === 1, 'the event, at the latest by the next timed pass', 10_000);
      expect(viewer.received.map((event) => event.seq)).toEqual([1]);
      expect(claimant.received).toEqual([]);
    } finally {
      claimant.stop();
      viewer.stop();
    }
  });
});

describe('run-events announcements', () => {
  const runId = '0b9d3c1e-5f1a-4c8e-9d2b-7a6e5f4d3c2b';
  it('carry the run and the seq; one without a usable seq (an older instance sends the run alone) asks for a read', () => {
    expect(parseRunEventsAnnouncement(runEventsAnnouncement(runId, 7))).toEqual({ runId, seq: 7 });
    expect(parseRunEventsAnnouncement(runId)).toEqual({ runId, seq: Number.POSITIVE_INFINITY });
    expect(parseRunEventsAnnouncement(`${runId}:x`)).toEqual({ runId, seq: Number.POSITIVE_INFINITY });
    expect(parseRunEventsAnnouncement(`${runId}:0`).seq).toBe(Number.POSITIVE_INFINITY);
  });
});
