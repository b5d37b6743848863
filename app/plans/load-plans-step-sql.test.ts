/**
 * The loader refuses, before anything runs, the step SQL the engine would refuse (issue 10, item
 * 6): transaction control in any step, what cannot run inside a transaction block in a
 * transactional step, and CREATE INDEX CONCURRENTLY outside its kind. Each refusal names the
 * file and the line, and its advice works: the plan written as the advice says loads.
 * Plans are real files in a temporary plans folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPlan, type LoadedPlan, type PlanError } from './load-plans.server';
import { prepareStep } from '../steps/execute-step.server';

let plansDir: string;

beforeEach(() => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-step-sql-'));
});

afterEach(() => {
  fs.rmSync(plansDir, { recursive: true, force: true });
});

function writePlan(id: string, yaml: string, files: Record<string, string>): void {
  fs.mkdirSync(path.join(plansDir, id), { recursive: true });
  fs.writeFileSync(path.join(plansDir, id, 'plan.yaml'), `id: ${id}\ntitle: ${id}\n${yaml}`);
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(plansDir, id, name), content);
}

const load = async (id: string): Promise<LoadedPlan> => (await loadPlan(plansDir, id, { lint: false }))!;

async function errorsOf(id: string): Promise<PlanError[]> {
  const loaded = await load(id);
  if (loaded.ok) throw new Error(`expected ${id} to be refused, but it loaded`);
  return loaded.errors;
}

async function expectLoads(id: string): Promise<void> {
  const loaded = await load(id);
  if (!loaded.ok) throw new Error(`expected ${id} to load, got:\n${loaded.errors.map((error) => `${error.file}:${error.line} ${error.message}`).join('\n')}`);
}

const APPLY_ONE = (step: string) => `apply:\n  - { id: a, title: A, file: apply.sql${step} }\n`;
const ROLLBACK_ONE = (step = '') => `rollback:\n  steps:\n    - { id: undo, title: Undo, file: rollback.sql${step} }\n`;
const SIMPLE_ROLLBACK = { 'rollback.sql': 'DROP TABLE IF EXISTS public.t;\n' };

describe('transaction control, in any step', () => {
  const withBeginCommit = 'CREATE TABLE public.t (id int);\nBEGIN;\nINSERT INTO public.t VALUES (1);\nCOMMIT;\n';
  const withoutThem = 'CREATE TABLE public.t (id int);\nINSERT INTO public.t VALUES (1);\n';

  it('refuses BEGIN and COMMIT in a transactional step, and its advice does not send you to transactional: false', async () => {
    writePlan('tx', APPLY_ONE('') + ROLLBACK_ONE(), { 'apply.sql': withBeginCommit, ...SIMPLE_ROLLBACK });
    const errors = await errorsOf('tx');
    expect(errors.map(({ file, path: where, line }) => ({ file, where, line }))).toEqual([
      { file: `${path.basename(plansDir)}/tx/apply.sql`, where: 'apply[0].file', line: 2 },
      { file: `${path.basename(plansDir)}/tx/apply.sql`, where: 'apply[0].file', line: 4 },
    ]);
    expect(errors[0]!.message).toMatch(/^BEGIN on line 2: Runsheet runs this step in one transaction of its own/);
    expect(errors[0]!.message).toContain('Remove the BEGIN');
    expect(errors[1]!.message).toContain('Remove the COMMIT');
    for (const error of errors) expect(error.message).not.toContain('transactional: false');

    // The advice, followed: the statements go, the step stays transactional.
    fs.writeFileSync(path.join(plansDir, 'tx', 'apply.sql'), withoutThem);
    await expectLoads('tx');
  });

  it('refuses them in a non-transactional step too (repro 8: the old advice, followed, loaded and was refused mid-run)', async () => {
    writePlan('ntx', APPLY_ONE(', transactional: false') + ROLLBACK_ONE(), { 'apply.sql': withBeginCommit, ...SIMPLE_ROLLBACK });
    const errors = await errorsOf('ntx');
    expect(errors.map(({ path: where, line }) => [where, line])).toEqual([
      ['apply[0].file', 2],
      ['apply[0].file', 4],
    ]);
    expect(errors[0]!.message).toMatch(/^BEGIN on line 2: this step runs statement by statement \(transactional: false\)/);
    expect(errors[0]!.message).toContain('leave transactional out');

    // The advice, followed: statements that must commit together go in a transactional step.
    writePlan('ntx', APPLY_ONE('') + ROLLBACK_ONE(), { 'apply.sql': withoutThem, ...SIMPLE_ROLLBACK });
    await expectLoads('ntx');
  });

  it('checks rollback steps like apply steps: SAVEPOINT, ROLLBACK TO, END, START TRANSACTION', async () => {
    const rollback = 'START TRANSACTION;\nDROP TABLE IF EXISTS public.t;\nSAVEPOINT s;\nROLLBACK TO SAVEPOINT s;\nEND;\n';
    writePlan('rb', APPLY_ONE('') + ROLLBACK_ONE(), { 'apply.sql': withoutThem, 'rollback.sql': rollback });
    const errors = await errorsOf('rb');
    expect(errors.map(({ file, path: where, line, message }) => [file.split('/').slice(-2).join('/'), where, line, message.split(' on line')[0]])).toEqual([
      ['rb/rollback.sql', 'rollback.steps[0].file', 1, 'START TRANSACTION'],
      ['rb/rollback.sql', 'rollback.steps[0].file', 3, 'SAVEPOINT'],
      ['rb/rollback.sql', 'rollback.steps[0].file', 4, 'ROLLBACK TO SAVEPOINT'],
      ['rb/rollback.sql', 'rollback.steps[0].file', 5, 'END'],
    ]);
    writePlan('rb-nt', APPLY_ONE('') + ROLLBACK_ONE(', transactional: false'), { 'apply.sql': withoutThem, 'rollback.sql': rollback });
    expect((await errorsOf('rb-nt')).map((error) => error.line)).toEqual([1, 3, 4, 5]);
  });

  it('refuses COMMIT inside a DO block of a transactional step, and lets a non-transactional step commit between batches', async () => {
    const batches = [
      'CREATE TABLE IF NOT EXISTS public.t (id int);',
      'DO $$',
      'BEGIN',
      '  FOR i IN 1..3 LOOP',
      '    INSERT INTO public.t VALUES (i);',
      '    COMMIT;',
      '  END LOOP;',
      'END',
      '$$;',
      '',
    ].join('\n');
    writePlan('do-commit', APPLY_ONE('') + ROLLBACK_ONE(), { 'apply.sql': batches, ...SIMPLE_ROLLBACK });
    const [error, ...others] = await errorsOf('do-commit');
    expect(others).toEqual([]);
    expect(error).toMatchObject({ path: 'apply[0].file', line: 6 });
    expect(error!.message).toMatch(/^COMMIT on line 6, inside the DO block of line 2: .*2D000.*transactional: false/);

    writePlan('do-commit', APPLY_ONE(', transactional: false') + ROLLBACK_ONE(), { 'apply.sql': batches, ...SIMPLE_ROLLBACK });
    await expectLoads('do-commit');
  });
});

describe('what cannot run inside a transaction block, in a transactional step', () => {
  it('refuses CREATE INDEX CONCURRENTLY in a transactional step, advising the create_index_concurrently kind; the advice loads', async () => {
    const sql = 'ALTER TABLE public.t ADD COLUMN IF NOT EXISTS n int;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_n_idx ON public.t (n);\n';
    writePlan('cic-tx', APPLY_ONE('') + ROLLBACK_ONE(), { 'apply.sql': sql, ...SIMPLE_ROLLBACK });
    const errors = await errorsOf('cic-tx');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: 'apply[0].file', line: 2 });
    expect(errors[0]!.message).toMatch(/^CREATE INDEX CONCURRENTLY on line 2 cannot run inside a transaction block \(PostgreSQL refuses it with SQLSTATE 25001\)/);
    expect(errors[0]!.message).toContain('kind: create_index_concurrently');
    expect(errors[0]!.message).toContain('INVALID index');

    writePlan(
      'cic-tx',
      'apply:\n  - { id: a, title: A, file: apply.sql }\n  - { id: idx, title: Index, kind: create_index_concurrently, file: index.sql, index: { schema: public, name: t_n_idx } }\n' + ROLLBACK_ONE(),
      { 'apply.sql': 'ALTER TABLE public.t ADD COLUMN IF NOT EXISTS n int;\n', 'index.sql': 'CREATE INDEX CONCURRENTLY IF NOT EXISTS t_n_idx ON public.t (n);\n', ...SIMPLE_ROLLBACK },
    );
    await expectLoads('cic-tx');
  });

  it('refuses CREATE INDEX CONCURRENTLY in a plain non-transactional sql step (repro 8: an INVALID leftover was skipped and shown done)', async () => {
    writePlan('cic-nt', APPLY_ONE(', transactional: false') + ROLLBACK_ONE(), {
      'apply.sql': '-- the index\n\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_n_key ON public.t (n);\n',
      ...SIMPLE_ROLLBACK,
    });
    const errors = await errorsOf('cic-nt');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: 'apply[0].file', line: 3 });
    expect(errors[0]!.message).toMatch(/^CREATE UNIQUE INDEX CONCURRENTLY on line 3 in a plain sql step: a build that fails leaves an INVALID index behind/);
    expect(errors[0]!.message).toContain('kind: create_index_concurrently');
  });

  it('refuses CREATE INDEX CONCURRENTLY in a rollback step too', async () => {
    writePlan('cic-rb', APPLY_ONE('') + ROLLBACK_ONE(', transactional: false'), {
      'apply.sql': 'DROP INDEX IF EXISTS public.t_n_idx;\n',
      'rollback.sql': 'CREATE INDEX CONCURRENTLY IF NOT EXISTS t_n_idx ON public.t (n);\n',
    });
    expect(await errorsOf('cic-rb')).toMatchObject([{ path: 'rollback.steps[0].file', line: 1, message: expect.stringContaining('kind: create_index_concurrently') }]);
  });

  it('refuses DROP INDEX CONCURRENTLY in a transactional rollback step (repro 8: met mid-rollback, it left the run rollback_failed); transactional: false loads', async () => {
    const rollback = 'DROP FUNCTION IF EXISTS public.f();\nDROP INDEX CONCURRENTLY IF EXISTS public.t_n_idx;\n';
    writePlan('dic-rb', APPLY_ONE('') + ROLLBACK_ONE(), { 'apply.sql': 'SELECT 1;\n', 'rollback.sql': rollback });
    const errors = await errorsOf('dic-rb');
    expect(errors).toMatchObject([{ path: 'rollback.steps[0].file', line: 2 }]);
    expect(errors[0]!.message).toMatch(/^DROP INDEX CONCURRENTLY on line 2 cannot run inside a transaction block .* Move it to a step of its own with transactional: false, or leave out CONCURRENTLY/);

    writePlan(
      'dic-rb',
      APPLY_ONE('') + 'rollback:\n  steps:\n    - { id: undo-f, title: F, file: rollback_f.sql }\n    - { id: undo-idx, title: Index, file: rollback_idx.sql, transactional: false }\n',
      { 'apply.sql': 'SELECT 1;\n', 'rollback_f.sql': 'DROP FUNCTION IF EXISTS public.f();\n', 'rollback_idx.sql': 'DROP INDEX CONCURRENTLY IF EXISTS public.t_n_idx;\n' },
    );
    await expectLoads('dic-rb');
  });

  it('refuses REINDEX CONCURRENTLY, DETACH PARTITION CONCURRENTLY and VACUUM in a transactional step, and lets REFRESH MATERIALIZED VIEW CONCURRENTLY through', async () => {
    const sql = [
      'REINDEX INDEX CONCURRENTLY public.t_n_idx;',
      'ALTER TABLE public.p DETACH PARTITION public.p1 CONCURRENTLY;',
      'VACUUM (ANALYZE) public.t;',
      'REFRESH MATERIALIZED VIEW CONCURRENTLY public.mv;',
      'ANALYZE public.t;',
    ].join('\n');
    writePlan('others', APPLY_ONE('') + ROLLBACK_ONE(), { 'apply.sql': sql, ...SIMPLE_ROLLBACK });
    const errors = await errorsOf('others');
    expect(errors.map((error) => [error.line, error.message.split(' on line')[0]])).toEqual([
      [1, 'REINDEX CONCURRENTLY'],
      [2, 'ALTER TABLE … DETACH PARTITION … CONCURRENTLY'],
      [3, 'VACUUM'],
    ]);
    expect(errors[2]!.message).not.toContain('leave out CONCURRENTLY');

    writePlan('others', APPLY_ONE(', transactional: false') + ROLLBACK_ONE(), { 'apply.sql': sql, ...SIMPLE_ROLLBACK });
    await expectLoads('others');
  });
});

describe('one definition: the loader and the engine refuse with the same words', () => {
  it('prepareStep gives the loader\'s message for the same file', async () => {
    const sql = 'SELECT 1;\nCOMMIT;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_n_idx ON public.t (n);\n';
    for (const transactional of [true, false]) {
      writePlan('same', APPLY_ONE(transactional ? '' : ', transactional: false') + ROLLBACK_ONE(), { 'apply.sql': sql, ...SIMPLE_ROLLBACK });
      const loaderMessages = (await errorsOf('same')).map((error) => error.message);
      const prepared = await prepareStep({ id: 'a', sql, transactional, lockTimeoutMs: 1_000, statementTimeoutMs: 1_000 });
      if (prepared.ok) throw new Error('prepareStep accepted it');
      // The engine does not know the step's kind: the kind rule (CIC outside create_index_concurrently) is the loader's alone.
      expect(prepared.errors.map((error) => error.message)).toEqual(loaderMessages.filter((message) => !message.includes('in a plain sql step')));
      expect(prepared.errors.length).toBeGreaterThan(0);
    }
  });
});
