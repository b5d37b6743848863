/**
 * What a SQL file drops, read from PostgreSQL's own parse tree (libpg-query), never from the text:
 * `ALTER TABLE … DROP COLUMN` and `DROP TABLE`. A rollback keeps a copy of each one its plan
 * declares (docs/decisions/031). An unqualified name is in `public`, as the search path would
 * usually find it.
 */
import { loadModule, parseSync } from 'libpg-query';

export interface DroppedObjects {
  columns: { schema: string; table: string; column: string }[];
  tables: { schema: string; name: string }[];
}

interface ParsedStatement {
  AlterTableStmt?: { relation?: { schemaname?: string; relname: string }; cmds?: { AlterTableCmd?: { subtype?: string; name?: string } }[]; objtype?: string };
  DropStmt?: { objects?: { List?: { items?: { String?: { sval: string } }[] } }[]; removeType?: string };
}

export async function findDroppedObjects(source: string): Promise<DroppedObjects> {
  await loadModule();
  const dropped: DroppedObjects = { columns: [], tables: [] };
  const tree = parseSync(source) as { stmts?: { stmt: ParsedStatement }[] };
  for (const { stmt } of tree.stmts ?? []) {
    const alter = stmt.AlterTableStmt;
    if (alter?.relation && alter.objtype === 'OBJECT_TABLE') {
      for (const command of alter.cmds ?? []) {
        if (command.AlterTableCmd?.subtype === 'AT_DropColumn' && command.AlterTableCmd.name) {
          dropped.columns.push({ schema: alter.relation.schemaname ?? 'public', table: alter.relation.relname, column: command.AlterTableCmd.name });
        }
      }
    }
    const drop = stmt.DropStmt;
    if (drop?.removeType === 'OBJECT_TABLE') {
      for (const object of drop.objects ?? []) {
        const names = (object.List?.items ?? []).map((item) => item.String?.sval ?? '');
        const name = names.at(-1);
        if (name) dropped.tables.push({ schema: names.length > 1 ? names.at(-2)! : 'public', name });
      }
    }
  }
  return dropped;
}
