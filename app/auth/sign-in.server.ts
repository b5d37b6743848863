/**
 * Signing in with a password: throttle, verify, start a session, audit. Every attempt, allowed
 * or not, leaves one audit row. The answer to a failure never says whether the account exists.
 */
import { eq, sql } from 'drizzle-orm';
import { accounts } from '../../db/schema/index';
import { recordAudit } from '../audit/audit-log.server';
import type { Runtime } from '../boot/runtime.server';
import { findAccountForSignIn, upgradePasswordHash } from '../accounts/accounts.server';
import { burnPasswordCheck, hashPassword, needsRehash, verifyPassword } from '../accounts/password.server';
import type { Role } from '../accounts/permissions';
import { createSession } from './session.server';
import { checkThrottle, clearFailedSignIns, recordFailedSignIn } from './throttle.server';

export type SignInResult =
  | { ok: true; setCookie: string; account: { id: string; email: string; name: string; role: Role } }
  | { ok: false; status: 401 | 403 | 429; message: string; retryAfterSeconds?: number };

export const WRONG_CREDENTIALS = 'The e-mail or the password is wrong.';

export async function signInWithPassword(
  runtime: Runtime,
  request: Request,
  input: { email: string; password: string; ip: string },
): Promise<SignInResult> {
  const db = runtime.store.db;
  const typed = input.email.trim().toLowerCase().slice(0, 254);
  const audit = (action: string, outcome: 'ok' | 'refused' | 'failed', reason: string | null, role: Role | null = null) =>
    recordAudit(db, { actor: typed || '(empty)', actorRole: role, action, subject: typed || null, outcome, reason, ip: input.ip });

  const throttle = await checkThrottle(db, { email: typed, ip: input.ip });
  if (!throttle.allowed) {
    await audit('sign-in.throttled', 'refused', `${throttle.locked ? 'locked' : 'slowed'} (${throttle.scope}), retry in ${throttle.retryAfterSeconds} s`);
    return {
      ok: false,
      status: 429,
      retryAfterSeconds: throttle.retryAfterSeconds,
      message: `Too many failed sign-ins. Try again in ${formatWait(throttle.retryAfterSeconds)}.`,
    };
  }

  const account = await findAccountForSignIn(db, { email: typed });
  if (!account?.passwordHash) {
    await burnPasswordCheck(input.password);
    await recordFailedSignIn(db, { email: typed, ip: input.ip });
    await audit('sign-in.failed', 'failed', account ? 'the account has no password (single sign-on only)' : 'no such account');
    return { ok: false, status: 401, message: WRONG_CREDENTIALS };
  }
  if (!(await verifyPassword(input.password, account.passwordHash))) {
    await recordFailedSignIn(db, { email: typed, ip: input.ip });
    await audit('sign-in.failed', 'failed', 'wrong password', account.role);
    return { ok: false, status: 401, message: WRONG_CREDENTIALS };
  }
  if (account.disabled) {
    await audit('sign-in.failed', 'refused', 'the account is disabled', account.role);
    return { ok: false, status: 403, message: 'This account is disabled. Ask an admin.' };
  }

  await clearFailedSignIns(db, { email: typed, ip: input.ip });
  if (needsRehash(account.passwordHash)) {
    await upgradePasswordHash(db, { accountId: account.id, passwordHash: await hashPassword(input.password) });
  }
  await db.update(accounts).set({ lastSignInAt: sql`now()` }).where(eq(accounts.id, account.id));
  const setCookie = await createSession(runtime, request, {
    accountId: account.id,
    ip: input.ip || null,
    userAgent: request.headers.get('user-agent'),
  });
  await audit('sign-in', 'ok', null, account.role);
  return { ok: true, setCookie, account: { id: account.id, email: account.email, name: account.name, role: account.role } };
}

function formatWait(seconds: number): string {
  return seconds < 90 ? `${seconds} s` : `${Math.ceil(seconds / 60)} min`;
}
