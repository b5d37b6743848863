import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lintPlan, lintSqlFile, type SqlFileToLint } from './lint-plan.server';
import { sha256Hex } from './plan-checksum.server';
import { PlanSchema } from './plan-schema';

function sqlFile(content: string, transactional: boolean, file = 'plans/fixture/apply.sql'): SqlFileToLint {
  return { file, content, sha256: sha256Hex(content), transactional };
}

// Line 3 holds the CREATE INDEX; the comment before it has multi-byte text, which must not shift
// the reported column of a later finding on the same line as multi-byte text.
const INDEX_WITHOUT_CONCURRENTLY = [
  '-- Fixture: an index built the blocking way (é, ü: multi-byte text before it).',
  'CREATE TABLE IF NOT EXISTS public.lint_t (id bigint PRIMARY KEY, org uuid);',
  'CREATE INDEX IF NOT EXISTS lint_t_org_idx ON public.lint_t (org);',
  '',
].join('\n');

describe('lintSqlFile', () => {
  it('reports squawk findings with file, line, rule, level and statement index', async () => {
    const findings = await lintSqlFile(sqlFile(INDEX_WITHOUT_CONCURRENTLY, false));
    const finding = findings.find((candidate) => candidate.rule === 'require-concurrent-index-creation');
    expect(finding).toMatchObject({
      file: 'plans/fixture/apply.sql',
      line: 3,
      column: 1,
      level: 'warning',
      statementIndex: 1,
    });
    expect(finding!.message.length).toBeGreaterThan(10);
  });

  it('lints a transactional step as running in a transaction, and leaves out rules the runner satisfies', async () => {
    const content = "SELECT 'ü';  ALTER TABLE public.t ADD COLUMN org_id uuid REFERENCES public.orgs (id);\n";
    const findings = await lintSqlFile(sqlFile(content, true));
    const foreignKey = findings.find((candidate) => candidate.rule === 'adding-foreign-key-constraint');
    // squawk reports byte columns; ours count characters (ü is two bytes).
    expect(foreignKey).toMatchObject({ line: 1, statementIndex: 1 });
    expect(foreignKey!.column).toBe(content.indexOf('REFERENCES') + 1);
    expect(findings.map((candidate) => candidate.rule)).not.toContain('require-lock-timeout');
    expect(findings.map((candidate) => candidate.rule)).not.toContain('require-statement-timeout');
  });

  it('caches by content: the same bytes under another name do not run squawk again, and are named right', async () => {
    // A wrapper that counts its runs, then hands over to the real binary.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-squawk-'));
    const counter = path.join(dir, 'runs');
    const wrapper = path.join(dir, 'squawk');
    const { getBinaryPath } = createRequire(import.meta.url)('squawk-cli/js/index.js') as { getBinaryPath(): string };
    fs.writeFileSync(wrapper, `#!/bin/sh\necho run >> '${counter}'\nexec '${getBinaryPath()}' "$@"\n`, { mode: 0o755 });
    try {
      const content = `${INDEX_WITHOUT_CONCURRENTLY}-- cache test\n`;
      const first = await lintSqlFile(sqlFile(content, false, 'plans/a/apply.sql'), { squawkBinary: wrapper });
      const second = await lintSqlFile(sqlFile(content, false, 'plans/b/apply.sql'), { squawkBinary: wrapper });
      expect(fs.readFileSync(counter, 'utf8').trim().split('\n')).toHaveLength(1);
      expect(first.length).toBeGreaterThan(0);
      expect(second.map(({ file, ...rest }) => rest)).toEqual(first.map(({ file, ...rest }) => rest));
      expect(new Set(second.map((finding) => finding.file))).toEqual(new Set(['plans/b/apply.sql']));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('returns one finding instead of throwing when squawk cannot run', async () => {
    const findings = await lintSqlFile(sqlFile('SELECT 1;\n', true), { squawkBinary: '/nonexistent/squawk' });
    expect(findings).toEqual([
      expect.objectContaining({ file: 'plans/fixture/apply.sql', line: 0, rule: 'squawk-unavailable', level: 'warning' }),
    ]);
  });
});

describe('lintPlan', () => {
  it('lints the apply and rollback step files, each under its own name', async () => {
    const plan = PlanSchema.parse({
      id: 'fixture',
      title: 'Fixture',
      apply: [{ id: 'build-index', title: 'Build the index', file: 'apply.sql', transactional: false }],
      rollback: { steps: [{ id: 'drop', title: 'Drop', file: 'rollback.sql' }] },
    });
    const files = [
      { path: 'apply.sql', content: INDEX_WITHOUT_CONCURRENTLY, sha256: sha256Hex(INDEX_WITHOUT_CONCURRENTLY) },
      { path: 'rollback.sql', content: 'DROP INDEX public.lint_t_org_idx;\n', sha256: sha256Hex('DROP INDEX public.lint_t_org_idx;\n') },
      { path: 'plan.yaml', content: 'not linted', sha256: sha256Hex('not linted') },
    ];
    const findings = await lintPlan(plan, files, (relative) => `plans/fixture/${relative}`);
    expect(findings.find((finding) => finding.rule === 'require-concurrent-index-creation')?.file).toBe('plans/fixture/apply.sql');
    expect(findings.find((finding) => finding.rule === 'require-concurrent-index-deletion')?.file).toBe('plans/fixture/rollback.sql');
    expect(findings.some((finding) => finding.file.endsWith('plan.yaml'))).toBe(false);
  });
});
