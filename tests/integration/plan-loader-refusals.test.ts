/**
 * Issue 10, reproduction 8: the plan loader let through what the engine then refused mid-run.
 * - BEGIN/COMMIT in a step made non-transactional (the old advice) loaded, and the engine refused
 *   that step after three earlier steps had committed: a partial apply.
 * - CREATE INDEX CONCURRENTLY in a transactional step loaded and failed at run time (25001); a
 *   DROP INDEX CONCURRENTLY met in a transactional rollback step left the run rollback_failed.
 * - The same CREATE INDEX CONCURRENTLY as a plain non-transactional sql step skipped an INVALID
 *   index left by a failed build and showed the step done.
 * Now none of these plans load, so no run of them opens and nothing reaches the target; the
 * plans written as the refusals advise apply and roll back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, rollbackRun } from '../../app/engine/engine.server';
import { openWorkingRun } from '../../app/engine/runs.server';
import { findRuns } from '../../app/runs/run-store.server';
import { ENGINEER, ledgerRows, startEngineHarness, TPM, type EngineHarness } from './engine-harness';

let plansDir: string;
let harness: EngineHarness;

const TABLES = ['r8_a', 'r8_b', 'r8_c', 'r8_t'];
const DROP_TABLES = TABLES.map((table) => `DROP TABLE IF EXISTS public.${table};`).join('\n') + '\n';

function writePlan(id: string, yaml: string, files: Record<string, string>): void {
  fs.mkdirSync(path.join(plansDir, id), { recursive: true });
  fs.writeFileSync(path.join(plansDir, id, 'plan.yaml'), `id: ${id}\ntitle: ${id}\n${yaml}`);
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(plansDir, id, name), content);
}

const THREE_STEPS = {
  yaml: [
    'apply:',
    '  - { id: s1, title: Table a, file: s1.sql }',
    '  - { id: s2, title: Table b, file: s2.sql }',
    '  - { id: s3, title: Table c, file: s3.sql }',
  ].join('\n'),
  files: {
    's1.sql': 'CREATE TABLE public.r8_a (id int);\n',
    's2.sql': 'CREATE TABLE public.r8_b (id int);\n',
    's3.sql': 'CREATE TABLE public.r8_c (id int);\n',
  },
};
const ROLLBACK_DROP = 'rollback:\n  steps:\n    - { id: drop, title: Drop, file: rollback.sql }\n';
const TABLE_STEP = { yaml: 'apply:\n  - { id: table, title: Table, file: table.sql }', files: { 'table.sql': 'CREATE TABLE public.r8_t (id int, n int);\n' } };

beforeAll(async () => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-repro8-'));
  // 8a: the old advice for BEGIN/COMMIT in a transactional step, followed.
  writePlan('r8-commit', `${THREE_STEPS.yaml}\n  - { id: s4, title: Fill a, file: s4.sql, transactional: false }\n${ROLLBACK_DROP}`, {
    ...THREE_STEPS.files,
    's4.sql': 'BEGIN;\nINSERT INTO public.r8_a VALUES (1);\nCOMMIT;\n',
    'rollback.sql': DROP_TABLES,
  });
  // 8b: CREATE INDEX CONCURRENTLY in a transactional step; DROP INDEX CONCURRENTLY in a transactional rollback step.
  writePlan('r8-cic-transactional', `${TABLE_STEP.yaml}\n  - { id: index, title: Index, file: index.sql }\nrollback:\n  steps:\n    - { id: drop, title: Drop, file: rollback.sql }\n`, {
    ...TABLE_STEP.files,
    'index.sql': 'CREATE INDEX CONCURRENTLY IF NOT EXISTS r8_t_n_idx ON public.r8_t (n);\n',
    'rollback.sql': `DROP INDEX CONCURRENTLY IF EXISTS public.r8_t_n_idx;\n${DROP_TABLES}`,
  });
  // 8c: the same statement as a plain non-transactional sql step.
  writePlan('r8-cic-plain', `${TABLE_STEP.yaml}\n  - { id: index, title: Index, file: index.sql, transactional: false }\n${ROLLBACK_DROP}`, {
    ...TABLE_STEP.files,
    'index.sql': 'CREATE INDEX CONCURRENTLY IF NOT EXISTS r8_t_n_idx ON public.r8_t (n);\n',
    'rollback.sql': DROP_TABLES,
  });
  // The same plans, written as the refusals advise.
  writePlan('r8-commit-advised', `${THREE_STEPS.yaml}\n  - { id: s4, title: Fill a, file: s4.sql }\n${ROLLBACK_DROP}`, {
    ...THREE_STEPS.files,
    's4.sql': 'INSERT INTO public.r8_a VALUES (1);\n',
    'rollback.sql': DROP_TABLES,
  });
  writePlan(
    'r8-cic-advised',
    `${TABLE_STEP.yaml}\n  - { id: index, title: Index, kind: create_index_concurrently, file: index.sql, index: { schema: public, name: r8_t_n_idx } }\n` +
      'rollback:\n  steps:\n    - { id: drop-index, title: Drop the index, file: rollback_index.sql, transactional: false }\n    - { id: drop, title: Drop, file: rollback.sql }\n',
    {
      ...TABLE_STEP.files,
      'index.sql': 'CREATE INDEX CONCURRENTLY IF NOT EXISTS r8_t_n_idx ON public.r8_t (n);\n',
      'rollback_index.sql': 'DROP INDEX CONCURRENTLY IF EXISTS public.r8_t_n_idx;\n',
      'rollback.sql': DROP_TABLES,
    },
  );
  harness = await startEngineHarness({ plansDir, targets: [{ name: 'sandbox' }] });
});

afterAll(async () => {
  await harness?.close();
  fs.rmSync(plansDir, { recursive: true, force: true });
});

async function tablesOnTarget(): Promise<string[]> {
  const { rows } = await harness.targets.get('sandbox')!.pool.query<{ name: string }>(
    `select relname as name from pg_catalog.pg_class where relname like 'r8\\_%' order by relname`,
  );
  return rows.map((row) => row.name);
}

describe('reproduction 8: what the engine would refuse does not load, so nothing runs', () => {
  it.each([
    ['r8-commit', 's4.sql', [1, 3], /^BEGIN on line 1: this step runs statement by statement/],
    ['r8-cic-transactional', 'index.sql', [1], /^CREATE INDEX CONCURRENTLY on line 1 cannot run inside a transaction block.*kind: create_index_concurrently/],
    ['r8-cic-plain', 'index.sql', [1], /^CREATE INDEX CONCURRENTLY on line 1 in a plain sql step.*kind: create_index_concurrently/],
  ] as const)('%s is refused when a run is opened, naming %s and its lines', async (planId, file, lines, first) => {
    const refusal = await openWorkingRun(harness.deps, { planId, target: 'sandbox', kind: 'execute', actor: TPM }).then(
      () => undefined,
      (error: unknown) => error as { kind?: string; message?: string },
    );
    expect(refusal, `${planId} opened a run`).toBeDefined();
    expect(refusal!.kind).toBe('invalid_plan');
    const refusedLines = refusal!.message!.split('\n').filter((line) => line.includes(`/${planId}/${file}`));
    expect(refusedLines.map((line) => Number(/ on line (\d+)/.exec(line)?.[1]))).toEqual(expect.arrayContaining([...lines]));
    expect(refusedLines[0]!.split(': ').slice(1).join(': ')).toMatch(first);
    expect(await findRuns(harness.store.pool, { planId, limit: 10 })).toEqual([]);
  });

  it('the transactional rollback step with DROP INDEX CONCURRENTLY is refused too, with its line', async () => {
    const refusal = await openWorkingRun(harness.deps, { planId: 'r8-cic-transactional', target: 'sandbox', kind: 'execute', actor: TPM }).catch((error: Error) => error);
    expect((refusal as Error).message).toMatch(/r8-cic-transactional\/rollback\.sql:1 rollback\.steps\[0\]\.file: DROP INDEX CONCURRENTLY on line 1 cannot run inside a transaction block/);
  });

  it('nothing reached the target', async () => {
    expect(await tablesOnTarget()).toEqual([]);
    expect(await ledgerRows(harness.targets.get('sandbox')!.pool)).toEqual([]);
  });

  it('the plans written as the refusals advise apply and roll back', async () => {
    for (const planId of ['r8-commit-advised', 'r8-cic-advised']) {
      const { run } = await openWorkingRun(harness.deps, { planId, target: 'sandbox', kind: 'execute', actor: TPM });
      const applied = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
      expect(applied.state, `${planId}: ${JSON.stringify(applied.outcome?.failure)}`).toBe('applied');
      expect((await rollbackRun(harness.deps, { runId: run.id, actor: ENGINEER })).state).toBe('rolled_back');
    }
    expect(await tablesOnTarget()).toEqual([]);
  });
});
