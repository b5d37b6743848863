/**
 * Issue 14: the loader's rules for a batched_backfill with until: no_rows, and what the engine
 * derives from the file (the final pass without SKIP LOCKED, the "still needs it" count, the
 * estimate). The loader and the engine share analyseNoRowsStatement: a file that loads is one the
 * engine runs. Plans are written to a temporary plans folder per test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPlan, type LoadedPlan } from '../plans/load-plans.server';
import { translateBatchTemplate } from './batch-template.server';
import { analyseNoRowsStatement } from './backfill-until-no-rows.server';

let plansDir: string;

beforeEach(() => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-no-rows-'));
});

afterEach(() => {
  fs.rmSync(plansDir, { recursive: true, force: true });
});

const STEP = { table: { schema: 'platform', name: 'organizations' }, key: 'id' };
const GOOD = `-- Slugs for the organizations that have none yet.
UPDATE platform.organizations AS o
   SET slug = lower(o.name) || '-' || o.id
 WHERE o.id IN (
   SELECT s.id FROM platform.organizations AS s
    WHERE s.slug IS NULL
    LIMIT :batch_size
    FOR UPDATE SKIP LOCKED);
`;

async function writePlan(update: string, extra = ''): Promise<LoadedPlan> {
  const dir = path.join(plansDir, 'slug');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'backfill.sql'), update);
  fs.writeFileSync(path.join(dir, 'rollback.sql'), 'SELECT 1;\n');
  fs.writeFileSync(
    path.join(dir, 'plan.yaml'),
    `id: slug
title: Slugs
apply:
  - id: backfill-slug
    kind: batched_backfill
    until: no_rows
    title: Fill slug
    file: backfill.sql
    table: { schema: platform, name: organizations }
    key: id
${extra}rollback:
  steps:
    - { id: undo, title: Undo, file: rollback.sql }
`,
  );
  return (await loadPlan(plansDir, 'slug', { lint: false }))!;
}

const errorsOf = (loaded: LoadedPlan) => (loaded.ok ? [] : loaded.errors.map((error) => ({ file: error.file, line: error.line, message: error.message })));

async function analyse(update: string) {
  const template = await translateBatchTemplate(update, ['batch_size']);
  if (!template.ok) throw new Error(JSON.stringify(template.errors));
  return analyseNoRowsStatement(STEP, template.sql);
}

describe('until: no_rows at load time', () => {
  it('loads the documented shape', async () => {
    const loaded = await writePlan(GOOD);
    expect(errorsOf(loaded)).toEqual([]);
    expect(loaded.ok && loaded.plan.apply[0]).toMatchObject({ kind: 'batched_backfill', until: 'no_rows', batch_size: 1_000 });
  });

  it('refuses a "needs it" condition the UPDATE does not make false, naming its line', async () => {
    const loaded = await writePlan(GOOD.replace('WHERE s.slug IS NULL', 'WHERE s.created_at < now()'));
    expect(errorsOf(loaded)).toEqual([
      {
        file: expect.stringMatching(/\/slug\/backfill.sql$/),
        line: 6,
        message: expect.stringContaining('The "needs it" condition (s.created_at < now()) does not read a column the UPDATE sets (slug)'),
      },
    ]);
    // Every branch of an OR must read it; one operand of an AND is enough.
    expect(errorsOf(await writePlan(GOOD.replace('WHERE s.slug IS NULL', 'WHERE s.slug IS NULL OR s.name IS NULL')))[0]?.message).toContain('in every branch of its OR');
    expect(errorsOf(await writePlan(GOOD.replace('WHERE s.slug IS NULL', 'WHERE s.slug IS NULL AND s.name IS NOT NULL')))).toEqual([]);
    expect(errorsOf(await writePlan(GOOD.replace('WHERE s.slug IS NULL', "WHERE (s.slug IS NULL OR s.slug <> lower(s.name) || '-' || s.id)")))).toEqual([]);
  });

  it('refuses what would wait, loop or walk the wrong rows, each with the shape to write', async () => {
    const cases: [string, string][] = [
      [GOOD.replace('FOR UPDATE SKIP LOCKED', 'FOR UPDATE'), 'does not end with FOR UPDATE SKIP LOCKED'],
      [GOOD.replace('    LIMIT :batch_size\n', ''), 'does not use :batch_size'],
      [GOOD.replace('LIMIT :batch_size', 'LIMIT 100'), 'does not use :batch_size'],
      [GOOD.replace('SELECT s.id FROM platform.organizations AS s', 'SELECT s.id FROM platform.users AS s'), "subquery does not read the UPDATE's own table"],
      [GOOD.replace('WHERE o.id IN (', 'WHERE o.name IN ('), "does not test the step's key id"],
      [GOOD.replace('SET slug', 'SET slug = slug FROM platform.users u WHERE false; UPDATE platform.organizations SET slug'), 'exactly one UPDATE statement'],
      [GOOD.replace('FOR UPDATE SKIP LOCKED)', 'FOR UPDATE SKIP LOCKED) RETURNING o.id'), 'RETURNING'],
      [GOOD.replace('WHERE s.slug IS NULL', 'WHERE s.slug IS NULL AND s.id > :batch_size'), 'outside the subquery\'s LIMIT'],
      [GOOD.replace('LIMIT :batch_size', 'LIMIT :batch_end'), ':batch_end on line 7 belongs to a backfill that walks the key in ranges'],
      [GOOD.replace('WHERE s.slug IS NULL', 'WHERE o.slug IS NULL'), "refers to the UPDATE's o"],
    ];
    for (const [update, message] of cases) {
      const errors = errorsOf(await writePlan(update));
      expect(errors, update).toHaveLength(1);
      expect(errors[0]!.message, update).toContain(message);
    }
  });

  it('refuses remaining_sql on a walk by key, and one that is not a single query', async () => {
    const keyset = await writePlan(GOOD, '    remaining_sql: SELECT count(*) FROM platform.organizations WHERE slug IS NULL\n'.replace('', ''));
    expect(errorsOf(keyset)).toEqual([]);
    fs.writeFileSync(path.join(plansDir, 'slug', 'plan.yaml'), fs.readFileSync(path.join(plansDir, 'slug', 'plan.yaml'), 'utf8').replace('    until: no_rows\n', ''));
    expect(errorsOf((await loadPlan(plansDir, 'slug', { lint: false }))!).map((error) => error.message)).toEqual(
      expect.arrayContaining([expect.stringContaining('remaining_sql counts the rows a backfill with until: no_rows has left')]),
    );
    const twice = await writePlan(GOOD, '    remaining_sql: SELECT 1; SELECT 2\n');
    expect(errorsOf(twice)[0]?.message).toContain('remaining_sql is one read-only query');
  });
});

describe('what the engine sends', () => {
  it('the walk with RETURNING, the final pass without SKIP LOCKED on the same lines, the count of rows still needing it and the estimate', async () => {
    const analysed = await analyse(GOOD);
    if (!analysed.ok) throw new Error(JSON.stringify(analysed.problems));
    const { walkSql, finalPassSql, stillNeededSql, estimateSql, condition, line } = analysed.statements;
    expect(line).toBe(2);
    expect(condition).toBe('s.slug IS NULL');
    expect(walkSql).toMatch(/FOR UPDATE SKIP LOCKED\)\nRETURNING \("o"\."id"\)::text AS runsheet_key$/);
    expect(finalPassSql).toMatch(/FOR UPDATE {12}\)\nRETURNING/);
    expect(finalPassSql.split('\n').length).toBe(walkSql.split('\n').length);
    expect(stillNeededSql).toBe('SELECT ("s"."id")::text AS runsheet_key FROM "platform"."organizations" AS "s"\nWHERE "s"."id" = ANY ($1) AND (\ns.slug IS NULL\n)\nORDER BY 1');
    expect(estimateSql).toBe('EXPLAIN (FORMAT JSON) SELECT 1 FROM "platform"."organizations" AS "s"\nWHERE s.slug IS NULL');
  });

  it('without aliases, and with = ANY, ORDER BY and FOR NO KEY UPDATE', async () => {
    const analysed = await analyse(
      'UPDATE platform.organizations SET slug = name WHERE id = ANY (SELECT id FROM platform.organizations WHERE slug IS NULL ORDER BY id LIMIT :batch_size FOR NO KEY UPDATE SKIP LOCKED)',
    );
    expect(analysed.ok && analysed.statements).toMatchObject({
      condition: 'slug IS NULL',
      stillNeededSql: expect.stringContaining('FROM "platform"."organizations"\nWHERE "platform"."organizations"."id" = ANY ($1)'),
      walkSql: expect.stringContaining('RETURNING ("organizations"."id")::text'),
    });
  });
});
