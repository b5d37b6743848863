/**
 * Copies of what a rollback destroys, kept on the target itself (docs/decisions/031): before a
 * rollback drops a column or a table its plan declares, the column's values with the table's
 * primary key (or the whole table) go to a table in the `runsheet_backup` schema named after the
 * run, and `runsheet.backups` (beside the ledger) records it: rows, bytes, a checksum. A restore
 * puts values back by primary key, row by row, skipping (and naming) rows that are gone or that a
 * constraint now refuses, and `runsheet.restores` records it. Nothing here ever drops a backup.
 *
 * Identifiers come from the plan's `objects` and are quoted (pg.escapeIdentifier); values are
 * bind parameters.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { BackupCopy, BackupObject } from '../../db/schema/run-outcome';
import { ensureLedger } from './ledger.server';

export const BACKUP_SCHEMA = 'runsheet_backup';
/** A target's `backup_cleanup_after` when it sets none. */
export const DEFAULT_BACKUP_CLEANUP_AFTER_MS = 30 * 24 * 3_600_000;

const q = (name: string) => pg.escapeIdentifier(name);

/** `r_<run id>_<table>_<column>`, within PostgreSQL's 63 bytes (a long name keeps a hash of the rest). */
export function backupTableName(runId: string, object: BackupObject): string {
  const rest = object.kind === 'column' ? `${object.table}_${object.column}` : object.table;
  const head = `r_${runId.replace(/-/g, '')}_`;
  const room = 63 - head.length;
  const fits = Buffer.byteLength(rest) <= room ? rest : `${Buffer.from(rest).subarray(0, room - 9).toString().replace(/\uFFFD/g, '')}_${createHash('sha256').update(rest).digest('hex').slice(0, 8)}`;
  return head + fits;
}

const qualifiedBackup = (name: string) => `${q(BACKUP_SCHEMA)}.${q(name)}`;
const describeObject = (object: BackupObject) => `${object.schema}.${object.table}${object.kind === 'column' ? `.${object.column}` : ''}`;

async function primaryKeyOf(client: pg.ClientBase, schema: string, table: string): Promise<string[]> {
  const { rows } = await client.query<{ column: string }>(
    `select a.attname as column
       from pg_index i
       join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
      where i.indrelid = to_regclass(format('%I.%I', $1::text, $2::text)) and i.indisprimary
      order by array_position(i.indkey::int2[], a.attnum)`,
    [schema, table],
  );
  return rows.map((row) => row.column);
}

async function columnsOf(client: pg.ClientBase, schema: string, table: string): Promise<string[]> {
  const { rows } = await client.query<{ column: string }>(
    `select attname as column from pg_attribute
      where attrelid = to_regclass(format('%I.%I', $1::text, $2::text)) and attnum > 0 and not attisdropped
      order by attnum`,
    [schema, table],
  );
  return rows.map((row) => row.column);
}

export interface BackupContext {
  runId: string;
  planId: string;
  checksum: string;
}

/**
 * Copies one object about to be dropped, inside the caller's transaction (so the copy commits, or
 * rolls back, with the drop). A table without a primary key, or an object not there (an `IF EXISTS`
 * rollback of a partial apply), is not copied: the reason says why.
 */
export async function takeBackup(client: pg.ClientBase, context: BackupContext, object: BackupObject): Promise<{ copy: BackupCopy } | { skipped: string }> {
  const present = await columnsOf(client, object.schema, object.table);
  if (present.length === 0) return { skipped: `${object.schema}.${object.table} is not there: nothing to keep` };
  if (object.kind === 'column' && !present.includes(object.column!)) return { skipped: `${describeObject(object)} is not there: nothing to keep` };
  const keyColumns = await primaryKeyOf(client, object.schema, object.table);
  if (keyColumns.length === 0) return { skipped: `${object.schema}.${object.table} has no primary key: its rows could not be put back by key` };
  if (object.kind === 'column' && keyColumns.includes(object.column!)) return { skipped: `${describeObject(object)} is part of the primary key: back up the table instead` };
  const columns = object.kind === 'column' ? [...keyColumns, object.column!] : present;
  const name = backupTableName(context.runId, object);
  await ensureLedger(client);
  await client.query(`create schema if not exists ${q(BACKUP_SCHEMA)}`);
  const earlier = await client.query(`select 1 from runsheet.backups where backup_table = $1`, [qualifiedBackup(name)]);
  if (earlier.rows.length > 0) return { skipped: `kept already by an earlier attempt of this rollback, in ${qualifiedBackup(name)}` };
  await client.query(`create table ${qualifiedBackup(name)} as select ${columns.map(q).join(', ')} from ${q(object.schema)}.${q(object.table)}`);
  await client.query(`alter table ${qualifiedBackup(name)} add primary key (${keyColumns.map(q).join(', ')})`);
  const measured = await measureCopy(client, qualifiedBackup(name), keyColumns);
  const copy: BackupCopy = { object, backupTable: qualifiedBackup(name), keyColumns, columns, ...measured };
  await client.query(
    `insert into runsheet.backups (backup_table, run_id, plan_id, checksum, object, key_columns, columns, rows, bytes, sha256)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [copy.backupTable, context.runId, context.planId, context.checksum, JSON.stringify(object), keyColumns, columns, copy.rows, copy.bytes, copy.sha256],
  );
  return { copy };
}

/** A copy's rows, bytes and sha256 (its rows as text, in key order): recorded when it is taken, compared before a restore. */
async function measureCopy(client: pg.ClientBase, backupTable: string, keyColumns: string[]): Promise<{ rows: number; bytes: number; sha256: string }> {
  const { rows } = await client.query<{ rows: string; bytes: string; sha256: string }>(
    `select count(*)::bigint as rows,
            pg_total_relation_size(to_regclass($1))::bigint as bytes,
            encode(sha256(convert_to(coalesce(string_agg(b::text, E'\\n' order by ${keyColumns.map((key) => `b.${q(key)}`).join(', ')}), ''), 'UTF8')), 'hex') as sha256
       from ${backupTable} as b`,
    [backupTable],
  );
  return { rows: Number(rows[0]!.rows), bytes: Number(rows[0]!.bytes), sha256: rows[0]!.sha256 };
}

/** Whether a copy is still on the target, and its sha256 now (a restore refuses one that is gone or changed). */
export async function copyAsItIsNow(client: pg.ClientBase, copy: Pick<BackupCopy, 'backupTable' | 'keyColumns'>): Promise<{ present: false } | { present: true; sha256: string }> {
  const { rows } = await client.query<{ present: boolean }>('select to_regclass($1) is not null as present', [copy.backupTable]);
  if (!rows[0]!.present) return { present: false };
  return { present: true, sha256: (await measureCopy(client, copy.backupTable, copy.keyColumns)).sha256 };
}

export interface RestoredCopy {
  object: BackupObject;
  backupTable: string;
  rows: number;
  restored: number;
  unchanged: number;
  skipped: number;
}

export interface SkippedRow {
  backupTable: string;
  key: Record<string, unknown>;
  reason: string;
}

/**
 * Puts one copy back inside the caller's transaction: a column's values by primary key where they
 * differ now, a table's rows that are missing. Each row in its own savepoint: a row a constraint
 * refuses now is skipped with the server's words, a row no longer there is skipped as such.
 */
export async function restoreBackup(
  client: pg.ClientBase,
  input: { copy: BackupCopy; fromRunId: string; runId: string; by: string },
): Promise<{ restored: RestoredCopy; skipped: SkippedRow[] }> {
  const { copy } = input;
  const { object, keyColumns } = copy;
  const name = copy.backupTable;
  const table = `${q(object.schema)}.${q(object.table)}`;
  const joined = keyColumns.map((key) => `t.${q(key)} = b.${q(key)}`).join(' and ');
  const keyJson = `json_build_object(${keyColumns.map((key) => `${pg.escapeLiteral(key)}, b.${q(key)}`).join(', ')})`;
  const order = keyColumns.map((key) => `b.${q(key)}`).join(', ');
  const skipped: SkippedRow[] = [];
  const { rows: counted } = await client.query<{ rows: string }>(`select count(*)::bigint as rows from ${name}`);
  const rows = Number(counted[0]!.rows);
  let restored = 0;
  let unchanged = 0;

  const tryRow = async (tid: string, key: Record<string, unknown>, statement: string) => {
    await client.query('savepoint runsheet_restore_row');
    try {
      await client.query(statement, [tid]);
      await client.query('release savepoint runsheet_restore_row');
      restored++;
    } catch (error) {
      await client.query('rollback to savepoint runsheet_restore_row');
      const failure = error as { message: string; code?: string };
      skipped.push({ backupTable: name, key, reason: `${failure.message}${failure.code ? ` (${failure.code})` : ''}` });
    }
  };

  if (object.kind === 'column') {
    const column = q(object.column!);
    const gone = await client.query<{ key: Record<string, unknown> }>(`select ${keyJson} as key from ${name} as b where not exists (select 1 from ${table} as t where ${joined}) order by ${order}`);
    for (const row of gone.rows) skipped.push({ backupTable: name, key: row.key, reason: `the row no longer exists in ${object.schema}.${object.table}` });
    const same = await client.query<{ count: string }>(`select count(*)::bigint as count from ${name} as b join ${table} as t on ${joined} where t.${column} is not distinct from b.${column}`);
    unchanged = Number(same.rows[0]!.count);
    const differing = await client.query<{ tid: string; key: Record<string, unknown> }>(
      `select b.ctid::text as tid, ${keyJson} as key from ${name} as b join ${table} as t on ${joined} where t.${column} is distinct from b.${column} order by ${order}`,
    );
    for (const row of differing.rows) {
      await tryRow(row.tid, row.key, `update ${table} as t set ${column} = b.${column} from ${name} as b where b.ctid = $1::tid and ${joined}`);
    }
  } else {
    const present = await client.query<{ count: string }>(`select count(*)::bigint as count from ${name} as b join ${table} as t on ${joined}`);
    unchanged = Number(present.rows[0]!.count);
    const missing = await client.query<{ tid: string; key: Record<string, unknown> }>(
      `select b.ctid::text as tid, ${keyJson} as key from ${name} as b where not exists (select 1 from ${table} as t where ${joined}) order by ${order}`,
    );
    const columns = copy.columns.map(q).join(', ');
    for (const row of missing.rows) {
      await tryRow(row.tid, row.key, `insert into ${table} (${columns}) select ${columns} from ${name} as b where b.ctid = $1::tid`);
    }
  }
  await client.query(
    `insert into runsheet.restores (backup_table, from_run_id, run_id, restored, unchanged, skipped, skipped_rows, restored_by) values ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [name, input.fromRunId, input.runId, restored, unchanged, skipped.length, JSON.stringify(skipped), input.by],
  );
  return { restored: { object, backupTable: name, rows, restored, unchanged, skipped: skipped.length }, skipped };
}

export interface BackupListing {
  backupTable: string;
  runId: string;
  planId: string;
  object: BackupObject;
  rows: number;
  bytes: number;
  takenAt: string;
  ageMs: number;
  restores: number;
}

/** Every backup the target holds, oldest first, with its age and how often it was restored. */
export async function listBackups(pool: pg.Pool): Promise<BackupListing[]> {
  const present = await pool.query<{ present: boolean }>(`select to_regclass('runsheet.backups') is not null as present`);
  if (!present.rows[0]?.present) return [];
  const { rows } = await pool.query<{ backup_table: string; run_id: string; plan_id: string; object: BackupObject; rows: string; bytes: string; taken_at: Date; age_ms: string; restores: string }>(
    `select b.backup_table, b.run_id::text, b.plan_id, b.object, b.rows, b.bytes, b.taken_at,
            (extract(epoch from clock_timestamp() - b.taken_at) * 1000)::bigint as age_ms,
            (select count(*) from runsheet.restores as r where r.backup_table = b.backup_table)::bigint as restores
       from runsheet.backups as b order by b.taken_at`,
  );
  return rows.map((row) => ({
    backupTable: row.backup_table,
    runId: row.run_id,
    planId: row.plan_id,
    object: row.object,
    rows: Number(row.rows),
    bytes: Number(row.bytes),
    takenAt: row.taken_at.toISOString(),
    ageMs: Number(row.age_ms),
    restores: Number(row.restores),
  }));
}
