/**
 * Hand-made runs and events for the run-log tests (the engine that creates real runs lives
 * elsewhere). Test support only: nothing in the app imports it.
 */
import { generateKeyPairSync } from 'node:crypto';
import type pg from 'pg';
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

/** A run with `count` events of the kinds a real run writes. */
export async function createRunWithEvents(pool: pg.Pool, count: number): Promise<string> {
  const runId = await createRun(pool);
  const script = [
    { actor: 'tpm@example.com', role: 'tpm', type: 'run.created', payload: { plan: '008-active-org-tracking' } },
    { actor: 'tpm@example.com', role: 'tpm', type: 'prerequisite.ticked', payload: { item: 'backup-taken', note: 'snapshot rds-2025-11-25' } },
    { actor: 'tpm@example.com', role: 'tpm', type: 'checks.ran', payload: { phase: 'pre', passed: 7, failed: 0, ratio: 0.5 } },
    { actor: 'tpm@example.com', role: 'tpm', type: 'signoff', payload: {} },
    { actor: 'engineer@example.com', role: 'engineer', type: 'phase.started', payload: { phase: 'apply' } },
    { actor: 'system', role: null, type: 'statement.completed', payload: { line: 12, rows: 1000, notices: ['ok'], ms: 12.5 } },
    { actor: 'system', role: null, type: 'state.changed', payload: { from: 'ready', to: 'applying' } },
    { actor: 'engineer@example.com', role: 'engineer', type: 'note.added', payload: { text: 'Zürich team informed — ✓' } },
  ];
  for (let index = 0; index < count; index++) {
    const event = script[index % script.length]!;
    await appendRunEvent(pool, { runId, ...event, payload: { ...event.payload, n: index + 1 } });
  }
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
