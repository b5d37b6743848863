/**
 * Accounts: every query and change of the `accounts` table. Each change is audited in the same
 * transaction as the change itself (both happen or neither). The command line and the admin page
 * are thin front ends over these functions.
 */
import { and, asc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import { accounts, loginAttempts, sessions, type AccountRow } from '../../db/schema/index';
import { recordAudit } from '../audit/audit-log.server';
import { RunsheetError } from '../runtime/errors';
import type { StoreDb } from '../runtime/store.server';
import { hashPassword, passwordProblem } from './password.server';
import { SERVICE_ACCOUNT_NAME_PATTERN, isServiceAccountEmail, serviceAccountEmail } from './api-token-format';
import type { Role } from './permissions';

/** Who makes a change: an account (the admin page), "cli:<os user>", "proxy" or "system". */
export interface Actor {
  name: string;
  role?: Role | null;
  /** The account id when the actor is a signed-in account (separation-of-duties checks). */
  accountId?: string;
  ip?: string | null;
}

export type Account = Omit<AccountRow, 'passwordHash'> & { hasPassword: boolean };

export const EmailSchema = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.email({ error: 'Enter an e-mail address (name@example.com).' }).max(254));

export function normalizeEmail(email: string): string {
  const parsed = EmailSchema.safeParse(email);
  if (!parsed.success) throw new RunsheetError('invalid_input', `"${email}" is not an e-mail address.`);
  return parsed.data;
}

function toAccount(row: AccountRow): Account {
  const { passwordHash, ...rest } = row;
  return { ...rest, hasPassword: passwordHash !== null };
}

type Tx = Parameters<Parameters<StoreDb['transaction']>[0]>[0];

export async function listAccounts(db: StoreDb): Promise<Account[]> {
  const rows = await db.select().from(accounts).orderBy(asc(accounts.email));
  return rows.map(toAccount);
}

/** The row with its password hash: for signing in only. */
export async function findAccountForSignIn(db: StoreDb, input: { email: string }): Promise<AccountRow | undefined> {
  const parsed = EmailSchema.safeParse(input.email);
  if (!parsed.success) return undefined;
  const [row] = await db.select().from(accounts).where(eq(accounts.email, parsed.data)).limit(1);
  return row;
}

export async function findAccount(db: StoreDb, input: { email: string }): Promise<Account | undefined> {
  const row = await findAccountForSignIn(db, input);
  return row ? toAccount(row) : undefined;
}

async function lockAccount(tx: Tx, email: string): Promise<AccountRow> {
  const [row] = await tx.select().from(accounts).where(eq(accounts.email, email)).for('update').limit(1);
  if (!row) throw new RunsheetError('not_found', `No account has the e-mail ${email}.`);
  return row;
}

function audit(tx: Tx, actor: Actor, action: string, subject: string, detail?: Record<string, unknown>) {
  return recordAudit(tx as unknown as StoreDb, { actor: actor.name, actorRole: actor.role ?? null, action, subject, outcome: 'ok', ip: actor.ip ?? null, detail: detail ?? null });
}

export async function createAccount(
  db: StoreDb,
  input: { email: string; name?: string; role: Role; password?: string | null; actor: Actor },
): Promise<Account> {
  const email = normalizeEmail(input.email);
  if (isServiceAccountEmail(email)) throw new RunsheetError('invalid_input', `${email} is a service account's name: create it as a service account (an admin, or npx runsheet service-account add).`);
  if (input.password != null) {
    const problem = passwordProblem(input.password);
    if (problem) throw new RunsheetError('invalid_input', problem);
  }
  const passwordHash = input.password != null ? await hashPassword(input.password) : null;
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(accounts)
      .values({ email, name: input.name?.trim() ?? '', role: input.role, passwordHash })
      .onConflictDoNothing({ target: accounts.email })
      .returning();
    if (!row) throw new RunsheetError('conflict', `An account with the e-mail ${email} already exists.`);
    await audit(tx, input.actor, 'account.create', email, { role: input.role, name: row.name, password: passwordHash ? 'set' : 'none' });
    return toAccount(row);
  });
}

/**
 * A service account: a pipeline's identity, with one role, no password and no web sign-in; it acts
 * only through the API tokens an admin gives it. Never an admin (the API manages no accounts).
 */
export async function createServiceAccount(db: StoreDb, input: { name: string; role: Role; description?: string; actor: Actor }): Promise<Account> {
  const name = input.name.trim().toLowerCase();
  if (!SERVICE_ACCOUNT_NAME_PATTERN.test(name)) {
    throw new RunsheetError('invalid_input', `"${input.name}" is not a service account name: 2 to 63 lower-case letters, digits and dashes (e.g. ci-staging).`);
  }
  if (input.role === 'admin') throw new RunsheetError('invalid_input', 'A service account cannot be an admin: pick viewer, tpm or engineer.');
  const email = serviceAccountEmail(name);
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(accounts)
      .values({ email, name: input.description?.trim() || name, role: input.role, kind: 'service', passwordHash: null })
      .onConflictDoNothing({ target: accounts.email })
      .returning();
    if (!row) throw new RunsheetError('conflict', `A service account named ${name} already exists.`);
    await audit(tx, input.actor, 'service-account.create', email, { role: input.role, name: row.name });
    return toAccount(row);
  });
}

/** An admin changing their own role would hand themselves the duties they are separated from. */
function refuseSelf(actor: Actor, row: AccountRow, what: string): void {
  if (actor.accountId && actor.accountId === row.id) {
    throw new RunsheetError('permission', `You cannot ${what} your own account; another admin (or the command line) must.`);
  }
}

export async function setAccountRole(db: StoreDb, input: { email: string; role: Role; actor: Actor }): Promise<Account> {
  const email = normalizeEmail(input.email);
  return db.transaction(async (tx) => {
    const before = await lockAccount(tx, email);
    refuseSelf(input.actor, before, 'change the role of');
    if (before.kind === 'service' && input.role === 'admin') throw new RunsheetError('invalid_input', `${email} is a service account: it cannot be an admin.`);
    const [row] = await tx.update(accounts).set({ role: input.role, updatedAt: new Date() }).where(eq(accounts.id, before.id)).returning();
    await audit(tx, input.actor, 'account.set-role', email, { from: before.role, to: input.role });
    return toAccount(row!);
  });
}

/** Disabling ends the account's sessions in the same transaction: its next request is signed out. */
export async function setAccountDisabled(db: StoreDb, input: { email: string; disabled: boolean; actor: Actor }): Promise<Account> {
  const email = normalizeEmail(input.email);
  return db.transaction(async (tx) => {
    const before = await lockAccount(tx, email);
    refuseSelf(input.actor, before, input.disabled ? 'disable' : 'enable');
    const [row] = await tx.update(accounts).set({ disabled: input.disabled, updatedAt: new Date() }).where(eq(accounts.id, before.id)).returning();
    let ended = 0;
    if (input.disabled) ended = (await tx.delete(sessions).where(eq(sessions.accountId, before.id)).returning({ id: sessions.idHash })).length;
    await audit(tx, input.actor, input.disabled ? 'account.disable' : 'account.enable', email, input.disabled ? { sessionsEnded: ended } : undefined);
    return toAccount(row!);
  });
}

/** A new password ends every session of the account (whoever knew the old one is signed out). */
export async function setAccountPassword(db: StoreDb, input: { email: string; password: string; actor: Actor }): Promise<Account> {
  const email = normalizeEmail(input.email);
  const problem = passwordProblem(input.password);
  if (problem) throw new RunsheetError('invalid_input', problem);
  const passwordHash = await hashPassword(input.password);
  return db.transaction(async (tx) => {
    const before = await lockAccount(tx, email);
    if (before.kind === 'service') throw new RunsheetError('invalid_input', `${email} is a service account: it has no password (it acts through its API tokens).`);
    const [row] = await tx.update(accounts).set({ passwordHash, updatedAt: new Date() }).where(eq(accounts.id, before.id)).returning();
    const ended = (await tx.delete(sessions).where(eq(sessions.accountId, before.id)).returning({ id: sessions.idHash })).length;
    await audit(tx, input.actor, 'account.set-password', email, { sessionsEnded: ended });
    return toAccount(row!);
  });
}

/** An account whose sign-in is locked from some address (app/auth/throttle.server.ts counts the failures). */
export interface SignInLock {
  email: string;
  /** Addresses locked out of this account now. */
  addresses: number;
  /** The latest end of those locks. */
  lockedUntil: Date;
}

/** Every account e-mail with a sign-in lock in force, for the accounts page. */
export async function listSignInLocks(db: StoreDb): Promise<SignInLock[]> {
  const result = await db.execute<{ email: string; addresses: number; locked_until: Date | string }>(sql`
    select email, count(*)::int as addresses, max(locked_until) as locked_until
    from login_attempts
    where scope = 'pair' and locked_until > now()
    group by email
    order by email`);
  return result.rows.map((row) => ({ email: row.email, addresses: row.addresses, lockedUntil: new Date(row.locked_until) }));
}

/**
 * Lifts every sign-in lock and slow-down of an account, from every address (the per-address limit
 * across accounts stays: it holds a spray back, whoever's account it hit). Audited.
 */
export async function unlockSignIn(db: StoreDb, input: { email: string; actor: Actor }): Promise<{ account: Account; cleared: number }> {
  const email = normalizeEmail(input.email);
  return db.transaction(async (tx) => {
    const row = await lockAccount(tx, email);
    const cleared = await tx
      .delete(loginAttempts)
      .where(and(eq(loginAttempts.scope, 'pair'), eq(loginAttempts.email, email)))
      .returning({ locked: sql<boolean>`coalesce(${loginAttempts.lockedUntil} > now(), false)` });
    const wasLocked = cleared.filter((entry) => entry.locked).length;
    await audit(tx, input.actor, 'account.unlock', email, { addressesCleared: cleared.length, addressesLocked: wasLocked });
    return { account: toAccount(row), cleared: cleared.length };
  });
}

/** Rehash with today's parameters after a successful sign-in; not an account change, not audited. */
export async function upgradePasswordHash(db: StoreDb, input: { accountId: string; passwordHash: string }): Promise<void> {
  await db.update(accounts).set({ passwordHash: input.passwordHash }).where(eq(accounts.id, input.accountId));
}
