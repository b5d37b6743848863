/**
 * Reading a run's lock waits from PostgreSQL: who waits (by application name), since when, and who
 * blocks it; a role that may not see another user's session learns that it cannot see, not nothing.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { readLockWaits, signalSessions } from './lock-waits.server';

let db: TestDatabase;
let limitedUrl: string;
const role = `runsheet_limited_${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  db = await createTestDatabase('lock_waits');
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  const password = randomBytes(12).toString('hex');
  await admin.query(`create table public.waited_t (id int)`);
  await admin.query(`create role ${role} login password '${password}'`);
  await admin.query(`grant select on public.waited_t to ${role}`);
  await admin.end();
  const url = new URL(db.url);
  url.username = role;
  url.password = password;
  limitedUrl = url.toString();
});

afterAll(async () => {
  await db?.drop();
  const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/?]+(\?|$)/, '/postgres$1') });
  await admin.connect().then(
    () => admin.query(`drop role if exists ${role}`).finally(() => admin.end()),
    () => undefined,
  );
});

/** A superuser session (psql) holding ACCESS EXCLUSIVE, and a session of `application` (as `url`'s role) waiting behind it. */
async function blockedBehindHolder(url: string, application: string) {
  const holder = new pg.Client({ connectionString: db.url, application_name: 'psql' });
  await holder.connect();
  const holderPid = Number((await holder.query('select pg_backend_pid() as pid')).rows[0].pid);
  await holder.query('begin');
  await holder.query('lock table public.waited_t in access exclusive mode');
  const waiter = new pg.Client({ connectionString: url, application_name: application });
  waiter.on('error', () => {});
  await waiter.connect();
  const waiterPid = Number((await waiter.query('select pg_backend_pid() as pid')).rows[0].pid);
  const waiting = waiter.query('select count(*) from public.waited_t').catch((error: Error) => error);
  return {
    holderPid,
    waiterPid,
    waiting,
    end: async () => {
      await holder.query('rollback');
      await waiting;
      await Promise.all([holder.end(), waiter.end()]);
    },
  };
}

describe('readLockWaits', () => {
  it("names the waiting session, since when, and its blocker's application, state, lock and query", async () => {
    const probe = new pg.Pool({ connectionString: db.url, max: 2 });
    const scene = await blockedBehindHolder(db.url, 'runsheet:run:visible');
    try {
      const waits = await waitForWaits(probe, 'runsheet:run:visible');
      expect(waits).toEqual([
        expect.objectContaining({
          pid: scene.waiterPid,
          waitEvent: 'Lock:relation',
          relation: 'waited_t',
          query: 'select count(*) from public.waited_t',
          blockers: [expect.objectContaining({ pid: scene.holderPid, application: 'psql', state: 'idle in transaction', lockMode: 'AccessExclusiveLock', query: 'lock table public.waited_t in access exclusive mode' })],
        }),
      ]);
      expect(Date.parse(waits[0]!.since)).toBeLessThanOrEqual(Date.parse(waits[0]!.readAt));
      // Another application's waits are not this run's.
      expect(await readLockWaits(probe, 'runsheet:run:other', 0)).toEqual([]);
      // A cancel of the run's sessions reaches the waiter, never the holder.
      expect(await signalSessions(probe, 'runsheet:run:visible', 'cancel', true)).toEqual([scene.waiterPid]);
      expect(await scene.waiting).toMatchObject({ code: '57014' });
    } finally {
      await scene.end();
      await probe.end();
    }
  });

  it('says "cannot see" for a blocker the role may not see (no pg_read_all_stats), instead of nothing', async () => {
    const probe = new pg.Pool({ connectionString: limitedUrl, max: 2 });
    const scene = await blockedBehindHolder(limitedUrl, 'runsheet:run:limited');
    try {
      const [wait] = await waitForWaits(probe, 'runsheet:run:limited');
      expect(wait!.blockers).toEqual([expect.objectContaining({ pid: scene.holderPid, visible: false })]);
      expect(wait!.blockers[0]!.query).toBeUndefined();
    } finally {
      await scene.end();
      await probe.end();
    }
  });
});

async function waitForWaits(probe: pg.Pool, application: string) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const waits = await readLockWaits(probe, application, 0);
    if (waits.length > 0 && waits[0]!.blockers.length > 0) return waits;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no lock wait of ${application} was seen`);
}
