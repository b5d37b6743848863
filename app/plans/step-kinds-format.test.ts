/**
 * The plan format for big tables (docs/decisions/014-big-table-steps.md): step kinds and what the
 * loader checks of their files, include_checks_from, equivalent_to, lint_gate, and the batch
 * template's placeholders. Plans are written to a temporary plans folder per test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { translateBatchTemplate } from '../steps/batch-template.server';
import { blocksLintGate, type LintFinding } from './lint-plan.server';
import { loadPlan, type InvalidPlan, type LoadedPlan, type ValidPlan } from './load-plans.server';
import { PlanSchema } from './plan-schema';
import { fromRoot } from '../runtime/paths.server';

let plansDir: string;

beforeEach(() => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-kinds-'));
});

afterEach(() => {
  fs.rmSync(plansDir, { recursive: true, force: true });
});

function writePlan(id: string, files: Record<string, string>): void {
  fs.mkdirSync(path.join(plansDir, id), { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(plansDir, id, name), content);
}

const ROLLBACK = 'rollback:\n  steps:\n    - { id: undo, title: Undo, file: rollback.sql }\n';
const load = async (id: string): Promise<LoadedPlan> => (await loadPlan(plansDir, id, { lint: false }))!;
const invalid = (loaded: LoadedPlan): InvalidPlan => {
  if (loaded.ok) throw new Error('expected an invalid plan');
  return loaded;
};
const validPlan = (loaded: LoadedPlan): ValidPlan => {
  if (!loaded.ok) throw new Error(`expected a valid plan: ${JSON.stringify(loaded.errors)}`);
  return loaded;
};

describe('translateBatchTemplate', () => {
  it('turns :batch_start and :batch_end into $1 and $2 of the same width, outside strings and comments only', async () => {
    const source = "-- uses :batch_start\nUPDATE t SET note = ':batch_end'\nWHERE id BETWEEN :batch_start AND :batch_end AND a[1:n] > 0;\n";
    const result = await translateBatchTemplate(source);
    expect(result).toEqual({
      ok: true,
      sql: "-- uses :batch_start\nUPDATE t SET note = ':batch_end'\nWHERE id BETWEEN $1           AND $2         AND a[1:n] > 0;\n",
      uses: ['batch_start', 'batch_end'],
    });
    expect(result.ok && result.sql.length).toBe(source.length);
  });

  it("refuses psql's quoted variable forms with their line", async () => {
    expect(await translateBatchTemplate("UPDATE t\nSET a = 1 WHERE id = :'batch_start'")).toEqual({
      ok: false,
      errors: [{ line: 2, message: expect.stringContaining("psql's quoted variable syntax") }],
    });
  });
});

describe('step kinds in plan.yaml', () => {
  it('keeps sql the default kind (plan 008 and every plan without `kind` stay valid)', () => {
    const plan = PlanSchema.parse({ id: 'p', title: 'P', apply: [{ id: 'a', title: 'A', file: 'a.sql' }], rollback: { steps: [{ id: 'r', title: 'R', file: 'r.sql' }] } });
    expect(plan.apply[0]).toMatchObject({ kind: 'sql', transactional: true });
    expect(plan).toMatchObject({ retries: 0, equivalent_to: [], lint_gate: 'errors' });
    expect(plan.include_checks_from).toBeUndefined();
  });

  it('names an unknown kind with the kinds there are, and refuses a transactional big-table step', async () => {
    writePlan('kinds', {
      'plan.yaml': `id: kinds\ntitle: Kinds\napply:\n  - { id: a, title: A, file: a.sql, kind: vacuum }\n  - { id: b, title: B, file: b.sql, kind: create_index_concurrently, transactional: true, index: { schema: public, name: i } }\n${ROLLBACK}`,
      'a.sql': 'SELECT 1;\n',
      'b.sql': 'CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (a);\n',
      'rollback.sql': 'SELECT 1;\n',
    });
    const { errors } = invalid(await load('kinds'));
    expect(errors.find((error) => error.path === 'apply[0].kind')?.message).toBe('"vacuum" is not a known kind: use one of "sql", "create_index_concurrently", "batched_backfill".');
    expect(errors.find((error) => error.path === 'apply[1].transactional')?.message).toContain('never runs in a transaction');
  });

  it('checks a create_index_concurrently file: one CREATE INDEX CONCURRENTLY IF NOT EXISTS of the step\'s index, schema-qualified', async () => {
    writePlan('cic', {
      'plan.yaml': `id: cic\ntitle: CIC\napply:\n  - { id: a, title: A, file: a.sql, kind: create_index_concurrently, index: { schema: public, name: t_a_idx } }\n  - { id: b, title: B, file: b.sql, kind: create_index_concurrently, index: { schema: public, name: t_b_idx } }\n${ROLLBACK}`,
      'a.sql': '\nCREATE INDEX t_a_idx ON t (a);\n',
      'b.sql': 'CREATE INDEX CONCURRENTLY IF NOT EXISTS t_b_idx ON public.t (b);\nSELECT 1;\n',
      'rollback.sql': 'SELECT 1;\n',
    });
    const { errors } = invalid(await load('cic'));
    const a = errors.find((error) => error.path === 'apply[0].file')!;
    expect(a).toMatchObject({ file: expect.stringMatching(/cic\/a\.sql$/), line: 2 });
    expect(a.message).toContain('it lacks CONCURRENTLY');
    expect(a.message).toContain('it lacks IF NOT EXISTS');
    expect(a.message).toContain('its table is not schema-qualified');
    expect(errors.find((error) => error.path === 'apply[1].file')).toMatchObject({ line: 2, message: expect.stringContaining('exactly one CREATE INDEX CONCURRENTLY statement (found 2') });
  });

  it('checks a batched_backfill file: one UPDATE of the step\'s table that uses both placeholders', async () => {
    const step = (id: string, file: string) => `  - { id: ${id}, title: ${id}, file: ${file}, kind: batched_backfill, table: { schema: public, name: t }, key: id }\n`;
    writePlan('backfill', {
      'plan.yaml': `id: backfill\ntitle: Backfill\napply:\n${step('a', 'a.sql')}${step('b', 'b.sql')}${step('c', 'c.sql')}${step('d', 'd.sql')}${ROLLBACK}`,
      'a.sql': 'UPDATE public.t SET n = 1 WHERE id >= :batch_start;\n',
      'b.sql': 'UPDATE public.other SET n = 1 WHERE id BETWEEN :batch_start AND :batch_end;\n',
      'c.sql': 'DELETE FROM public.t WHERE id BETWEEN :batch_start AND :batch_end;\n',
      'd.sql': 'UPDATE public.t SET n = n + 1 WHERE id BETWEEN :batch_start AND :batch_end;\n',
      'rollback.sql': 'SELECT 1;\n',
    });
    const { errors } = invalid(await load('backfill'));
    const message = (where: string) => errors.find((error) => error.path === where)?.message;
    expect(message('apply[0].file')).toMatch(/^The UPDATE does not use :batch_end: restrict it to the batch/);
    expect(message('apply[1].file')).toMatch(/^The UPDATE updates public\.other, but the step walks public\.t/);
    expect(message('apply[2].file')).toMatch(/exactly one UPDATE statement, run once per batch \(found 1 statement\(s\), the first a DeleteStmt\)/);
    expect(message('apply[3].file')).toBeUndefined();
  });
});

describe('include_checks_from and equivalent_to', () => {
  const copyPlan008 = () => fs.cpSync(fromRoot('plans', '008-add-active-org-tracking'), path.join(plansDir, '008-add-active-org-tracking'), { recursive: true });
  const including = (extra: string) =>
    `id: online\ntitle: Online\nequivalent_to: [008-add-active-org-tracking]\n${extra}\napply:\n  - { id: a, title: A, file: a.sql }\n${ROLLBACK}`;

  it("adds the other plan's checks before its own, and its plan.yaml to the manifest as ../<id>/plan.yaml", async () => {
    copyPlan008();
    writePlan('online', { 'plan.yaml': including('include_checks_from: 008-add-active-org-tracking'), 'a.sql': 'SELECT 1;\n', 'rollback.sql': 'SELECT 1;\n' });
    const online = validPlan(await load('online'));
    const classic = validPlan(await load('008-add-active-org-tracking'));
    expect(online.plan.prechecks).toEqual(classic.plan.prechecks);
    expect(online.plan.verification).toEqual(classic.plan.verification);
    expect(online.files.map((file) => file.path)).toEqual(['../008-add-active-org-tracking/plan.yaml', 'a.sql', 'plan.yaml', 'rollback.sql']);
    // A change to plan 008's plan.yaml changes this plan's checksum.
    fs.appendFileSync(path.join(plansDir, '008-add-active-org-tracking', 'plan.yaml'), '# edited\n');
    expect(validPlan(await load('online')).checksum).not.toBe(online.checksum);
  });

  it('refuses a missing plan, itself, an unknown exception, a clashing check id, an include of an including plan, and itself as equivalent', async () => {
    copyPlan008();
    writePlan('missing', { 'plan.yaml': including('include_checks_from: no-such-plan').replace('id: online', 'id: missing'), 'a.sql': 'SELECT 1;\n', 'rollback.sql': 'SELECT 1;\n' });
    expect(invalid(await load('missing')).errors[0]).toMatchObject({ path: 'include_checks_from', message: expect.stringContaining('No plan folder "no-such-plan"') });

    writePlan('self', { 'plan.yaml': 'id: self\ntitle: S\ninclude_checks_from: self\nequivalent_to: [self]\napply:\n  - { id: a, title: A, file: a.sql }\n' + ROLLBACK, 'a.sql': 'SELECT 1;\n', 'rollback.sql': 'SELECT 1;\n' });
    const self = invalid(await load('self')).errors;
    expect(self.map((error) => error.path)).toEqual(['include_checks_from', 'equivalent_to[0]']);

    const clash = 'include_checks_from: { plan: 008-add-active-org-tracking, except: [nope] }\nverification:\n  - { id: column-added, kind: sql, title: Mine, sql: SELECT 1, expect: { type: exists } }';
    writePlan('online', { 'plan.yaml': including(clash), 'a.sql': 'SELECT 1;\n', 'rollback.sql': 'SELECT 1;\n' });
    const errors = invalid(await load('online')).errors;
    expect(errors.find((error) => error.path === 'include_checks_from.except[0]')?.message).toContain('008-add-active-org-tracking has no check "nope"');
    expect(errors.find((error) => error.path === 'verification[0].id')?.message).toContain('already used at verification[0] of 008-add-active-org-tracking (include_checks_from)');

    writePlan('outer', { 'plan.yaml': including('include_checks_from: online').replace('id: online', 'id: outer'), 'a.sql': 'SELECT 1;\n', 'rollback.sql': 'SELECT 1;\n' });
    expect(invalid(await load('outer')).errors[0]!.message).toMatch(/The plan online whose checks this plan includes is not valid .*includes go one level deep/);
  });
});

describe('blocksLintGate', () => {
  const finding = (rule: string, extra: Partial<LintFinding> = {}): LintFinding => ({ file: 'plans/p/a.sql', line: 1, rule, level: 'warning', message: '', section: 'apply', ...extra });

  it("counts squawk's errors under both gates, and lock rules only under strict (a rollback may drop what the apply added)", () => {
    expect(blocksLintGate(finding('syntax-error', { level: 'error' }), 'errors')).toBe(true);
    expect(blocksLintGate(finding('squawk-unavailable'), 'errors')).toBe(true);
    expect(blocksLintGate(finding('require-concurrent-index-creation'), 'errors')).toBe(false);
    expect(blocksLintGate(finding('require-concurrent-index-creation'), 'strict')).toBe(true);
    expect(blocksLintGate(finding('adding-foreign-key-constraint'), 'strict')).toBe(true);
    expect(blocksLintGate(finding('a-rule-squawk-adds-later'), 'strict')).toBe(true);
    expect(blocksLintGate(finding('prefer-robust-stmts'), 'strict')).toBe(false);
    expect(blocksLintGate(finding('ban-drop-column'), 'strict')).toBe(true);
    expect(blocksLintGate(finding('ban-drop-column', { section: 'rollback' }), 'strict')).toBe(false);
  });
});

describe('resumable plans at load time (docs/decisions/027)', () => {
  const PRECHECK = (extra: string) => `prechecks:\n  - { id: absent, kind: sql, title: Absent, sql: 'select 1 where false', expect: { type: no_rows }${extra} }\n`;
  const VERIFY_UNLESS = "verification:\n  - { id: v, kind: sql, title: V, sql: 'select 1', expect: { type: exists }, unless_resuming: true }\n";

  it('loads a resumable plan of two steps whose pre-check says unless_resuming', async () => {
    writePlan('two', {
      'plan.yaml': `id: two\ntitle: Two\nresumable: true\n${PRECHECK(', unless_resuming: true')}apply:\n  - { id: a, title: A, file: a.sql }\n  - { id: b, title: B, file: b.sql }\n${ROLLBACK}`,
      'a.sql': 'create table public.t (id int);\n',
      'b.sql': 'alter table public.t add column n int;\n',
      'rollback.sql': 'drop table public.t;\n',
    });
    const plan = validPlan(await load('two')).plan;
    expect(plan.resumable).toBe(true);
    expect(plan.prechecks[0]!.unless_resuming).toBe(true);
  });

  it('refuses resumable on one transactional step, unless_resuming outside the pre-checks, and unless_resuming on a plan that never resumes', async () => {
    writePlan('one', {
      'plan.yaml': `id: one\ntitle: One\nresumable: true\n${VERIFY_UNLESS}apply:\n  - { id: a, title: A, file: a.sql }\n${ROLLBACK}`,
      'a.sql': 'create table public.t (id int);\n',
      'rollback.sql': 'drop table public.t;\n',
    });
    const oneErrors = invalid(await load('one')).errors;
    expect(oneErrors.find((error) => error.path === 'resumable')?.message).toMatch(/^the apply is one transactional step, which commits whole or not at all: there is never a part-way apply to resume\. Remove resumable/);
    expect(oneErrors.find((error) => error.path === 'verification[0].unless_resuming')?.message).toMatch(/^unless_resuming is for pre-checks \(a resumed run skips them\); a verification check always runs: remove it/);

    writePlan('never', {
      'plan.yaml': `id: never\ntitle: Never\n${PRECHECK(', unless_resuming: true')}apply:\n  - { id: a, title: A, file: a.sql }\n  - { id: b, title: B, file: b.sql }\n${ROLLBACK}`,
      'a.sql': 'create table public.t (id int);\n',
      'b.sql': 'alter table public.t add column n int;\n',
      'rollback.sql': 'drop table public.t;\n',
    });
    expect(invalid(await load('never')).errors.find((error) => error.path === 'prechecks[0].unless_resuming')?.message).toMatch(/^unless_resuming needs a resumable plan \(resumable: true\)/);
  });
});
