/**
 * The audit log of what happens outside a run: sign-ins, failed sign-ins, account changes, and
 * refused state-changing requests. Append-only (a PostgreSQL trigger refuses UPDATE, DELETE and
 * TRUNCATE); `at` comes from the database clock.
 */
import { desc, eq, or } from 'drizzle-orm';
import { auditLog, type AuditLogRow } from '../../db/schema/index';
import type { StoreDb } from '../runtime/store.server';

export interface AuditEntry {
  /** An account's e-mail, "cli:<os user>", "proxy", "system" or "anonymous". */
  actor: string;
  actorRole?: string | null;
  action: string;
  subject?: string | null;
  outcome: 'ok' | 'refused' | 'failed';
  reason?: string | null;
  ip?: string | null;
  detail?: Record<string, unknown> | null;
}

export async function recordAudit(db: StoreDb, entry: AuditEntry): Promise<void> {
  await db.insert(auditLog).values({
    actor: entry.actor,
    actorRole: entry.actorRole ?? null,
    action: entry.action,
    subject: entry.subject ?? null,
    outcome: entry.outcome,
    reason: entry.reason ?? null,
    ip: entry.ip ?? null,
    detail: entry.detail ?? null,
  });
}

export async function listAudit(db: StoreDb, options: { limit?: number; about?: string } = {}): Promise<AuditLogRow[]> {
  const query = db.select().from(auditLog);
  const filtered = options.about ? query.where(or(eq(auditLog.subject, options.about), eq(auditLog.actor, options.about))) : query;
  return filtered.orderBy(desc(auditLog.id)).limit(options.limit ?? 100);
}
