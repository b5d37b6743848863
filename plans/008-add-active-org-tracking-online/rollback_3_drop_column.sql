-- Rollback step 3: the foreign key, then the column. Catalog changes, no rewrite, but ACCESS
-- EXCLUSIVE on platform.users for an instant (and SHARE ROW EXCLUSIVE on platform.organizations,
-- for the key's triggers): lock_timeout 2 s, retried. The key would go with its only column
-- anyway; dropped by name first, it is plain in the log what went. No CASCADE: if anything else
-- (a view, say) has come to depend on the column since, the rollback stops and says so rather
-- than drop it silently. The backfilled values go with the column; Runsheet forgets the
-- backfill's progress in the same transaction as the rollback's ledger row.
ALTER TABLE platform.users DROP CONSTRAINT IF EXISTS users_active_org_id_fkey;

ALTER TABLE platform.users DROP COLUMN IF EXISTS active_org_id;
