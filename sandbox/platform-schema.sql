-- Sandbox target: the `platform` schema as migrations 001-006 left it, i.e. the state that
-- Migration 008 (seeds/000_278a046374b023c5.txt) expects to find. Nothing here knows about
-- active_org_id: adding it is 008's job, and a sandbox that already had it would let the
-- pre-checks pass for the wrong reason.
--
-- The file runs top to bottom as a plain script (no psql meta-commands, no transaction
-- control: the caller owns the transaction). app/sandbox/generate-sandbox.server.ts runs it in
-- two halves around its bulk load, split at the `runsheet:post-load` marker below: keys,
-- foreign keys and secondary indexes are cheaper to build once over loaded tables than to
-- maintain row by row during a million-row INSERT. Run whole, the file gives the same schema.
--
-- Requires PostgreSQL 13+ (gen_random_uuid() is built in; no extension needed).

CREATE SCHEMA platform;

-- The generator refuses to drop a `platform` schema whose comment does not start with
-- "Runsheet sandbox": pointed at a real database by mistake, it stops instead of wiping it.
COMMENT ON SCHEMA platform IS
  'Runsheet sandbox: stand-in for the production platform schema (migrations 001-006).';

CREATE TABLE platform.organizations (
  id         uuid        NOT NULL DEFAULT gen_random_uuid(),
  name       text        NOT NULL,
  -- Slugs appear in URLs: lower-case, no leading hyphen, bounded. (The length is checked
  -- apart: a bounded repeat such as {0,62} makes the regex several times slower per row.)
  slug       text        NOT NULL
             CONSTRAINT organizations_slug_format
             CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$' AND char_length(slug) <= 63),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT organizations_name_not_blank CHECK (btrim(name) <> '')
);

CREATE TABLE platform.users (
  id              uuid        NOT NULL DEFAULT gen_random_uuid(),
  -- Stored lower-cased so the unique key is case-insensitive without citext.
  email           text        NOT NULL
                  CONSTRAINT users_email_lower CHECK (email = lower(email)),
  display_name    text,
  -- NULL for accounts that only sign in through an identity provider (all sandbox accounts).
  password_hash   text,
  last_sign_in_at timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE platform.organization_members (
  organization_id uuid        NOT NULL,
  user_id         uuid        NOT NULL,
  role            text        NOT NULL DEFAULT 'member'
                  CONSTRAINT organization_members_role_check
                  CHECK (role IN ('owner', 'admin', 'member')),
  -- Migration 008's backfill orders by this column: it must never be NULL.
  joined_at       timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens of the sandbox's stand-in for the platform API (/api/auth/validate,
-- /api/auth/set-active-org). Only the sha256 of a token is stored, so a dump of the sandbox
-- does not hand out working credentials.
CREATE TABLE platform.api_tokens (
  token_hash text        NOT NULL
             CONSTRAINT api_tokens_token_hash_format CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  user_id    uuid        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A second schema with a `users` table and an index of the same name as the one 008 creates.
-- The seed's step 6 looked the index up by table name only (pg_indexes.tablename = 'users');
-- with this schema present such a check passes even when platform has no index at all, and a
-- rollback check that does not filter by schema fails even after a clean rollback.
CREATE SCHEMA other;

COMMENT ON SCHEMA other IS
  'Runsheet sandbox: decoy with the same table and index names as platform, to catch checks that ignore schemas.';

CREATE TABLE other.users (
  id            uuid        NOT NULL DEFAULT gen_random_uuid(),
  email         text        NOT NULL,
  active_org_id uuid,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_pkey PRIMARY KEY (id)
);

-- Deliberately not partial, unlike platform's: a check that reports the predicate shows which
-- of the two it found.
CREATE INDEX idx_users_active_org ON other.users (active_org_id);

-- runsheet:post-load
-- Everything below is built after the bulk load (see the header).

ALTER TABLE platform.organizations
  ADD CONSTRAINT organizations_pkey PRIMARY KEY (id),
  ADD CONSTRAINT organizations_slug_key UNIQUE (slug);

ALTER TABLE platform.users
  ADD CONSTRAINT users_pkey PRIMARY KEY (id),
  ADD CONSTRAINT users_email_key UNIQUE (email);

-- The composite key both forbids duplicate memberships and serves look-ups by organization
-- (its leading column), so organization_id needs no index of its own.
ALTER TABLE platform.organization_members
  ADD CONSTRAINT organization_members_pkey PRIMARY KEY (organization_id, user_id),
  ADD CONSTRAINT organization_members_organization_id_fkey
    FOREIGN KEY (organization_id) REFERENCES platform.organizations (id) ON DELETE CASCADE,
  ADD CONSTRAINT organization_members_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES platform.users (id) ON DELETE CASCADE;

-- "Which organizations is this user in" (the org switcher, 008's backfill), and the cascade
-- from deleting a user, which would otherwise scan every membership.
CREATE INDEX idx_organization_members_user_id
  ON platform.organization_members (user_id);

ALTER TABLE platform.api_tokens
  ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (token_hash),
  ADD CONSTRAINT api_tokens_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES platform.users (id) ON DELETE CASCADE;

-- Serves the cascade from deleting a user.
CREATE INDEX idx_api_tokens_user_id ON platform.api_tokens (user_id);
