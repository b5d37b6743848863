-- Step 1 of the online variant of migration 008: the column alone. Nullable, no default, so
-- PostgreSQL changes only the catalog: no table rewrite, no scan. It still needs ACCESS
-- EXCLUSIVE on platform.users for an instant, and a request for it queues every later query on
-- the table behind whatever long transaction holds a lock there; the step's lock_timeout (2 s)
-- gives up early and the engine retries after a pause (retries in plan.yaml), so the
-- application never waits long behind it.
--
-- Idempotent: a new run after a partial one finds the column and changes nothing.
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
