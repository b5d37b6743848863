-- Step 5: what the batches could not see. The batches walk the ids in order while the
-- application keeps writing: a user created behind the walk (ids are random uuids), or a user
-- the walk passed without a membership who joined an organization since, still has a NULL
-- active_org_id. One set-based UPDATE with the same rule finishes them. It reads the users whose
-- value is NULL (one pass over the table) but locks only the few rows it changes; on a quiet
-- table it changes none.
UPDATE platform.users AS u
SET active_org_id = first_membership.organization_id
FROM (
  SELECT DISTINCT ON (m.user_id) m.user_id, m.organization_id
  FROM platform.organization_members AS m
  WHERE m.user_id IN (SELECT s.id FROM platform.users AS s WHERE s.active_org_id IS NULL)
  ORDER BY m.user_id, m.joined_at, m.organization_id
) AS first_membership
WHERE u.id = first_membership.user_id
  AND u.active_org_id IS NULL;
