import { sql } from 'drizzle-orm';
import { bigserial, boolean, check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

const ROLE_CHECK = sql`role in ('viewer', 'tpm', 'engineer', 'admin')`;

/** A person (signs in to the dashboard) or a service account (a pipeline: API tokens only, no password, never an admin). */
export const ACCOUNT_KINDS = ['person', 'service'] as const;
export type AccountKind = (typeof ACCOUNT_KINDS)[number];

/**
 * People who may sign in, and service accounts (`kind = 'service'`: a pipeline's identity, reached
 * only through its API tokens; its `email` is `<name>@service.invalid`, a name no mail reaches).
 * `email` is stored lower-cased (one account per address). A null `password_hash` means the
 * account signs in only through the single-sign-on proxy (a person) or not at all (a service).
 * `password_hash` is `scrypt$<N>$<r>$<p>$<salt b64url>$<hash b64url>` (app/auth/password.server.ts).
 */
export const accounts = pgTable(
  'accounts',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: text('email').notNull(),
    name: text('name').notNull().default(''),
    role: text('role', { enum: ['viewer', 'tpm', 'engineer', 'admin'] }).notNull(),
    kind: text('kind', { enum: ACCOUNT_KINDS }).notNull().default('person'),
    disabled: boolean('disabled').notNull().default(false),
    passwordHash: text('password_hash'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lastSignInAt: timestamp('last_sign_in_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    uniqueIndex('accounts_email_key').on(table.email),
    check('accounts_email_lower', sql`${table.email} = lower(${table.email})`),
    check('accounts_role_known', ROLE_CHECK),
    check('accounts_kind_known', sql`${table.kind} in ('person', 'service')`),
    // A service account has no password (no web sign-in) and holds no admin power.
    check('accounts_service_no_password_no_admin', sql`${table.kind} = 'person' or (${table.passwordHash} is null and ${table.role} <> 'admin')`),
  ],
);

/**
 * API tokens (docs/decisions/028): `rs_<id>_<secret>`, shown once. The store keeps the secret's
 * sha256 only (the secret is 32 random bytes, so a fast hash is enough). A token acts as its
 * account, with the account's role at each request; a disabled account's tokens stop working.
 * Never deleted: a revoked or expired token stays listed (and named by the events it caused).
 */
export const apiTokens = pgTable(
  'api_tokens',
  {
    /** The public part of the token (hex): what events record as `via.tokenId`. */
    id: text('id').primaryKey(),
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id),
    name: text('name').notNull(),
    secretHash: text('secret_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** Who created it: the account's own e-mail (a personal token), an admin's, or "cli:<os user>". */
    createdBy: text('created_by').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
    lastUsedIp: text('last_used_ip'),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
    revokedBy: text('revoked_by'),
  },
  (table) => [
    index('api_tokens_account_idx').on(table.accountId),
    check('api_tokens_id_hex', sql`${table.id} ~ '^[0-9a-f]{16}$'`),
    check('api_tokens_expiry_after_creation', sql`${table.expiresAt} > ${table.createdAt}`),
  ],
);

/** Every address a token was used from (its first use from each is audited). */
export const apiTokenAddresses = pgTable(
  'api_token_addresses',
  {
    tokenId: text('token_id')
      .notNull()
      .references(() => apiTokens.id),
    ip: text('ip').notNull(),
    firstSeenAt: timestamp('first_seen_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.tokenId, table.ip] })],
);

/**
 * Signed-in sessions. The cookie holds a signed random id; the store keeps only its sha256, so
 * reading this table does not hand out live sessions. Every request looks its session up here:
 * deleting a row (sign-out, account disabled) ends the session at once.
 */
export const sessions = pgTable(
  'sessions',
  {
    idHash: text('id_hash').primaryKey(),
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id, { onDelete: 'cascade' }),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** Absolute end, fixed at sign-in; the idle timeout is checked against last_seen_at. */
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    ip: text('ip'),
    userAgent: text('user_agent'),
  },
  (table) => [index('sessions_account_idx').on(table.accountId)],
);

/**
 * Failed sign-ins per account and address (scope 'pair': `email` is the e-mail typed, known or not,
 * `key` the pair as JSON) and per peer address across accounts (scope 'address': `key` is the
 * address, `email` null). In the store, so throttling survives restarts and holds across
 * processes. A success clears its pair's row; an admin's unlock clears every pair row of an e-mail.
 * Someone else's failures from another address never touch the pair a person signs in from
 * (docs/decisions/023).
 */
export const loginAttempts = pgTable(
  'login_attempts',
  {
    scope: text('scope', { enum: ['pair', 'address'] }).notNull(),
    key: text('key').notNull(),
    email: text('email'),
    failures: integer('failures').notNull().default(0),
    firstFailureAt: timestamp('first_failure_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lastFailureAt: timestamp('last_failure_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lockedUntil: timestamp('locked_until', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    primaryKey({ columns: [table.scope, table.key] }),
    index('login_attempts_email_idx').on(table.email),
    check('login_attempts_scope_known', sql`${table.scope} in ('pair', 'address')`),
    check('login_attempts_pair_has_email', sql`(${table.scope} = 'pair') = (${table.email} is not null)`),
  ],
);

/**
 * The audit log of everything outside a run: sign-ins (and failed ones), account changes, and
 * every refused state-changing request. Append-only, enforced by PostgreSQL itself: a trigger
 * raises on UPDATE, DELETE and TRUNCATE (hand-written at the end of the migration that creates it). `at` is the database clock.
 */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true, mode: 'date' })
      .notNull()
      .default(sql`clock_timestamp()`),
    /** An account's e-mail, "cli:<os user>", "proxy", "system" or "anonymous". */
    actor: text('actor').notNull(),
    actorRole: text('actor_role'),
    /** e.g. "sign-in", "sign-in.failed", "account.create", "request.refused". */
    action: text('action').notNull(),
    /** Whom or what it was done to: an account's e-mail, a path. */
    subject: text('subject'),
    outcome: text('outcome', { enum: ['ok', 'refused', 'failed'] }).notNull(),
    reason: text('reason'),
    ip: text('ip'),
    detail: jsonb('detail'),
  },
  (table) => [index('audit_log_at_idx').on(table.at.desc()), index('audit_log_subject_idx').on(table.subject)],
);

export type AccountRow = typeof accounts.$inferSelect;
export type SessionRow = typeof sessions.$inferSelect;
export type AuditLogRow = typeof auditLog.$inferSelect;
export type ApiTokenRow = typeof apiTokens.$inferSelect;
