/**
 * docs/run-log-events.md and docs/run-log-events.schema.json, generated from the run-event union
 * (run-events.ts) and its descriptions and examples (run-event-examples.ts) by `npm run docs`. A
 * test fails when the committed files are not what this renders: the format's documentation can
 * never drift from the code that writes it.
 */
import { z } from 'zod';
import { RUN_EVENT_DESCRIPTIONS, RUN_EVENT_EXAMPLES } from './run-event-examples';
import { RUN_EVENT_FORMAT, RUN_EVENT_TYPES, RunEventBodySchema, type RunEventType } from './run-events';

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  additionalProperties?: JsonSchema | boolean;
}

const payloadSchemaOf = (type: RunEventType) => RunEventBodySchema.options.find((option) => option.shape.type.value === type)!.shape.payload;

function typeName(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(' \\| ');
  if (schema.anyOf) return schema.anyOf.map(typeName).join(' or ');
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : ['any JSON'];
  return types.map((type) => (type === 'array' ? `array of ${schema.items ? typeName(schema.items) : 'any JSON'}` : type)).join(' or ');
}

/** One row per field, nested objects (and arrays of objects) flattened with dotted paths. */
function fieldRows(schema: JsonSchema, prefix = ''): string[] {
  const rows: string[] = [];
  const required = new Set(schema.required ?? []);
  for (const [name, field] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}${name}`;
    rows.push(`| \`${path}\` | ${typeName(field)} | ${required.has(name) ? 'yes' : 'no'} |`);
    if (field.properties) rows.push(...fieldRows(field, `${path}.`));
    if (field.items?.properties) rows.push(...fieldRows(field.items, `${path}[].`));
  }
  return rows;
}

export function renderRunEventsDoc(): string {
  const sections = RUN_EVENT_TYPES.map((type) => {
    const schema = z.toJSONSchema(payloadSchemaOf(type), { io: 'input' }) as JsonSchema;
    const rows = fieldRows(schema);
    return [
      `### \`${type}\``,
      '',
      RUN_EVENT_DESCRIPTIONS[type],
      '',
      ...(rows.length > 0 ? ['| payload field | type | required |', '| --- | --- | --- |', ...rows] : ['No payload fields.']),
      '',
      'Example payload:',
      '',
      '```json',
      JSON.stringify(RUN_EVENT_EXAMPLES[type], null, 2),
      '```',
      '',
    ].join('\n');
  });
  return [
    `# Run-log events (format ${RUN_EVENT_FORMAT})`,
    '',
    '<!-- Generated from app/runs/run-events.ts and app/runs/run-event-examples.ts by `npm run docs`: edit those, not this file. -->',
    '',
    "Every event of a run's log, as exported in a signed log (docs/decisions/011, 015). An event is",
    '`{ run_id, seq, at, actor, role, type, payload }`, hashed as',
    '`sha256_hex(prev_hash + "\\n" + JCS(event))` (docs/decisions/010); `at` is the database clock',
    '(`YYYY-MM-DDTHH:MM:SS.ffffffZ`), `actor` an account e-mail or `system`, `role` its role or null.',
    '`payload` is the object each type below describes. Every key a payload carries is listed here:',
    'Runsheet refuses to write an event whose payload has a key this file does not name. A reader',
    'meets types it does not know (an older or a newer Runsheet) as data, shown raw, never as an',
    'error; the hash covers the payload exactly as stored either way.',
    '',
    `The same union as a JSON Schema (draft 2020-12): [run-log-events.schema.json](run-log-events.schema.json).`,
    '',
    '## Types',
    '',
    '| type | what it records |',
    '| --- | --- |',
    ...RUN_EVENT_TYPES.map((type) => `| [\`${type}\`](#${type.replace(/[^a-z0-9_-]/g, '')}) | ${RUN_EVENT_DESCRIPTIONS[type]} |`),
    '',
    '## Each type',
    '',
    ...sections,
  ].join('\n');
}

/** The union (type and payload of every event) as a JSON Schema document. */
export function renderRunEventsJsonSchema(): string {
  const schema = z.toJSONSchema(RunEventBodySchema, { io: 'input' }) as Record<string, unknown>;
  return `${JSON.stringify({ ...schema, title: `Runsheet run-log event (type and payload), format ${RUN_EVENT_FORMAT}` }, null, 2)}\n`;
}
