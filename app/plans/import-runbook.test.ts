/**
 * The runbook importer on the seed (tests/fixtures/runbooks holds a byte-for-byte copy of
 * seeds/000_278a046374b023c5.txt): what it produces by itself, counted against the seed, and
 * what it reports in IMPORT.md with the seed's own line numbers.
 */
import fs from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { expectationOf } from '../checks/object-expectation';
import { fromRoot } from '../runtime/paths.server';
import { expectationFromComments, importRunbook, MAX_RUNBOOK_BYTES, psqlTableRows, type ImportedRunbook } from './import-runbook.server';
import { validatePlanFiles } from './plan-folder.server';
import { PlanSchema, type Plan } from './plan-schema';

const SEED = fs.readFileSync(fromRoot('tests', 'fixtures', 'runbooks', '000_278a046374b023c5.txt'), 'utf8');

function planOf(imported: ImportedRunbook): Plan {
  return PlanSchema.parse(parse(imported.files.find((file) => file.path === 'plan.yaml')!.content));
}

const fileOf = (imported: ImportedRunbook, path: string) => imported.files.find((file) => file.path === path)?.content;
const seedLine = (text: string) => SEED.split('\n').findIndex((line) => line.includes(text)) + 1;

describe('importing the seed runbook', async () => {
  const imported = await importRunbook({ markdown: SEED, sourceName: '000_278a046374b023c5.txt' });
  const plan = planOf(imported);
  const report = fileOf(imported, 'IMPORT.md')!;

  it('derives the id from the title, and marks the plan under review with the editor schema line', () => {
    expect(imported.id).toBe('008-add-active-organization-tracking');
    expect(plan.review).toBe('pending');
    expect(plan.title).toBe('Migration 008 Execution Plan — Add Active Organization Tracking to platform.users');
    expect(plan.source).toBe('apps/studio/database/migrations/008_add_active_org_tracking.sql');
    expect(plan.created).toBe('2025-11-22');
    expect(fileOf(imported, 'plan.yaml')!.split('\n')[0]).toBe('# yaml-language-server: $schema=../../docs/plan.schema.json');
  });

  it('takes the prerequisites from the task list, the API items as details of their parent', () => {
    expect(plan.prerequisites.map((item) => item.text)).toEqual([
      'Migration 001-006 already applied',
      'Migration 007 does NOT need to be applied first',
      'Application API code ready',
      'No currently active migrations running on database',
      'Database backup taken',
      'Rollback plan documented',
    ]);
    expect(plan.prerequisites[2]!.details).toEqual(['/api/auth/validate updated to read active_org_id', '/api/auth/set-active-org updated to set it', 'TypeScript types updated']);
  });

  it('makes one check per query the seed gives in each phase: 3 pre-checks, 1 snapshot, 4 verification, 2 post-execution (API tests), 1 rollback verification', () => {
    expect(plan.prechecks.map((check) => [check.title, expectationOf(check).type])).toEqual([
      ["Column doesn't already exist", 'no_rows'],
      ['Organization members table exists with joined_at', 'record'],
      ['Users table structure', 'record'],
    ]);
    expect(plan.snapshot.map((check) => [check.title, expectationOf(check).type])).toEqual([['Pre-Execution Database Snapshot', 'record']]);
    expect(plan.verification.map((check) => [check.title, expectationOf(check).type])).toEqual([
      ['Verify Column Creation', 'rows'],
      ['Verify Backfill', 'record'],
      ['Verify Helper Functions', 'exists'],
      ['Verify Index', 'exists'],
    ]);
    expect(expectationOf(plan.verification[0]!)).toEqual({ type: 'rows', rows: [{ column_name: 'active_org_id', data_type: 'uuid', is_nullable: 'YES' }] });
    expect(plan.post_execution.api_tests.map((check) => [check.kind, check.kind === 'http' ? `${check.request.method} ${check.request.path}` : ''])).toEqual([
      ['http', 'GET /api/auth/validate'],
      ['http', 'POST /api/auth/set-active-org'],
    ]);
    expect(expectationOf(plan.post_execution.api_tests[0]!)).toMatchObject({ type: 'http', status: 200, json_has: ['activeOrgId'] });
    expect(plan.post_execution.data_quality).toEqual([]);
    expect(plan.rollback.verification.map((check) => check.title)).toEqual(['Verify rollback']);
    expect(plan.apply.map((step) => step.file)).toEqual(['008_add_active_org_tracking.sql']);
    expect(plan.rollback.steps).toHaveLength(1);
    expect(fileOf(imported, plan.rollback.steps[0]!.file)).toBe('ALTER TABLE platform.users DROP COLUMN active_org_id CASCADE;\n');
    // The SQL of each check is the seed's, from its psql -c text.
    expect(plan.snapshot[0]).toMatchObject({ sql: expect.stringContaining('LEFT JOIN platform.organization_members om ON u.id = om.user_id') });
  });

  it('writes each item above its runbook line in plan.yaml', () => {
    const yaml = fileOf(imported, 'plan.yaml')!;
    expect(yaml).toContain(`# runbook line ${seedLine('SELECT COUNT(*) as user_count')}\n  - id: pre-execution-database-snapshot`);
    expect(yaml).toContain(`# runbook line ${seedLine('railway run psql $DATABASE_URL -f')}\n  - id: apply-migration`);
  });

  it('carries the team messages, with who to notify', () => {
    expect(plan.team_messages.pre).toEqual({
      notify: ['Dylan (TPM)', 'Frontend team (WS2 depends on this)'],
      body: 'Migration 008 is ready for production deployment.\nThis enables the organization switcher functionality (WS2).\nEstimated deployment time: 5-10 minutes\n',
    });
    expect(plan.team_messages.post?.body).toMatch(/^Migration 008 deployed successfully\.\nFrontend team can now proceed/);
    expect(plan.success_criteria).toHaveLength(10);
    expect(plan.risk).toMatchObject({ level: 'low', rationale: expect.arrayContaining(['Column is nullable (safe default for existing data)']), mitigation: expect.any(Array) });
    expect(plan.notes.map((note) => note.title)).toEqual(['Architectural Decision', 'Performance', 'Data Quality']);
  });

  it('lists in IMPORT.md the missing migration file and the count that multiplies users by memberships, each with its line', () => {
    const migrationLine = seedLine('-f apps/studio/database/migrations/008_add_active_org_tracking.sql');
    const countLine = seedLine('SELECT COUNT(*) as user_count');
    expect(migrationLine).toBe(66);
    expect(countLine).toBe(53);
    expect(report).toContain(`- [ ] Line ${migrationLine}: the runbook runs \`apps/studio/database/migrations/008_add_active_org_tracking.sql\` with psql -f but does not give it.`);
    expect(report).toContain(`- [ ] Line ${countLine}: check pre-execution-database-snapshot may not prove what it says. COUNT(*) as user_count over platform.users LEFT JOIN platform.organization_members counts one row per platform.users row and matching row`);
    expect(imported.items).toContainEqual(expect.objectContaining({ line: migrationLine, kind: 'decide' }));
    // The index looked up by table name only (the seed's Step 6), with its line.
    expect(report).toContain(`Line ${seedLine('  SELECT indexname')}: check verify-index may not prove what it says. It looks pg_indexes up by tablename and indexname without schemaname`);
    // Expectations it could not read, and the data-quality items without a query.
    expect(report).toContain(`Line ${seedLine('Expected: Should have user_id, organization_id, joined_at columns')}: check organization-members-table-exists-with-joined`);
    expect(report).toContain(`Line ${seedLine('All existing users have')}: "All existing users have active_org_id set (except those with no orgs)" (Data quality)`);
    // The placeholder migration loads and refuses to run.
    expect(fileOf(imported, '008_add_active_org_tracking.sql')).toMatch(/RAISE EXCEPTION 'runsheet import: 008_add_active_org_tracking\.sql is a placeholder/);
  });

  it('produces a plan that loads', async () => {
    const loaded = await validatePlanFiles(imported.id, imported.files);
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
  });
});

describe('importRunbook on other runbooks', () => {
  const runbook = (body: string) => `# Migration 9 Execution Plan\n## Add a thing\n\n${body}`;

  it('refuses a runbook over 1 MiB and an id that cannot be a plan id', async () => {
    await expect(importRunbook({ markdown: 'x'.repeat(MAX_RUNBOOK_BYTES + 1), sourceName: 'big.md' })).rejects.toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/at most 1 MiB/) });
    await expect(importRunbook({ markdown: runbook(''), sourceName: 'a.md', id: 'Bad Id' })).rejects.toMatchObject({ kind: 'invalid_input' });
  });

  it('makes CONCURRENTLY statements their own non-transactional steps, of the right kind where the statement fits it', async () => {
    const imported = await importRunbook({
      markdown: runbook(
        '## Execution Steps\n\n```sql\nBEGIN;\nALTER TABLE shop.t ADD COLUMN c int;\nCOMMIT;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_c_idx ON shop.t (c);\nCREATE INDEX CONCURRENTLY t_d_idx ON shop.t (d);\n```\n',
      ),
      sourceName: 'a.md',
    });
    const plan = planOf(imported);
    expect(plan.apply.map((step) => [step.kind, step.transactional])).toEqual([
      ['sql', false],
      ['create_index_concurrently', false],
      ['sql', false],
    ]);
    // BEGIN … COMMIT inside a fence: kept, so the first step runs statement by statement and says so.
    expect(imported.items.filter((item) => item.kind === 'decide').map((item) => item.subject)).toEqual(
      expect.arrayContaining([expect.stringContaining('transaction control'), expect.stringContaining('CREATE INDEX CONCURRENTLY t_d_idx as a plain step')]),
    );
    expect(plan.objects.columns).toEqual([{ schema: 'shop', table: 't', column: 'c', type: 'pg_catalog.int4', nullable: true }]);
  });

  it('reports SQL in double quotes whose $ the shell would expand, and a runbook with no rollback', async () => {
    const imported = await importRunbook({ markdown: runbook('## Verification\n\n```bash\npsql -c "DO $$ BEGIN PERFORM 1; END $$"\npsql -c "SELECT 1"\n# Expected: 1 row\n```\n'), sourceName: 'a.md' });
    const decide = imported.items.filter((item) => item.kind === 'decide');
    expect(decide.map((item) => item.subject)).toEqual(expect.arrayContaining(['SQL in double quotes that contains "$"', 'no rollback found', 'no migration found']));
    expect(decide.find((item) => item.subject.startsWith('check ') && item.subject.includes('"1 row"'))).toBeDefined();
  });
});

describe('reading expectations', () => {
  it('reads only what is unambiguous', () => {
    const at = (text: string) => expectationFromComments([{ text, line: 9 }]);
    expect(at('Expected: No rows')).toMatchObject({ kind: 'read', expect: { type: 'no_rows' } });
    expect(at('Expected: Both functions should exist')).toMatchObject({ kind: 'read', expect: { type: 'exists' }, guess: expect.any(String) });
    expect(at('Expected: idx_users_active_org should exist')).toMatchObject({ kind: 'read', expect: { type: 'exists' } });
    expect(at('Expected: Should have id, created_at, updated_at, etc.')).toMatchObject({ kind: 'unreadable', line: 9 });
    expect(at('Expected: 0')).toMatchObject({ kind: 'unreadable' });
    expect(expectationFromComments([{ text: 'Take a screenshot', line: 1 }])).toEqual({ kind: 'none' });
  });

  it('reads a psql result table as rows of text', () => {
    expect(psqlTableRows([' column_name   | data_type | is_nullable', '---------------+-----------+-------------', ' active_org_id | uuid      | YES', '(1 row)'])).toEqual([
      { column_name: 'active_org_id', data_type: 'uuid', is_nullable: 'YES' },
    ]);
    expect(psqlTableRows(['no table here'])).toBeUndefined();
  });
});
