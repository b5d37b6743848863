import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { getCachedFacts, refreshFacts } from './fact-cache.server';
import { readTargetFacts, type TargetFacts } from './target-facts.server';
import { openTargetPool } from './targets.server';

let db: TestDatabase;
let store: Store;

beforeAll(async () => {
  db = await createTestDatabase('fact_cache');
  store = openStore(db.url, { max: 3 });
  await migrateStore(store);
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('fact cache', () => {
  it('serves the last computed facts with their age until refreshed', async () => {
    const key = { target: 'sandbox', planId: '008', kind: 'schema' as const };
    expect(await getCachedFacts(store.db, key)).toBeUndefined();

    const refreshed = await refreshFacts(store.db, key, async () => {
      await sleep(30);
      return { presentCount: 5, at: new Date('2025-11-22T10:00:00Z') };
    });
    expect(refreshed.facts).toEqual({ presentCount: 5, at: '2025-11-22T10:00:00.000Z' });
    expect(refreshed.durationMs).toBeGreaterThanOrEqual(25);
    expect(refreshed.ageMs).toBe(0);

    await sleep(60);
    const cached = await getCachedFacts<{ presentCount: number }>(store.db, key);
    expect(cached!.facts).toEqual(refreshed.facts);
    expect(cached!.computedAt.getTime()).toBe(refreshed.computedAt.getTime());
    expect(cached!.ageMs).toBeGreaterThanOrEqual(50);
    expect(cached!.durationMs).toBe(refreshed.durationMs);

    // Other plans, targets and kinds are other keys.
    expect(await getCachedFacts(store.db, { ...key, planId: '009' })).toBeUndefined();
    expect(await getCachedFacts(store.db, { ...key, kind: 'ledger' })).toBeUndefined();

    const again = await refreshFacts(store.db, key, async () => ({ presentCount: 0 }));
    expect((await getCachedFacts(store.db, key))!.facts).toEqual({ presentCount: 0 });
    expect(again.computedAt.getTime()).toBeGreaterThan(refreshed.computedAt.getTime());
  });

  it('coalesces concurrent refreshes of the same key into one computation', async () => {
    const key = { target: 'staging', kind: 'target' as const };
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const compute = async () => {
      calls++;
      await gate;
      return { calls };
    };
    const first = refreshFacts(store.db, key, compute);
    const second = refreshFacts(store.db, key, compute);
    const otherKey = refreshFacts(store.db, { ...key, target: 'production' }, async () => ({ other: true }));
    expect(second).toBe(first);
    release();
    const [a, b] = await Promise.all([first, second, otherKey]);
    expect(calls).toBe(1);
    expect(a).toEqual(b);
    // Once it settled, the next refresh computes again.
    await refreshFacts(store.db, key, compute);
    expect(calls).toBe(2);
    expect((await getCachedFacts(store.db, { target: 'production', kind: 'target' }))!.facts).toEqual({ other: true });
  });

  it('keeps the previous facts when a refresh fails', async () => {
    const key = { target: 'sandbox', kind: 'ledger' as const, planId: '008' };
    await refreshFacts(store.db, key, async () => ({ state: 'applied' }));
    await expect(refreshFacts(store.db, key, async () => Promise.reject(new Error('target unreachable')))).rejects.toThrow('target unreachable');
    expect((await getCachedFacts(store.db, key))!.facts).toEqual({ state: 'applied' });
    // A failed refresh does not stay in flight.
    await refreshFacts(store.db, key, async () => ({ state: 'rolled_back' }));
    expect((await getCachedFacts(store.db, key))!.facts).toEqual({ state: 'rolled_back' });
  });

  it('caches real target facts', async () => {
    const pool = openTargetPool(db.url, { max: 1 });
    try {
      const refreshed = await refreshFacts(store.db, { target: 'sandbox', kind: 'target' }, () => readTargetFacts(pool));
      const cached = await getCachedFacts<TargetFacts>(store.db, { target: 'sandbox', kind: 'target' });
      expect(cached!.facts).toEqual(refreshed.facts);
      expect(cached!.facts.database).toBe(db.name);
    } finally {
      await pool.end();
    }
  });
});
