/**
 * The plan format: the single definition of what `plans/<id>/plan.yaml` may say.
 * Every type of a plan comes from this schema (z.infer); nothing else describes the format.
 * The `.meta()` descriptions and examples are its reference: `npm run docs` renders them to
 * docs/plan-format.md and docs/plan.schema.json (the editor's schema), and a test fails when
 * those are stale.
 */
import { z } from 'zod';
import { DurationSchema } from '../runtime/duration';

const Identifier = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]*$/, 'use lower-case letters, digits, "-" and "_" (e.g. "column-absent")')
  .meta({ description: 'Lower-case letters, digits, "-" and "_", starting with a letter or digit.', examples: ['column-absent'] });

/** Durations as the format documents them (the parser is app/runtime/duration.ts, shared with runsheet.config.ts). */
const Duration = DurationSchema.meta({ id: 'Duration', description: 'A duration: "250ms", "30s", "5m", "1h", or a number of seconds.', examples: ['30s', '5m'] });

const ScalarSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** What a check expects. Evaluated by the server, never by the reader. */
export const ExpectationSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('no_rows') }).strict().meta({ description: 'The query returns no rows ("the column is absent").', examples: [{ type: 'no_rows' }] }),
    z.object({ type: z.literal('exists') }).strict().meta({ description: 'The query returns at least one row ("the object exists").', examples: [{ type: 'exists' }] }),
    z
      .object({ type: z.literal('rows'), rows: z.array(z.record(z.string(), ScalarSchema)).min(1).meta({ description: 'Every row, each a mapping of column to value.' }) })
      .strict()
      .meta({
        description: 'The query returns exactly these rows, in this order; values are compared as text (a number or a boolean as PostgreSQL prints it).',
        examples: [{ type: 'rows', rows: [{ column_name: 'sku', data_type: 'text', is_nullable: 'YES' }] }],
      }),
    z
      .object({
        type: z.literal('value'),
        column: z.string().optional().meta({ description: "The first row's column to compare; default: the first column." }),
        op: z.enum(['=', '!=', '<', '<=', '>', '>=']).meta({ description: 'How the column compares with `value`.' }),
        value: z.union([z.number(), z.string(), z.boolean(), z.null()]).meta({ description: 'What it is compared with (numbers compare as numbers).' }),
      })
      .strict()
      .meta({ description: "The first row's `column` compared with `value`.", examples: [{ type: 'value', column: 'backfill_percentage', op: '>=', value: 100 }] }),
    z
      .object({ type: z.literal('sqlstate'), sqlstate: z.string().regex(/^[0-9A-Z]{5}$/, 'a SQLSTATE is five characters, e.g. "23503"').meta({ description: 'Five characters, e.g. "23503" (foreign_key_violation).' }) })
      .strict()
      .meta({ description: 'The check\'s last statement fails with this SQLSTATE (a probe: "an unknown id is refused").', examples: [{ type: 'sqlstate', sqlstate: '23503' }] }),
    z.object({ type: z.literal('record') }).strict().meta({ description: 'Nothing to compare: the result is recorded (snapshot counts). Always passes.', examples: [{ type: 'record' }] }),
    z
      .object({
        type: z.literal('http'),
        status: z.number().int().min(100).max(599).meta({ description: 'The HTTP status the API answers.' }),
        json_has: z.array(z.string()).default([]).meta({ description: 'Fields (dotted paths) the JSON answer must have.' }),
        json_equals: z.record(z.string(), ScalarSchema).default({}).meta({ description: 'Fields and the values they must have; strings may use the `{{name}}` placeholders that `request.vars_sql` fills.' }),
      })
      .strict()
      .meta({ description: "An http check's answer: its status, and JSON fields present or equal.", examples: [{ type: 'http', status: 200, json_has: ['activeOrgId'] }] }),
  ])
  .meta({ id: 'Expectation', description: 'What a check expects, by `type`. The server judges it; nobody eyeballs output.' });

const CheckBase = {
  id: Identifier.meta({ description: 'Unique among the checks of the plan (results and success criteria name it).', examples: ['column-absent'] }),
  title: z.string().min(1).meta({ description: 'What the check proves, in a sentence.' }),
  description: z.string().optional().meta({ description: 'Why, and what a failure means.' }),
  timeout: Duration.default(10_000).meta({ description: "The check's statement_timeout (default 10s)." }),
  lock_timeout: Duration.optional().meta({ description: "How long the check waits for a lock before failing (55P03); unset: the plan's check_lock_timeout, else the target's, else 5s." }),
  unless_resuming: z
    .boolean()
    .optional()
    .meta({
      description:
        'Pre-checks of a `resumable` plan only: skipped (with the reason shown) when the run resumes an earlier run\'s apply, since what it proves absent may be what that run left (e.g. "the column does not exist yet").',
    }),
};

/** Either inline `sql` or a `file` next to plan.yaml, not both. */
const SqlSource = {
  sql: z.string().min(1).optional().meta({ description: 'The query, inline (a `|` block keeps its lines, so errors name the line of plan.yaml). Give `sql` or `file`, not both.' }),
  file: z.string().min(1).optional().meta({ description: 'A .sql file beside plan.yaml holding the query, instead of `sql`.' }),
};

export const SqlCheckSchema = z
  .object({ ...CheckBase, kind: z.literal('sql'), ...SqlSource, expect: ExpectationSchema })
  .strict()
  .meta({
    description:
      "One read-only query, run through a read-only transaction on the target. A phase's checks run four at a time; a check run beside others asks the server for no parallel workers (docs/decisions/036): one that gains from them starts with `SET LOCAL max_parallel_workers_per_gather = 2;`.",
    examples: [{ id: 'column-absent', kind: 'sql', title: 'shop.widgets has no sku column yet', sql: "SELECT 1 FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'widgets' AND column_name = 'sku'", expect: { type: 'no_rows' } }],
  });

/** Writes inside a transaction that is always rolled back. */
export const ProbeCheckSchema = z
  .object({ ...CheckBase, kind: z.literal('probe'), ...SqlSource, expect: ExpectationSchema })
  .strict()
  .meta({
    description: 'Statements that may write, inside a transaction that is always rolled back; the last statement is judged.',
    examples: [{ id: 'unknown-org-refused', kind: 'probe', title: 'An unknown organization id is refused', sql: 'UPDATE platform.users SET active_org_id = gen_random_uuid()', expect: { type: 'sqlstate', sqlstate: '23503' } }],
  });

export const HttpCheckSchema = z
  .object({
    ...CheckBase,
    kind: z.literal('http'),
    request: z
      .object({
        method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
        path: z.string().startsWith('/', 'an API path starts with "/"').meta({ description: "The path under the target's API URL (TARGET_<NAME>_API_URL)." }),
        vars_sql: z
          .string()
          .optional()
          .meta({ description: "A read-only query run on the target first: its first row's columns fill the `{{name}}` placeholders of `body` and `expect.json_equals` (values are JSON-encoded, never spliced into SQL)." }),
        body: z.record(z.string(), z.unknown()).optional().meta({ description: 'The JSON body.' }),
      })
      .strict()
      .meta({ description: "The request, sent with the target's bearer token (TARGET_<NAME>_API_TOKEN)." }),
    expect: ExpectationSchema,
  })
  .strict()
  .meta({
    description: "A call to the target's API; `expect.type` is `http`. Skipped where the target has no API URL.",
    examples: [{ id: 'api-validate', kind: 'http', title: '/api/auth/validate answers with activeOrgId', request: { method: 'GET', path: '/api/auth/validate' }, expect: { type: 'http', status: 200, json_has: ['activeOrgId'] } }],
  });

const QualifiedName = { schema: z.string().min(1), name: z.string().min(1) };

/** What an `object` check can look for, each by schema-qualified name. */
export const OBJECT_CHECK_OBJECTS = ['column', 'index', 'constraint', 'function'] as const;
export const CONSTRAINT_TYPE_NAMES = ['check', 'foreign_key', 'primary_key', 'unique', 'exclusion', 'not_null'] as const;

/**
 * Whether a column, index, constraint or function is there (`present`), and when present, its
 * properties: read from the catalog by the same reader as the facts panel (app/targets/schema-facts
 * .server.ts), with the result in words ("index platform.x: present, INVALID; expected valid").
 * Exactly one of column, index, constraint, function; the properties are only for `present: true`.
 */
export const ObjectCheckSchema = z
  .object({
    ...CheckBase,
    kind: z.literal('object'),
    present: z
      .boolean({ message: 'say present: true (the object must be there) or present: false (it must not)' })
      .meta({ description: 'true: the object must be there (with the properties given); false: it must not be there at all.' }),
    column: z
      .object({
        schema: z.string().min(1),
        table: z.string().min(1),
        name: z.string().min(1).meta({ description: "The column's name." }),
        type: z.string().min(1).optional().meta({ description: 'Its type as PostgreSQL reads it ("uuid", "text", "varchar(40)", "numeric(10,2)"); compared by the type, not the spelling.' }),
        nullable: z.boolean().optional().meta({ description: 'true: nullable; false: NOT NULL.' }),
      })
      .strict()
      .optional()
      .meta({ description: 'A column of a table.' }),
    index: z
      .object({
        ...QualifiedName,
        table: z.string().min(1).optional().meta({ description: "The table it must be on (in the index's schema); unset: any." }),
        valid: z.boolean().optional().meta({ description: 'pg_index.indisvalid: false after a failed CREATE INDEX CONCURRENTLY (INVALID).' }),
        ready: z.boolean().optional().meta({ description: 'pg_index.indisready.' }),
        unique: z.boolean().optional().meta({ description: 'A unique index.' }),
        partial: z.boolean().optional().meta({ description: 'A partial index (with a WHERE).' }),
      })
      .strict()
      .optional()
      .meta({ description: 'An index, by schema and name.' }),
    constraint: z
      .object({
        ...QualifiedName,
        table: z.string().min(1).meta({ description: 'The table it is on (in the same schema).' }),
        validated: z.boolean().optional().meta({ description: 'pg_constraint.convalidated: false for a constraint added NOT VALID and not validated yet.' }),
        type: z.enum(CONSTRAINT_TYPE_NAMES).optional().meta({ description: 'What kind of constraint it is.' }),
      })
      .strict()
      .optional()
      .meta({ description: 'A constraint of a table, by name.' }),
    function: z
      .object({ ...QualifiedName, args: z.string().optional().meta({ description: 'Its argument types as in a signature ("uuid, uuid"): that overload; unset: any overload of the name.' }) })
      .strict()
      .optional()
      .meta({ description: 'A function or procedure, by schema and name.' }),
  })
  .strict()
  .superRefine((check, context) => {
    const named = OBJECT_CHECK_OBJECTS.filter((what) => check[what] !== undefined);
    if (named.length !== 1) {
      context.addIssue({
        code: 'custom',
        path: named.length === 0 ? [] : [named[1]!],
        message:
          named.length === 0
            ? 'an object check names one object: column, index, constraint or function (e.g. index: { schema: platform, name: organizations_slug_key })'
            : `an object check names one object, this one names ${named.join(' and ')}: make a check for each`,
      });
      return;
    }
    const what = named[0]!;
    const identity = what === 'function' ? ['schema', 'name', 'args'] : what === 'column' || what === 'constraint' ? ['schema', 'table', 'name'] : ['schema', 'name', 'table'];
    const properties = Object.keys(check[what] as object).filter((key) => !identity.includes(key));
    if (!check.present && properties.length > 0) {
      context.addIssue({
        code: 'custom',
        path: [what, properties[0]!],
        message: `with present: false the ${what} must not be there at all, so ${properties.join(', ')} cannot be checked: remove ${properties.length === 1 ? 'it' : 'them'}, or say present: true`,
      });
    }
  })
  .meta({
    description:
      'Whether a column, index, constraint or function is there, and its properties (exactly one of `column`, `index`, `constraint`, `function`; the properties only with `present: true`). It reads the catalog with the facts panel\'s own reader and answers in words, e.g. "index platform.organizations_slug_key: present, INVALID, not ready, unique, not partial, on organizations; expected valid". No `expect`: the object is the expectation.',
    examples: [
      { id: 'slug-index-valid', kind: 'object', title: 'The unique index on slug is there and valid', present: true, index: { schema: 'platform', name: 'organizations_slug_key', valid: true, unique: true } },
      { id: 'slug-check-validated', kind: 'object', title: 'The slug check is validated', present: true, constraint: { schema: 'platform', table: 'organizations', name: 'organizations_slug_not_null', validated: true, type: 'check' } },
      { id: 'slug-absent', kind: 'object', title: 'organizations has no slug column yet', present: false, column: { schema: 'platform', table: 'organizations', name: 'slug' } },
    ],
  });

export const CheckSchema = z
  .discriminatedUnion('kind', [SqlCheckSchema, ProbeCheckSchema, HttpCheckSchema, ObjectCheckSchema])
  .meta({ id: 'Check', description: 'A named query (or API call, or catalog lookup) with an expectation the server judges, by `kind`.' });

/** How many times a step that failed on lock_timeout (SQLSTATE 55P03) is tried again; unset: the plan's `retries`. */
const Retries = z.number().int().min(0).max(20);

const StepBase = {
  id: Identifier.meta({ description: 'Unique among the steps of the plan (apply and rollback).', examples: ['add-column'] }),
  title: z.string().min(1).meta({ description: 'What the step does; the pages number steps by their position.' }),
  file: z.string().min(1).meta({ description: 'The .sql file beside plan.yaml that the step runs.' }),
  lock_timeout: Duration.default(5_000).meta({
    description:
      'How long a statement waits for a lock before it gives up (SQLSTATE 55P03), set before the first statement (default 5s). A `SET lock_timeout` inside the file is allowed and applies from that statement to the end of the step, overriding this value; prefer this key, which the pages and errors name.',
  }),
  statement_timeout: Duration.default(600_000).meta({ description: "How long one statement may run (default 10m); set the same way as lock_timeout." }),
  retries: Retries.optional().meta({ description: "Retries after a lock_timeout (55P03), each after a jittered backoff and logged as 'step.retry'; unset: the plan's `retries`." }),
};

/**
 * A SQL file (the default kind, so `kind` may be left out). A transactional step runs in one
 * transaction Runsheet owns; otherwise statement by statement, each committed on its own. Either
 * way the file holds no transaction control; a transactional one holds nothing PostgreSQL refuses
 * inside a transaction block; CREATE INDEX CONCURRENTLY belongs to the create_index_concurrently
 * kind (app/steps/step-sql-rules.server.ts, checked when the plan loads and again before it runs).
 */
export const SqlStepSchema = z
  .object({
    ...StepBase,
    kind: z.literal('sql').default('sql'),
    transactional: z
      .boolean()
      .default(true)
      .meta({ description: 'true (default): the file runs in one transaction Runsheet owns (BEGIN/COMMIT in the file are refused). false: statement by statement, each committed on its own (needed for CONCURRENTLY, VACUUM).' }),
  })
  .strict()
  .meta({
    description: 'A SQL file run as psql would run it (the default kind: `kind` may be left out).',
    examples: [{ id: 'add-column', title: 'Add the sku column', file: '01_add_sku.sql', lock_timeout: '5s' }],
  });

/**
 * One `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS` (the file), made safe: the index's
 * pg_index.indisvalid is read by schema-qualified name before and after; an INVALID leftover of
 * a failed build is dropped (DROP INDEX CONCURRENTLY) before building again, and a build that
 * ends INVALID fails the step. Never in a transaction (CONCURRENTLY cannot be).
 */
export const CreateIndexConcurrentlyStepSchema = z
  .object({
    ...StepBase,
    kind: z.literal('create_index_concurrently'),
    transactional: z.literal(false, { message: 'a create_index_concurrently step never runs in a transaction: leave transactional out' }).default(false),
    index: z.object(QualifiedName).strict().meta({ description: "The index the file builds; its schema is the table's." }),
  })
  .strict()
  .meta({
    description:
      'One `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS` on a schema-qualified table, outside any transaction; an INVALID leftover of a failed build is dropped first, and a build that ends INVALID fails the step.',
    examples: [{ id: 'index-sku', kind: 'create_index_concurrently', title: 'Build the unique index on sku', file: '02_index_sku.sql', index: { schema: 'shop', name: 'widgets_sku_key' } }],
  });

/**
 * An UPDATE run in batches of `batch_size` rows, each batch its own short transaction
 * (lock_timeout and statement_timeout apply per batch). Two walks (`until`):
 * - `last_key` (the default): walking `table` by its `key` (keyset: the next keys after the last
 *   one done, in key order). The file is one UPDATE with the placeholders `:batch_start` and
 *   `:batch_end` (the batch's first and last key, both inclusive), sent as bind parameters. Each
 *   batch also records the last key done in the target's runsheet.backfill_progress, so a stopped
 *   backfill resumes exactly where it stopped.
 * - `no_rows`: the file is `UPDATE s.t SET … WHERE <key> IN (SELECT <key> FROM s.t WHERE <needs
 *   it> LIMIT :batch_size FOR UPDATE SKIP LOCKED)`, run until a batch changes nothing, then once
 *   more without SKIP LOCKED for rows other sessions held. "Needs it" must read a column the UPDATE
 *   sets (on every branch of an OR); a second batch in a row whose rows all still need it stops the
 *   step as "no progress" (app/steps/backfill-until-no-rows.server.ts, docs/decisions/026).
 */
export const BatchedBackfillStepSchema = z
  .object({
    ...StepBase,
    kind: z.literal('batched_backfill'),
    transactional: z.literal(false, { message: 'a batched_backfill step commits each batch on its own: leave transactional out' }).default(false),
    table: z.object(QualifiedName).strict().meta({ description: 'The table the UPDATE walks.' }),
    key: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case column name, e.g. "id"')
      .meta({ description: 'Its key column: unique and not null (the primary key); batches follow its order. With `until: no_rows`, the column of the `IN (SELECT …)`.' }),
    batch_size: z.number().int().min(1).max(100_000).default(1_000).meta({ description: 'Rows per batch (default 1,000).' }),
    pause: Duration.default(50).meta({ description: 'Between two batches (default 50ms), so other sessions get the rows and WAL keeps up.' }),
    until: z
      .enum(['last_key', 'no_rows'])
      .default('last_key')
      .meta({
        description:
          'How the walk ends. `last_key` (default): after the last key, in ranges (`:batch_start`, `:batch_end`). `no_rows`: the UPDATE takes the next `:batch_size` rows that still need it, `WHERE <key> IN (SELECT <key> FROM <the table> WHERE <needs it> LIMIT :batch_size FOR UPDATE SKIP LOCKED)`, until a batch changes nothing; then once more without SKIP LOCKED (under lock_timeout) for rows other sessions held. "Needs it" must read a column the UPDATE sets (on every branch of an OR), and a second batch in a row whose rows all still need it stops the step as "no progress".',
      }),
    remaining_sql: z
      .string()
      .min(1)
      .optional()
      .meta({ description: "`until: no_rows` only: a read-only query whose first column counts the rows that still need the update; progress is then exact instead of the planner's estimate." }),
  })
  .strict()
  .superRefine((step, context) => {
    if (step.remaining_sql !== undefined && step.until !== 'no_rows') {
      context.addIssue({ code: 'custom', path: ['remaining_sql'], message: 'remaining_sql counts the rows a backfill with until: no_rows has left; a walk by key knows its own: remove it, or set until: no_rows' });
    }
  })
  .meta({
    description:
      "One UPDATE of `table`, run in short batches (each its own transaction) that can be watched, paused, resumed and cancelled. By key (default): using `:batch_start` and `:batch_end` (the batch's first and last key, inclusive), recording its progress so it continues after a failure where it stopped. Until no rows are left (`until: no_rows`): the next `:batch_size` rows that still need it, with progress against an estimate of the rows left (docs/decisions/026); the second example's file reads `UPDATE platform.organizations AS o SET slug = lower(o.name) || '-' || o.id WHERE o.id IN (SELECT s.id FROM platform.organizations AS s WHERE s.slug IS NULL LIMIT :batch_size FOR UPDATE SKIP LOCKED);`.",
    examples: [
      { id: 'backfill', kind: 'batched_backfill', title: 'Backfill the sku', file: '03_backfill.sql', table: { schema: 'shop', name: 'widgets' }, key: 'id', batch_size: 5000 },
      {
        id: 'backfill-slug',
        kind: 'batched_backfill',
        until: 'no_rows',
        title: 'Give every organization a slug',
        file: '02_backfill_slug.sql',
        table: { schema: 'platform', name: 'organizations' },
        key: 'id',
        batch_size: 2000,
        remaining_sql: 'SELECT count(*) FROM platform.organizations WHERE slug IS NULL',
      },
    ],
  });

/** The kinds of step (docs/decisions/014-big-table-steps.md): each knows how to check, apply and report. */
export const StepSchema = z
  .discriminatedUnion('kind', [SqlStepSchema, CreateIndexConcurrentlyStepSchema, BatchedBackfillStepSchema])
  .meta({ id: 'Step', description: 'One SQL file the engine runs, by `kind` (default `sql`).' });

export const STEP_KINDS = ['sql', 'create_index_concurrently', 'batched_backfill'] as const;

export const PrerequisiteSchema = z
  .object({
    id: Identifier,
    text: z.string().min(1).meta({ description: 'What a person confirms before executing.' }),
    required: z.boolean().default(true).meta({ description: 'Whether the execute gate waits for its tick (default true).' }),
    details: z.array(z.string()).default([]).meta({ description: 'Sub-items, ticked with their parent.' }),
    check: Identifier.optional().meta({ description: "A pre-check's id that backs this item: its result shows beside the tick." }),
  })
  .strict()
  .meta({
    id: 'Prerequisite',
    description: 'A manual item a person ticks; every tick is in the run log with who and when.',
    examples: [{ id: 'backup-taken', text: 'Database backup taken' }, { id: 'api-ready', text: 'Application code is ready', details: ['/api/widgets reads sku'] }],
  });

const PhaseDurations = z
  .object({
    prechecks: Duration.optional(),
    snapshot: Duration.optional(),
    apply: Duration.optional(),
    verification: Duration.optional(),
    post_execution: Duration.optional(),
    rollback: Duration.optional(),
  })
  .strict()
  .meta({ description: 'The estimate of each phase, shown against what it took.', examples: [{ apply: '2m', verification: '30s' }] });

/**
 * The database objects the plan creates. Runsheet reads their live state from the target (schema
 * facts) to show verification chips and to tell drift (objects present, no ledger row) from applied.
 */
export const PlanObjectsSchema = z
  .object({
    columns: z
      .array(z.object({ schema: z.string(), table: z.string(), column: z.string(), type: z.string(), nullable: z.boolean() }).strict())
      .default([])
      .meta({ description: "Columns the plan adds, with the type and nullability it gives them. When the rollback drops one, its values (by the table's primary key) are copied to the target's runsheet_backup schema first (docs/decisions/031)." }),
    indexes: z
      .array(z.object({ ...QualifiedName, table: z.string(), partial: z.boolean().default(false) }).strict())
      .default([])
      .meta({ description: 'Indexes the plan builds (their validity is read from pg_index).' }),
    functions: z.array(z.object(QualifiedName).strict()).default([]).meta({ description: 'Functions the plan creates.' }),
    constraints: z.array(z.object({ ...QualifiedName, table: z.string() }).strict()).default([]).meta({ description: 'Constraints the plan adds.' }),
    tables: z
      .array(z.object(QualifiedName).strict())
      .default([])
      .meta({ description: "Tables the plan creates. When the rollback drops one, its rows are copied to the target's runsheet_backup schema first (docs/decisions/031)." }),
    backfill: z
      .object({ schema: z.string(), table: z.string(), column: z.string() })
      .strict()
      .optional()
      .meta({ description: 'A column the plan fills: the share of rows where it is set (count(column) / count(*)) is shown as a gauge.' }),
  })
  .strict()
  .meta({
    id: 'PlanObjects',
    description:
      "The database objects the plan creates. Runsheet reads their live state from the target (the facts panel), and tells drift (objects present, no ledger row) from applied.",
    examples: [{ columns: [{ schema: 'shop', table: 'widgets', column: 'sku', type: 'text', nullable: true }], indexes: [{ schema: 'shop', name: 'widgets_sku_key', table: 'widgets' }] }],
  });

/**
 * The placeholders a team message may use, filled when the message is shown (one not known yet,
 * such as {{executor}} before anyone executed, shows as "[executor: to be filled]").
 */
export const TEAM_MESSAGE_PLACEHOLDERS = {
  target: "the target's label (Sandbox, Staging, Production)",
  target_name: "the target's name (sandbox, staging, production)",
  checksum: "the plan's checksum (sha256 of its manifest)",
  plan: "the plan's id",
  run: "the run's id",
  executor: 'who executed the run',
  started_at: 'when the run started (database clock, UTC)',
  finished_at: 'when the apply committed (database clock, UTC)',
} as const;
export type TeamMessagePlaceholder = keyof typeof TEAM_MESSAGE_PLACEHOLDERS;

const TeamMessage = z
  .object({
    notify: z.array(z.string()).default([]).meta({ description: 'Who to tell.' }),
    body: z
      .string()
      .min(1)
      .meta({ description: `The message, to copy into the team's channel; it may use ${Object.keys(TEAM_MESSAGE_PLACEHOLDERS).map((name) => `{{${name}}}`).join(', ')}.` }),
  })
  .strict()
  .meta({ id: 'TeamMessage', examples: [{ notify: ['Catalogue team'], body: 'Widgets have SKUs on {{target}} (by {{executor}} at {{finished_at}}).' }] });

export const PlanSchema = z
  .object({
    id: Identifier.meta({ description: "The plan's id: its folder's name under the plans folder.", examples: ['012-add-widget-sku'] }),
    title: z.string().min(1).meta({ description: 'The heading of the plan page and the report.', examples: ['Migration 012 — add a SKU to shop.widgets'] }),
    summary: z.string().optional().meta({ description: 'What the plan changes, in a few sentences.' }),
    source: z.string().optional().meta({ description: 'Where the migration lives in the application repository (informational).', examples: ['db/migrations/012_add_widget_sku.sql'] }),
    created: z.string().optional().meta({ description: 'When the runbook was written (informational).', examples: ['2025-11-22'] }),
    review: z
      .enum(['pending'], { message: 'review is "pending" or left out: remove the key once the plan is reviewed' })
      .optional()
      .meta({
        description:
          'The plan is under review (`runsheet import` and `runsheet new` write `pending`): the review gate refuses to execute or rehearse it. An engineer removes the key once IMPORT.md is resolved. Not a run\'s `draft` state.',
        examples: ['pending'],
      }),
    precheck_freshness: Duration.default(15 * 60_000).meta({ description: 'Pre-check results older than this do not open the go/no-go gate (default 15m).' }),
    estimated_duration: PhaseDurations.default({}),
    prerequisites: z.array(PrerequisiteSchema).default([]).meta({ description: 'Manual items ticked before executing, in order.' }),
    prechecks: z.array(CheckSchema).default([]).meta({ description: 'Read-only checks that must pass, in the run, before executing.' }),
    snapshot: z.array(CheckSchema).default([]).meta({ description: 'Checks recorded just before the apply and again after it (usually `record`).' }),
    retries: Retries.default(0).meta({ description: 'Retries after a lock_timeout (55P03) for every step that does not say otherwise (default 0).' }),
    check_lock_timeout: Duration.optional().meta({ description: "lock_timeout of every check that does not set its own; unset: the target's (runsheet.config.ts), else 5s." }),
    apply: z.array(StepSchema).min(1, 'a plan applies at least one step').meta({ description: 'The steps of the migration, in order (at least one).' }),
    resumable: z
      .boolean()
      .default(false)
      .meta({
        description:
          "After a failed or cancelled (or interrupted) run of this checksum on a target, a new run starts at the first step the target's ledger does not record as completed; the steps before it are skipped, and so are the pre-checks that say `unless_resuming: true`. The go/no-go gates name what is skipped and why; a different checksum never resumes (docs/decisions/027). For a plan that can stop part-way: more than one step, or a step that commits as it goes.",
      }),
    verification: z.array(CheckSchema).default([]).meta({ description: 'Checks run right after the apply; a failure leaves the run applied but unverified.' }),
    post_execution: z
      .object({
        api_tests: z.array(CheckSchema).default([]).meta({ description: 'Usually http checks against the application.' }),
        data_quality: z.array(CheckSchema).default([]).meta({ description: 'Checks of the data after the change.' }),
      })
      .strict()
      .default({ api_tests: [], data_quality: [] })
      .meta({ description: 'Post-execution validation, after the verification.' }),
    watch: z
      .object({
        for: Duration.refine((ms) => ms >= 1_000, 'a watch lasts at least "1s"').meta({ description: 'How long the window lasts after a verified apply, e.g. "24h".' }),
        every: Duration.refine((ms) => ms >= 1_000, 'a watch re-runs its checks at most every "1s"').meta({ description: 'How often its checks run again, e.g. "15m".' }),
        checks: z
          .array(Identifier)
          .default([])
          .meta({ description: 'Ids of the verification and post-execution (data-quality, API) checks to run again, in this order.' }),
        extra_checks: z
          .array(CheckSchema)
          .default([])
          .meta({ description: "Checks only the watch runs (e.g. no active_org_id pointing at an organization the user left), after `checks`; read-only like every check." }),
      })
      .strict()
      .refine((watch) => watch.checks.length + watch.extra_checks.length > 0, { message: 'a watch runs at least one check: name one in `checks` or add one to `extra_checks`' })
      .optional()
      .meta({
        id: 'Watch',
        description:
          "The runbook's monitoring window (docs/decisions/030): after a verified apply the run is `watching`, its checks run again on schedule; the first check that passed and now fails turns it `watch_alarm`; a window that closes clean ends `watched`.",
        examples: [{ for: '24h', every: '15m', checks: ['column-added'], extra_checks: [] }],
      }),
    rollback: z
      .object({
        steps: z.array(StepSchema).min(1).meta({ description: 'The steps that undo the apply, in order; written to be idempotent (IF EXISTS), so they undo any part of it.' }),
        verification: z.array(CheckSchema).default([]).meta({ description: 'Checks that prove the rollback (each object gone).' }),
      })
      .strict()
      .meta({ description: 'The rollback procedure and its verification.' }),
    success_criteria: z
      .array(
        z
          .object({
            text: z.string().min(1),
            checks: z.array(Identifier).default([]).meta({ description: 'Check ids that judge it; none: a person ticks it in the run.' }),
          })
          .strict(),
      )
      .default([])
      .meta({ description: 'What "done" means, each judged by checks or ticked by hand.', examples: [[{ text: 'Every widget can carry a SKU', checks: ['sku-present'] }, { text: 'No errors in the application logs' }]] }),
    risk: z
      .object({
        level: z.enum(['low', 'medium', 'high']),
        rationale: z.array(z.string()).default([]),
        mitigation: z.array(z.string()).default([]),
      })
      .strict()
      .optional()
      .meta({ description: 'The risk assessment.', examples: [{ level: 'low', rationale: ['The column is nullable'], mitigation: ['Rehearse on the sandbox first'] }] }),
    equivalent_to: z
      .array(Identifier)
      .default([])
      .meta({ description: 'Plans that make the same change: a ledger row of either counts for both, so the ledger gate never makes the change twice.' }),
    include_checks_from: z
      .union([Identifier, z.object({ plan: Identifier, except: z.array(Identifier).default([]) }).strict()])
      .transform((value) => (typeof value === 'string' ? { plan: value, except: [] as string[] } : value))
      .optional()
      .meta({
        description:
          "Another plan (a folder beside this one) whose checks this plan runs too, in every section, before its own. Its plan.yaml and check files are part of this plan's checksum. The plan's id, or `{ plan, except: [check ids] }`.",
        examples: ['008-add-active-org-tracking'],
      }),
    lint_gate: z
      .enum(['errors', 'strict'])
      .default('errors')
      .meta({
        description:
          "How a target's lint-clean gate judges the plan's SQL: `errors` (default) counts squawk's error level only; `strict` counts every squawk rule about locks and rewrites. A finding is passed only by a waiver in the run.",
      }),
    objects: PlanObjectsSchema.default({ columns: [], indexes: [], functions: [], constraints: [], tables: [] }),
    notes: z
      .array(z.object({ title: z.string().min(1), body: z.string().min(1) }).strict())
      .default([])
      .meta({ description: 'Notes shown at the end of the plan page.', examples: [[{ title: 'Performance', body: 'The index is built concurrently.' }]] }),
    team_messages: z
      .object({
        pre: TeamMessage.optional().meta({ description: 'Before executing.' }),
        post: TeamMessage.optional().meta({ description: 'After a verified apply.' }),
        rollback: TeamMessage.optional().meta({ description: 'After a rollback.' }),
      })
      .strict()
      .default({})
      .meta({ description: "Messages to the team, filled from the run's facts; each is offered only for what happened." }),
  })
  .strict()
  .superRefine((plan, context) => {
    // A resumable plan, and what may say unless_resuming (docs/decisions/027).
    const stopsPartWay = plan.apply.length > 1 || plan.apply.some((step) => !step.transactional);
    if (plan.resumable && !stopsPartWay) {
      context.addIssue({
        code: 'custom',
        path: ['resumable'],
        message: 'the apply is one transactional step, which commits whole or not at all: there is never a part-way apply to resume. Remove resumable',
      });
    }
    const sections: [string, Check[]][] = [
      ['snapshot', plan.snapshot],
      ['verification', plan.verification],
      ['post_execution.api_tests', plan.post_execution.api_tests],
      ['post_execution.data_quality', plan.post_execution.data_quality],
      ['rollback.verification', plan.rollback.verification],
    ];
    for (const [section, checks] of sections) {
      for (const [index, check] of checks.entries()) {
        if (check.unless_resuming === undefined) continue;
        context.addIssue({ code: 'custom', path: [...section.split('.'), index, 'unless_resuming'], message: `unless_resuming is for pre-checks (a resumed run skips them); a ${section} check always runs: remove it` });
      }
    }
    if (!plan.resumable) {
      for (const [index, check] of plan.prechecks.entries()) {
        if (check.unless_resuming) {
          context.addIssue({ code: 'custom', path: ['prechecks', index, 'unless_resuming'], message: 'unless_resuming needs a resumable plan (resumable: true): this plan never resumes, so the check would always run. Add resumable: true, or remove it' });
        }
      }
    }
  })
  .meta({ title: 'Runsheet plan (plans/<id>/plan.yaml)', description: 'One migration runbook as data.' });

export type Plan = z.infer<typeof PlanSchema>;
export type Check = z.infer<typeof CheckSchema>;
export type SqlCheck = z.infer<typeof SqlCheckSchema>;
export type ProbeCheck = z.infer<typeof ProbeCheckSchema>;
export type HttpCheck = z.infer<typeof HttpCheckSchema>;
export type ObjectCheck = z.infer<typeof ObjectCheckSchema>;
export type Expectation = z.infer<typeof ExpectationSchema>;
export type Step = z.infer<typeof StepSchema>;
export type SqlStep = z.infer<typeof SqlStepSchema>;
export type CreateIndexConcurrentlyStep = z.infer<typeof CreateIndexConcurrentlyStepSchema>;
export type BatchedBackfillStep = z.infer<typeof BatchedBackfillStepSchema>;
export type StepKind = Step['kind'];
export type Prerequisite = z.infer<typeof PrerequisiteSchema>;
export type PlanObjects = z.infer<typeof PlanObjectsSchema>;

/** The phases whose checks `runsheet check --phase` runs. */
export const CHECK_PHASES = ['pre', 'snapshot', 'verify', 'post', 'rollback'] as const;
export type CheckPhase = (typeof CHECK_PHASES)[number];

export function checksOfPhase(plan: Plan, phase: CheckPhase): Check[] {
  switch (phase) {
    case 'pre':
      return plan.prechecks;
    case 'snapshot':
      return plan.snapshot;
    case 'verify':
      return plan.verification;
    case 'post':
      return [...plan.post_execution.api_tests, ...plan.post_execution.data_quality];
    case 'rollback':
      return plan.rollback.verification;
  }
}

/** The checks a plan's watch runs: the verification and post-execution checks it names, then its own. */
export function watchChecks(plan: Plan): Check[] {
  if (!plan.watch) return [];
  const named = [...plan.verification, ...plan.post_execution.api_tests, ...plan.post_execution.data_quality];
  return [...plan.watch.checks.flatMap((id) => named.filter((check) => check.id === id)), ...plan.watch.extra_checks];
}

/** Where a file of a plan named by `include_checks_from` sits in the including plan's manifest (as sha256sum run in its folder names it). */
export const includedPlanPath = (planId: string, file: string): string => `../${planId}/${file}`;

/**
 * The plan with the checks of `included` (the plan its include_checks_from names) before its own,
 * in every section; their check files renamed to where the manifest lists them.
 */
export function withIncludedChecks(plan: Plan, included: Plan): Plan {
  const except = new Set(plan.include_checks_from?.except ?? []);
  const take = (checks: Check[]): Check[] =>
    checks
      .filter((check) => !except.has(check.id))
      .map((check) => ((check.kind === 'sql' || check.kind === 'probe') && check.file !== undefined ? { ...check, file: includedPlanPath(included.id, check.file) } : check));
  return {
    ...plan,
    prechecks: [...take(included.prechecks), ...plan.prechecks],
    snapshot: [...take(included.snapshot), ...plan.snapshot],
    verification: [...take(included.verification), ...plan.verification],
    post_execution: {
      api_tests: [...take(included.post_execution.api_tests), ...plan.post_execution.api_tests],
      data_quality: [...take(included.post_execution.data_quality), ...plan.post_execution.data_quality],
    },
    rollback: { ...plan.rollback, verification: [...take(included.rollback.verification), ...plan.rollback.verification] },
  };
}
