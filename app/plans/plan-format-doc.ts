/**
 * docs/plan-format.md and docs/plan.schema.json, generated from the one plan schema
 * (plan-schema.ts), its `.meta()` descriptions and examples, by `npm run docs`. A test fails when
 * the committed files are not what this renders: the reference cannot drift from the format.
 */
import { stringify } from 'yaml';
import { z } from 'zod';
import { CheckSchema, ExpectationSchema, PlanSchema, StepSchema, TEAM_MESSAGE_PLACEHOLDERS } from './plan-schema';

interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  default?: unknown;
  description?: string;
  examples?: unknown[];
  additionalProperties?: JsonSchema | boolean;
  minItems?: number;
  pattern?: string;
  $defs?: Record<string, JsonSchema>;
  title?: string;
}

/** The schema an editor validates plan.yaml with (what a YAML author writes: `io: 'input'`). */
export function planJsonSchema(): JsonSchema {
  return z.toJSONSchema(PlanSchema, { io: 'input' }) as JsonSchema;
}

export function renderPlanJsonSchema(): string {
  return `${JSON.stringify({ ...planJsonSchema(), $id: 'https://runsheet.dev/plan.schema.json' }, null, 2)}\n`;
}

/** A complete small plan, checked against the schema whenever the reference is rendered. */
const EXAMPLE_PLAN = {
  id: '012-add-widget-sku',
  title: 'Migration 012 — add a SKU to shop.widgets',
  review: 'pending',
  prerequisites: [{ id: 'backup-taken', text: 'Database backup taken' }],
  prechecks: [
    {
      id: 'sku-absent',
      kind: 'sql',
      title: 'shop.widgets has no sku column yet',
      sql: "SELECT 1\nFROM information_schema.columns\nWHERE table_schema = 'shop' AND table_name = 'widgets' AND column_name = 'sku'\n",
      expect: { type: 'no_rows' },
    },
  ],
  apply: [
    { id: 'add-sku', title: 'Add the sku column', file: '01_add_sku.sql' },
    { id: 'index-sku', kind: 'create_index_concurrently', title: 'Build the unique index on sku', file: '02_index_sku.sql', index: { schema: 'shop', name: 'widgets_sku_key' } },
  ],
  verification: [
    {
      id: 'sku-present',
      kind: 'sql',
      title: 'shop.widgets.sku exists, text, nullable',
      sql: "SELECT column_name, data_type, is_nullable\nFROM information_schema.columns\nWHERE table_schema = 'shop' AND table_name = 'widgets' AND column_name = 'sku'\n",
      expect: { type: 'rows', rows: [{ column_name: 'sku', data_type: 'text', is_nullable: 'YES' }] },
    },
  ],
  rollback: {
    steps: [
      { id: 'drop-index', title: 'Drop the index', file: 'rollback_1.sql', transactional: false },
      { id: 'drop-sku', title: 'Drop the column', file: 'rollback_2.sql' },
    ],
    verification: [{ id: 'sku-gone', kind: 'sql', title: 'shop.widgets.sku is gone', sql: "SELECT 1 FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'widgets' AND column_name = 'sku'\n", expect: { type: 'no_rows' } }],
  },
  success_criteria: [{ text: 'Every widget can carry a SKU', checks: ['sku-present'] }],
  objects: { columns: [{ schema: 'shop', table: 'widgets', column: 'sku', type: 'text', nullable: true }], indexes: [{ schema: 'shop', name: 'widgets_sku_key', table: 'widgets' }] },
  team_messages: { post: { notify: ['Catalogue team'], body: 'Widgets have SKUs on {{target}} (by {{executor}} at {{finished_at}}).\n' } },
};

/** A resumable plan: the pre-checks that prove "not there yet" say unless_resuming (checked against the schema too). */
const RESUMABLE_EXAMPLE = {
  id: '013-organization-slug',
  title: 'Migration 013 — a unique, NOT NULL slug on platform.organizations',
  resumable: true,
  prechecks: [
    { id: 'slug-absent', kind: 'object', title: 'No slug column yet', present: false, column: { schema: 'platform', table: 'organizations', name: 'slug' }, unless_resuming: true },
    { id: 'slug-index-absent', kind: 'object', title: 'No slug index yet', present: false, index: { schema: 'platform', name: 'organizations_slug_key' }, unless_resuming: true },
  ],
  apply: [
    { id: 'add-slug', title: 'Add the slug column', file: '01_add_slug.sql' },
    { id: 'fill-slug', kind: 'batched_backfill', until: 'no_rows', title: 'Fill slug where it is missing', file: '02_fill_slug.sql', table: { schema: 'platform', name: 'organizations' }, key: 'id' },
    { id: 'slug-index', kind: 'create_index_concurrently', title: 'Build the unique index on slug', file: '03_slug_index.sql', index: { schema: 'platform', name: 'organizations_slug_key' } },
    { id: 'slug-not-null', title: 'Make slug NOT NULL', file: '04_slug_not_null.sql' },
  ],
  verification: [{ id: 'slug-index-valid', kind: 'object', title: 'The slug index is valid and unique', present: true, index: { schema: 'platform', name: 'organizations_slug_key', valid: true, unique: true } }],
  rollback: { steps: [{ id: 'drop-slug', title: 'Drop the slug column', file: 'rollback.sql' }] },
};

export function renderPlanFormatDoc(): string {
  PlanSchema.parse(EXAMPLE_PLAN);
  PlanSchema.parse(RESUMABLE_EXAMPLE);
  const root = planJsonSchema();
  const defs = root.$defs ?? {};
  const resolve = (schema: JsonSchema): JsonSchema => (schema.$ref ? { ...defs[schema.$ref.replace('#/$defs/', '')], ...schema, $ref: undefined } : schema);
  const typeName = (schema: JsonSchema): string => {
    if (schema.$ref) {
      const name = schema.$ref.replace('#/$defs/', '');
      return name === 'Duration' ? 'duration' : `[${name}](#${name.toLowerCase()})`;
    }
    if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
    if (schema.enum) return schema.enum.map((value) => `\`${String(value)}\``).join(' \\| ');
    const union = schema.anyOf ?? schema.oneOf;
    if (union) return [...new Set(union.map(typeName))].join(' or ');
    if (schema.type === 'array') return `list of ${schema.items ? typeName(schema.items) : 'values'}`;
    if (schema.type === 'object' && schema.properties) return 'mapping (below)';
    if (schema.type === 'object') return 'mapping';
    if (schema.type === 'string' && schema.pattern === '^[a-z0-9][a-z0-9_-]*$') return 'id';
    return Array.isArray(schema.type) ? schema.type.join(' or ') : (schema.type ?? 'any');
  };
  const cell = (text: string | undefined) => (text ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const fieldTable = (schema: JsonSchema, prefix = ''): string[] => {
    const object = resolve(schema);
    const required = new Set(object.required ?? []);
    const rows: string[] = [];
    for (const [name, raw] of Object.entries(object.properties ?? {})) {
      const field = raw;
      const description = field.description ?? (field.$ref ? resolve(field).description : undefined);
      const fallback = field.default !== undefined && typeof field.default !== "object" ? ` Default: \`${JSON.stringify(field.default)}\`.` : '';
      rows.push(`| \`${prefix}${name}\` | ${typeName(field)} | ${required.has(name) ? 'yes' : 'no'} | ${cell(description)}${fallback} |`);
      const nested = field.type === 'array' ? field.items : field;
      if (nested && !nested.$ref && nested.type === 'object' && nested.properties) rows.push(...fieldTable(nested, `${prefix}${name}${field.type === 'array' ? '[]' : ''}.`));
    }
    return rows;
  };
  const table = (schema: JsonSchema) => ['| key | type | required | what it says |', '| --- | --- | --- | --- |', ...fieldTable(schema)];
  const example = (value: unknown) => ['```yaml', stringify(value, { lineWidth: 0 }).trimEnd(), '```'];
  const examplesOf = (schema: JsonSchema) => (schema.examples ?? []).flatMap((value) => ['', 'Example:', '', ...example(value)]);
  // The JSON Schema leaves out the examples of a schema with a transform (a duration): read them from zod's registry.
  const zodExamples = (union: z.ZodDiscriminatedUnion, key: string) =>
    new Map(
      union.options.map((option) => {
        const shape = (option as z.ZodObject).shape as Record<string, z.ZodType>;
        const discriminator = shape[key]!;
        const inner = discriminator instanceof z.ZodDefault ? discriminator.def.innerType : discriminator;
        return [String((inner as z.ZodLiteral).value), (z.globalRegistry.get(option)?.examples as unknown[] | undefined) ?? []];
      }),
    );
  const discriminated = (name: string, key: string, title: string, union: z.ZodDiscriminatedUnion) => {
    const examples = zodExamples(union, key);
    return (resolve({ $ref: `#/$defs/${name}` }).oneOf ?? []).flatMap((option) => {
      const value = option.properties?.[key];
      const label = String(value?.const ?? value?.default ?? '?');
      return [`### ${title} \`${label}\``, '', option.description ?? '', '', ...table(option), ...examplesOf({ examples: examples.get(label) ?? option.examples }), ''];
    });
  };

  const placeholderRows = Object.entries(TEAM_MESSAGE_PLACEHOLDERS).map(([name, meaning]) => `| \`{{${name}}}\` | ${meaning} |`);
  return [
    '# The plan format',
    '',
    '<!-- Generated from app/plans/plan-schema.ts (its .meta() descriptions and examples) by `npm run docs`: edit the schema, not this file. -->',
    '',
    'A plan is a folder of the plans folder, `plans/<id>/`: a `plan.yaml` that this page describes, the SQL files it',
    'names (steps, and checks that use `file:`), and optionally `sandbox.sql`. Its checksum is sha256 over a manifest',
    'of plan.yaml and every file it names (docs/decisions/001): a changed byte is a new checksum, and a run executes',
    'the copy it froze. `npx runsheet plans` validates every plan; an error names its file and line (YAML syntax:',
    'the first error only, with its line and column). `npx runsheet new <id>` writes a plan with an example of every',
    'section; `npx runsheet import <runbook.md>` writes one from a Markdown runbook (docs/decisions/019).',
    '',
    '**Editor support.** The same schema as JSON Schema: [plan.schema.json](plan.schema.json). New plans start with',
    '`# yaml-language-server: $schema=../../docs/plan.schema.json`, which the YAML language server (the VS Code YAML',
    'extension) reads; the README shows the setting that maps every `plans/*/plan.yaml` to it.',
    '',
    '**Durations** are written "250ms", "30s", "5m", "1h", or as a number of seconds.',
    '',
    '**SQL files** are split into statements as psql would (PostgreSQL\'s own parser): a psql meta-command (`\\set`,',
    '`\\i`) or a syntax error is reported with its line before anything is sent. In a transactional step Runsheet',
    'owns the transaction, so BEGIN, COMMIT or ROLLBACK in the file is refused with its line. `SET lock_timeout` (or',
    'statement_timeout) in a step file is allowed: it applies from that statement to the end of the step, after the',
    'step\'s own `lock_timeout`, which Runsheet sets before the first statement; prefer the key.',
    '',
    '## A complete example',
    '',
    ...example(EXAMPLE_PLAN),
    '',
    '## Keys of plan.yaml',
    '',
    ...table(root),
    '',
    '## Resumable plans',
    '',
    'A plan whose apply can stop part-way (more than one step, or a step that commits as it goes) may say',
    '`resumable: true`. After a run of it failed, was cancelled or was interrupted on a target, a new run of the',
    'same checksum on that target starts at the first step the target\'s ledger does not record as completed: the',
    'steps before it are not run again (the log says `step.skipped`, by which run each completed; the new run\'s',
    'ledger rows keep them as completed), and the pre-checks that say `unless_resuming: true` are skipped with the',
    'reason shown, since what they prove absent may be what the earlier run left. The go/no-go names where the',
    'apply starts and what it skips. The step it starts at runs again from its beginning: a `sql` step from its',
    'first statement (write it so that a second run is safe, e.g. IF NOT EXISTS, when it is not transactional), a',
    '`create_index_concurrently` step drops the INVALID index a failed build left and builds again, a',
    '`batched_backfill` goes on after its last committed batch. A different checksum never resumes: every step',
    'and pre-check runs from the first. A completed apply or a rollback ends the chain (docs/decisions/027).',
    '',
    ...example(RESUMABLE_EXAMPLE),
    '',
    '## Prerequisite',
    '',
    resolve({ $ref: '#/$defs/Prerequisite' }).description ?? '',
    '',
    ...table({ $ref: '#/$defs/Prerequisite' }),
    ...examplesOf(resolve({ $ref: '#/$defs/Prerequisite' })),
    '',
    '## Check',
    '',
    resolve({ $ref: '#/$defs/Check' }).description ?? '',
    'Every check records expected, actual, pass or fail, how long it took, when it ran, and the exact SQL.',
    '',
    ...discriminated('Check', 'kind', 'Check kind', CheckSchema),
    '## Expectation',
    '',
    resolve({ $ref: '#/$defs/Expectation' }).description ?? '',
    '',
    ...discriminated('Expectation', 'type', 'Expectation type', ExpectationSchema),
    '## Step',
    '',
    resolve({ $ref: '#/$defs/Step' }).description ?? '',
    'Each kind checks its file when the plan loads (docs/decisions/014).',
    '',
    ...discriminated('Step', 'kind', 'Step kind', StepSchema),
    '## PlanObjects',
    '',
    resolve({ $ref: '#/$defs/PlanObjects' }).description ?? '',
    '',
    ...table({ $ref: '#/$defs/PlanObjects' }),
    ...examplesOf(resolve({ $ref: '#/$defs/PlanObjects' })),
    '',
    '## TeamMessage',
    '',
    'The messages before and after executing, shown on the plan page with their placeholders filled from the run;',
    'a placeholder not known yet (`{{executor}}` before anyone executed) shows as "[executor: to be filled]".',
    '',
    ...table({ $ref: '#/$defs/TeamMessage' }),
    '',
    '| placeholder | filled with |',
    '| --- | --- |',
    ...placeholderRows,
    ...examplesOf(resolve({ $ref: '#/$defs/TeamMessage' })),
    '',
    '## Other files of a plan folder',
    '',
    '- **The SQL files** that steps and checks name, beside plan.yaml (a path may not leave the folder).',
    '- **`sandbox.sql`** (optional): the plan\'s starting state on a sandbox, e.g. a table the generated sandbox does',
    '  not have. `npx runsheet sandbox reset --plan <id>` (or the plan page, for engineers, on a sandbox target)',
    '  regenerates the sandbox and runs it in one transaction; only targets whose rules say `sandbox: true` are',
    '  ever reset, and the audit log records the fixture\'s sha256. It is checked when the plan loads (it splits, no',
    '  transaction control) and is not part of the checksum: it never runs on a real target (docs/decisions/019a).',
    '- **`IMPORT.md`**: written by `runsheet import`: every part of the runbook that was not mapped or was guessed,',
    '  with its runbook line. Not part of the checksum.',
    '',
  ].join('\n');
}
