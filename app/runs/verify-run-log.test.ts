import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { asAttacker, createRunWithEvents, newSigningKeyPem, statementCompleted } from './run-log-fixtures';
import { appendRunEvent, genesisHash, hashRunEvent, readStoredRunEvents, runEventBody } from './run-log.server';
import { loadSigningKey, signCheckpoint } from './signing.server';
import { verifyStoredRunLog } from './verify-run-log.server';

let database: TestDatabase;
let store: Store;
const signingKeyPem = newSigningKeyPem();
const trusted = [loadSigningKey(signingKeyPem).publicKeyPem];

beforeAll(async () => {
  database = await createTestDatabase('run_verify');
  store = openStore(database.url);
  await migrateStore(store);
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

/** A run with 10 events signed at event 4 and at event 8, and 2 events after the last checkpoint. */
async function signedRun(): Promise<string> {
  const runId = await createRunWithEvents(store.pool, 4);
  await signCheckpoint(store.pool, runId, signingKeyPem);
  for (let index = 0; index < 4; index++) await appendRunEvent(store.pool, { runId, actor: 'system', ...statementCompleted(index) });
  await signCheckpoint(store.pool, runId, signingKeyPem);
  for (let index = 0; index < 2; index++) await appendRunEvent(store.pool, { runId, actor: 'engineer@example.com', role: 'engineer', type: 'note.added', payload: { text: `note ${index}` } });
  return runId;
}

/** Rewrite the stored chain from `fromSeq` on so every row hashes correctly again (what a careful attacker does). */
async function redoStoredHashes(runId: string, fromSeq: number): Promise<void> {
  const events = await readStoredRunEvents(store.pool, runId);
  let previous = fromSeq === 1 ? genesisHash(runId) : events[fromSeq - 2]!.hash;
  for (const event of events.slice(fromSeq - 1)) {
    const hash = hashRunEvent(previous, runEventBody(runId, event));
    await asAttacker(store.pool, 'update run_events set prev_hash = $3, hash = $4 where run_id = $1 and seq = $2', [runId, event.seq, previous, hash]);
    previous = hash;
  }
}

describe('verifyStoredRunLog', () => {
  it('accepts an untouched log, says how far it is signed, and caches the verdict', async () => {
    const runId = await signedRun();
    const events = await readStoredRunEvents(store.pool, runId);
    const first = await verifyStoredRunLog(store.pool, runId, trusted);
    expect(first).toEqual({ ok: true, runId, head: events.at(-1)!.hash, eventCount: 10, signedSeq: 8, checkpointCount: 2, cached: false });
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: true, cached: true });
    // A new event is a new head: verified afresh.
    await appendRunEvent(store.pool, { runId, actor: 'system', type: 'note.added', payload: { text: 'later' } });
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: true, eventCount: 11, cached: false });
  });

  it("names the event whose payload was changed by SQL, even after a cached verdict", async () => {
    const runId = await signedRun();
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: true });
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: true, cached: true });
    await asAttacker(store.pool, `update run_events set payload = payload || '{"approved": true}' where run_id = $1 and seq = 3`, [runId]);
    const verdict = await verifyStoredRunLog(store.pool, runId, trusted);
    expect(verdict).toMatchObject({ ok: false, firstBadSeq: 3, cached: false });
    expect(!verdict.ok && verdict.reason).toMatch(/event 3 .*does not match its hash/);
    expect(!verdict.ok && verdict.reason).toMatch(/event 3 .*differs from what was signed.*: payload changed/);
  });

  it('names the changed event when the attacker recomputed that row and every later hash', async () => {
    const runId = await signedRun();
    await asAttacker(store.pool, `update run_events set actor = 'ceo@example.com' where run_id = $1 and seq = 6`, [runId]);
    await redoStoredHashes(runId, 6);
    const verdict = await verifyStoredRunLog(store.pool, runId, trusted);
    expect(verdict).toMatchObject({ ok: false, firstBadSeq: 6 });
    expect(!verdict.ok && verdict.reason).toMatch(/event 6 .*differs from what was signed at the checkpoint through event 8: actor, hash changed/);
  });

  it('names a deleted event', async () => {
    const runId = await signedRun();
    await asAttacker(store.pool, 'delete from run_events where run_id = $1 and seq = 5', [runId]);
    const verdict = await verifyStoredRunLog(store.pool, runId, trusted);
    expect(verdict).toMatchObject({ ok: false, firstBadSeq: 5 });
    expect(!verdict.ok && verdict.reason).toMatch(/event 5 is missing/);
  });

  it('names a deleted signed last event, which leaves no gap', async () => {
    const runId = await createRunWithEvents(store.pool, 3);
    await signCheckpoint(store.pool, runId, signingKeyPem);
    await asAttacker(store.pool, 'delete from run_events where run_id = $1 and seq = 3', [runId]);
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: false, firstBadSeq: 3 });
  });

  it('names two swapped events', async () => {
    const runId = await signedRun();
    await asAttacker(
      store.pool,
      [
        'update run_events set seq = 1000000 where run_id = $1 and seq = 2',
        'update run_events set seq = 2 where run_id = $1 and seq = 3',
        'update run_events set seq = 3 where run_id = $1 and seq = 1000000',
      ],
      [runId],
    );
    const verdict = await verifyStoredRunLog(store.pool, runId, trusted);
    expect(verdict).toMatchObject({ ok: false, firstBadSeq: 2 });
    expect(!verdict.ok && verdict.reason).toMatch(/event 2 does not follow event 1/);
  });

  it('catches a change after the last checkpoint by the chain alone', async () => {
    const runId = await signedRun();
    await asAttacker(store.pool, `update run_events set type = 'signoff' where run_id = $1 and seq = 10`, [runId]);
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: false, firstBadSeq: 10 });
  });

  it("catches a change to what the run is (its plan checksum)", async () => {
    const runId = await signedRun();
    await store.pool.query(`update runs set plan_checksum = repeat('0', 64) where id = $1`, [runId]);
    const verdict = await verifyStoredRunLog(store.pool, runId, trusted);
    expect(verdict).toMatchObject({ ok: false });
    expect(!verdict.ok && verdict.reason).toMatch(/plan_checksum/);
  });

  it('catches a checkpoint replaced with one signed by an untrusted key', async () => {
    const runId = await signedRun();
    await asAttacker(store.pool, 'delete from run_checkpoints where run_id = $1 and seq = 8', [runId]);
    await signCheckpoint(store.pool, runId, newSigningKeyPem());
    const verdict = await verifyStoredRunLog(store.pool, runId, trusted);
    expect(!verdict.ok && verdict.reason).toMatch(/not among the 1 trusted key/);
  });

  it('reports a run with no checkpoint yet as chained but unsigned', async () => {
    const runId = await createRunWithEvents(store.pool, 3);
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: true, eventCount: 3, signedSeq: 0, checkpointCount: 0 });
    expect(await verifyStoredRunLog(store.pool, '00000000-0000-0000-0000-000000000000', trusted)).toMatchObject({ ok: false, reason: expect.stringMatching(/does not exist/) });
  });

  it('re-hashes 10,000 events once; a second page view is served from the cache', async () => {
    const runId = await createRunWithEvents(store.pool, 1);
    // Bulk-load the chain (appending one by one would take the test's whole budget).
    const rows: unknown[][] = [];
    let previous = (await readStoredRunEvents(store.pool, runId))[0]!.hash;
    for (let seq = 2; seq <= 10_000; seq++) {
      const event = { seq, at: '2025-11-25T12:00:00.000000Z', actor: 'system', role: null, type: 'statement.completed', payload: { line: seq, rows: seq * 3 } };
      const hash = hashRunEvent(previous, runEventBody(runId, event));
      rows.push([seq, JSON.stringify(event.payload), previous, hash]);
      previous = hash;
    }
    await store.pool.query(
      `insert into run_events (run_id, seq, at, actor, role, type, payload, prev_hash, hash)
       select $1, r.seq, '2025-11-25T12:00:00.000000Z', 'system', null, 'statement.completed', r.payload::jsonb, r.prev_hash, r.hash
         from jsonb_to_recordset($2::jsonb) as r(seq int, payload text, prev_hash text, hash text) order by r.seq`,
      [runId, JSON.stringify(rows.map(([seq, payload, prevHash, hash]) => ({ seq, payload, prev_hash: prevHash, hash })))],
    );
    await signCheckpoint(store.pool, runId, signingKeyPem);

    let started = performance.now();
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: true, eventCount: 10_000, cached: false });
    const fresh = performance.now() - started;
    started = performance.now();
    expect(await verifyStoredRunLog(store.pool, runId, trusted)).toMatchObject({ ok: true, cached: true });
    const cached = performance.now() - started;
    expect(cached).toBeLessThan(fresh);
    console.log(`verifyStoredRunLog, 10,000 events: ${fresh.toFixed(0)} ms fresh, ${cached.toFixed(1)} ms cached`);
  });
});
