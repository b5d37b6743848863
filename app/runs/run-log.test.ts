import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { createRun, RUN_CREATED } from './run-log-fixtures';
import { appendRunEvent, checkChain, genesisHash, hashRunEvent, readRunEvents, readStoredRunEvents } from './run-log.server';

let database: TestDatabase;
let store: Store;

beforeAll(async () => {
  database = await createTestDatabase('run_log');
  store = openStore(database.url, { max: 25 });
  await migrateStore(store);
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

async function sqlError(promise: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected the statement to fail');
}

describe('hash chain spec (docs/decisions/010-run-log-hash-chain.md)', () => {
  it('matches the test vectors computed with printf | sha256sum', () => {
    const runId = '00000000-0000-0000-0000-000000000000';
    expect(genesisHash(runId)).toBe('c69bf4225c2646cfde05c593bf74c41729b1d595234435a0ce003a0978a4285c');
    const hash = hashRunEvent(genesisHash(runId), {
      run_id: runId,
      seq: 1,
      at: '2025-11-25T12:00:00.000000Z',
      actor: 'tpm@example.com',
      role: 'tpm',
      type: 'run.created',
      payload: { plan: '008', b: 1.5, a: [1, 'é'] },
    });
    expect(hash).toBe('8f2b5a3141032e14ac13c9183a111a45b98ec467034bdcd75a4ff282c59facd6');
  });

  it('computes the genesis in PostgreSQL exactly as in TypeScript', async () => {
    const runId = await createRun(store.pool);
    const { rows } = await store.pool.query<{ genesis: string }>('select run_log_genesis($1) as genesis', [runId]);
    expect(rows[0]!.genesis).toBe(genesisHash(runId));
  });
});

const note = (text: string) => ({ type: 'note.added' as const, payload: { text } });
const phaseStarted = { type: 'phase.started' as const, payload: { phase: 'apply', plannedMs: null } };
/** A 'checks.ran' whose one result carries `actual`: the union's place for any JSON a check returned. */
const checksRanWith = (actual: unknown) => ({
  type: 'checks.ran' as const,
  payload: {
    phase: 'verify',
    planChecksum: RUN_CREATED.checksum,
    passed: true,
    failed: [],
    skipped: [],
    results: [{ checkId: 'c', title: 'c', kind: 'sql', passed: true, skipped: false, expected: { type: 'exists' }, actual, sql: 'select 1', error: null, reason: null, durationMs: 1, ranAt: '2025-01-02T03:04:05.678Z' }],
  },
});

describe('appendRunEvent', () => {
  it('links each event to the previous one and takes `at` from the database clock', async () => {
    const runId = await createRun(store.pool);
    const first = await appendRunEvent(store.pool, { runId, actor: 'tpm@example.com', role: 'tpm', type: 'run.created', payload: RUN_CREATED });
    const second = await appendRunEvent(store.pool, { runId, actor: 'system', ...note('second') });
    expect(first.seq).toBe(1);
    expect(first.prevHash).toBe(genesisHash(runId));
    expect(second).toMatchObject({ seq: 2, prevHash: first.hash, role: null, payload: { text: 'second' } });
    expect(first.at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    expect(second.at >= first.at).toBe(true);
    expect(Math.abs(Date.parse(first.at) - Date.now())).toBeLessThan(60_000);
    const strip = ({ prevHash: _prevHash, hash: _hash, ...event }: typeof first) => event;
    expect(await readRunEvents(store.pool, runId)).toEqual([strip(first), strip(second)]);
  });

  it('hashes the payload as PostgreSQL stores it, so reading it back re-hashes to the same value', async () => {
    const runId = await createRun(store.pool);
    const actual = { z: 1, a: { y: [1.0, 2.5, 1e21, -0, 'ü\u2028'], x: null }, big: 12345678901234, date: new Date('2025-01-02T03:04:05.678Z') };
    const stored = await appendRunEvent(store.pool, { runId, actor: 'tpm@example.com', role: 'tpm', ...checksRanWith(actual) });
    const events = await readStoredRunEvents(store.pool, runId);
    expect(events[0]!.hash).toBe(stored.hash);
    expect(stored.type === 'checks.ran' && stored.payload.results[0]!.actual).toMatchObject({ date: '2025-01-02T03:04:05.678Z' });
    expect(checkChain(runId, events)).toMatchObject({ ok: true, head: stored.hash });
  });

  it('gives 20 concurrent appends one linear chain', async () => {
    const runId = await createRun(store.pool);
    const appended = await Promise.all(
      Array.from({ length: 20 }, (_, index) => appendRunEvent(store.pool, { runId, actor: `engineer${index}@example.com`, role: 'engineer', ...note(`note ${index}`) })),
    );
    expect(appended.map((event) => event.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, index) => index + 1));
    const events = await readStoredRunEvents(store.pool, runId);
    expect(events).toHaveLength(20);
    expect(checkChain(runId, events).ok).toBe(true);
    for (const [index, event] of events.entries()) {
      expect(event.prevHash).toBe(index === 0 ? genesisHash(runId) : events[index - 1]!.hash);
    }
  });

  it("works inside the caller's transaction: rolled back with it, and later writers wait for it", async () => {
    const runId = await createRun(store.pool);
    await appendRunEvent(store.pool, { runId, actor: 'system', type: 'run.created', payload: RUN_CREATED });
    const client = await store.pool.connect();
    try {
      await client.query('begin');
      await appendRunEvent(client, { runId, actor: 'system', ...phaseStarted });
      await client.query('rollback');
      expect(await readRunEvents(store.pool, runId)).toHaveLength(1);

      await client.query('begin');
      const inside = await appendRunEvent(client, { runId, actor: 'system', ...phaseStarted });
      expect(client.getTransactionStatus()).toBe('T');
      // Another writer must wait for our lock, then chain after our event.
      const outside = appendRunEvent(store.pool, { runId, actor: 'system', type: 'state.changed', payload: { from: 'ready', to: 'applying', reason: 'test' } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await readRunEvents(store.pool, runId)).toHaveLength(1);
      await client.query('commit');
      const later = await outside;
      expect(inside.seq).toBe(2);
      expect(later).toMatchObject({ seq: 3, prevHash: inside.hash });
    } finally {
      client.release();
    }
    // A Drizzle store handle is unwrapped to its pool.
    expect((await appendRunEvent(store.db, { runId, actor: 'system', ...note('four') })).seq).toBe(4);
    // An idle client gets its own transaction.
    const idle = await store.pool.connect();
    try {
      expect((await appendRunEvent(idle, { runId, actor: 'system', ...note('five') })).seq).toBe(5);
      expect(idle.getTransactionStatus()).toBe('I');
    } finally {
      idle.release();
    }
  });

  it('refuses, before touching the database, what it could not hash or store', async () => {
    const runId = await createRun(store.pool);
    await expect(appendRunEvent(store.pool, { runId, actor: 'system', ...checksRanWith({ bad: Number.NaN }) })).rejects.toThrow(/NaN/);
    await expect(appendRunEvent(store.pool, { runId, actor: 'system', ...note('a\u0000b') })).rejects.toThrow(/U\+0000/);
    await expect(appendRunEvent(store.pool, { runId, actor: 'system', type: 'note.added', payload: [1] as never })).rejects.toThrow(/object/);
    await expect(appendRunEvent(store.pool, { runId: 'nope', actor: 'system', ...note('x') })).rejects.toThrow(/not a run id/);
    await expect(appendRunEvent(store.pool, { runId: '00000000-0000-0000-0000-000000000000', actor: 'system', ...note('x') })).rejects.toThrow(/does not exist/);
    // A backslash before "u0000" in the text itself is fine.
    await expect(appendRunEvent(store.pool, { runId, actor: 'system', ...note('\\u0000') })).resolves.toMatchObject({ seq: 1 });
  });

  it('refuses an event the run-event union does not describe: an unknown type, a missing field, an undeclared key', async () => {
    const runId = await createRun(store.pool);
    await expect(appendRunEvent(store.pool, { runId, actor: 'system', type: 'x' as never, payload: {} as never })).rejects.toThrow(/does not fit the run-event union/);
    await expect(appendRunEvent(store.pool, { runId, actor: 'system', type: 'note.added', payload: {} as never })).rejects.toThrow(/payload\.text/);
    await expect(appendRunEvent(store.pool, { runId, actor: 'system', type: 'note.added', payload: { text: 'ok', extra: 1 } as never })).rejects.toThrow(/undeclare[d]? .*payload\.extra|payload\.extra/);
    expect(await readRunEvents(store.pool, runId)).toEqual([]);
  });

  it('reads every stored event, and one it does not know as the unrecognised fallback (never an error)', async () => {
    const runId = await createRun(store.pool);
    await appendRunEvent(store.pool, { runId, actor: 'system', ...note('known') });
    // A later version's event, written with the chain intact (as a future writer would).
    const [previous] = await readStoredRunEvents(store.pool, runId);
    const at = '2026-01-01T00:00:00.000000Z';
    const body = { run_id: runId, seq: 2, at, actor: 'system', role: null, type: 'watch.result', payload: { check: 'c', passed: true } };
    await store.pool.query(
      `insert into run_events (run_id, seq, at, actor, role, type, payload, prev_hash, hash) values ($1, 2, $2, 'system', null, 'watch.result', $3::jsonb, $4, $5)`,
      [runId, at, JSON.stringify(body.payload), previous!.hash, hashRunEvent(previous!.hash, body)],
    );
    const events = await readRunEvents(store.pool, runId);
    expect(events[0]).toMatchObject({ type: 'note.added', payload: { text: 'known' } });
    expect(events[1]).toMatchObject({ type: 'unrecognised', payload: { storedType: 'watch.result', storedPayload: { check: 'c', passed: true } } });
    expect(checkChain(runId, await readStoredRunEvents(store.pool, runId)).ok).toBe(true);
  });

  it('reads a page after a seq, in seq order', async () => {
    const runId = await createRun(store.pool);
    for (let index = 0; index < 5; index++) await appendRunEvent(store.pool, { runId, actor: 'system', ...note(`note ${index}`) });
    const page = await readRunEvents(store.pool, runId, { afterSeq: 2, limit: 2 });
    expect(page.map((event) => event.seq)).toEqual([3, 4]);
  });
});

describe('PostgreSQL enforces the run log rules', () => {
  it('refuses UPDATE, DELETE and TRUNCATE of run_events', async () => {
    const runId = await createRun(store.pool);
    await appendRunEvent(store.pool, { runId, actor: 'system', type: 'run.created', payload: RUN_CREATED });
    for (const statement of [
      [`update run_events set payload = '{"x": 1}' where run_id = $1`, [runId]],
      ['delete from run_events where run_id = $1', [runId]],
      ['truncate run_events', []],
      ['truncate runs cascade', []],
    ] as const) {
      const error = await sqlError(store.pool.query(statement[0], [...statement[1]]));
      expect(error.code).toBe('42501');
      expect(error.message).toMatch(/(run_events|run_checkpoints) is append-only/);
    }
    expect(await readRunEvents(store.pool, runId)).toHaveLength(1);
  });

  it('refuses UPDATE and DELETE of run_checkpoints, and a checkpoint whose head is not the stored one', async () => {
    const runId = await createRun(store.pool);
    const event = await appendRunEvent(store.pool, { runId, actor: 'system', type: 'run.created', payload: RUN_CREATED });
    const wrongHead = await sqlError(
      store.pool.query(`insert into run_checkpoints (run_id, seq, head, envelope, keyid) values ($1, 1, $2, '{}', 'k')`, [runId, genesisHash(runId)]),
    );
    expect(wrongHead.message).toMatch(/is not the stored hash of event 1/);
    await store.pool.query(`insert into run_checkpoints (run_id, seq, head, envelope, keyid) values ($1, 1, $2, '{}', 'k')`, [runId, event.hash]);
    expect((await sqlError(store.pool.query('update run_checkpoints set keyid = $2 where run_id = $1', [runId, 'x']))).code).toBe('42501');
    expect((await sqlError(store.pool.query('delete from run_checkpoints where run_id = $1', [runId]))).code).toBe('42501');
  });

  it('refuses an event that does not extend the chain by exactly one link', async () => {
    const runId = await createRun(store.pool);
    const first = await appendRunEvent(store.pool, { runId, actor: 'system', type: 'run.created', payload: RUN_CREATED });
    const insert = (seq: number, prevHash: string) =>
      store.pool.query(
        `insert into run_events (run_id, seq, at, actor, role, type, payload, prev_hash, hash)
         values ($1, $2, '2025-11-25T12:00:00.000000Z', 'system', null, 'x', '{}', $3, $4)`,
        [runId, seq, prevHash, first.hash],
      );
    expect((await sqlError(insert(3, first.hash))).message).toMatch(/does not extend the chain/);
    expect((await sqlError(insert(2, genesisHash(runId)))).message).toMatch(/does not extend the chain/);
  });

  it("checks a run's kind against its state, and allows one active run per target", async () => {
    const kindState = await sqlError(createRun(store.pool, { kind: 'rehearsal', state: 'applying' }));
    expect(kindState.message).toMatch(/runs_state_fits_kind/);
    expect((await sqlError(createRun(store.pool, { kind: 'execute', state: 'rehearsed' }))).message).toMatch(/runs_state_fits_kind/);
    expect((await sqlError(createRun(store.pool, { state: 'done' }))).message).toMatch(/runs_state_known/);

    await createRun(store.pool, { target: 'staging', state: 'applying' });
    await createRun(store.pool, { target: 'staging', state: 'applied' });
    await createRun(store.pool, { target: 'production', state: 'applying' });
    const second = await sqlError(createRun(store.pool, { target: 'staging', kind: 'rehearsal', state: 'rehearsing' }));
    expect(second.code).toBe('23505');
    expect(second.message).toMatch(/runs_one_active_per_target/);
  });
});
