// Builds the sandbox target: the `platform` schema as migrations 001-006 left it (see
// sandbox/platform-schema.sql), filled with a deterministic, production-shaped population so
// that Migration 008's checks, backfill and timings can be rehearsed for real.
//
// Determinism: ids come from md5('<seed>:<kind>:<n>'), every other value from
// hashint8extended(<n>, <seed>) and a fixed epoch; nothing reads the clock or random(). The
// same seed and user count give byte-identical rows, so a rehearsal can be repeated and its
// results compared.
//
// Speed: each table is filled by one INSERT ... SELECT over generate_series (no per-row round
// trips), and keys, foreign keys and indexes are built after the load (the schema file is run in
// two halves around it). 1,000,000 users load in seconds, not minutes.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ClientBase } from 'pg';
import { fromRoot } from '../runtime/paths.server';

export interface SandboxOptions {
  /** Generated users, on top of the fixed accounts. Integer, 0 ≤ users ≤ 20,000,000. */
  users: number;
  /** Any safe integer. Default 1. */
  seed?: number;
}

export interface SandboxSummary {
  /** Rows in platform.users: the generated users plus the fixed accounts. */
  users: number;
  /** Rows in platform.organizations: max(3, round(users / 20)) plus the fixed organizations. */
  organizations: number;
  /** Rows in platform.organization_members. */
  memberships: number;
  /** Users (generated and fixed) with no membership at all. */
  usersWithoutOrg: number;
  /** Bearer tokens of the fixed accounts, in clear; only their sha256 is stored. */
  apiTokens: { email: string; token: string }[];
  durationMs: number;
}

/** Organizations that exist in every sandbox, whatever the seed and size. */
export const SANDBOX_FIXED_ORGANIZATIONS = [
  { slug: 'sandbox-api-alpha', name: 'Sandbox API Alpha' },
  { slug: 'sandbox-api-beta', name: 'Sandbox API Beta' },
  // Nobody fixed is a member of gamma: the "set an org you are not in" case.
  { slug: 'sandbox-api-gamma', name: 'Sandbox API Gamma' },
] as const;

/**
 * Accounts that exist in every sandbox, for the http checks.
 * - api-demo is a member of alpha and beta. It joined the one with the LARGER id first, so
 *   after 008's backfill its active org tells "earliest joined_at wins" apart from "smallest
 *   id wins".
 * - api-loner belongs to no organization: its active org must stay NULL.
 */
export const SANDBOX_FIXED_ACCOUNTS = [
  {
    email: 'api-demo@sandbox.example',
    displayName: 'API Demo',
    organizations: ['sandbox-api-alpha', 'sandbox-api-beta'],
  },
  { email: 'api-loner@sandbox.example', displayName: 'API Loner', organizations: [] },
] as const;

const MAX_USERS = 20_000_000;
const DEFAULT_SEED = 1;

// Fixed epoch: generated users are created in the two years after it, organizations in the
// two years before it, so every joined_at follows its organization's created_at.
const EPOCH = '2023-01-01T00:00:00Z';

// The marker that splits sandbox/platform-schema.sql into "tables" and "keys and indexes".
const POST_LOAD_MARKER = /^-- runsheet:post-load[ \t]*$/m;

// ---- SQL fragments -------------------------------------------------------------------------
// Built from constants only, never from options: the seed and sizes travel as bind parameters.
// rnd() and md5Bytes() read the seed from $1, so every statement that uses them binds it there.

/**
 * Salts of the derived attributes: each attribute hashes `key * 16 + salt`, so no two
 * attributes (of any kind of row) ever hash the same input.
 */
const SALT = {
  orgCreated: 0,
  orgUpdated: 1,
  userCreated: 2,
  userUpdated: 3,
  userNeverSignedIn: 4,
  userLastSignIn: 5,
  membershipCount: 6,
  firstOrganization: 7,
  organizationStride: 8,
  joinOrderRotation: 9,
  memberRole: 10,
  joinedWithinWeek: 11,
} as const;

/**
 * A non-negative 31-bit integer determined by (seed, salt, key). hashint8extended is the hash
 * behind hash partitioning: pure integer arithmetic (the same on every platform) and kept
 * stable across PostgreSQL releases, because pg_upgrade'd hash partitions depend on it. It is
 * an order of magnitude cheaper than parsing md5 hex. Keys stay below 2^32 (users ≤ 20M).
 */
const rnd = (salt: number, key: string): string =>
  `(hashint8extended((${key})::bigint * 16 + ${salt}, $1::bigint) & 2147483647)`;

/** The 16 bytes of md5('<seed>:<kind>:<key>'): the raw material of a generated uuid. */
const md5Bytes = (kind: string, key: string): string =>
  `decode(md5($1::bigint::text || ':${kind}:' || ${key}), 'hex')`;

/**
 * An RFC 9562 version-8 ("custom") uuid from 16 bytes: a bare md5::uuid has arbitrary version
 * and variant bits, which strict validators (zod's z.uuid(), for one) reject. `b` must be a
 * column, not an md5(...) expression: it is referenced three times.
 */
const uuidFromBytes = (b: string): string =>
  `encode(set_byte(set_byte(${b}, 6, (get_byte(${b}, 6) & 15) | 128),` +
  ` 8, (get_byte(${b}, 8) & 63) | 128), 'hex')::uuid`;

/** Whole seconds as an interval. */
const seconds = (n: string): string => `((${n}) * interval '1 second')`;

const DAY = 86_400;

// "OFFSET 0" keeps the planner from pulling a subquery up into its parent, where each
// reference to a computed column would be replaced by its expression and computed again.
const FENCE = 'OFFSET 0';

// ---- statements ----------------------------------------------------------------------------
// INSERT ... SELECT never runs in parallel, so rows land in generate_series order without an
// ORDER BY (which would add a million-row sort): physical order is deterministic too.

// Generated organization i (0-based) is 'sandbox-org-<i+1>'; its id is also needed, by index,
// when memberships are generated, hence one shared expression.
const GENERATED_ORGANIZATION_IDS = `
SELECT h.i, ${uuidFromBytes('h.b_id')} AS id
FROM (
  SELECT i, ${md5Bytes('org', 'i')} AS b_id
  FROM generate_series(0, $2::int - 1) AS i
  ${FENCE}
) AS h`;

// $1 seed, $2 generated organizations, $3 epoch.
const INSERT_GENERATED_ORGANIZATIONS = `
INSERT INTO platform.organizations (id, name, slug, created_at, updated_at)
SELECT o.id,
       'Sandbox Org ' || (o.i + 1),
       'sandbox-org-' || (o.i + 1),
       o.created_at,
       o.created_at + ${seconds(`${rnd(SALT.orgUpdated, 'o.i')} % (30 * ${DAY})`)}
FROM (
  SELECT g.i, g.id,
         $3::timestamptz - ${seconds(`1 + ${rnd(SALT.orgCreated, 'g.i')} % (730 * ${DAY})`)}
           AS created_at
  FROM (${GENERATED_ORGANIZATION_IDS}) AS g
  ${FENCE}
) AS o`;

// $1 seed, $2 fixed slugs, $3 fixed names, $4 epoch.
const INSERT_FIXED_ORGANIZATIONS = `
INSERT INTO platform.organizations (id, name, slug, created_at, updated_at)
SELECT ${uuidFromBytes('f.b_id')}, f.name, f.slug,
       $4::timestamptz - interval '800 days', $4::timestamptz - interval '800 days'
FROM (
  SELECT slug, name, ord, ${md5Bytes('fixed-org', 'slug')} AS b_id
  FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(slug, name, ord)
  ${FENCE}
) AS f
ORDER BY f.ord`;

// Generated user n (1-based): shared, word for word, by the users and the memberships
// statements, so that both derive the same id and created_at.
// $1 seed, $2 generated users, $3 epoch.
const GENERATED_USERS_CTE = `
generated_user AS (
  SELECT h.n,
         ${uuidFromBytes('h.b_id')} AS id,
         $3::timestamptz + ${seconds(`${rnd(SALT.userCreated, 'h.n')} % (730 * ${DAY})`)}
           AS created_at
  FROM (
    SELECT n, ${md5Bytes('user', 'n')} AS b_id
    FROM generate_series(1, $2::int) AS n
    ${FENCE}
  ) AS h
  ${FENCE}
)`;

// $1 seed, $2 generated users, $3 epoch.
const INSERT_GENERATED_USERS = `
WITH ${GENERATED_USERS_CTE}
INSERT INTO platform.users
  (id, email, display_name, password_hash, last_sign_in_at, created_at, updated_at)
SELECT u.id,
       'user' || u.n || '@sandbox.example',
       'Sandbox User ' || u.n,
       NULL,
       -- One user in ten has never signed in.
       CASE WHEN ${rnd(SALT.userNeverSignedIn, 'u.n')} % 10 = 0 THEN NULL
            ELSE u.created_at + ${seconds(`${rnd(SALT.userLastSignIn, 'u.n')} % (90 * ${DAY})`)}
       END,
       u.created_at,
       u.created_at + ${seconds(`${rnd(SALT.userUpdated, 'u.n')} % (60 * ${DAY})`)}
FROM generated_user AS u`;

// $1 seed, $2 emails, $3 display names, $4 epoch.
const INSERT_FIXED_USERS = `
INSERT INTO platform.users (id, email, display_name, created_at, updated_at, last_sign_in_at)
SELECT ${uuidFromBytes('f.b_id')}, f.email, f.display_name,
       $4::timestamptz - interval '30 days', $4::timestamptz - interval '30 days',
       $4::timestamptz - interval '1 day'
FROM (
  SELECT email, display_name, ord, ${md5Bytes('fixed-user', 'email')} AS b_id
  FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(email, display_name, ord)
  ${FENCE}
) AS f
ORDER BY f.ord`;

// Memberships of generated user n:
//   count      0 for 5 % of users, 1 for 68 %, 2 for 22 %, 3 for 5 %:
//              0.68 + 2 * 0.22 + 3 * 0.05 = 1.27 memberships per user.
//   which      first organization floor(orgs * u^2) for a uniform u, so that a few
//              organizations are large and most are small, as in production; the 2nd and 3rd
//              are first + stride and first + 2 * stride (mod orgs), stride in 1 .. (orgs-1)/2,
//              which keeps the three distinct.
//   joined_at  membership k joins in week slot (k - 1 + rotation) % count after the user's
//              created_at, at an offset inside that week: joined_at never ties within a user,
//              and its order is unrelated to the organizations' ids, so for about half of the
//              multi-org users the earliest-joined organization is not the one with the
//              smallest id (what tells Migration 008's backfill rule apart from "min(id)").
// $1 seed, $2 generated users, $3 epoch, $4 generated organizations.
const INSERT_GENERATED_MEMBERSHIPS = `
WITH ${GENERATED_USERS_CTE},
organization AS (
  SELECT array_agg(g.id ORDER BY g.i) AS ids
  FROM (${GENERATED_ORGANIZATION_IDS.replaceAll('$2::int', '$4::int')}) AS g
),
shape AS (
  SELECT u.n, u.id, u.created_at,
         CASE WHEN s.pick < 5 THEN 0 WHEN s.pick < 73 THEN 1 WHEN s.pick < 95 THEN 2 ELSE 3 END
           AS membership_count,
         floor($4::int * s.spread * s.spread)::int AS first_org,
         1 + ${rnd(SALT.organizationStride, 'u.n')} % greatest(($4::int - 1) / 2, 1) AS stride,
         ${rnd(SALT.joinOrderRotation, 'u.n')} AS rotation
  FROM generated_user AS u
  CROSS JOIN LATERAL (
    SELECT ${rnd(SALT.membershipCount, 'u.n')} % 100 AS pick,
           ${rnd(SALT.firstOrganization, 'u.n')}::float8 / 2147483648.0 AS spread
  ) AS s
  ${FENCE}
)
INSERT INTO platform.organization_members (organization_id, user_id, role, joined_at)
SELECT o.ids[1 + (sh.first_org + (k - 1) * sh.stride) % $4::int],
       sh.id,
       CASE WHEN ${rnd(SALT.memberRole, 'sh.n * 4 + k')} % 10 = 0 THEN 'owner'
            WHEN ${rnd(SALT.memberRole, 'sh.n * 4 + k')} % 10 < 3 THEN 'admin'
            ELSE 'member'
       END,
       sh.created_at
         + ((k - 1 + sh.rotation % sh.membership_count) % sh.membership_count) * interval '7 days'
         + ${seconds(`${rnd(SALT.joinedWithinWeek, 'sh.n * 4 + k')} % (7 * ${DAY})`)}
FROM shape AS sh
CROSS JOIN organization AS o
CROSS JOIN LATERAL generate_series(1, sh.membership_count) AS k
WHERE sh.membership_count > 0`;

// api-demo joins the fixed organization with the larger id first (see SANDBOX_FIXED_ACCOUNTS).
// $1 emails, $2 slug lists (one comma-separated string per email), $3 epoch.
const INSERT_FIXED_MEMBERSHIPS = `
INSERT INTO platform.organization_members (organization_id, user_id, role, joined_at)
SELECT o.org_id, o.user_id,
       CASE WHEN o.joined_rank = 1 THEN 'owner' ELSE 'member' END,
       $3::timestamptz - interval '30 days' + o.joined_rank * interval '5 days'
FROM (
  SELECT org.id AS org_id, usr.id AS user_id,
         row_number() OVER (PARTITION BY usr.id ORDER BY org.id DESC) AS joined_rank
  FROM unnest($1::text[], $2::text[]) AS f(email, slugs)
  JOIN platform.users AS usr ON usr.email = f.email
  CROSS JOIN LATERAL unnest(string_to_array(f.slugs, ',')) AS s(slug)
  JOIN platform.organizations AS org ON org.slug = s.slug
) AS o
ORDER BY o.user_id, o.joined_rank`;

// A few rows for the decoy schema, so that its index is not empty.
// $1 seed, $2 rows, $3 epoch.
const INSERT_OTHER_USERS = `
INSERT INTO other.users (id, email, active_org_id, created_at)
SELECT ${uuidFromBytes('h.b_id')},
       'other' || h.n || '@sandbox.example',
       CASE WHEN h.n % 2 = 0 THEN ${uuidFromBytes('h.b_org')} END,
       $3::timestamptz
FROM (
  SELECT n, ${md5Bytes('other-user', 'n')} AS b_id, ${md5Bytes('other-org', 'n')} AS b_org
  FROM generate_series(1, $2::int) AS n
  ${FENCE}
) AS h
ORDER BY h.n`;

// $1 emails, $2 token sha256s, $3 epoch.
const INSERT_API_TOKENS = `
INSERT INTO platform.api_tokens (token_hash, user_id, created_at)
SELECT t.token_hash, u.id, $3::timestamptz
FROM unnest($1::text[], $2::text[]) AS t(email, token_hash)
JOIN platform.users AS u ON u.email = t.email`;

// Schemas this generator may drop, and the comment prefix that proves it created them.
const SANDBOX_SCHEMAS = ['platform', 'other'] as const;
const SANDBOX_SCHEMA_COMMENT_PREFIX = 'Runsheet sandbox';
// The first version of the schema file commented `other` differently; sandboxes made by it
// must still be replaceable.
const LEGACY_COMMENT_PREFIXES = ['Decoy schema: same table and index names as platform'];

// $1 schema names, $2 accepted comment prefixes.
const FOREIGN_SCHEMAS = `
SELECT n.nspname AS name
FROM pg_catalog.pg_namespace AS n
WHERE n.nspname = ANY($1::text[])
  AND NOT EXISTS (
    SELECT 1 FROM unnest($2::text[]) AS p(prefix)
    WHERE starts_with(pg_catalog.obj_description(n.oid, 'pg_namespace'), p.prefix)
  )
ORDER BY n.nspname`;

const COUNT_USERS_WITHOUT_ORG = `
SELECT count(*)::bigint AS n
FROM platform.users AS u
WHERE NOT EXISTS (
  SELECT 1 FROM platform.organization_members AS m WHERE m.user_id = u.id
)`;

// ---- helpers ---------------------------------------------------------------------------------

const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * The sandbox bearer token of a fixed account: 'sbx_' + 40 hex digits. Derived from the seed
 * and the email so that a reset hands out the same tokens again. It is a sandbox credential
 * by design: anyone who knows the seed can derive it, so it must never guard real data.
 */
export function sandboxApiToken(seed: number, email: string): string {
  return `sbx_${sha256Hex(`runsheet-sandbox-api-token:v1:${seed}:${email}`).slice(0, 40)}`;
}

function validate(options: SandboxOptions): { users: number; seed: number } {
  const { users, seed = DEFAULT_SEED } = options;
  if (!Number.isInteger(users) || users < 0 || users > MAX_USERS) {
    throw new RangeError(`users must be an integer from 0 to ${MAX_USERS}, got ${String(users)}`);
  }
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`seed must be a safe integer, got ${String(seed)}`);
  }
  return { users, seed };
}

async function loadSchemaSql(): Promise<{ tables: string; postLoad: string }> {
  const url = fromRoot('sandbox', 'platform-schema.sql');
  const sql = await readFile(url, 'utf8');
  const parts = sql.split(POST_LOAD_MARKER);
  if (parts.length !== 2) {
    throw new Error(
      `${url}: expected exactly one "-- runsheet:post-load" line, found ${parts.length - 1}`,
    );
  }
  return { tables: parts[0]!, postLoad: parts[1]! };
}

function rowCount(result: { rowCount: number | null }): number {
  return result.rowCount ?? 0;
}

// ---- entry point -----------------------------------------------------------------------------

/**
 * Drops and recreates the sandbox schemas `platform` and `other` on `client`, fills them and
 * analyzes them, in one transaction: a failed generation leaves the previous sandbox in place.
 * `client` must not be inside a transaction. Holds ACCESS EXCLUSIVE locks on both schemas'
 * tables until it commits. Does not touch the target's `runsheet` ledger schema.
 * Refuses (throws, changing nothing) when `platform` or `other` exists but was not created by
 * this generator, so a wrong connection string cannot wipe a real database.
 * Duration: about 14 s for 1,000,000 users on 2 cores (embedded PostgreSQL 18).
 */
export async function generateSandbox(
  client: ClientBase,
  options: SandboxOptions,
): Promise<SandboxSummary> {
  const started = performance.now();
  const { users, seed } = validate(options);
  const generatedOrganizations = Math.max(3, Math.round(users / 20));
  const schema = await loadSchemaSql();

  const fixedAccounts = SANDBOX_FIXED_ACCOUNTS.map((account) => ({
    ...account,
    token: sandboxApiToken(seed, account.email),
  }));

  await client.query('BEGIN');
  try {
    // Index builds after the load sort whole tables: give them room (transaction-scoped).
    await client.query(`SET LOCAL maintenance_work_mem = '256MB'`);
    // DROP SCHEMA ... CASCADE lists every dropped object as a NOTICE: noise for the caller.
    await client.query(`SET LOCAL client_min_messages = warning`);
    // DROP ... CASCADE on a database that is not a sandbox would be a disaster: refuse unless
    // the schemas are absent or carry the comment the schema file gives them.
    const foreign = await client.query<{ name: string }>(FOREIGN_SCHEMAS, [
      SANDBOX_SCHEMAS,
      [SANDBOX_SCHEMA_COMMENT_PREFIX, ...LEGACY_COMMENT_PREFIXES],
    ]);
    if (foreign.rows.length > 0) {
      throw new Error(
        `refusing to replace schema ${foreign.rows.map((r) => r.name).join(', ')}: ` +
          `not created by the sandbox generator (its comment does not start with ` +
          `"${SANDBOX_SCHEMA_COMMENT_PREFIX}"). Is this really the sandbox target?`,
      );
    }
    await client.query('DROP SCHEMA IF EXISTS platform CASCADE');
    await client.query('DROP SCHEMA IF EXISTS other CASCADE');
    await client.query(schema.tables);

    const organizations =
      rowCount(
        await client.query(INSERT_GENERATED_ORGANIZATIONS, [seed, generatedOrganizations, EPOCH]),
      ) +
      rowCount(
        await client.query(INSERT_FIXED_ORGANIZATIONS, [
          seed,
          SANDBOX_FIXED_ORGANIZATIONS.map((o) => o.slug),
          SANDBOX_FIXED_ORGANIZATIONS.map((o) => o.name),
          EPOCH,
        ]),
      );

    const userRows =
      rowCount(await client.query(INSERT_GENERATED_USERS, [seed, users, EPOCH])) +
      rowCount(
        await client.query(INSERT_FIXED_USERS, [
          seed,
          fixedAccounts.map((a) => a.email),
          fixedAccounts.map((a) => a.displayName),
          EPOCH,
        ]),
      );

    const memberships =
      rowCount(
        await client.query(INSERT_GENERATED_MEMBERSHIPS, [
          seed,
          users,
          EPOCH,
          generatedOrganizations,
        ]),
      ) +
      rowCount(
        await client.query(INSERT_FIXED_MEMBERSHIPS, [
          fixedAccounts.map((a) => a.email),
          fixedAccounts.map((a) => a.organizations.join(',')),
          EPOCH,
        ]),
      );

    await client.query(INSERT_OTHER_USERS, [seed, 50, EPOCH]);
    await client.query(schema.postLoad);

    const tokenRows = rowCount(
      await client.query(INSERT_API_TOKENS, [
        fixedAccounts.map((a) => a.email),
        fixedAccounts.map((a) => sha256Hex(a.token)),
        EPOCH,
      ]),
    );
    if (tokenRows !== fixedAccounts.length) {
      throw new Error(`expected ${fixedAccounts.length} api tokens, inserted ${tokenRows}`);
    }

    // Fresh tables have no statistics: without them the first pre-checks plan blind.
    await client.query(
      'ANALYZE platform.organizations, platform.users, platform.organization_members,' +
        ' platform.api_tokens, other.users',
    );

    const withoutOrg = await client.query<{ n: string }>(COUNT_USERS_WITHOUT_ORG);
    await client.query('COMMIT');

    return {
      users: userRows,
      organizations,
      memberships,
      usersWithoutOrg: Number(withoutOrg.rows[0]?.n ?? 0),
      apiTokens: fixedAccounts.map(({ email, token }) => ({ email, token })),
      durationMs: Math.round(performance.now() - started),
    };
  } catch (error) {
    // Keep the original error; a failed ROLLBACK (connection gone) adds nothing useful.
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
