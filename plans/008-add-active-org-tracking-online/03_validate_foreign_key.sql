-- Step 3: validate the foreign key. VALIDATE CONSTRAINT scans platform.users (one join with
-- platform.organizations) under SHARE UPDATE EXCLUSIVE, which lets reads and writes of users go
-- on; only other DDL and VACUUM wait. Validated now, while every value is still NULL, the scan
-- looks nothing up; from here on the key's triggers check each backfilled row as it is written.
-- Idempotent: validating a valid constraint does nothing.
ALTER TABLE platform.users VALIDATE CONSTRAINT users_active_org_id_fkey;
