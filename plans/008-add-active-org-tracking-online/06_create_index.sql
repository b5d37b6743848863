-- Step 6: the partial index, built CONCURRENTLY (create_index_concurrently in plan.yaml): SHARE
-- UPDATE EXCLUSIVE only, so reads and writes of platform.users go on while it builds. It runs
-- outside any transaction. Should the build fail, it leaves an INVALID index behind, which IF NOT
-- EXISTS alone would take for done: Runsheet reads pg_index.indisvalid for
-- platform.idx_users_active_org before and after, drops an INVALID leftover (DROP INDEX
-- CONCURRENTLY) before building again, and fails the step unless the index ends valid.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_active_org
  ON platform.users (active_org_id)
  WHERE active_org_id IS NOT NULL;
