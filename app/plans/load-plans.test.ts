import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSql, loadPlan, loadPlans, planChecks, type InvalidPlan, type LoadedPlan, type PlanError, type ValidPlan } from './load-plans.server';
import { planChecksum, planManifest, sha256Hex } from './plan-checksum.server';
import type { Check } from './plan-schema';
import { fromRoot } from '../runtime/paths.server';
import { runChecks } from '../checks/run-checks.server';
import { generateSandbox } from '../sandbox/generate-sandbox.server';
import { openTargetPool } from '../targets/targets.server';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';

const FIXTURES = fromRoot('tests', 'fixtures', 'plans');
const PLANS = fromRoot('plans');
const PLAN_008 = '008-add-active-org-tracking';

function valid(loaded: LoadedPlan | undefined): ValidPlan {
  if (!loaded?.ok) throw new Error(`expected a valid plan, got: ${JSON.stringify(loaded, null, 2)}`);
  return loaded;
}

function invalid(loaded: LoadedPlan | undefined): InvalidPlan {
  if (!loaded || loaded.ok) throw new Error(`expected an invalid plan, got: ${JSON.stringify(loaded?.id)}`);
  return loaded;
}

function errorAt(errors: PlanError[], where: Partial<PlanError>): PlanError {
  const found = errors.find((error) => Object.entries(where).every(([key, value]) => error[key as keyof PlanError] === value));
  if (!found) throw new Error(`no error matching ${JSON.stringify(where)} in:\n${errors.map((error) => JSON.stringify(error)).join('\n')}`);
  return found;
}

/** The checksum as a second implementation would compute it: coreutils only. */
function checksumWithCoreutils(dir: string, files: string[]): string {
  const script = 'printf "%s\\n" "$@" | LC_ALL=C sort | while read -r f; do sha256sum "$f"; done | sha256sum | cut -d" " -f1';
  return execFileSync('sh', ['-c', script, 'sh', ...files], { cwd: dir, encoding: 'utf8' }).trim();
}

describe('loadPlans on the fixtures', () => {
  let loaded: LoadedPlan[];
  const byId = (id: string) => loaded.find((plan) => plan.id === id);

  beforeAll(async () => {
    loaded = await loadPlans(FIXTURES, { lint: false });
  });

  it('returns every folder, sorted by id, the good plan beside the bad ones', () => {
    expect(loaded.map((plan) => [plan.id, plan.ok])).toEqual([
      ['bad-sql', false],
      ['bad-yaml', false],
      ['fixture-ok', true],
      ['missing-sql-file', false],
      ['path-traversal', false],
      ['several-errors', false],
      ['unknown-check-kind', false],
      ['watch-errors', false],
      ['wrong-expectation-type', false],
      ['yaml-cascade', false],
    ]);
  });

  it('loads the valid plan with its files, manifest and checksum, and resolves file-backed checks', () => {
    const plan = valid(byId('fixture-ok'));
    expect(plan.files.map((file) => file.path)).toEqual(['apply.sql', 'checks/table_present.sql', 'plan.yaml', 'rollback.sql']);
    expect(plan.checksum).toBe(planChecksum(plan.manifest));
    expect(plan.checksum).toBe(checksumWithCoreutils(plan.dir, plan.files.map((file) => file.path)));
    const tablePresent = plan.plan.verification[0]!;
    expect(tablePresent.kind).toBe('sql');
    if (tablePresent.kind === 'sql') {
      expect(checkSql(plan, tablePresent)).toBe(fs.readFileSync(path.join(plan.dir, 'checks/table_present.sql'), 'utf8'));
    }
    const inline = plan.plan.prechecks[0]!;
    if (inline.kind === 'sql') expect(checkSql(plan, inline)).toContain("c.relname = 'fixture_t'");
  });

  it('reports a YAML syntax error with its line and column', () => {
    const { errors } = invalid(byId('bad-yaml'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file: 'plans/bad-yaml/plan.yaml', path: '', line: 6 });
    expect(errors[0]!.message).toMatch(/YAML syntax error at line 6, column \d+/);
  });

  it('reports only the first YAML syntax error, with its line and column (not the cascade after it)', () => {
    const { errors } = invalid(byId('yaml-cascade'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file: 'plans/yaml-cascade/plan.yaml', path: '', line: 7, column: 1 });
    expect(errors[0]!.message).toMatch(/^YAML syntax error at line 7, column 1:/);
  });

  it('names an unknown check kind and the kinds to use', () => {
    const error = errorAt(invalid(byId('unknown-check-kind')).errors, { path: 'prechecks[0].kind' });
    expect(error).toMatchObject({ file: 'plans/unknown-check-kind/plan.yaml', line: 5 });
    expect(error.message).toContain('"shell"');
    expect(error.message).toContain('"sql", "probe", "http"');
  });

  it('reports every missing SQL file, of steps and of checks', () => {
    const { errors } = invalid(byId('missing-sql-file'));
    expect(errors.map(({ file, path: where }) => ({ file, path: where }))).toEqual([
      { file: 'plans/missing-sql-file/plan.yaml', path: 'apply[0].file' },
      { file: 'plans/missing-sql-file/plan.yaml', path: 'verification[0].file' },
    ]);
    expect(errors[0]!.message).toContain('"missing.sql" does not exist');
  });

  it('refuses expectations that do not fit their check kind', () => {
    const { errors } = invalid(byId('wrong-expectation-type'));
    expect(errorAt(errors, { path: 'prechecks[0].expect.type' }).message).toMatch(/sql check cannot expect "http"/);
    expect(errorAt(errors, { path: 'prechecks[1].expect.type' }).message).toContain('"maybe"');
    expect(errorAt(errors, { path: 'post_execution.api_tests[0].expect.type' }).message).toMatch(/http check/);
    expect(errors).toHaveLength(3);
  });

  it('refuses a watch naming a check that is no verification or post-execution check, and a watch-only check reusing an id', () => {
    const { errors } = invalid(byId('watch-errors'));
    expect(errors.map((error) => error.path).sort()).toEqual(['watch.checks[1]', 'watch.checks[2]', 'watch.extra_checks[0].id']);
    expect(errorAt(errors, { path: 'watch.checks[1]' }).message).toContain('"table-present" is the check at prechecks[0]');
    expect(errorAt(errors, { path: 'watch.checks[2]' }).message).toContain('No verification or post-execution check has the id "nowhere"');
    expect(errorAt(errors, { path: 'watch.extra_checks[0].id' }).message).toContain('already used at verification[0]');
  });

  it('reports all the errors of one plan, schema and cross-checks together', () => {
    const { errors } = invalid(byId('several-errors'));
    const file = 'plans/several-errors/plan.yaml';
    expect(errors.every((error) => error.file === file && error.message.length > 20)).toBe(true);
    expect(errors.map((error) => error.path).sort()).toEqual(
      [
        'colour',
        'id',
        'post_execution.api_tests[0].request',
        'prechecks[1].id',
        'prechecks[2]',
        'prechecks[3]',
        'prechecks[4].sql',
        'prechecks[5].title',
        'prerequisites[0].check',
        'success_criteria[0].checks[1]',
      ].sort(),
    );
    expect(errorAt(errors, { path: 'id' }).message).toContain('"not-the-folder-name"');
    expect(errorAt(errors, { path: 'prechecks[1].id' }).message).toContain('already used at prechecks[0]');
    expect(errorAt(errors, { path: 'prechecks[5].title' }).message).toContain('"title" is missing');
    // The second statement of the inline SQL, on its own line of plan.yaml.
    expect(errorAt(errors, { path: 'prechecks[4].sql' }).line).toBe(34);
    expect(errorAt(errors, { path: 'post_execution.api_tests[0].request' }).message).toContain('{{thing_id}}');
  });

  it('refuses transaction control in a transactional step, psql meta-commands and syntax errors, with their lines', () => {
    const { errors } = invalid(byId('bad-sql'));
    expect(errors.map(({ file, path: where, line }) => ({ file, path: where, line }))).toEqual([
      { file: 'plans/bad-sql/apply.sql', path: 'apply[0].file', line: 2 },
      { file: 'plans/bad-sql/apply.sql', path: 'apply[0].file', line: 4 },
      { file: 'plans/bad-sql/rollback.sql', path: 'rollback.steps[0].file', line: 2 },
      { file: 'plans/bad-sql/rollback.sql', path: 'rollback.steps[0].file', line: 4 },
    ]);
    expect(errors[0]!.message).toMatch(/^BEGIN on line 2/);
    expect(errors[1]!.message).toMatch(/^COMMIT on line 4/);
    expect(errors[2]!.message).toContain('\\echo');
    expect(errors[3]!.message).toMatch(/syntax error/);
  });

  it('refuses SQL file names that leave the plan folder', () => {
    const { errors } = invalid(byId('path-traversal'));
    expect(errors.map((error) => error.path)).toEqual(['apply[0].file', 'rollback.steps[0].file', 'verification[0].file']);
    for (const error of errors) expect(error.message).toContain('points outside the plan folder');
  });

  it('loads one plan by id, and nothing for an unknown or unsafe id', async () => {
    expect(valid(await loadPlan(FIXTURES, 'fixture-ok', { lint: false })).id).toBe('fixture-ok');
    expect(await loadPlan(FIXTURES, 'no-such-plan')).toBeUndefined();
    expect(await loadPlan(FIXTURES, '../plans')).toBeUndefined();
  });
});

describe('plan checksum', () => {
  let plansDir: string;
  let planDir: string;

  beforeAll(() => {
    plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-plans-'));
    planDir = path.join(plansDir, 'fixture-ok');
    fs.cpSync(path.join(FIXTURES, 'fixture-ok'), planDir, { recursive: true });
  });
  afterAll(() => fs.rmSync(plansDir, { recursive: true, force: true }));

  const checksum = async () => valid(await loadPlan(plansDir, 'fixture-ok', { lint: false })).checksum;

  it('writes the manifest as sha256sum lines sorted by path', () => {
    const manifest = planManifest([
      { path: 'plan.yaml', sha256: sha256Hex('b') },
      { path: 'apply.sql', sha256: sha256Hex('a') },
    ]);
    expect(manifest).toBe(`${sha256Hex('a')}  apply.sql\n${sha256Hex('b')}  plan.yaml\n`);
    expect(planChecksum(manifest)).toBe(sha256Hex(manifest));
  });

  it('changes when any byte of a referenced SQL file or of plan.yaml changes, and only then', async () => {
    const original = await checksum();
    expect(await checksum()).toBe(original);

    for (const file of ['apply.sql', 'rollback.sql', 'checks/table_present.sql', 'plan.yaml']) {
      const full = path.join(planDir, file);
      const bytes = fs.readFileSync(full);
      // One byte, same length, still valid: the final newline becomes a space.
      expect(bytes[bytes.length - 1]).toBe(0x0a);
      const changed = Buffer.from(bytes);
      changed[changed.length - 1] = 0x20;
      fs.writeFileSync(full, changed);
      expect(await checksum(), `after changing ${file}`).not.toBe(original);
      fs.writeFileSync(full, bytes);
      expect(await checksum()).toBe(original);
    }
  });

  it('ignores files the plan does not name', async () => {
    const original = await checksum();
    fs.writeFileSync(path.join(planDir, 'notes.sql'), 'SELECT 1;\n');
    expect(await checksum()).toBe(original);
    fs.rmSync(path.join(planDir, 'notes.sql'));
  });

  it('refuses a link that leads out of the plan folder', async () => {
    const outside = path.join(plansDir, 'outside.sql');
    fs.writeFileSync(outside, 'SELECT 1;\n');
    const rollback = path.join(planDir, 'rollback.sql');
    const original = fs.readFileSync(rollback);
    fs.rmSync(rollback);
    fs.symlinkSync(outside, rollback);
    try {
      const { errors } = invalid(await loadPlan(plansDir, 'fixture-ok', { lint: false }));
      expect(errorAt(errors, { path: 'rollback.steps[0].file' }).message).toContain('link to a file outside');
    } finally {
      fs.rmSync(rollback);
      fs.writeFileSync(rollback, original);
    }
  });
});

describe(`plan ${PLAN_008}`, () => {
  it('loads with no errors, a stable checksum and lint findings as data', async () => {
    const first = valid(await loadPlan(PLANS, PLAN_008));
    const second = valid(await loadPlan(PLANS, PLAN_008));
    expect(second.checksum).toBe(first.checksum);
    expect(first.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(first.checksum).toBe(checksumWithCoreutils(first.dir, first.files.map((file) => file.path)));
    expect(first.files.map((file) => file.path)).toEqual(['008_add_active_org_tracking.sql', 'plan.yaml', 'rollback.sql']);
    for (const finding of first.lint) {
      expect(finding.file).toMatch(/^plans\/008-add-active-org-tracking\/(008_add_active_org_tracking|rollback)\.sql$/);
      expect(finding.rule).not.toBe('squawk-unavailable');
    }
  });

  it('is found by loadPlans among all plans', async () => {
    const all = await loadPlans(PLANS, { lint: false });
    expect(all.find((plan) => plan.id === PLAN_008)?.ok).toBe(true);
  });

  describe('against a fresh sandbox, through the check runner', () => {
    let database: TestDatabase;
    let client: pg.Client;
    let pool: pg.Pool;
    let plan: ValidPlan;

    beforeAll(async () => {
      plan = valid(await loadPlan(PLANS, PLAN_008, { lint: false }));
      database = await createTestDatabase('plan008');
      client = new pg.Client({ connectionString: database.url });
      await client.connect();
      client.on('notice', () => {});
      await generateSandbox(client, { users: 400 });
      pool = openTargetPool(database.url);
    });
    afterAll(async () => {
      await pool?.end();
      await client?.end();
      await database?.drop();
    });

    const run = (checks: Check[], phase: string) =>
      runChecks({ checks, sqlOf: (check) => checkSql(plan, check), target: { name: 'test-sandbox', pool }, phase });

    async function expectAllPass(checks: Check[], phase: string): Promise<void> {
      const results = await run(checks.filter((check) => check.kind !== 'http'), phase);
      expect(results.filter((result) => !result.passed).map(({ checkId, reason }) => `${checkId}: ${reason}`)).toEqual([]);
      expect(results).toHaveLength(checks.filter((check) => check.kind !== 'http').length);
    }

    async function runStepFile(file: string): Promise<void> {
      await client.query('BEGIN');
      try {
        await client.query(plan.files.find((candidate) => candidate.path === file)!.content);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
    }

    const precheck = (id: string) => plan.plan.prechecks.find((check) => check.id === id)!;

    it('passes its pre-checks, then verification and data quality after the apply, then the rollback verification', async () => {
      await expectAllPass([...plan.plan.prechecks, ...plan.plan.snapshot], 'pre');
      await runStepFile(plan.plan.apply[0]!.file);
      await expectAllPass([...plan.plan.verification, ...plan.plan.post_execution.data_quality], 'verify');
      const [columnAbsent] = await run([precheck('column-absent')], 'pre');
      expect(columnAbsent!.passed).toBe(false);

      const setActiveOrg = plan.plan.post_execution.api_tests.find((check) => check.id === 'api-set-active-org')!;
      const vars = setActiveOrg.kind === 'http' ? (await client.query(setActiveOrg.request.vars_sql!)).rows : [];
      expect(vars).toEqual([{ org_id: expect.stringMatching(/^[0-9a-f-]{36}$/) }]);

      await runStepFile(plan.plan.rollback.steps[0]!.file);
      await expectAllPass(plan.plan.rollback.verification, 'rollback');
    });

    it('has a pre-check that sees a session holding a lock on platform.users', async () => {
      const other = new pg.Client({ connectionString: database.url });
      await other.connect();
      try {
        await other.query('BEGIN');
        await other.query('SELECT 1 FROM platform.users LIMIT 1');
        const [result] = await run([precheck('no-migration-running')], 'pre');
        expect(result!.passed).toBe(false);
        expect(JSON.stringify(result!.actual)).toContain('AccessShareLock held on platform.users');
      } finally {
        await other.end();
      }
    });

    it('names every check it links from success criteria and prerequisites', () => {
      const ids = new Set(planChecks(plan.plan).map(({ check }) => check.id));
      const linked = [...plan.plan.success_criteria.flatMap((criterion) => criterion.checks), ...plan.plan.prerequisites.flatMap((item) => (item.check ? [item.check] : []))];
      expect(linked.filter((id) => !ids.has(id))).toEqual([]);
    });
  });
});
