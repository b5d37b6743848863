/**
 * Every PostgreSQL advisory-lock key Runsheet takes, in one place: two features once shared a key
 * by accident. Keys are per database, so a key used on the store and one used on a target could
 * not collide, but each is unique here anyway. 7303424 spells "RS" + "a" in ASCII-ish digits: a
 * prefix unlikely to be used by anything else on a shared database.
 */
export const ADVISORY_LOCKS = {
  /** Store, session lock: one process applies Runsheet's own migrations at a time. */
  storeMigrations: 7_303_424_201,
  /** Target, transaction lock: one process creates the ledger schema at a time. */
  ledgerDdl: 7_303_424_202,
  /** Sandbox target, session lock: one process generates the sandbox at a time. */
  sandboxSeed: 7_303_424_203,
  /** Target, session lock held by the run applying there (pg_try_advisory_lock only; docs/decisions/012). */
  targetRun: 7_303_424_300,
  /** Store, two-key transaction lock (this, hashtext(run id)): appends to one run's chain are serialised. */
  runLogClass: 7_303_424,
} as const;
