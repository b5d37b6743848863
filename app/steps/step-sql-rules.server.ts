/**
 * What a step's SQL may not contain, with the advice that goes with each refusal: one definition
 * that the plan loader (each kind's `validate`, before anything runs) and the engine (prepareStep,
 * before a statement is sent) both apply, so a plan that loads is never refused mid-run for its
 * SQL, and following the advice gives a plan that loads.
 *
 * - Transaction control (BEGIN, COMMIT, SAVEPOINT, …) in any step: a transactional step's
 *   transaction is Runsheet's (the ledger row commits in it); a non-transactional step commits
 *   each statement on its own and records which completed.
 * - A statement PostgreSQL refuses inside a transaction block (CREATE INDEX CONCURRENTLY, DROP
 *   INDEX CONCURRENTLY, REINDEX CONCURRENTLY, DETACH PARTITION CONCURRENTLY, VACUUM; COMMIT or
 *   ROLLBACK inside a DO block) in a transactional step: it would fail (25001, 2D000) after the
 *   steps before it committed.
 * - CREATE INDEX CONCURRENTLY anywhere but a create_index_concurrently step (the loader's sql
 *   kind): a failed build leaves an INVALID index that IF NOT EXISTS then skips.
 */
import type { SqlStatement } from '../sql/split-sql.server';
import { findTransactionControl } from '../sql/split-sql.server';

export interface StepRuleProblem {
  /** 1-based line in the step's file. */
  line: number;
  message: string;
}

const KIND_ADVICE =
  'Move it to a step of its own with kind: create_index_concurrently (its file that one statement, with IF NOT EXISTS and ON <schema>.<table>; ' +
  'index: { schema, name }): that kind drops an INVALID index left by a failed build before building again, and fails the step unless the index ends valid.';

const isCreateIndexConcurrently = (statement: SqlStatement): boolean => statement.kind === 'IndexStmt' && statement.outsideTransactionOnly !== undefined;

/** Transaction control in a step's file, and what cannot run in the transaction a transactional step opens. */
export function stepTransactionProblems(statements: SqlStatement[], step: { transactional: boolean }): StepRuleProblem[] {
  const problems: StepRuleProblem[] = findTransactionControl(statements).map(({ command, line }) => ({
    line,
    message: step.transactional
      ? `${command} on line ${line}: Runsheet runs this step in one transaction of its own (BEGIN … COMMIT, with the ledger row inside it), so the file must not begin, end or split a transaction. ` +
        `Remove the ${command}; statements that must commit apart from the others go in a step of their own.`
      : `${command} on line ${line}: this step runs statement by statement (transactional: false), each statement committed on its own so Runsheet can record which completed; ` +
        `a transaction opened or ended in the file would hide that. Remove the ${command}: statements that must commit together go in a transactional step ` +
        '(leave transactional out, and Runsheet wraps the file in one transaction). A DO block may still COMMIT between batches.',
  }));
  if (step.transactional) {
    for (const statement of statements) {
      for (const { command, line } of statement.blockTransactionControl ?? []) {
        problems.push({
          line,
          message:
            `${command} on line ${line}, inside the DO block of line ${statement.startLine}: a DO block can ${command} only outside a transaction block (PostgreSQL refuses it with SQLSTATE 2D000), ` +
            'and this step runs in one. Put the DO block in a step of its own with transactional: false (it then commits as it goes; a batched_backfill step also records where it stopped), or remove the ' +
            `${command} to run the block inside the step's transaction.`,
        });
      }
      const command = statement.outsideTransactionOnly;
      if (!command) continue;
      const line = statement.startLine;
      const refusal = `${command} on line ${line} cannot run inside a transaction block (PostgreSQL refuses it with SQLSTATE 25001), and this step runs in one.`;
      problems.push({
        line,
        message: isCreateIndexConcurrently(statement)
          ? `${refusal} ${KIND_ADVICE}`
          : `${refusal} Move it to a step of its own with transactional: false${command.includes('CONCURRENTLY') ? ', or leave out CONCURRENTLY to run it inside the transaction (it then blocks writes to the table until the step commits)' : ''}.`,
      });
    }
  }
  return problems.sort((a, b) => a.line - b.line);
}

/** CREATE INDEX CONCURRENTLY in a step that is not of the create_index_concurrently kind (refused in a transactional step above already). */
export function createIndexConcurrentlyOutsideItsKind(statements: SqlStatement[], step: { transactional: boolean }): StepRuleProblem[] {
  if (step.transactional) return [];
  return statements.filter(isCreateIndexConcurrently).map((statement) => ({
    line: statement.startLine,
    message:
      `${statement.outsideTransactionOnly} on line ${statement.startLine} in a plain sql step: a build that fails leaves an INVALID index behind, and the next run's IF NOT EXISTS ` +
      `skips it (a NOTICE, not an error) and reports the step done with no usable index. ${KIND_ADVICE}`,
  }));
}
