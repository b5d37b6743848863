/**
 * Single sign-on through a trusted proxy: the proxy authenticates people and sends their e-mail in
 * a header (TRUSTED_PROXY_EMAIL_HEADER, default x-forwarded-email). The header is believed only
 * when the request's peer address (the TCP connection, context.clientAddress, never a forwarded
 * header) is one of TRUSTED_PROXY_ADDRESSES. Off unless that is set.
 *
 * The proxy authenticates every request, so no session is created: identity is per request.
 * An unknown e-mail becomes a viewer account (audited); a sign-in is audited when the account had
 * none for a session's lifetime (12 h), not on every request.
 */
import { isServiceAccountEmail } from '../accounts/api-token-format';
import { and, eq, isNull, lt, or, sql } from 'drizzle-orm';
import { accounts } from '../../db/schema/index';
import { recordAudit } from '../audit/audit-log.server';
import type { RunsheetEnv } from '../runtime/env.server';
import type { Runtime } from '../boot/runtime.server';
import { EmailSchema, createAccount } from '../accounts/accounts.server';
import { isRunsheetError } from '../runtime/errors';
import { isRole, type Role } from '../accounts/permissions';
import { SESSION_ABSOLUTE_SECONDS } from './session.server';

export interface ProxyAccount {
  accountId: string;
  email: string;
  name: string;
  role: Role;
}

/** "::ffff:10.0.0.5" and "10.0.0.5" are one address. */
export function normalizeAddress(address: string): string {
  const trimmed = address.trim().toLowerCase();
  return trimmed.startsWith('::ffff:') && trimmed.includes('.') ? trimmed.slice(7) : trimmed;
}

export function trustedProxyAddresses(env: Pick<RunsheetEnv, 'TRUSTED_PROXY_ADDRESSES'>): Set<string> {
  return new Set(
    (env.TRUSTED_PROXY_ADDRESSES ?? '')
      .split(',')
      .map(normalizeAddress)
      .filter(Boolean),
  );
}

/** The e-mail the proxy vouches for, or undefined when proxy sign-in does not apply to this request. */
export function proxyEmail(request: Request, env: RunsheetEnv, clientAddress: string): string | undefined {
  const trusted = trustedProxyAddresses(env);
  if (trusted.size === 0 || !clientAddress || !trusted.has(normalizeAddress(clientAddress))) return undefined;
  const header = request.headers.get(env.TRUSTED_PROXY_EMAIL_HEADER.toLowerCase());
  if (!header) return undefined;
  const parsed = EmailSchema.safeParse(header);
  return parsed.success ? parsed.data : undefined;
}

/** The enabled account of a proxy-vouched e-mail, created as a viewer when unknown. */
export async function proxyAccount(runtime: Runtime, input: { email: string; ip: string }): Promise<ProxyAccount | undefined> {
  const db = runtime.store.db;
  // A service account's name is no person's address: the proxy never signs one in, nor makes one.
  if (isServiceAccountEmail(input.email)) return undefined;
  let [row] = await db.select().from(accounts).where(eq(accounts.email, input.email)).limit(1);
  if (!row) {
    try {
      await createAccount(db, { email: input.email, role: 'viewer', actor: { name: 'proxy', ip: input.ip } });
    } catch (error) {
      // Created by a concurrent request of the same person: use that one.
      if (!isRunsheetError(error, 'conflict')) throw error;
    }
    [row] = await db.select().from(accounts).where(eq(accounts.email, input.email)).limit(1);
  }
  if (!row || row.disabled || row.kind === 'service' || !isRole(row.role)) return undefined;
  const [signedIn] = await db
    .update(accounts)
    .set({ lastSignInAt: sql`now()` })
    .where(
      and(
        eq(accounts.id, row.id),
        or(isNull(accounts.lastSignInAt), lt(accounts.lastSignInAt, sql`now() - make_interval(secs => ${SESSION_ABSOLUTE_SECONDS})`)),
      ),
    )
    .returning({ id: accounts.id });
  if (signedIn) {
    await recordAudit(db, { actor: row.email, actorRole: row.role, action: 'sign-in.proxy', subject: row.email, outcome: 'ok', ip: input.ip });
  }
  return { accountId: row.id, email: row.email, name: row.name, role: row.role };
}
