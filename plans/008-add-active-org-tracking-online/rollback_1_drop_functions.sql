-- Rollback of the online variant of migration 008, step 1: the helper functions, first (they
-- read and write the column). Dropped explicitly, by signature: a PL/pgSQL body records no
-- dependency on the column, so dropping the column would leave them behind (see migration 008's
-- rollback). No table lock. Idempotent, like every rollback step of this plan: a rollback of a
-- partly applied run runs all of them, and each removes its part if it is there.
DROP FUNCTION IF EXISTS platform.set_user_active_org(uuid, uuid);
DROP FUNCTION IF EXISTS platform.get_user_active_org(uuid);
