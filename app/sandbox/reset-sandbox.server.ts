/**
 * Resetting a sandbox target: the generated sandbox (generate-sandbox.server.ts), then, for a
 * plan that has one, its fixture `sandbox.sql` (the plan's starting state, e.g. a table the
 * generated sandbox does not have), so that a plan's pre-checks pass on a fresh sandbox after one
 * command (docs/decisions/019a). Only ever on a target whose rules say `sandbox: true`, never while
 * a run holds it; recorded in the audit log with the fixture applied (plan, file, sha256).
 * The command line (`runsheet sandbox reset [--plan id]`) and the plan page share this.
 */
import path from 'node:path';
import { eq } from 'drizzle-orm';
import pg from 'pg';
import { ACTIVE_RUN_STATES } from '../../db/run-lifecycle';
import { factSnapshots } from '../../db/schema/index';
import { recordAudit } from '../audit/audit-log.server';
import { loadPlan, SANDBOX_FIXTURE_FILE } from '../plans/load-plans.server';
import { planErrorLocation } from '../plans/plan-error';
import { findRuns } from '../runs/run-store.server';
import { ADVISORY_LOCKS } from '../runtime/advisory-locks';
import { RunsheetError } from '../runtime/errors';
import type { Store } from '../runtime/store.server';
import { splitSql } from '../sql/split-sql.server';
import type { TargetRegistry } from '../targets/target-registry.server';
import { targetPoolConfig } from '../targets/targets.server';
import { generateSandbox, type SandboxSummary } from './generate-sandbox.server';
import { writeSandboxApiTokens } from './sandbox-api-tokens.server';

export interface ResetSandboxDeps {
  store: Pick<Store, 'pool' | 'db'>;
  plansDir: string;
  targets: TargetRegistry;
  /** Where the stand-in API's tokens are kept (the data folder). */
  dataDir: string;
}

export interface ResetSandboxInput {
  target: string;
  users: number;
  seed: number;
  /** A plan whose sandbox.sql runs after the generated sandbox. */
  planId?: string;
  /** An account's e-mail, or "cli:<os user>". */
  actor: string;
  actorRole?: string | null;
  ip?: string | null;
}

export interface AppliedFixture {
  planId: string;
  /** As errors name files: "plans/<id>/sandbox.sql". */
  file: string;
  sha256: string;
  statements: number;
  durationMs: number;
}

export interface FixtureFailure {
  planId: string;
  file: string;
  line: number;
  sqlstate?: string;
  message: string;
}

export interface SandboxReset {
  target: string;
  generated: Omit<SandboxSummary, 'apiTokens'>;
  fixture: AppliedFixture | null;
  /** The fixture failed: the generated sandbox stays, without it (its transaction rolled back). */
  fixtureFailure: FixtureFailure | null;
}

export async function resetSandbox(deps: ResetSandboxDeps, input: ResetSandboxInput): Promise<SandboxReset> {
  const subject = input.planId ? `${input.target} (${input.planId})` : input.target;
  const audit = (outcome: 'ok' | 'refused' | 'failed', reason: string | null, detail: Record<string, unknown> | null) =>
    recordAudit(deps.store.db, { actor: input.actor, actorRole: input.actorRole ?? null, action: 'sandbox.reset', subject, outcome, reason, ip: input.ip ?? null, detail });
  const refuse = async (error: RunsheetError): Promise<never> => {
    await audit('refused', error.message, { target: input.target, plan: input.planId ?? null });
    throw error;
  };

  const target = deps.targets.find(input.target);
  if (!target) return refuse(new RunsheetError('not_found', `No target "${input.target}": targets come from TARGET_<NAME>_URL (and the embedded sandbox).`));
  if (!target.rules.sandbox) {
    return refuse(new RunsheetError('target_refused', `Target "${target.name}" is not a sandbox (runsheet.config.ts does not mark it sandbox: true): Runsheet regenerates only sandbox targets.`));
  }
  let fixture: { planId: string; file: string; content: string; sha256: string } | undefined;
  if (input.planId) {
    const loaded = await loadPlan(deps.plansDir, input.planId);
    if (!loaded) return refuse(new RunsheetError('not_found', `No plan "${input.planId}" under ${deps.plansDir}.`));
    if (!loaded.ok) {
      const first = loaded.errors[0]!;
      return refuse(new RunsheetError('invalid_plan', `Plan "${input.planId}" is not valid (${loaded.errors.length} error(s), first: ${planErrorLocation(first)} ${first.message}): fix it before resetting the sandbox with its fixture.`));
    }
    if (!loaded.sandboxFixture) {
      return refuse(new RunsheetError('invalid_input', `Plan "${input.planId}" has no ${SANDBOX_FIXTURE_FILE}: write one beside its plan.yaml (the SQL that sets up the plan's starting state), or reset without --plan.`));
    }
    const file = path.relative(path.dirname(path.resolve(deps.plansDir)), path.join(loaded.dir, SANDBOX_FIXTURE_FILE)).split(path.sep).join('/');
    fixture = { planId: loaded.id, file, content: loaded.sandboxFixture.content, sha256: loaded.sandboxFixture.sha256 };
  }
  const active = await findRuns(deps.store.pool, { target: target.name, states: ACTIVE_RUN_STATES, limit: 1 });
  if (active[0]) return refuse(new RunsheetError('busy', `Run ${active[0].id} is ${active[0].state} on ${target.name}: reset the sandbox once it has ended.`));

  // A dedicated connection (TLS as for every target connection): generation holds session state.
  const client = new pg.Client(targetPoolConfig(target.url, { applicationName: 'runsheet sandbox reset' }));
  await client.connect();
  try {
    const { rows } = await client.query<{ locked: boolean; free: boolean }>('select pg_try_advisory_lock($1) as locked, pg_try_advisory_lock($2) as free', [ADVISORY_LOCKS.sandboxSeed, ADVISORY_LOCKS.targetRun]);
    if (!rows[0]?.locked || !rows[0]?.free) {
      return refuse(new RunsheetError('busy', `Another process is generating the sandbox or running a plan on ${target.name}: try again once it has finished.`));
    }
    const generated = await generateSandbox(client, { users: input.users, seed: input.seed });
    // The sandbox's own ledger described the old data: a regenerated sandbox has applied nothing.
    await client.query('drop schema if exists runsheet cascade');
    writeSandboxApiTokens(deps.dataDir, generated.apiTokens);
    // Facts read from the old sandbox no longer describe it.
    await deps.store.db.delete(factSnapshots).where(eq(factSnapshots.target, target.name));
    const { apiTokens: _tokens, ...summary } = generated;
    const result: SandboxReset = { target: target.name, generated: summary, fixture: null, fixtureFailure: null };
    if (fixture) {
      const applied = await runFixture(client, fixture);
      if ('line' in applied) result.fixtureFailure = applied;
      else result.fixture = applied;
    }
    const detail = {
      target: target.name,
      users: input.users,
      seed: input.seed,
      generated: { users: summary.users, organizations: summary.organizations, memberships: summary.memberships },
      fixture: result.fixture ? { plan: result.fixture.planId, file: result.fixture.file, sha256: result.fixture.sha256, statements: result.fixture.statements } : null,
      ...(result.fixtureFailure ? { fixtureFailure: { ...result.fixtureFailure, sha256: fixture!.sha256 } } : {}),
    };
    await audit(result.fixtureFailure ? 'failed' : 'ok', result.fixtureFailure ? `${result.fixtureFailure.file}:${result.fixtureFailure.line}: ${result.fixtureFailure.message}` : null, detail);
    return result;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The fixture's statements in one transaction: all of it, or (on an error, named with its line) none. */
async function runFixture(client: pg.Client, fixture: { planId: string; file: string; content: string; sha256: string }): Promise<AppliedFixture | FixtureFailure> {
  const started = performance.now();
  const split = await splitSql(fixture.content);
  if (!split.ok) {
    const first = split.errors[0]!;
    return { planId: fixture.planId, file: fixture.file, line: first.line, message: first.message };
  }
  await client.query('begin');
  for (const statement of split.statements) {
    try {
      await client.query(statement.sql);
    } catch (error) {
      await client.query('rollback').catch(() => {});
      const failure = error as { code?: string; message: string; position?: string };
      // The server's position counts characters of the statement: the line inside it.
      const offset = failure.position ? Number(failure.position) - 1 : 0;
      const line = statement.startLine + (statement.sql.slice(0, offset).match(/\n/g)?.length ?? 0);
      return { planId: fixture.planId, file: fixture.file, line, ...(failure.code ? { sqlstate: failure.code } : {}), message: failure.message };
    }
  }
  await client.query('commit');
  return { planId: fixture.planId, file: fixture.file, sha256: fixture.sha256, statements: split.statements.length, durationMs: Math.round(performance.now() - started) };
}
