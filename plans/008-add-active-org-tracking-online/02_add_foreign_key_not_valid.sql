-- Step 2: the foreign key, NOT VALID. Added that way it is a catalog change: existing rows are
-- not checked (every value is still NULL anyway), new and updated rows are, from the commit on
-- (the backfill's batches included). It takes SHARE ROW EXCLUSIVE on platform.users and on
-- platform.organizations for an instant (lock_timeout 2 s, retried); step 3 validates it.
--
-- ADD CONSTRAINT has no IF NOT EXISTS. A new run after a partial one finds the key of the first
-- run: it is dropped and added again in this same transaction (nobody sees the table without
-- it), and step 3 validates it again. Constraint names are per table, and this one is the name
-- PostgreSQL would give a foreign key on this column.
ALTER TABLE platform.users DROP CONSTRAINT IF EXISTS users_active_org_id_fkey;

ALTER TABLE platform.users
  ADD CONSTRAINT users_active_org_id_fkey
  FOREIGN KEY (active_org_id) REFERENCES platform.organizations (id) ON DELETE SET NULL
  NOT VALID;
