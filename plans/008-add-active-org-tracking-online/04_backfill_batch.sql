-- Step 4: the backfill, one batch at a time. Runsheet runs this UPDATE once per batch of
-- platform.users keys (batched_backfill in plan.yaml): :batch_start and :batch_end are the
-- batch's first and last id, both inclusive, sent as bind parameters. Each batch is its own short
-- transaction that also records its last id in runsheet.backfill_progress, so a stopped backfill
-- resumes after the last committed batch.
--
-- The rule is migration 008's: a user's default active organization is the one they joined
-- first; equal joined_at values are broken by the smaller organization id. Only NULLs are
-- filled: a choice already made is never overwritten. The memberships are read for the batch's
-- users only (idx_organization_members_user_id), so a batch costs the same at the start and at
-- the end of the table. updated_at is left alone: a system default, not a change by the user.
UPDATE platform.users AS u
SET active_org_id = first_membership.organization_id
FROM (
  SELECT DISTINCT ON (m.user_id) m.user_id, m.organization_id
  FROM platform.organization_members AS m
  WHERE m.user_id BETWEEN :batch_start AND :batch_end
  ORDER BY m.user_id, m.joined_at, m.organization_id
) AS first_membership
WHERE u.id = first_membership.user_id
  AND u.id BETWEEN :batch_start AND :batch_end
  AND u.active_org_id IS NULL;
