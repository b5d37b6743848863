/**
 * Slow facts (target facts, schema facts with their backfill count, ledger state) are computed
 * once, stored in fact_snapshots and served from there with their age. Refreshing is explicit, so
 * a page never waits on a count over a million rows; two refreshes of the same facts at once in
 * this process share one computation.
 */
import { and, eq, sql } from 'drizzle-orm';
import { factSnapshots } from '../../db/schema/index';
import type { StoreDb } from '../runtime/store.server';

export type FactKind = 'target' | 'schema' | 'ledger';

export interface FactKey {
  target: string;
  /** Omitted (or '') for facts of the target itself. */
  planId?: string;
  kind: FactKind;
}

export interface CachedFacts<T> {
  facts: T;
  /** When the computation finished, by the store's clock. */
  computedAt: Date;
  /** Age by the store's clock, so a skewed app clock does not make facts look fresh. */
  ageMs: number;
  durationMs: number;
}

export async function getCachedFacts<T>(db: StoreDb, key: FactKey): Promise<CachedFacts<T> | undefined> {
  const [row] = await db
    .select({
      facts: factSnapshots.facts,
      computedAt: factSnapshots.computedAt,
      durationMs: factSnapshots.durationMs,
      ageMs: sql<number>`(extract(epoch from (clock_timestamp() - ${factSnapshots.computedAt})) * 1000)::float8`,
    })
    .from(factSnapshots)
    .where(and(eq(factSnapshots.target, key.target), eq(factSnapshots.planId, key.planId ?? ''), eq(factSnapshots.kind, key.kind)));
  if (!row) return undefined;
  return { facts: row.facts as T, computedAt: row.computedAt, ageMs: Math.max(0, Math.round(Number(row.ageMs))), durationMs: row.durationMs };
}

/** One in-flight refresh per store and key. */
const inFlight = new WeakMap<StoreDb, Map<string, Promise<CachedFacts<unknown>>>>();

/**
 * Computes the facts now and stores them (replacing the previous ones). A failed computation
 * stores nothing and leaves the previous facts in place.
 */
export function refreshFacts<T>(db: StoreDb, key: FactKey, compute: () => Promise<T>): Promise<CachedFacts<T>> {
  let forStore = inFlight.get(db);
  if (!forStore) inFlight.set(db, (forStore = new Map()));
  const id = JSON.stringify([key.target, key.planId ?? '', key.kind]);
  const running = forStore.get(id);
  if (running) return running as Promise<CachedFacts<T>>;
  const promise = computeAndStore(db, key, compute).finally(() => forStore.delete(id));
  forStore.set(id, promise);
  return promise;
}

async function computeAndStore<T>(db: StoreDb, key: FactKey, compute: () => Promise<T>): Promise<CachedFacts<T>> {
  const started = performance.now();
  const facts = await compute();
  const durationMs = Math.round(performance.now() - started);
  const values = { target: key.target, planId: key.planId ?? '', kind: key.kind, facts: facts as unknown, durationMs, computedAt: sql`clock_timestamp()` };
  const [row] = await db
    .insert(factSnapshots)
    .values(values)
    .onConflictDoUpdate({
      target: [factSnapshots.target, factSnapshots.planId, factSnapshots.kind],
      set: { facts: values.facts, durationMs, computedAt: sql`clock_timestamp()` },
    })
    .returning({ computedAt: factSnapshots.computedAt });
  // The stored JSON is what later reads return; hand back the same shape now (Dates become text).
  return { facts: JSON.parse(JSON.stringify(facts ?? null)) as T, computedAt: row!.computedAt, ageMs: 0, durationMs };
}
