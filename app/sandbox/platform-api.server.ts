/**
 * A tiny stand-in of the platform API that the seed's post-execution tests call
 * (GET /api/auth/validate, POST /api/auth/set-active-org), served for the sandbox target only so
 * those tests run for real. It authenticates by bearer token (sha256 stored in
 * platform.api_tokens) and uses no cookies. It reads and writes through the plan's own helper
 * functions, so it answers "not available" until migration 008 is applied, as the real API would.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';

export interface PlatformApiReply {
  status: number;
  body: Record<string, unknown>;
}

interface ApiUser {
  userId: string;
  email: string;
}

const NOT_MIGRATED = 'active organization tracking is not available on this database: migration 008 is not applied';

export async function authenticateBearer(pool: pg.Pool, authorization: string | null): Promise<ApiUser | undefined> {
  const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
  if (!token) return undefined;
  const tokenHash = createHash('sha256').update(token).digest('hex');
  const { rows } = await pool.query<{ user_id: string; email: string }>(
    `select u.id::text as user_id, u.email
       from platform.api_tokens t
       join platform.users u on u.id = t.user_id
      where t.token_hash = $1`,
    [tokenHash],
  );
  return rows[0] ? { userId: rows[0].user_id, email: rows[0].email } : undefined;
}

async function helperFunctionsPresent(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ present: number }>(
    `select count(*)::int as present
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'platform' and p.proname in ('get_user_active_org', 'set_user_active_org')`,
  );
  return rows[0]?.present === 2;
}

export async function validateApiSession(pool: pg.Pool, authorization: string | null): Promise<PlatformApiReply> {
  const user = await authenticateBearer(pool, authorization);
  if (!user) return { status: 401, body: { error: 'missing or unknown bearer token' } };
  if (!(await helperFunctionsPresent(pool))) return { status: 503, body: { error: NOT_MIGRATED } };
  const { rows } = await pool.query<{ active_org_id: string | null }>('select platform.get_user_active_org($1::uuid)::text as active_org_id', [user.userId]);
  return { status: 200, body: { valid: true, userId: user.userId, email: user.email, activeOrgId: rows[0]?.active_org_id ?? null } };
}

const SetActiveOrgBody = z.object({ organizationId: z.string().uuid('organizationId must be a UUID').nullable() }).strict();

export async function setActiveOrganization(pool: pg.Pool, authorization: string | null, rawBody: unknown): Promise<PlatformApiReply> {
  const user = await authenticateBearer(pool, authorization);
  if (!user) return { status: 401, body: { success: false, error: 'missing or unknown bearer token' } };
  const parsed = SetActiveOrgBody.safeParse(rawBody);
  if (!parsed.success) {
    return { status: 400, body: { success: false, error: parsed.error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ') } };
  }
  if (!(await helperFunctionsPresent(pool))) return { status: 503, body: { success: false, error: NOT_MIGRATED } };
  try {
    const { rows } = await pool.query<{ active_org_id: string | null }>(
      'select platform.set_user_active_org($1::uuid, $2::uuid)::text as active_org_id',
      [user.userId, parsed.data.organizationId],
    );
    return { status: 200, body: { success: true, activeOrgId: rows[0]?.active_org_id ?? null } };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    // The helper refuses an organization the user is not a member of; that is the caller's fault.
    if (code && /^(P0001|42501|23503)$/.test(code)) return { status: 403, body: { success: false, error: message } };
    throw error;
  }
}
