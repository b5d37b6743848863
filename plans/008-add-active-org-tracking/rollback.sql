-- Rollback of Migration 008: removes everything 008 added, and nothing else. Idempotent, one
-- transactional step (the runner owns the transaction).

-- DROP INDEX and DROP COLUMN need ACCESS EXCLUSIVE on platform.users: fail after 5 s rather
-- than queue every query on users behind a long transaction (see the migration).
SET LOCAL lock_timeout = '5s';

-- The seed's rollback, `ALTER TABLE platform.users DROP COLUMN active_org_id CASCADE`, claims
-- to remove the helper functions too. For these PL/pgSQL functions it does not: a PL/pgSQL body
-- is stored as text and its queries are only resolved when it runs, so pg_depend records no
-- dependency of the functions on the column, CASCADE finds nothing to follow, and they stay behind,
-- failing at their next call. (Only a LANGUAGE sql function with a BEGIN ATOMIC body records
-- such a dependency.) So they are dropped explicitly, by signature.
DROP FUNCTION IF EXISTS platform.set_user_active_org(uuid, uuid);
DROP FUNCTION IF EXISTS platform.get_user_active_org(uuid);

-- Schema-qualified: other schemas may have an index of the same name (they do in the sandbox).
DROP INDEX IF EXISTS platform.idx_users_active_org;

-- The foreign key users_active_org_id_fkey involves only this column and goes with it. No
-- CASCADE: if anything else (a view, say) has come to depend on the column since, the rollback
-- should stop and say so rather than silently drop it.
ALTER TABLE platform.users DROP COLUMN IF EXISTS active_org_id;
