/**
 * API tokens on the pages: what the "API tokens" page (anyone signed in: their own tokens) and
 * the admin's accounts page (service accounts, every token's metadata) load, and what their token
 * intents do. Who may do what is decided in app/accounts (api-tokens.server.ts, accounts.server.ts);
 * these only shape the answers. A secret is returned once, in the answer to its creation.
 */
import { z } from 'zod';
import { createServiceAccount, listAccounts, type Actor } from '../accounts/accounts.server';
import { DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, serviceAccountEmail } from '../accounts/api-token-format';
import { createApiToken, listApiTokens, revokeApiToken, tokenStatus, type ApiTokenInfo, type TokenStatus } from '../accounts/api-tokens.server';
import type { SignedInUser } from '../auth/require.server';
import type { StoreDb } from '../runtime/store.server';
import { refusalOf } from './http-answers.server';

export interface TokenRow {
  id: string;
  name: string;
  accountEmail: string;
  accountKind: 'person' | 'service';
  status: TokenStatus;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  lastUsedAt: string | null;
  lastUsedIp: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
}

const iso = (date: Date | null) => date?.toISOString() ?? null;

function rowOf(token: ApiTokenInfo): TokenRow {
  return {
    id: token.id,
    name: token.name,
    accountEmail: token.accountEmail,
    accountKind: token.accountKind,
    status: tokenStatus(token),
    createdAt: token.createdAt.toISOString(),
    createdBy: token.createdBy,
    expiresAt: token.expiresAt.toISOString(),
    lastUsedAt: iso(token.lastUsedAt),
    lastUsedIp: token.lastUsedIp,
    revokedAt: iso(token.revokedAt),
    revokedBy: token.revokedBy,
  };
}

/** The signed-in account's own tokens. */
export async function loadOwnTokens(db: StoreDb, user: Pick<SignedInUser, 'accountId'>): Promise<TokenRow[]> {
  return (await listApiTokens(db, { accountId: user.accountId })).map(rowOf);
}

/** For the admin: every token's metadata (never a secret) and the service accounts. */
export async function loadAllTokens(db: StoreDb): Promise<{ tokens: TokenRow[]; serviceAccounts: { email: string; name: string; role: string; disabled: boolean }[] }> {
  const [tokens, accounts] = await Promise.all([listApiTokens(db), listAccounts(db)]);
  return {
    tokens: tokens.map(rowOf),
    serviceAccounts: accounts.filter((account) => account.kind === 'service').map(({ email, name, role, disabled }) => ({ email, name, role, disabled })),
  };
}

const Days = z.coerce
  .number({ error: 'Days is a number.' })
  .int('Days is a whole number.')
  .min(1, `A token lasts 1 to ${MAX_TOKEN_DAYS} days.`)
  .max(MAX_TOKEN_DAYS, `A token lasts 1 to ${MAX_TOKEN_DAYS} days.`)
  .default(DEFAULT_TOKEN_DAYS);
const TokenName = z.string().trim().min(1, 'Say what the token is for (e.g. "laptop", "ci staging").').max(100);
const TokenId = z.string().trim().regex(/^[0-9a-f]{16}$/, 'A token id is 16 hex characters.');

export const TokenIntentSchema = z.discriminatedUnion('intent', [
  z.object({ intent: z.literal('create-token'), name: TokenName, days: Days }),
  z.object({ intent: z.literal('revoke-token'), tokenId: TokenId }),
  z.object({ intent: z.literal('create-service-account'), serviceName: z.string().trim().min(1).max(63), role: z.enum(['viewer', 'tpm', 'engineer']), description: z.string().trim().max(200).default('') }),
  z.object({ intent: z.literal('create-service-token'), serviceName: z.string().trim().min(1).max(300), name: TokenName, days: Days }),
]);
export type TokenIntent = z.infer<typeof TokenIntentSchema>;

export type TokenIntentResult = { ok: true; message: string; secret?: { tokenId: string; token: string; account: string } } | { ok: false; error: string; status: number };

/** Parses a form's token intent, or says what is wrong with it (400). */
export function parseTokenIntent(form: FormData): { intent: TokenIntent } | { error: string } {
  const parsed = TokenIntentSchema.safeParse(Object.fromEntries(form));
  if (parsed.success) return { intent: parsed.data };
  const issue = parsed.error.issues[0];
  return { error: issue ? `${issue.path.join('.') || 'form'}: ${issue.message}` : 'Invalid form.' };
}

/** Does a token intent as the signed-in account (the domain refuses what its role may not do). */
export async function performTokenIntent(db: StoreDb, input: { user: SignedInUser; ip: string; intent: TokenIntent }): Promise<TokenIntentResult> {
  const { user, intent } = input;
  const actor: Actor = { name: user.email, role: user.role, accountId: user.accountId, ip: input.ip };
  try {
    switch (intent.intent) {
      case 'create-token': {
        const { token, info } = await createApiToken(db, { account: user.email, name: intent.name, expiresInDays: intent.days, actor });
        return { ok: true, message: `Token "${info.name}" created; it expires ${info.expiresAt.toISOString().slice(0, 10)}.`, secret: { tokenId: info.id, token, account: info.accountEmail } };
      }
      case 'revoke-token': {
        const { info, revoked } = await revokeApiToken(db, { tokenId: intent.tokenId, actor });
        return { ok: true, message: revoked ? `Token "${info.name}" (${info.id}) of ${info.accountEmail} is revoked.` : `Token ${info.id} was already revoked.` };
      }
      case 'create-service-account': {
        const account = await createServiceAccount(db, { name: intent.serviceName, role: intent.role, description: intent.description || undefined, actor });
        return { ok: true, message: `Service account ${account.email} (${account.role}) created: give it a token below.` };
      }
      case 'create-service-token': {
        const account = intent.serviceName.includes('@') ? intent.serviceName : serviceAccountEmail(intent.serviceName);
        const { token, info } = await createApiToken(db, { account, name: intent.name, expiresInDays: intent.days, actor });
        return { ok: true, message: `Token "${info.name}" for ${info.accountEmail} created; it expires ${info.expiresAt.toISOString().slice(0, 10)}.`, secret: { tokenId: info.id, token, account: info.accountEmail } };
      }
    }
  } catch (error) {
    const refusal = refusalOf(error);
    return { ok: false, error: refusal.error, status: refusal.status };
  }
}
