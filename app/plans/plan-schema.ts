/**
 * The plan format: the single definition of what `plans/<id>/plan.yaml` may say.
 * Every type of a plan comes from this schema (z.infer); nothing else describes the format.
 */
import { z } from 'zod';
import { DurationSchema } from '../runtime/duration';

const Identifier = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]*$/, 'use lower-case letters, digits, "-" and "_" (e.g. "column-absent")');


const ScalarSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** What a check expects. Evaluated by the server, never by the reader. */
export const ExpectationSchema = z.discriminatedUnion('type', [
  /** The query returns no rows. */
  z.object({ type: z.literal('no_rows') }).strict(),
  /** The query returns at least one row (e.g. "object exists"). */
  z.object({ type: z.literal('exists') }).strict(),
  /** The query returns exactly these rows, in this order (values compared as text). */
  z.object({ type: z.literal('rows'), rows: z.array(z.record(z.string(), ScalarSchema)).min(1) }).strict(),
  /** The first row's `column` (default: the first column) compared with `value`. */
  z
    .object({
      type: z.literal('value'),
      column: z.string().optional(),
      op: z.enum(['=', '!=', '<', '<=', '>', '>=']),
      value: z.union([z.number(), z.string(), z.boolean(), z.null()]),
    })
    .strict(),
  /** The check's last statement fails with this SQLSTATE (probes: "an unknown org id is refused"). */
  z.object({ type: z.literal('sqlstate'), sqlstate: z.string().regex(/^[0-9A-Z]{5}$/, 'a SQLSTATE is five characters, e.g. "23503"') }).strict(),
  /** Nothing to compare: the result is recorded (snapshot counts). */
  z.object({ type: z.literal('record') }).strict(),
  /** An http check: the status, and JSON fields that must be present or equal. */
  z
    .object({
      type: z.literal('http'),
      status: z.number().int().min(100).max(599),
      json_has: z.array(z.string()).default([]),
      /** Strings may use the `{{name}}` placeholders that `vars_sql` fills. */
      json_equals: z.record(z.string(), ScalarSchema).default({}),
    })
    .strict(),
]);

const CheckBase = {
  id: Identifier,
  title: z.string().min(1),
  description: z.string().optional(),
  /** Read-only statement_timeout for this check. */
  timeout: DurationSchema.default(10_000),
  /** How long the check waits for a lock before failing (55P03); unset: the plan's check_lock_timeout, else the target's, else 5 s. */
  lock_timeout: DurationSchema.optional(),
};

/** Either inline `sql` or a `file` next to plan.yaml, not both. */
const SqlSource = {
  sql: z.string().min(1).optional(),
  file: z.string().min(1).optional(),
};

export const SqlCheckSchema = z
  .object({ ...CheckBase, kind: z.literal('sql'), ...SqlSource, expect: ExpectationSchema })
  .strict();

/** Writes inside a transaction that is always rolled back. */
export const ProbeCheckSchema = z
  .object({ ...CheckBase, kind: z.literal('probe'), ...SqlSource, expect: ExpectationSchema })
  .strict();

export const HttpCheckSchema = z
  .object({
    ...CheckBase,
    kind: z.literal('http'),
    request: z
      .object({
        method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
        path: z.string().startsWith('/', 'an API path starts with "/"'),
        /**
         * A read-only query run on the target before the request; its first row's columns fill
         * `{{name}}` placeholders in the JSON body (values are JSON-encoded, never spliced into SQL).
         */
        vars_sql: z.string().optional(),
        body: z.record(z.string(), z.unknown()).optional(),
      })
      .strict(),
    expect: ExpectationSchema,
  })
  .strict();

export const CheckSchema = z.discriminatedUnion('kind', [SqlCheckSchema, ProbeCheckSchema, HttpCheckSchema]);

const QualifiedName = { schema: z.string().min(1), name: z.string().min(1) };

/** How many times a step that failed on lock_timeout (SQLSTATE 55P03) is tried again; unset: the plan's `retries`. */
const Retries = z.number().int().min(0).max(20);

const StepBase = {
  id: Identifier,
  title: z.string().min(1),
  file: z.string().min(1),
  lock_timeout: DurationSchema.default(5_000),
  statement_timeout: DurationSchema.default(600_000),
  /** Retries after a lock_timeout (55P03), each after a jittered backoff and logged as 'step.retry'. */
  retries: Retries.optional(),
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
    transactional: z.boolean().default(true),
  })
  .strict();

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
    /** The index the file builds; its schema is the table's. */
    index: z.object(QualifiedName).strict(),
  })
  .strict();

/**
 * An UPDATE run in batches of `batch_size` rows, walking `table` by its `key` (keyset: the next
 * keys after the last one done, in key order). The file is one UPDATE with the placeholders
 * `:batch_start` and `:batch_end` (the batch's first and last key, both inclusive), sent as bind
 * parameters. Each batch is its own short transaction (lock_timeout and statement_timeout apply
 * per batch) that also records the last key done in the target's runsheet.backfill_progress, so
 * a stopped backfill resumes exactly where it stopped.
 */
export const BatchedBackfillStepSchema = z
  .object({
    ...StepBase,
    kind: z.literal('batched_backfill'),
    transactional: z.literal(false, { message: 'a batched_backfill step commits each batch on its own: leave transactional out' }).default(false),
    /** The table the UPDATE walks. */
    table: z.object(QualifiedName).strict(),
    /** Its key column: unique and not null (the primary key); batches follow its order. */
    key: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case column name, e.g. "id"'),
    batch_size: z.number().int().min(1).max(100_000).default(1_000),
    /** Between two batches, so other sessions get the table's rows and WAL keeps up. */
    pause: DurationSchema.default(50),
  })
  .strict();

/** The kinds of step (docs/decisions/014-big-table-steps.md): each knows how to check, apply and report. */
export const StepSchema = z.discriminatedUnion('kind', [SqlStepSchema, CreateIndexConcurrentlyStepSchema, BatchedBackfillStepSchema]);

export const STEP_KINDS = ['sql', 'create_index_concurrently', 'batched_backfill'] as const;

export const PrerequisiteSchema = z
  .object({
    id: Identifier,
    text: z.string().min(1),
    required: z.boolean().default(true),
    /** Sub-items ticked with their parent (the seed's nested list). */
    details: z.array(z.string()).default([]),
    /** A pre-check that backs this item: it shows the check's result beside the tick. */
    check: Identifier.optional(),
  })
  .strict();

const PhaseDurations = z
  .object({
    prechecks: DurationSchema.optional(),
    snapshot: DurationSchema.optional(),
    apply: DurationSchema.optional(),
    verification: DurationSchema.optional(),
    post_execution: DurationSchema.optional(),
    rollback: DurationSchema.optional(),
  })
  .strict();

/**
 * The database objects the plan creates. Runsheet reads their live state from the target (schema
 * facts) to show verification chips and to tell drift (objects present, no ledger row) from applied.
 */
export const PlanObjectsSchema = z
  .object({
    columns: z
      .array(z.object({ schema: z.string(), table: z.string(), column: z.string(), type: z.string(), nullable: z.boolean() }).strict())
      .default([]),
    indexes: z.array(z.object({ ...QualifiedName, table: z.string(), partial: z.boolean().default(false) }).strict()).default([]),
    functions: z.array(z.object(QualifiedName).strict()).default([]),
    constraints: z.array(z.object({ ...QualifiedName, table: z.string() }).strict()).default([]),
    /** The share of rows whose column is set: the seed's Step 4 (count(column) / count(*)). */
    backfill: z.object({ schema: z.string(), table: z.string(), column: z.string() }).strict().optional(),
  })
  .strict();

const TeamMessage = z.object({ notify: z.array(z.string()).default([]), body: z.string().min(1) }).strict();

export const PlanSchema = z
  .object({
    id: Identifier,
    title: z.string().min(1),
    summary: z.string().optional(),
    /** Where the migration lives in the application repository (informational, from the runbook). */
    source: z.string().optional(),
    created: z.string().optional(),
    /** Pre-check results older than this do not open the go/no-go gate. */
    precheck_freshness: DurationSchema.default(15 * 60_000),
    estimated_duration: PhaseDurations.default({}),
    prerequisites: z.array(PrerequisiteSchema).default([]),
    prechecks: z.array(CheckSchema).default([]),
    snapshot: z.array(CheckSchema).default([]),
    /** Retries after a lock_timeout (55P03) for every step that does not say otherwise. */
    retries: Retries.default(0),
    /** lock_timeout of every check that does not set its own; unset: the target's (runsheet.config.ts), else 5 s. */
    check_lock_timeout: DurationSchema.optional(),
    apply: z.array(StepSchema).min(1, 'a plan applies at least one step'),
    verification: z.array(CheckSchema).default([]),
    post_execution: z
      .object({ api_tests: z.array(CheckSchema).default([]), data_quality: z.array(CheckSchema).default([]) })
      .strict()
      .default({ api_tests: [], data_quality: [] }),
    rollback: z
      .object({ steps: z.array(StepSchema).min(1), verification: z.array(CheckSchema).default([]) })
      .strict(),
    success_criteria: z
      .array(z.object({ text: z.string().min(1), checks: z.array(Identifier).default([]) }).strict())
      .default([]),
    risk: z
      .object({
        level: z.enum(['low', 'medium', 'high']),
        rationale: z.array(z.string()).default([]),
        mitigation: z.array(z.string()).default([]),
      })
      .strict()
      .optional(),
    /**
     * Plans that make the same change: the ledger records them with this plan's rows, and a row
     * of either counts for both (the ledger gate refuses to apply one where the other is applied).
     */
    equivalent_to: z.array(Identifier).default([]),
    /**
     * Another plan (a folder beside this one) whose checks this plan runs too, in every section,
     * before its own: "verified by the same checks" without a copy. Its plan.yaml and check files
     * are part of this plan's manifest (as ../<id>/…), so a change to them changes this checksum.
     * Either the plan's id, or `{ plan, except }` to leave out some of its checks by id.
     */
    include_checks_from: z
      .union([Identifier, z.object({ plan: Identifier, except: z.array(Identifier).default([]) }).strict()])
      .transform((value) => (typeof value === 'string' ? { plan: value, except: [] as string[] } : value))
      .optional(),
    /**
     * How a target's lint-clean gate judges this plan: `errors` counts squawk's error level only
     * (squawk 2 reports every rule as a warning, so in practice what it cannot parse); `strict`
     * counts every squawk rule about locks and rewrites (all but its style rules; a rollback step
     * may drop what the apply added). A finding is passed only by a waiver in the run.
     */
    lint_gate: z.enum(['errors', 'strict']).default('errors'),
    objects: PlanObjectsSchema.default({ columns: [], indexes: [], functions: [], constraints: [] }),
    notes: z.array(z.object({ title: z.string().min(1), body: z.string().min(1) }).strict()).default([]),
    /** Messages to the team: before executing, after a verified apply, after a rollback. Offered only for what happened. */
    team_messages: z.object({ pre: TeamMessage.optional(), post: TeamMessage.optional(), rollback: TeamMessage.optional() }).strict().default({}),
  })
  .strict();

export type Plan = z.infer<typeof PlanSchema>;
export type Check = z.infer<typeof CheckSchema>;
export type SqlCheck = z.infer<typeof SqlCheckSchema>;
export type ProbeCheck = z.infer<typeof ProbeCheckSchema>;
export type HttpCheck = z.infer<typeof HttpCheckSchema>;
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
      .map((check) => (check.kind !== 'http' && check.file !== undefined ? { ...check, file: includedPlanPath(included.id, check.file) } : check));
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
