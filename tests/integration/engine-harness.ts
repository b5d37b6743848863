/**
 * Test support for the engine tests: a migrated store, target databases (optionally filled with
 * the sandbox), EngineDeps over them, and the actors. Real PostgreSQL throughout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import type { EngineActor, EngineDeps } from '../../app/engine/engine-deps.server';
import { newSigningKeyPem } from '../../app/runs/run-log-fixtures';
import { migrateStore, openStore, type Store } from '../../app/runtime/store.server';
import { generateSandbox } from '../../app/sandbox/generate-sandbox.server';
import { TargetRulesSchema } from '../../app/runtime/target-config';
import { createTargetRegistry } from '../../app/targets/target-registry.server';
import type { Target } from '../../app/targets/targets.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import type { WorkerJob } from './engine-worker';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const ENGINE_PLANS = path.join(ROOT, 'tests/fixtures/plans-engine');
export const REAL_PLANS = path.join(ROOT, 'plans');

export const ENGINEER: EngineActor = { email: 'engineer@example.com', role: 'engineer' };
export const SECOND_ENGINEER: EngineActor = { email: 'engineer2@example.com', role: 'engineer' };
export const TPM: EngineActor = { email: 'tpm@example.com', role: 'tpm' };
export const VIEWER: EngineActor = { email: 'viewer@example.com', role: 'viewer' };

export interface HarnessTarget {
  db: TestDatabase;
  /** The registry's pool of this target (what the engine uses). */
  pool: pg.Pool;
  target: Target;
}

export interface EngineHarness {
  store: Store;
  storeDb: TestDatabase;
  signingKeyPem: string;
  targets: Map<string, HarnessTarget>;
  deps: EngineDeps;
  /** A fresh client on a target (the test's own "psql"). */
  connect(name: string): Promise<pg.Client>;
  close(): Promise<void>;
}

export interface HarnessTargetSpec {
  name: string;
  rules?: Record<string, unknown>;
  /** Fill the target with the sandbox (platform schema) of this many users. */
  sandboxUsers?: number;
}

export async function startEngineHarness(options: { plansDir: string; targets: HarnessTargetSpec[] }): Promise<EngineHarness> {
  const storeDb = await createTestDatabase('engine_store');
  const store = openStore(storeDb.url, { max: 20 });
  await migrateStore(store);
  const specs = new Map<string, Omit<HarnessTarget, 'pool'>>();
  for (const spec of options.targets) {
    const db = await createTestDatabase(`engine_${spec.name}`);
    if (spec.sandboxUsers !== undefined) {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await generateSandbox(client, { users: spec.sandboxUsers, seed: 7 });
      await client.end();
    }
    const rules = TargetRulesSchema.parse(spec.rules ?? {});
    specs.set(spec.name, {
      db,
      target: { name: spec.name, label: rules.label ?? spec.name, url: db.url, displayUrl: db.url, rules },
    });
  }
  const signingKeyPem = newSigningKeyPem();
  const registry = createTargetRegistry({
    addresses: new Map([...specs].map(([name, { target }]) => [name, { url: target.url }])),
    rules: new Map([...specs].map(([name, { target }]) => [name, target.rules])),
    config: { targets: {} },
    poolSize: 6,
  });
  const targets = new Map<string, HarnessTarget>([...specs].map(([name, spec]) => [name, { ...spec, pool: registry.pool(name) }]));
  const deps: EngineDeps = { store, plansDir: options.plansDir, signingKeyPem, targets: registry };
  return {
    store,
    storeDb,
    signingKeyPem,
    targets,
    deps,
    connect: async (name) => {
      const client = new pg.Client({ connectionString: targets.get(name)!.db.url });
      await client.connect();
      return client;
    },
    close: async () => {
      await registry.close();
      await store.close().catch(() => {});
      for (const { db } of targets.values()) await db.drop().catch(() => {});
      await storeDb.drop().catch(() => {});
    },
  };
}

export async function ledgerRows(client: pg.ClientBase | pg.Pool): Promise<{ run_id: string; action: string; outcome: string; checksum: string; steps_completed: unknown }[]> {
  const present = await client.query(`select to_regclass('runsheet.ledger') is not null as present`);
  if (!present.rows[0].present) return [];
  const { rows } = await client.query('select run_id::text, action, outcome, checksum, steps_completed from runsheet.ledger order by id');
  return rows;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Another Runsheet process (engine-worker.ts) running `job`: its exit code and output when done. */
export function startEngineWorker(job: WorkerJob): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'tests/integration/engine-worker.ts')], {
    cwd: ROOT,
    env: { ...process.env, ENGINE_WORKER: JSON.stringify(job) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}
