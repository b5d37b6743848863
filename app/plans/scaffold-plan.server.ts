/**
 * `runsheet new <id>`: a plan folder to start from, with an example of every section (the
 * optional ones commented out). It loads as a valid plan, under review, and its SQL files are
 * placeholders that refuse to run, so nothing happens until a person has written the plan.
 */
import { RunsheetError } from '../runtime/errors';
import { DEFAULT_SCHEMA_REF } from './import-runbook.server';
import type { NewPlanFile } from './plan-folder.server';
import { PlanSchema, TEAM_MESSAGE_PLACEHOLDERS } from './plan-schema';

export function scaffoldPlan(id: string, options: { schemaRef?: string } = {}): NewPlanFile[] {
  if (!PlanSchema.shape.id.safeParse(id).success) {
    throw new RunsheetError('invalid_input', `"${id}" cannot be a plan id: use lower-case letters, digits, "-" and "_", starting with a letter or digit (e.g. 012-add-widget-sku).`);
  }
  const title = id
    .replace(/^\d+[-_]/, '')
    .split(/[-_]/)
    .filter(Boolean)
    .join(' ');
  const placeholders = Object.keys(TEAM_MESSAGE_PLACEHOLDERS).map((name) => `{{${name}}}`).join(', ');
  const planYaml = `# yaml-language-server: $schema=${options.schemaRef ?? DEFAULT_SCHEMA_REF}
# A new plan made by \`runsheet new\`. docs/plan-format.md describes every key; each section below
# has an example, the optional ones commented out. \`npx runsheet plans\` validates the folder.
# Remove the \`review: pending\` line once the plan is written and reviewed: until then the review
# gate refuses to execute or rehearse it.
#
# A sandbox.sql beside this file (optional) sets up the sandbox's starting state for this plan:
# \`npx runsheet sandbox reset --plan ${id}\` regenerates the sandbox and runs it.

id: ${id}
title: ${title.charAt(0).toUpperCase()}${title.slice(1)}
summary: What the plan changes, in a few sentences.
review: pending
# source: db/migrations/${id}.sql
# estimated_duration: { apply: 2m, verification: 30s }

prerequisites:
  - id: backup-taken
    text: Database backup taken
  # - id: app-ready
  #   text: Application code is ready
  #   required: false            # the execute gate does not wait for it
  #   details: [the API reads the new column]
  #   check: table-present       # a pre-check that backs the item

prechecks:
  - id: table-present
    kind: sql
    title: The table the migration changes exists
    sql: |
      SELECT c.relname
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relname = 'my_table'
    expect: { type: exists }     # or no_rows, rows, value, sqlstate, record

# snapshot:                      # recorded before the apply and again after it
#   - id: row-count
#     kind: sql
#     title: Rows before the change
#     sql: SELECT count(*) AS row_count FROM public.my_table
#     expect: { type: record }

apply:
  - id: apply
    title: Apply the change
    file: 01_apply.sql           # one transaction Runsheet owns (no BEGIN/COMMIT in the file)
    lock_timeout: 5s
    statement_timeout: 10m
  # - id: build-index
  #   kind: create_index_concurrently
  #   title: Build the index without blocking writes
  #   file: 02_index.sql         # CREATE INDEX CONCURRENTLY IF NOT EXISTS my_table_col_idx ON public.my_table (col);
  #   index: { schema: public, name: my_table_col_idx }
  # - id: backfill
  #   kind: batched_backfill
  #   title: Fill the new column in batches
  #   file: 03_backfill.sql      # UPDATE public.my_table SET col = … WHERE id BETWEEN :batch_start AND :batch_end;
  #   table: { schema: public, name: my_table }
  #   key: id
  #   batch_size: 1000

verification:
  - id: change-present
    kind: sql
    title: The change is there
    sql: SELECT 1 WHERE false
    expect: { type: exists }

# post_execution:
#   api_tests:
#     - id: api-answers
#       kind: http
#       title: The API answers with the new field
#       request: { method: GET, path: /api/things }
#       expect: { type: http, status: 200, json_has: [newField] }
#   data_quality:
#     - id: no-nulls-left
#       kind: sql
#       title: Every row has a value
#       sql: SELECT count(*) AS missing FROM public.my_table WHERE col IS NULL
#       expect: { type: value, column: missing, op: '=', value: 0 }

rollback:
  steps:
    - id: rollback
      title: Undo the change
      file: rollback.sql         # idempotent (IF EXISTS): it may follow a partial apply
  verification:
    - id: change-gone
      kind: sql
      title: The change is gone
      sql: SELECT 1 WHERE false
      expect: { type: no_rows }

success_criteria:
  - text: The change is applied and verified
    checks: [change-present]
  - text: No errors in the application logs   # no checks: a person ticks it in the run

# risk:
#   level: low                   # low, medium or high
#   rationale: [the column is nullable]
#   mitigation: [rehearse on the sandbox first]

# objects:                       # what the plan creates: the facts panel and drift read it
#   columns: [{ schema: public, table: my_table, column: col, type: text, nullable: true }]
#   indexes: [{ schema: public, name: my_table_col_idx, table: my_table }]

# notes:
#   - title: Why
#     body: The reason for the change.

# team_messages:                 # placeholders: ${placeholders}
#   pre: { notify: [the team], body: "Applying ${id} to {{target}}." }
#   post: { notify: [the team], body: "${id} applied to {{target}} by {{executor}} at {{finished_at}}." }
`;
  const placeholderSql = (file: string) =>
    [
      `-- ${file}: written by \`runsheet new\`. Replace this statement with the SQL of the step.`,
      `DO $$ BEGIN RAISE EXCEPTION 'runsheet new: ${file} is a placeholder: write the step''s SQL'; END $$;`,
      '',
    ].join('\n');
  return [
    { path: 'plan.yaml', content: planYaml },
    { path: '01_apply.sql', content: placeholderSql('01_apply.sql') },
    { path: 'rollback.sql', content: placeholderSql('rollback.sql') },
  ];
}
