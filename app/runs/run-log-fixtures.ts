/**
 * Hand-made runs and events for the run-log tests (the engine that creates real runs lives
 * elsewhere). Test support only: nothing in the app imports it.
 */
import { generateKeyPairSync } from 'node:crypto';
import type pg from 'pg';
import { parseRunEvent, type PayloadOf, type RunEvent, type RunEventHeader, type RunEventInput, type RunEventType } from './run-events';
import { RUN_EVENT_EXAMPLES } from './run-event-examples';
import { appendRunEvent, sha256Hex } from './run-log.server';

export const PLAN_MANIFEST =
  `${sha256Hex('-- apply\n')}  migrations/008_add_active_org_tracking.sql\n` + `${sha256Hex('id: 008\n')}  plan.yaml\n`;

export async function createRun(
  pool: pg.Pool,
  options: { target?: string; kind?: 'execute' | 'rehearsal'; state?: string } = {},
): Promise<string> {
  const { rows } = await pool.query<{ id: string }>(
    `insert into runs (plan_id, plan_checksum, target, kind, state, frozen_plan, created_by)
     values ('008-active-org-tracking', $1, $2, $3, $4, $5::jsonb, 'tpm@example.com') returning id::text`,
    [
      sha256Hex(PLAN_MANIFEST),
      options.target ?? `sandbox-${Math.random().toString(36).slice(2, 8)}`,
      options.kind ?? 'execute',
      options.state ?? 'draft',
      JSON.stringify({
        manifest: PLAN_MANIFEST,
        files: [
          { path: 'plan.yaml', sha256: sha256Hex('id: 008\n'), content: 'id: 008\n' },
          { path: 'migrations/008_add_active_org_tracking.sql', sha256: sha256Hex('-- apply\n'), content: '-- apply\n' },
        ],
      }),
    ],
  );
  return rows[0]!.id;
}

/** A 'run.created' payload for a hand-made run. */
export const RUN_CREATED: PayloadOf<'run.created'> = { planId: '008-active-org-tracking', checksum: sha256Hex(PLAN_MANIFEST), target: 'sandbox', kind: 'execute', files: [{ path: 'plan.yaml', sha256: sha256Hex('id: 008\n') }] };

/** A 'statement.completed' event of step `stepId`, statement `index`. */
export function statementCompleted(index: number, stepId = 'apply-008'): RunEventInput {
  return {
    type: 'statement.completed',
    payload: { stepId, index, line: 10 + index, endLine: 11 + index, command: 'UPDATE', durationMs: 12.5, rowCount: 1000, notices: [{ severity: 'NOTICE', message: 'ok' }], startedAt: '2026-11-25T12:00:00.000Z' },
  };
}

/** The kinds of events a real run writes, with non-ASCII text, fractions and nulls: what the chain must hash alike in TypeScript, SQL and openssl. */
const SCRIPT: ({ actor: string; role: string | null } & RunEventInput)[] = [
  { actor: 'tpm@example.com', role: 'tpm', type: 'run.created', payload: RUN_CREATED },
  { actor: 'tpm@example.com', role: 'tpm', type: 'prerequisite.ticked', payload: { itemId: 'backup-taken', text: 'Database backup taken — snapshot rds-2025-11-25', required: true } },
  { actor: 'tpm@example.com', role: 'tpm', type: 'checks.ran', payload: { phase: 'pre', planChecksum: RUN_CREATED.checksum, passed: true, failed: [], skipped: [], results: [] } },
  { actor: 'tpm@example.com', role: 'tpm', type: 'signoff', payload: { checksum: RUN_CREATED.checksum } },
  { actor: 'engineer@example.com', role: 'engineer', type: 'phase.started', payload: { phase: 'apply', plannedMs: 120_000 } },
  { actor: 'system', role: null, ...statementCompleted(0) },
  { actor: 'system', role: null, type: 'state.changed', payload: { from: 'ready', to: 'applying', reason: 'execute by engineer@example.com' } },
  { actor: 'engineer@example.com', role: 'engineer', type: 'note.added', payload: { text: 'Zürich team informed — ✓' } },
];

/** A run with `count` events of the kinds a real run writes. */
export async function createRunWithEvents(pool: pg.Pool, count: number): Promise<string> {
  const runId = await createRun(pool);
  for (let index = 0; index < count; index++) await appendRunEvent(pool, { runId, ...SCRIPT[index % SCRIPT.length]! });
  return runId;
}

export function newSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** Run statements with every trigger (append-only, chain link, foreign keys) off, as a superuser attacker would. */
export async function asAttacker(pool: pg.Pool, sql: string | string[], params: unknown[] = []): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('set local session_replication_role = replica');
    for (const statement of Array.isArray(sql) ? sql : [sql]) await client.query(statement, params);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

/**
 * A parsed event of `type` for the pure tests (timeline, report): the type's example payload with
 * `overrides` over it, parsed by the union; a payload that does not fit throws here, so a test
 * never folds an event the engine could not have written.
 */
export function sampleEvent<T extends RunEventType>(type: T, overrides: Partial<PayloadOf<T>> = {}, header: Partial<RunEventHeader> = {}): RunEvent {
  const stored: RunEventHeader & { type: string; payload: unknown } = {
    runId: '00000000-0000-4000-8000-000000000001',
    seq: 1,
    at: '2025-11-25T12:00:00.000000Z',
    actor: 'engineer@example.com',
    role: 'engineer',
    ...header,
    type,
    payload: { ...RUN_EVENT_EXAMPLES[type], ...overrides },
  };
  const parsed: RunEvent = parseRunEvent(stored);
  if (parsed.type === 'unrecognised') throw new Error(`sampleEvent(${type}): ${parsed.payload.problem}`);
  return parsed;
}
