-- Migration 008: remember each user's active organization in platform.users.active_org_id,
-- so the choice survives across sessions (seeds/000_278a046374b023c5.txt, "Notes").
--
-- One transactional step: the runner opens and commits the transaction, so this file has no
-- BEGIN/COMMIT and no psql meta-commands. Every statement is idempotent: on a second run the
-- column, constraint, index and functions are found (or replaced by identical definitions) and
-- the backfill finds nothing to fill, so the second run changes nothing and raises no error.
--
-- Order matters for cost on a large table: the column first (catalog-only, no rewrite), then
-- the backfill, then the foreign key and the index. Added before the backfill, the foreign key
-- would check every updated row with its own look-up into organizations (and row-lock it), and
-- the index would be maintained row by row; added after, the key is validated by one join and
-- the index is built by one sort. (An organization deleted by another session between the
-- backfill and the key makes that validation fail, and the whole step rolls back: safe.)
--
-- Locks: ADD COLUMN takes ACCESS EXCLUSIVE on platform.users until COMMIT, so readers and
-- writers of users wait for the whole step (the backfill dominates it). The foreign key takes
-- SHARE ROW EXCLUSIVE on platform.organizations only from the moment it is added.

-- An ALTER waiting for a lock behind a long transaction makes every later query on the table
-- queue behind it: give up after 5 s (nothing is changed; retry at a quieter moment) rather
-- than stall the application. No statement_timeout here: the backfill's duration grows with
-- the number of users, so that limit belongs to the target's configuration, not to this file.
SET LOCAL lock_timeout = '5s';

ALTER TABLE platform.users ADD COLUMN IF NOT EXISTS active_org_id uuid;

-- IF NOT EXISTS compares names only: a column of that name but another type, left by an
-- earlier attempt made by hand, must stop the migration, not be built upon.
DO $$
BEGIN
  IF (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)
        FROM pg_catalog.pg_attribute AS a
       WHERE a.attrelid = 'platform.users'::regclass
         AND a.attname = 'active_org_id'
         AND NOT a.attisdropped) IS DISTINCT FROM 'uuid' THEN
    RAISE EXCEPTION 'platform.users.active_org_id exists but is not of type uuid'
      USING ERRCODE = '42804';
  END IF;
END
$$;

COMMENT ON COLUMN platform.users.active_org_id IS
  'Organization the user last chose (set_user_active_org); NULL: none chosen or it was deleted.';

-- Backfill: a user's default active organization is the one they joined first; equal
-- joined_at values are broken by the smaller organization id, so the result does not depend
-- on physical row order or plan shape. Only NULLs are filled: a choice already made is never
-- overwritten, which is also what makes a second run a no-op. (Run again later, it would give
-- a default to users whose active organization has since become NULL, by deletion or by an
-- explicit clear: the same rule applied to the same state.) updated_at is left alone: this is
-- a system default, not a change the user made.
UPDATE platform.users AS u
SET active_org_id = first_membership.organization_id
FROM (
  SELECT DISTINCT ON (m.user_id) m.user_id, m.organization_id
  FROM platform.organization_members AS m
  ORDER BY m.user_id, m.joined_at, m.organization_id
) AS first_membership
WHERE u.id = first_membership.user_id
  AND u.active_org_id IS NULL;

-- ADD CONSTRAINT has no IF NOT EXISTS. Look the constraint up by name AND table: constraint
-- names are unique per table only. A same-named constraint that is not the expected foreign
-- key stops the migration rather than being taken for it.
DO $$
DECLARE
  existing record;
BEGIN
  SELECT c.convalidated,
         c.contype = 'f'
           AND c.confrelid = 'platform.organizations'::regclass
           AND c.confdeltype = 'n'  -- ON DELETE SET NULL
           AND c.conkey = ARRAY[(SELECT a.attnum FROM pg_catalog.pg_attribute AS a
                                  WHERE a.attrelid = 'platform.users'::regclass
                                    AND a.attname = 'active_org_id')]
           AND c.confkey = ARRAY[(SELECT a.attnum FROM pg_catalog.pg_attribute AS a
                                   WHERE a.attrelid = 'platform.organizations'::regclass
                                     AND a.attname = 'id')]
           AS as_expected,
         pg_catalog.pg_get_constraintdef(c.oid) AS definition
    INTO existing
    FROM pg_catalog.pg_constraint AS c
   WHERE c.conname = 'users_active_org_id_fkey'
     AND c.conrelid = 'platform.users'::regclass;

  IF NOT FOUND THEN
    ALTER TABLE platform.users
      ADD CONSTRAINT users_active_org_id_fkey
      FOREIGN KEY (active_org_id) REFERENCES platform.organizations (id) ON DELETE SET NULL;
  ELSIF existing.as_expected IS NOT TRUE THEN
    RAISE EXCEPTION 'platform.users has a constraint users_active_org_id_fkey that is not the expected foreign key: %',
      existing.definition
      USING ERRCODE = '42710',
            HINT = 'Expected FOREIGN KEY (active_org_id) REFERENCES platform.organizations(id) ON DELETE SET NULL.';
  ELSIF NOT existing.convalidated THEN
    -- Left NOT VALID by someone else: finish the job rather than trust it.
    ALTER TABLE platform.users VALIDATE CONSTRAINT users_active_org_id_fkey;
  END IF;
END
$$;

-- Partial: most look-ups are "users whose active org is X", and NULLs (users without one)
-- would only add size. Not CONCURRENTLY: that cannot run inside the runner's transaction, and
-- users is already locked by ADD COLUMN above.
CREATE INDEX IF NOT EXISTS idx_users_active_org
  ON platform.users (active_org_id)
  WHERE active_org_id IS NOT NULL;

-- IF NOT EXISTS only compares names (of any relation in the schema). An index of that name
-- left behind invalid (a failed CREATE INDEX CONCURRENTLY) or defined differently would
-- otherwise pass silently.
DO $$
DECLARE
  idx record;
BEGIN
  SELECT i.indisvalid,
         i.indrelid = 'platform.users'::regclass AS on_users,
         pg_catalog.pg_get_indexdef(i.indexrelid) AS definition
    INTO idx
    FROM pg_catalog.pg_index AS i
   WHERE i.indexrelid = 'platform.idx_users_active_org'::regclass;

  IF NOT FOUND THEN
    RAISE EXCEPTION 'platform.idx_users_active_org exists but is not an index'
      USING ERRCODE = '42809';
  ELSIF idx.on_users IS NOT TRUE
     OR idx.indisvalid IS NOT TRUE
     OR idx.definition NOT LIKE '% USING btree (active_org_id) WHERE (active_org_id IS NOT NULL)' THEN
    RAISE EXCEPTION 'platform.idx_users_active_org is not the expected valid partial index: %',
      idx.definition
      USING ERRCODE = '42710',
            HINT = 'Drop it (DROP INDEX platform.idx_users_active_org) and run the migration again.';
  END IF;
END
$$;

-- Sets (or, with NULL, clears) a user's active organization and returns it.
-- Errors (SQLSTATE):
--   42501 insufficient_privilege  the user is not a member of p_org_id (also when the user or
--                                 the organization does not exist): the API maps it to 403.
--   P0002 no_data_found           clearing (p_org_id NULL) for a user that does not exist.
--   22004 null_value_not_allowed  p_user_id is NULL.
-- The membership row is locked FOR SHARE until the caller's transaction ends, so a concurrent
-- removal of that membership cannot slip between the check and the update.
-- search_path is pinned so that objects in a caller's schemas cannot stand in for ours.
CREATE OR REPLACE FUNCTION platform.set_user_active_org(p_user_id uuid, p_org_id uuid)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION 'set_user_active_org: user id must not be NULL'
      USING ERRCODE = '22004';
  END IF;

  IF p_org_id IS NOT NULL THEN
    PERFORM 1
      FROM platform.organization_members AS m
     WHERE m.user_id = p_user_id
       AND m.organization_id = p_org_id
       FOR SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'user % is not a member of organization %', p_user_id, p_org_id
        USING ERRCODE = '42501',
              HINT = 'A user can only make active an organization they belong to.';
    END IF;
  END IF;

  UPDATE platform.users
     SET active_org_id = p_org_id,
         updated_at = now()
   WHERE id = p_user_id;

  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % does not exist', p_user_id
      USING ERRCODE = 'P0002';
  END IF;

  RETURN p_org_id;
END
$$;

COMMENT ON FUNCTION platform.set_user_active_org(uuid, uuid) IS
  'Sets (NULL clears) a user''s active organization. SQLSTATE 42501 if not a member, P0002 if no such user.';

-- The user's active organization, or NULL when none is set, the user does not exist, or the
-- user is no longer a member of it: memberships can be removed without touching
-- users.active_org_id (there is no foreign key from a user to a membership), and a stale value
-- must not keep granting an organization context.
CREATE OR REPLACE FUNCTION platform.get_user_active_org(p_user_id uuid)
RETURNS uuid
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_org_id uuid;
BEGIN
  SELECT u.active_org_id
    INTO v_org_id
    FROM platform.users AS u
   WHERE u.id = p_user_id
     AND EXISTS (
           SELECT 1
             FROM platform.organization_members AS m
            WHERE m.user_id = u.id
              AND m.organization_id = u.active_org_id
         );
  RETURN v_org_id;
END
$$;

COMMENT ON FUNCTION platform.get_user_active_org(uuid) IS
  'A user''s active organization if they are still a member of it, else NULL.';
