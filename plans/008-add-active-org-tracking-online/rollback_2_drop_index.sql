-- Rollback step 2: the partial index, CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes of
-- platform.users go on), outside any transaction. It also removes an INVALID index left by a
-- failed build. Schema-qualified: other schemas have an index of this name (the sandbox does).
DROP INDEX CONCURRENTLY IF EXISTS platform.idx_users_active_org;
