-- Step 7: the two helper functions, exactly as migration 008 defines them (the same text, so
-- both plans leave the same definitions). CREATE OR REPLACE FUNCTION takes no lock on a table;
-- idempotent.

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
