/**
 * The guard of the JSON API (/api/v1): a Runsheet API token in `Authorization: Bearer …`, never a
 * cookie (a session cookie on an API request is ignored, so the request is unauthenticated).
 * The token's account must have the endpoint's permission, from the same table as the web app.
 * Every refusal of a state-changing request is audited, as requireStateChange does for pages.
 */
import type { AppLoadContext } from '@remix-run/node';
import { authenticateApiToken } from '../accounts/api-tokens.server';
import { roleCan, type Permission } from '../accounts/permissions';
import { recordAudit } from '../audit/audit-log.server';
import { RunsheetError } from '../runtime/errors';
import type { SignedInUser } from './require.server';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function bearerTokenOf(request: Request): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get('authorization') ?? '');
  return match?.[1];
}

/**
 * The account behind the request's API token, with `needed` ('signed-in': any valid token).
 * Throws RunsheetError 'unauthenticated' (401) or 'permission' (403).
 */
export async function requireApiCaller(request: Request, context: AppLoadContext, needed: Permission | 'signed-in'): Promise<SignedInUser> {
  const token = bearerTokenOf(request);
  if (!token) {
    await auditRefusal(request, context, null, 'no API token', needed);
    throw new RunsheetError(
      'unauthenticated',
      'The Runsheet API takes an API token, never a cookie: send "Authorization: Bearer rs_…" (create a token on the accounts page, or with npx runsheet tokens create).',
    );
  }
  const verdict = await authenticateApiToken(context.runtime.store.db, { token, ip: context.clientAddress });
  if (!verdict.ok) {
    await auditRefusal(request, context, null, verdict.reason, needed);
    throw new RunsheetError('unauthenticated', `Refused: ${verdict.reason}. Create a new token on the accounts page (or ask an admin, for a service account).`);
  }
  const { caller } = verdict;
  const user: SignedInUser = {
    accountId: caller.accountId,
    email: caller.email,
    name: caller.name,
    role: caller.role,
    via: 'token',
    tokenId: caller.tokenId,
    accountKind: caller.kind,
  };
  if (needed !== 'signed-in' && !roleCan(user.role, needed)) {
    await auditRefusal(request, context, user, `role ${user.role} lacks ${needed}`, needed);
    throw new RunsheetError('permission', `Forbidden: the role of ${user.email} (${user.role}) may not ${needed}.`);
  }
  return user;
}

async function auditRefusal(request: Request, context: AppLoadContext, user: SignedInUser | null, reason: string, needed: Permission | 'signed-in'): Promise<void> {
  if (SAFE_METHODS.has(request.method.toUpperCase())) return;
  await recordAudit(context.runtime.store.db, {
    actor: user?.email ?? 'anonymous',
    actorRole: user?.role ?? null,
    action: 'request.refused',
    subject: `${request.method.toUpperCase()} ${new URL(request.url).pathname}`,
    outcome: 'refused',
    reason,
    ip: context.clientAddress,
    detail: { needed, tokenId: user?.tokenId ?? null },
  });
}
