/**
 * What the app's role may do to each table of Runsheet's store (docs/decisions/025): the owner role
 * runs the migrations and owns every table; the app role (DATABASE_URL) gets exactly these
 * privileges, applied after every migration run. The run log and its checkpoints are insert-only
 * for the app: no UPDATE, no DELETE, no TRUNCATE, no trigger control. A table missing here fails
 * the store-roles test: a new table needs a decision on what the app may do to it.
 */
export type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

export const STORE_GRANTS: Readonly<Record<string, readonly TablePrivilege[]>> = {
  // Written once, read forever: the run log, its signatures, the keys that signed, the audit log.
  run_events: ['SELECT', 'INSERT'],
  run_checkpoints: ['SELECT', 'INSERT'],
  signing_keys: ['SELECT', 'INSERT'],
  audit_log: ['SELECT', 'INSERT'],
  check_results: ['SELECT', 'INSERT'],
  // The lifecycle's allowed moves: data of the migrations, read by the state trigger.
  run_state_transitions: ['SELECT'],
  // A run's row moves through its states (the trigger checks each move).
  runs: ['SELECT', 'INSERT', 'UPDATE'],
  // A watch's claim, schedule and the results its next round compares with (docs/decisions/030); never deleted.
  run_watches: ['SELECT', 'INSERT', 'UPDATE'],
  // The notifications outbox: each attempt updates its row; rows are kept (the page lists them), never deleted.
  notification_deliveries: ['SELECT', 'INSERT', 'UPDATE'],
  // People: roles, disabling and passwords change; accounts are never deleted (the audit log names them).
  accounts: ['SELECT', 'INSERT', 'UPDATE'],
  // API tokens: revoked and last-used change, never deleted (events name them); addresses seen are appended.
  api_tokens: ['SELECT', 'INSERT', 'UPDATE'],
  api_token_addresses: ['SELECT', 'INSERT'],
  // Working state that comes and goes.
  sessions: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  login_attempts: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  fact_snapshots: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  run_watchers: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // Derived from the signed events, replaced at every checkpoint (a test recomputes it).
  run_report_summaries: ['SELECT', 'INSERT', 'UPDATE'],
};
