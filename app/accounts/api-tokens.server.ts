/**
 * API tokens (docs/decisions/028): every query and change of `api_tokens`. A token acts as its
 * account, with the account's role at the time of each request. Creation, the first use from an
 * address and revocation are audited; a secret is returned once, at creation, and never stored.
 *
 * Who may do what is decided here, for every front end:
 * - a person creates tokens for their own account only (nobody mints a token for someone else:
 *   that would let them act as that person, and four-eyes would mean nothing);
 * - a service account's tokens are created by an admin or by the local command line (which also
 *   creates accounts), never by the service account itself;
 * - the token's owner, any admin and the local command line may revoke it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, asc, desc, eq, isNull, or, sql } from 'drizzle-orm';
import { accounts, apiTokenAddresses, apiTokens, type AccountKind, type ApiTokenRow } from '../../db/schema/index';
import { recordAudit } from '../audit/audit-log.server';
import { RunsheetError } from '../runtime/errors';
import type { StoreDb } from '../runtime/store.server';
import type { Actor } from './accounts.server';
import { DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, formatApiToken, parseApiToken } from './api-token-format';
import { isRole, type Role } from './permissions';

/** What anyone may see of a token: never its secret nor its hash. */
export interface ApiTokenInfo {
  id: string;
  name: string;
  accountId: string;
  accountEmail: string;
  accountKind: AccountKind;
  createdAt: Date;
  createdBy: string;
  expiresAt: Date;
  lastUsedAt: Date | null;
  lastUsedIp: string | null;
  revokedAt: Date | null;
  revokedBy: string | null;
}

export type TokenStatus = 'active' | 'expired' | 'revoked';

export function tokenStatus(token: Pick<ApiTokenInfo, 'expiresAt' | 'revokedAt'>, now = new Date()): TokenStatus {
  if (token.revokedAt) return 'revoked';
  return token.expiresAt.getTime() <= now.getTime() ? 'expired' : 'active';
}

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

/** The local command line acts as `cli:<os user>`, with no account: it manages accounts, as `users add` does. */
const isCommandLine = (actor: Actor) => actor.accountId === undefined && actor.name.startsWith('cli:');

const INFO_COLUMNS = {
  id: apiTokens.id,
  name: apiTokens.name,
  accountId: apiTokens.accountId,
  accountEmail: accounts.email,
  accountKind: accounts.kind,
  createdAt: apiTokens.createdAt,
  createdBy: apiTokens.createdBy,
  expiresAt: apiTokens.expiresAt,
  lastUsedAt: apiTokens.lastUsedAt,
  lastUsedIp: apiTokens.lastUsedIp,
  revokedAt: apiTokens.revokedAt,
  revokedBy: apiTokens.revokedBy,
};

export function tokenDays(value: number | undefined): number {
  const days = value ?? DEFAULT_TOKEN_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_TOKEN_DAYS) {
    throw new RunsheetError('invalid_input', `A token lasts 1 to ${MAX_TOKEN_DAYS} days (default ${DEFAULT_TOKEN_DAYS}), not ${String(value)}.`);
  }
  return days;
}

function tokenName(value: string): string {
  const name = value.trim();
  if (name === '' || name.length > 100) throw new RunsheetError('invalid_input', 'A token needs a name of 1 to 100 characters (what it is for: "ci staging", "laptop").');
  return name;
}

/**
 * A new token for an account, returned with its secret (shown once). `account` is the account's
 * e-mail (a service account's is `<name>@service.invalid`).
 */
export async function createApiToken(
  db: StoreDb,
  input: { account: string; name: string; expiresInDays?: number; actor: Actor },
): Promise<{ token: string; info: ApiTokenInfo }> {
  const name = tokenName(input.name);
  const days = tokenDays(input.expiresInDays);
  const email = input.account.trim().toLowerCase();
  const [account] = await db.select().from(accounts).where(eq(accounts.email, email)).limit(1);
  if (!account) throw new RunsheetError('not_found', `No account has the e-mail ${email}.`);
  const { actor } = input;
  if (account.kind === 'service') {
    if (!(actor.role === 'admin' || isCommandLine(actor))) throw new RunsheetError('permission', `Only an admin creates tokens for the service account ${account.email}.`);
  } else if (actor.accountId !== account.id) {
    throw new RunsheetError('permission', `A personal token is created by its own account only (${account.email} signs in and creates it): nobody mints a token to act as someone else.`);
  }
  if (account.disabled) throw new RunsheetError('state', `The account ${account.email} is disabled: enable it before giving it a token.`);

  const parsed = { id: randomBytes(8).toString('hex'), secret: randomBytes(32).toString('base64url') };
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(apiTokens)
      .values({ id: parsed.id, accountId: account.id, name, secretHash: hashSecret(parsed.secret), createdBy: actor.name, expiresAt: sql`now() + make_interval(days => ${days})` })
      .returning();
    await recordAudit(tx as unknown as StoreDb, {
      actor: actor.name,
      actorRole: actor.role ?? null,
      action: 'token.create',
      subject: account.email,
      outcome: 'ok',
      ip: actor.ip ?? null,
      detail: { tokenId: row!.id, name, expiresAt: row!.expiresAt.toISOString(), accountKind: account.kind },
    });
    return { token: formatApiToken(parsed), info: infoOf(row!, account) };
  });
}

function infoOf(row: ApiTokenRow, account: { email: string; kind: AccountKind }): ApiTokenInfo {
  const { secretHash: _hash, ...rest } = row;
  return { ...rest, accountEmail: account.email, accountKind: account.kind };
}

/** Tokens, newest first: of one account, or (admins, the command line) of every account. */
export async function listApiTokens(db: StoreDb, input: { accountId?: string } = {}): Promise<ApiTokenInfo[]> {
  const query = db.select(INFO_COLUMNS).from(apiTokens).innerJoin(accounts, eq(accounts.id, apiTokens.accountId));
  const filtered = input.accountId ? query.where(eq(apiTokens.accountId, input.accountId)) : query;
  return filtered.orderBy(desc(apiTokens.createdAt), asc(apiTokens.id));
}

export async function findApiToken(db: StoreDb, tokenId: string): Promise<ApiTokenInfo | undefined> {
  const [row] = await db.select(INFO_COLUMNS).from(apiTokens).innerJoin(accounts, eq(accounts.id, apiTokens.accountId)).where(eq(apiTokens.id, tokenId)).limit(1);
  return row;
}

/** Revokes a token at once (its next request is refused); by its owner, an admin, or the command line. */
export async function revokeApiToken(db: StoreDb, input: { tokenId: string; actor: Actor }): Promise<{ info: ApiTokenInfo; revoked: boolean }> {
  const token = await findApiToken(db, input.tokenId.trim());
  if (!token) throw new RunsheetError('not_found', `No API token has the id ${input.tokenId}.`);
  const { actor } = input;
  if (!(actor.accountId === token.accountId || actor.role === 'admin' || isCommandLine(actor))) {
    throw new RunsheetError('permission', `Only the token's own account (${token.accountEmail}) or an admin may revoke it.`);
  }
  if (token.revokedAt) return { info: token, revoked: false };
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(apiTokens)
      .set({ revokedAt: sql`now()`, revokedBy: actor.name })
      .where(and(eq(apiTokens.id, token.id), isNull(apiTokens.revokedAt)))
      .returning();
    if (!row) return { info: (await findApiToken(tx as unknown as StoreDb, token.id))!, revoked: false };
    await recordAudit(tx as unknown as StoreDb, {
      actor: actor.name,
      actorRole: actor.role ?? null,
      action: 'token.revoke',
      subject: token.accountEmail,
      outcome: 'ok',
      ip: actor.ip ?? null,
      detail: { tokenId: token.id, name: token.name },
    });
    return { info: infoOf(row, { email: token.accountEmail, kind: token.accountKind }), revoked: true };
  });
}

/** Whom a valid token stands for, for one request. */
export interface TokenCaller {
  tokenId: string;
  tokenName: string;
  accountId: string;
  email: string;
  name: string;
  role: Role;
  kind: AccountKind;
}

export type TokenVerdict = { ok: true; caller: TokenCaller } | { ok: false; reason: string };

/** last_used_at is written at most this often for one address (a busy pipeline does not write on every request). */
const TOUCH_EVERY_SECONDS = 60;

/**
 * The account behind a bearer token, or why there is none. Only a token whose secret matches is
 * told apart as revoked, expired or of a disabled account: someone guessing ids learns nothing.
 * A match records the use (time, address; at most once a minute per address) and audits the
 * first use from each address.
 */
export async function authenticateApiToken(db: StoreDb, input: { token: string; ip: string }): Promise<TokenVerdict> {
  const parsed = parseApiToken(input.token);
  const unknown: TokenVerdict = { ok: false, reason: 'the token is not a valid Runsheet API token' };
  if (!parsed) return unknown;
  const [row] = await db
    .select({
      token: apiTokens,
      email: accounts.email,
      name: accounts.name,
      role: accounts.role,
      kind: accounts.kind,
      disabled: accounts.disabled,
      expired: sql<boolean>`${apiTokens.expiresAt} <= now()`,
    })
    .from(apiTokens)
    .innerJoin(accounts, eq(accounts.id, apiTokens.accountId))
    .where(eq(apiTokens.id, parsed.id))
    .limit(1);
  const expected = Buffer.from(row?.token.secretHash ?? hashSecret('no such token'), 'hex');
  const matches = timingSafeEqual(expected, Buffer.from(hashSecret(parsed.secret), 'hex'));
  if (!row || !matches) return unknown;
  if (row.token.revokedAt) return { ok: false, reason: `token ${row.token.id} was revoked` };
  if (row.expired) return { ok: false, reason: `token ${row.token.id} expired at ${row.token.expiresAt.toISOString()}` };
  if (row.disabled) return { ok: false, reason: `the account ${row.email} is disabled` };
  if (!isRole(row.role)) return unknown;

  const ip = input.ip || 'unknown';
  const [firstFromHere] = await db.insert(apiTokenAddresses).values({ tokenId: row.token.id, ip }).onConflictDoNothing().returning({ ip: apiTokenAddresses.ip });
  if (firstFromHere) {
    await recordAudit(db, {
      actor: row.email,
      actorRole: row.role,
      action: 'token.new-address',
      subject: row.email,
      outcome: 'ok',
      ip,
      detail: { tokenId: row.token.id, name: row.token.name, previousAddress: row.token.lastUsedIp },
    });
  }
  await db
    .update(apiTokens)
    .set({ lastUsedAt: sql`now()`, lastUsedIp: ip })
    .where(
      and(
        eq(apiTokens.id, row.token.id),
        or(isNull(apiTokens.lastUsedAt), sql`${apiTokens.lastUsedIp} is distinct from ${ip}`, sql`${apiTokens.lastUsedAt} < now() - make_interval(secs => ${TOUCH_EVERY_SECONDS})`),
      ),
    );
  return { ok: true, caller: { tokenId: row.token.id, tokenName: row.token.name, accountId: row.token.accountId, email: row.email, name: row.name, role: row.role, kind: row.kind } };
}
