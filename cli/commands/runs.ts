/**
 * The run verbs of the command line: a few lines each over the engine (app/engine), which checks
 * permissions again, judges the gates and logs every refusal. `--as` names the account acting:
 * it must exist, be enabled, and its role must allow the action.
 */
import os from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { recordAudit } from '../../app/audit/audit-log.server';
import { findAccount } from '../../app/accounts/accounts.server';
import { roleCan, type Permission } from '../../app/accounts/permissions';
import { requireValidPlan } from '../../app/checks/plan-checks.server';
import type { CheckResult } from '../../app/checks/run-checks.server';
import { type EngineActor, type EngineDeps, type Gate } from '../../app/engine/engine-deps.server';
import { cancelRequestedMessage, cancelRun, executeRun, rehearseRun, rollbackRun } from '../../app/engine/engine.server';
import { pauseBackfill, resumeBackfill } from '../../app/engine/backfill-control.server';
import { waiveLintFinding } from '../../app/engine/waive-lint.server';
import { endWatch, extendWatch, followWatch, type FollowedWatchEvent } from '../../app/engine/watch.server';
import { restoreRun } from '../../app/engine/restore.server';
import { DEFAULT_BACKUP_CLEANUP_AFTER_MS, listBackups } from '../../app/targets/backups.server';
import { DurationSchema } from '../../app/runtime/duration';
import { formatSpan } from '../../app/runtime/format';
import { previewRollback, type RollbackPreview } from '../../app/engine/rollback-preview.server';
import { getRun, openWorkingRun, readRunDetail, runRunChecks, signOff, tickCriterion, tickPrerequisite, workingRunFor } from '../../app/engine/runs.server';
import type { RunWait } from '../../app/engine/lock-wait-watch.server';
import type { RunEvent, Via } from '../../app/runs/run-events';
import { blockersInWords, lockWaitInWords } from '../../app/runtime/lock-wait-words';
import { findRuns, type RunRecord } from '../../app/runs/run-store.server';
import { mayRollBackFrom } from '../../db/run-lifecycle';
import type { Runtime } from '../../app/boot/runtime.server';
import type { CliCommand, CliIo } from '../command';
import { CliError, EXIT, exitCodeOfRun, phasesOfAction, unavailableError, usageError, type RunAction } from '../exit-codes';
import { requireTargetApi } from '../target-api';
import type { Blocker, RunStop } from '../../db/schema/run-outcome';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, usage: string, positionals: [number, number] = [1, 1]) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw usageError(`${(error as Error).message}\nUsage: npx runsheet ${usage}`);
  }
  const count = parsed.positionals.length;
  if (count < positionals[0] || count > positionals[1]) throw usageError(`Usage: npx runsheet ${usage}`);
  return parsed as { values: Record<string, string | boolean | undefined>; positionals: string[] };
}

export function required(values: Record<string, string | boolean | undefined>, name: string, usage: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw usageError(`--${name} is required.\nUsage: npx runsheet ${usage}`);
  return value;
}

function needRuntime(runtime: Runtime | undefined): Runtime {
  if (!runtime) throw unavailableError('This command needs the store, which did not start.');
  return runtime;
}

/** The account behind --as: existing, enabled, and allowed `action` (else exit 1, refusal audited). */
async function actorFor(runtime: Runtime, email: string, action: Permission, subject: string): Promise<EngineActor> {
  const account = await findAccount(runtime.store.db, { email });
  const refuse = async (reason: string) => {
    await recordAudit(runtime.store.db, { actor: account?.email ?? email, actorRole: account?.role ?? null, action, subject, outcome: 'refused', reason });
    return new CliError(`Refused: ${reason}.`, EXIT.failed);
  };
  if (!account) throw await refuse(`no account has the e-mail ${email}`);
  if (account.disabled) throw await refuse(`the account ${account.email} is disabled`);
  if (!roleCan(account.role, action)) throw await refuse(`${account.email} (${account.role}) may not ${action}`);
  return { email: account.email, role: account.role, via: cliVia() };
}

/** How the command line came: the OS user and host that ran it (recorded in every event it causes). */
export function cliVia(): Extract<Via, { channel: 'cli' }> {
  let osUser: string;
  try {
    osUser = os.userInfo().username;
  } catch {
    osUser = process.env.USER ?? 'unknown';
  }
  return { channel: 'cli', osUser, host: os.hostname() };
}

/** The plan's working run on the target (the engine's one rule, as on the plan page), opened when there is none. */
async function workingRun(deps: EngineDeps, io: CliIo, input: { planId: string; target: string; kind: 'execute' | 'rehearsal'; actor: EngineActor; newAttempt?: boolean }): Promise<RunRecord> {
  const { run, opened } = await openWorkingRun(deps, input);
  io.out(`${opened ? 'Opened run' : 'Run'} ${run.id} (${run.kind}, ${run.state}) of ${run.planId} on ${run.target}, checksum ${run.planChecksum.slice(0, 12)}`);
  return run;
}

export function printGates(io: CliIo, gates: Gate[] | undefined): void {
  for (const gate of gates ?? []) io.out(`  ${gate.passed ? '✓' : gate.atExecute ? '·' : '✗'} ${gate.label}: ${gate.detail}`);
}

async function printReadiness(deps: EngineDeps, io: CliIo, runId: string): Promise<void> {
  const detail = await readRunDetail(deps, runId, { gates: true });
  io.out(`Run ${runId} is ${detail.run.state}.`);
  printGates(io, detail.gates);
}

const seconds = (ms: number | null | undefined) => (ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);

/** How often a lock wait still going on is shown again. */
const WAIT_LINE_EVERY_MS = 2_000;

/** Live output of a drive: its events as they are logged, and every lock wait (refreshed about every 2 s). */
function drivePrinters(io: CliIo): { onEvent: (event: RunEvent) => void; onWaits: (waits: RunWait[]) => void } {
  const shown = new Map<number, number>();
  return {
    onEvent: progressPrinter(io),
    onWaits: (waits) => {
      const now = Date.now();
      for (const wait of waits) {
        if (now - (shown.get(wait.pid) ?? 0) < WAIT_LINE_EVERY_MS) continue;
        shown.set(wait.pid, now);
        io.out(`  ⏳ ${lockWaitInWords(wait, Date.parse(wait.readAt))}`);
      }
    },
  };
}

/** Live progress: phases, steps and failures as the engine logs them. */
export function progressPrinter(io: CliIo): (event: RunEvent) => void {
  return (event) => {
    switch (event.type) {
      case 'wait.changed':
        io.out(`  ⏳ ${event.payload.waitingFor}: now blocked by ${blockersInWords(event.payload.blockers, Date.parse(event.at))}`);
        break;
      case 'wait.ended':
        io.out(`  ⏳ ${event.payload.waitingFor}: stopped waiting after ${seconds(event.payload.waitedMs)}`);
        break;
      case 'cancel.signalled':
        io.out(`  ■ ${event.payload.signal === 'cancel' ? 'pg_cancel_backend' : 'pg_terminate_backend'} sent to ${event.payload.pids.length > 0 ? `pid ${event.payload.pids.join(', ')}` : 'no busy session'} (cancel by ${event.payload.by})`);
        break;
      case 'phase.started':
        io.out(`▶ ${event.payload.phase} (planned ${seconds(event.payload.plannedMs)})`);
        break;
      case 'phase.completed':
        io.out(`  ${event.payload.ok ? '✓' : '✗'} ${event.payload.phase} in ${seconds(event.payload.actualMs)}`);
        break;
      case 'step.completed':
        io.out(`  ✓ step ${event.payload.stepId}: ${event.payload.completedCount}/${event.payload.statementCount} statements`);
        break;
      case 'step.failed':
        io.out(`  ✗ step ${event.payload.stepId}: ${event.payload.summary ?? event.payload.failure.message}`);
        break;
      case 'step.retry':
        io.out(`  ↻ step ${event.payload.stepId}: lock timeout (attempt ${event.payload.attempt} of ${event.payload.retries + 1}), again in ${seconds(event.payload.delayMs)}`);
        break;
      case 'progress': {
        const { stepId, done, total, rate, etaMs } = event.payload;
        io.out(`  … step ${stepId}: ${done}${total !== null ? ` of ${total}` : ''} rows${rate !== null ? `, ${Math.round(rate)} rows/s` : ''}${etaMs !== null ? `, ${seconds(etaMs)} left` : ''}`);
        break;
      }
      case 'backfill.paused':
        io.out(`  ⏸ step ${event.payload.stepId} paused after key ${event.payload.lastKey ?? '(none)'}${event.payload.by ? ` (by ${event.payload.by})` : ''}`);
        break;
      case 'backfill.resumed':
        io.out(`  ▶ step ${event.payload.stepId} resumed${event.payload.by ? ` (by ${event.payload.by})` : ''}`);
        break;
      case 'index.invalid_found':
        io.out(`  ! step ${event.payload.stepId}: index ${event.payload.index} was left INVALID by an earlier build; dropping it before building again`);
        break;
      case 'index.dropped':
        io.out(`  ✓ step ${event.payload.stepId}: dropped the INVALID index ${event.payload.index} (DROP INDEX CONCURRENTLY, ${seconds(event.payload.durationMs)})`);
        break;
      case 'index.invalid':
        io.out(`  ✗ index ${event.payload.index} is INVALID${event.payload.sqlstate ? ` (SQLSTATE ${event.payload.sqlstate})` : ''}: ${event.payload.note}`);
        break;
      case 'state.changed':
        io.out(`  state: ${event.payload.from} → ${event.payload.to} (${event.payload.reason})`);
        break;
    }
  };
}

function describeBlocker(blocker: Blocker): string {
  const who = [blocker.application ? `application ${blocker.application}` : undefined, blocker.user ? `user ${blocker.user}` : undefined, blocker.state ?? undefined, blocker.xactStart ? `in a transaction since ${blocker.xactStart}` : undefined]
    .filter(Boolean)
    .join(', ');
  const lock = blocker.lockMode ? ` holding ${blocker.lockMode}${blocker.relation ? ` on ${blocker.relation}` : ''}` : '';
  return `blocked by pid ${blocker.pid}${who ? ` (${who})` : ''}${lock}${blocker.query ? `: ${blocker.query.replace(/\s+/g, ' ').slice(0, 200)}` : ''}`;
}

/** Where a run stopped (a statement of a step, or a check), as psql would show it: the message, DETAIL, HINT, and the sessions that blocked it. */
function printFailure(io: CliIo, stop: Pick<RunStop, 'stepId' | 'checkId' | 'line' | 'sqlstate' | 'message' | 'detail' | 'hint' | 'blockers'> & { phase?: string }, what: string): void {
  const where = stop.stepId ? `step ${stop.stepId}${stop.line ? `, line ${stop.line}` : ''}` : stop.checkId ? `check ${stop.checkId}` : `phase ${stop.phase ?? '?'}`;
  io.out(`  ${what} at ${where}${stop.sqlstate ? `, SQLSTATE ${stop.sqlstate}` : ''}: ${stop.message}`);
  if (stop.detail) io.out(`  DETAIL: ${stop.detail}`);
  if (stop.hint) io.out(`  HINT: ${stop.hint}`);
  for (const blocker of stop.blockers) io.out(`  ${describeBlocker(blocker)}`);
}

export function printOutcome(io: CliIo, run: RunRecord, action: RunAction): void {
  const outcome = run.outcome ?? {};
  io.out(`Run ${run.id} ended ${run.state}.`);
  const failedPhases = phasesOfAction(outcome, action).filter((phase) => phase.ok === false).map((phase) => phase.phase);
  if (failedPhases.length > 0) io.out(`  failed phase(s): ${failedPhases.join(', ')}`);
  if (outcome.error) io.out(`  the engine stopped: ${outcome.error}`);
  if (action === 'rollback') {
    const rollback = outcome.rollback;
    const stop = rollback?.stoppedAt ?? rollback?.failure;
    if (stop) printFailure(io, stop, 'the rollback failed');
    if (rollback?.error) io.out(`  the engine stopped: ${rollback.error}`);
    if (rollback?.cancelledBy) io.out(`  cancelled by ${rollback.cancelledBy}`);
    if (rollback?.retryable) io.out('  retryable: nothing changed; roll back again when the blocking sessions are gone');
    if (rollback?.verification) io.out(`  rollback verification: ${rollback.verified ? 'passed' : `FAILED (${rollback.verification.failed.join(', ')})`}`);
    return;
  }
  const stop = outcome.stoppedAt ?? outcome.failure;
  if (stop) printFailure(io, stop, 'failed');
  if (outcome.cancelledBy) io.out(`  cancelled by ${outcome.cancelledBy}`);
  if (outcome.retryable) io.out('  retryable: nothing changed; retry under a new run when the blocking sessions are gone');
  if (outcome.verification) io.out(`  verification: ${outcome.verified ? 'passed' : `FAILED (${outcome.verification.failed.join(', ')})`}`);
  if (outcome.postExecution) {
    const post = outcome.postExecution;
    io.out(`  post-execution: ${post.passed ? 'passed' : `FAILED (${post.failed.join(', ')})`}${post.skipped.length ? `, skipped ${post.skipped.join(', ')}` : ''}`);
  }
}

export function printChecks(io: CliIo, results: CheckResult[]): void {
  for (const result of results) {
    io.out(`  ${result.skipped ? 'SKIP' : result.passed ? 'PASS' : 'FAIL'}  ${result.checkId}  ${result.title}  (${result.durationMs} ms)`);
    if (!result.passed && result.reason) io.out(`        ${result.reason}`);
  }
}

const RUN_USAGE = 'run <plan> --target T --as EMAIL [--confirm NAME]';
const runCommand: CliCommand = {
  name: 'run',
  summary: 'Execute a plan on a target in its open run (gates first); exit 0 applied and verified, 1 failed or refused, 3 lock held or target unreachable',
  usage: RUN_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { target: { type: 'string' }, as: { type: 'string' }, confirm: { type: 'string' } }, RUN_USAGE);
    const deps = needRuntime(runtime);
    const target = required(values, 'target', RUN_USAGE);
    const actor = await actorFor(deps, required(values, 'as', RUN_USAGE), 'execute', `${positionals[0]}@${target}`);
    {
      const run = await workingRun(deps, io, { planId: positionals[0]!, target, kind: 'execute', actor });
      requireTargetApi(deps, run, ['snapshot', 'verify', 'post']);
      const done = await executeRun(deps, { runId: run.id, actor, typedTargetName: values.confirm as string | undefined, ...drivePrinters(io) });
      printOutcome(io, done, 'apply');
      return exitCodeOfRun(done, 'apply');
    }
  },
};

const REHEARSE_USAGE = 'rehearse <plan> --target T --as EMAIL';
const rehearseCommand: CliCommand = {
  name: 'rehearse',
  summary: 'Rehearse a plan on a target in one transaction that is always rolled back; exit 0 rehearsed',
  usage: REHEARSE_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { target: { type: 'string' }, as: { type: 'string' } }, REHEARSE_USAGE);
    const deps = needRuntime(runtime);
    const target = required(values, 'target', REHEARSE_USAGE);
    const actor = await actorFor(deps, required(values, 'as', REHEARSE_USAGE), 'rehearse', `${positionals[0]}@${target}`);
    {
      const run = await workingRun(deps, io, { planId: positionals[0]!, target, kind: 'rehearsal', actor });
      const done = await rehearseRun(deps, { runId: run.id, actor, ...drivePrinters(io) });
      printOutcome(io, done, 'rehearse');
      return exitCodeOfRun(done, 'rehearse');
    }
  },
};

const ROLLBACK_USAGE = 'rollback <run-id | plan --target T> --as EMAIL [--confirm NAME]';
const rollbackCommand: CliCommand = {
  name: 'rollback',
  summary: "Roll back a run (by id, or a plan's latest applied run on a target); exit 0 rolled back and verified",
  usage: ROLLBACK_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { target: { type: 'string' }, as: { type: 'string' }, confirm: { type: 'string' } }, ROLLBACK_USAGE);
    const deps = needRuntime(runtime);
    const actor = await actorFor(deps, required(values, 'as', ROLLBACK_USAGE), 'rollback', positionals[0]!);
    {
      let runId = positionals[0]!;
      if (!UUID.test(runId)) {
        // The plan page's Roll back acts on the working run: so does this.
        const target = required(values, 'target', ROLLBACK_USAGE);
        const plan = await requireValidPlan(deps.plansDir, runId);
        const { working } = await workingRunFor(deps, { planId: plan.id, target, kind: 'execute', checksum: plan.checksum });
        if (!working || !mayRollBackFrom(working.state)) {
          throw new CliError(`No applied, failed or interrupted run of ${runId} on ${target} to roll back${working ? ` (its current run ${working.id} is ${working.state})` : ''}.`, EXIT.failed);
        }
        runId = working.id;
        io.out(`Rolling back run ${runId} (${working.state})`);
      }
      const toRollBack = await getRun(deps, runId);
      requireTargetApi(deps, toRollBack, ['rollback']);
      printRollbackPreview(io, await previewRollback(deps, toRollBack));
      const done = await rollbackRun(deps, { runId, actor, typedTargetName: values.confirm as string | undefined, ...drivePrinters(io) });
      printOutcome(io, done, 'rollback');
      return exitCodeOfRun(done, 'rollback');
    }
  },
};

/** What the rollback runs and removes: the same as the dashboard's confirmation dialog. */
export function printRollbackPreview(io: CliIo, preview: RollbackPreview): void {
  io.out(`The rollback of run ${preview.runId} on ${preview.target} runs:`);
  for (const step of preview.steps) {
    io.out(`  ${step.id} (${step.file}${step.transactional ? ', one transaction' : ', statement by statement'})`);
    for (const statement of step.statements) io.out(`    line ${statement.line}: ${statement.sql.replace(/\s+/g, ' ').trim()}`);
  }
  if (preview.removes.length > 0) io.out(`and removes: ${preview.removes.join('; ')}`);
  if (preview.keeps.length > 0) io.out(`keeping a copy (runsheet_backup on the target) of: ${preview.keeps.join('; ')}`);
  if (preview.confirmTargetName) io.out(`Target ${preview.target} asks for its name: --confirm ${preview.target}`);
}

const CANCEL_USAGE = 'cancel <run-id> --as EMAIL';
const cancelCommand: CliCommand = {
  name: 'cancel',
  summary: 'Cancel an applying, rolling back or rehearsing run (its transaction rolls back)',
  usage: CANCEL_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { as: { type: 'string' } }, CANCEL_USAGE);
    const deps = needRuntime(runtime);
    const actor = await actorFor(deps, required(values, 'as', CANCEL_USAGE), 'cancel', positionals[0]!);
    {
      io.out(`Run ${positionals[0]}: ${cancelRequestedMessage(await cancelRun(deps, { runId: positionals[0]!, actor }))}`);
      return EXIT.ok;
    }
  },
};

const TICK_USAGE = 'tick <plan> --target T --item ID [--untick] [--new-attempt] --as EMAIL';
const tickCommand: CliCommand = {
  name: 'tick',
  summary: "Tick (or --untick) a prerequisite in the plan's current run on a target (--new-attempt: in a new run after an interrupted or failed one)",
  usage: TICK_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { target: { type: 'string' }, item: { type: 'string' }, untick: { type: 'boolean' }, 'new-attempt': { type: 'boolean' }, as: { type: 'string' } }, TICK_USAGE);
    const deps = needRuntime(runtime);
    const target = required(values, 'target', TICK_USAGE);
    const item = required(values, 'item', TICK_USAGE);
    const actor = await actorFor(deps, required(values, 'as', TICK_USAGE), 'tick', `${positionals[0]}@${target}`);
    {
      const run = await workingRun(deps, io, { planId: positionals[0]!, target, kind: 'execute', actor, newAttempt: values['new-attempt'] === true });
      const tick = await tickPrerequisite(deps, { runId: run.id, itemId: item, ticked: values.untick !== true, actor });
      io.out(`${tick.ticked ? 'Ticked' : 'Unticked'} ${tick.itemId} as ${tick.by} at ${tick.at}.`);
      await printReadiness(deps, io, run.id);
      return EXIT.ok;
    }
  },
};

const CRITERION_USAGE = 'criterion <plan> --target T --number N [--untick] --as EMAIL';
const criterionCommand: CliCommand = {
  name: 'criterion',
  summary: "Tick (or --untick) a success criterion judged by hand (numbered as on the plan page) in the plan's current run on a target",
  usage: CRITERION_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { target: { type: 'string' }, number: { type: 'string' }, untick: { type: 'boolean' }, as: { type: 'string' } }, CRITERION_USAGE);
    const deps = needRuntime(runtime);
    const target = required(values, 'target', CRITERION_USAGE);
    const numberText = required(values, 'number', CRITERION_USAGE);
    if (!/^[1-9]\d*$/.test(numberText)) throw usageError(`--number is the criterion's number on the plan page (1, 2, …), not "${numberText}".\nUsage: npx runsheet ${CRITERION_USAGE}`);
    const actor = await actorFor(deps, required(values, 'as', CRITERION_USAGE), 'tick', `${positionals[0]}@${target}`);
    const plan = await requireValidPlan(deps.plansDir, positionals[0]!);
    const { working, previous } = await workingRunFor(deps, { planId: plan.id, target, kind: 'execute', checksum: plan.checksum });
    const run = working ?? previous;
    if (!run) throw new CliError(`No run of ${plan.id} on ${target} yet: success criteria are ticked in a run, after it executes.`, EXIT.failed);
    const event = await tickCriterion(deps, { runId: run.id, index: Number(numberText) - 1, ticked: values.untick !== true, actor });
    io.out(`${event.type === 'criterion.ticked' ? 'Ticked' : 'Unticked'} success criterion ${numberText} of run ${run.id} as ${event.actor} at ${event.at}.`);
    return EXIT.ok;
  },
};

const SIGN_OFF_USAGE = 'sign-off <plan> --target T --as EMAIL';
const signOffCommand: CliCommand = {
  name: 'sign-off',
  summary: "Sign off the plan's open run on a target (four-eyes: the executor must be someone else)",
  usage: SIGN_OFF_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { target: { type: 'string' }, as: { type: 'string' } }, SIGN_OFF_USAGE);
    const deps = needRuntime(runtime);
    const target = required(values, 'target', SIGN_OFF_USAGE);
    const actor = await actorFor(deps, required(values, 'as', SIGN_OFF_USAGE), 'sign-off', `${positionals[0]}@${target}`);
    {
      const run = await workingRun(deps, io, { planId: positionals[0]!, target, kind: 'execute', actor });
      await signOff(deps, { runId: run.id, actor });
      io.out(`Signed off by ${actor.email}.`);
      await printReadiness(deps, io, run.id);
      return EXIT.ok;
    }
  },
};

const PRECHECKS_USAGE = 'prechecks <plan> --target T --as EMAIL';
const prechecksCommand: CliCommand = {
  name: 'prechecks',
  summary: "Run the plan's pre-checks inside its open run on a target; exit 1 if any fails",
  usage: PRECHECKS_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { target: { type: 'string' }, as: { type: 'string' } }, PRECHECKS_USAGE);
    const deps = needRuntime(runtime);
    const target = required(values, 'target', PRECHECKS_USAGE);
    const actor = await actorFor(deps, required(values, 'as', PRECHECKS_USAGE), 'run-checks', `${positionals[0]}@${target}`);
    {
      const run = await workingRun(deps, io, { planId: positionals[0]!, target, kind: 'execute', actor });
      requireTargetApi(deps, run, ['pre']);
      const results = await runRunChecks(deps, { runId: run.id, phase: 'pre', actor });
      printChecks(io, results);
      await printReadiness(deps, io, run.id);
      return results.every((result) => result.passed || result.skipped) ? EXIT.ok : EXIT.failed;
    }
  },
};

const RUNS_USAGE = 'runs [--plan P] [--target T] [--json]';
const runsCommand: CliCommand = {
  name: 'runs',
  summary: 'List runs, newest first (rehearsals marked as such)',
  usage: RUNS_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values } = parse(args, { plan: { type: 'string' }, target: { type: 'string' }, json: { type: 'boolean' } }, RUNS_USAGE, [0, 0]);
    const deps = needRuntime(runtime);
    const runs = await findRuns(deps.store.pool, { planId: values.plan as string | undefined, target: values.target as string | undefined });
    if (values.json) {
      io.out(JSON.stringify(runs.map(({ frozenPlan: _frozen, ...run }) => run), null, 2));
      return EXIT.ok;
    }
    if (runs.length === 0) io.out('No runs.');
    for (const run of runs) {
      io.out(
        `${run.id}  ${run.kind === 'rehearsal' ? 'REHEARSAL ' : ''}${run.state.padEnd(16)} ${run.planId} on ${run.target}  ${run.planChecksum.slice(0, 12)}  created ${run.createdAt.toISOString()} by ${run.createdBy}${run.executedBy ? `, run by ${run.executedBy}` : ''}`,
      );
    }
    return EXIT.ok;
  },
};

const WAIVE_USAGE = 'waive <plan> --target T --rule R --file F --line N --reason "…" --as EMAIL';
const waiveCommand: CliCommand = {
  name: 'waive',
  summary: "Waive one lint finding for the plan's open run on a target (engineer; recorded with the reason in the run log, honoured by its lint-clean gate)",
  usage: WAIVE_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(
      args,
      { target: { type: 'string' }, rule: { type: 'string' }, file: { type: 'string' }, line: { type: 'string' }, reason: { type: 'string' }, as: { type: 'string' } },
      WAIVE_USAGE,
    );
    const deps = needRuntime(runtime);
    const target = required(values, 'target', WAIVE_USAGE);
    const rule = required(values, 'rule', WAIVE_USAGE);
    const file = required(values, 'file', WAIVE_USAGE);
    const lineText = required(values, 'line', WAIVE_USAGE);
    const reason = required(values, 'reason', WAIVE_USAGE);
    if (!/^\d+$/.test(lineText)) throw usageError(`--line is a line number, not "${lineText}".\nUsage: npx runsheet ${WAIVE_USAGE}`);
    const actor = await actorFor(deps, required(values, 'as', WAIVE_USAGE), 'execute', `${positionals[0]}@${target}`);
    {
      const run = await workingRun(deps, io, { planId: positionals[0]!, target, kind: 'execute', actor });
      const { waiver, event } = await waiveLintFinding(deps, { runId: run.id, finding: { file, line: Number(lineText), rule }, reason, actor });
      io.out(`${event ? 'Waived' : 'Already waived'} ${waiver.rule} at ${waiver.file}:${waiver.line} for run ${run.id} by ${waiver.by}: ${waiver.reason}`);
      await printReadiness(deps, io, run.id);
      return EXIT.ok;
    }
  },
};

const PAUSE_USAGE = 'pause <run-id> --as EMAIL [--reason "…"]';
const pauseCommand: CliCommand = {
  name: 'pause',
  summary: "Pause a run's batched backfill before its next batch (every batch so far stays committed)",
  usage: PAUSE_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { as: { type: 'string' }, reason: { type: 'string' } }, PAUSE_USAGE);
    const deps = needRuntime(runtime);
    const actor = await actorFor(deps, required(values, 'as', PAUSE_USAGE), 'cancel', positionals[0]!);
    {
      const { requested } = await pauseBackfill(deps, { runId: positionals[0]!, actor, reason: values.reason as string | undefined });
      io.out(requested ? `Pause requested for run ${positionals[0]}: its backfill stops before the next batch.` : `Run ${positionals[0]}'s backfill is already paused.`);
      return EXIT.ok;
    }
  },
};

const RESUME_USAGE = 'resume <run-id> --as EMAIL';
const resumeCommand: CliCommand = {
  name: 'resume',
  summary: "Resume a run's paused batched backfill from its last committed batch",
  usage: RESUME_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { as: { type: 'string' } }, RESUME_USAGE);
    const deps = needRuntime(runtime);
    const actor = await actorFor(deps, required(values, 'as', RESUME_USAGE), 'cancel', positionals[0]!);
    {
      const { requested } = await resumeBackfill(deps, { runId: positionals[0]!, actor });
      io.out(requested ? `Resume requested for run ${positionals[0]}.` : `Run ${positionals[0]}'s backfill is not paused.`);
      return EXIT.ok;
    }
  },
};

const RESTORE_USAGE = 'restore <run-id> --confirm TARGET --as EMAIL';
const restoreCommand: CliCommand = {
  name: 'restore',
  summary: "Put back what the plan's last rollback on the target kept (after a re-apply), by primary key; lists every row it skips (engineers)",
  usage: RESTORE_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { confirm: { type: 'string' }, as: { type: 'string' } }, RESTORE_USAGE);
    const deps = needRuntime(runtime);
    const runId = positionals[0]!;
    const actor = await actorFor(deps, required(values, 'as', RESTORE_USAGE), 'restore', runId);
    const result = await restoreRun(deps, { runId, actor, typedTargetName: values.confirm as string | undefined });
    io.out(`Restored from run ${result.fromRunId}:`);
    for (const object of result.objects) {
      io.out(`  ${object.backupTable}: ${object.restored} put back, ${object.unchanged} already equal, ${object.skipped} skipped (of ${object.rows})`);
    }
    for (const row of result.skipped) io.out(`  skipped ${JSON.stringify(row.key)}: ${row.reason}`);
    return result.skipped.length === 0 ? EXIT.ok : EXIT.failed;
  },
};

const BACKUPS_USAGE = 'backups --target T';
const backupsCommand: CliCommand = {
  name: 'backups',
  summary: "List the copies rollbacks kept on a target, marking those old enough to clean up (Runsheet never deletes one)",
  usage: BACKUPS_USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { values } = parse(args, { target: { type: 'string' } }, BACKUPS_USAGE, [0, 0]);
    const deps = needRuntime(runtime);
    const target = deps.targets.get(required(values, 'target', BACKUPS_USAGE));
    const after = target.rules.backup_cleanup_after ?? DEFAULT_BACKUP_CLEANUP_AFTER_MS;
    const backups = await listBackups(deps.targets.pool(target.name));
    if (backups.length === 0) io.out(`No rollback backups on ${target.name}.`);
    for (const backup of backups) {
      const old = backup.ageMs > after ? `  older than ${formatSpan(after)}: may be cleaned up (drop it by hand)` : '';
      io.out(`${backup.backupTable}  run ${backup.runId}  ${backup.planId}  ${backup.rows} rows  ${backup.bytes} bytes  taken ${backup.takenAt}  restored ${backup.restores}×${old}`);
    }
    return EXIT.ok;
  },
};

const WATCH_USAGE = 'watch <run-id> [--end --note "…" | --extend 12h [--note "…"]] [--as EMAIL]';
const watchCommand: CliCommand = {
  name: 'watch',
  summary: "Run a run's watch window here (or follow the process that runs it), printing its results until it ends; --end or --extend it (TPM)",
  usage: WATCH_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { end: { type: 'boolean' }, extend: { type: 'string' }, note: { type: 'string' }, as: { type: 'string' } }, WATCH_USAGE);
    const deps = needRuntime(runtime);
    const runId = positionals[0]!;
    if (values.end === true || values.extend !== undefined) {
      if (values.end === true && values.extend !== undefined) throw usageError(`Give --end or --extend, not both.\nUsage: npx runsheet ${WATCH_USAGE}`);
      const actor = await actorFor(deps, required(values, 'as', WATCH_USAGE), 'end-watch', runId);
      if (values.end === true) {
        const run = await endWatch(deps, { runId, actor, note: required(values, 'note', WATCH_USAGE) });
        io.out(`Ended the watch of run ${runId} early: the run is ${run.state}.`);
        return EXIT.ok;
      }
      const by = DurationSchema.safeParse(values.extend);
      if (!by.success) throw usageError(`--extend takes a duration such as "12h" or "30m", not "${String(values.extend)}".\nUsage: npx runsheet ${WATCH_USAGE}`);
      const run = await extendWatch(deps, { runId, actor, byMs: by.data, ...(typeof values.note === 'string' ? { note: values.note } : {}) });
      io.out(`Extended the watch of run ${runId} by ${formatSpan(by.data)}: it now ends ${run.outcome?.watch?.endsAt ?? '?'}.`);
      return EXIT.ok;
    }
    if (values.as !== undefined) await actorFor(deps, required(values, 'as', WATCH_USAGE), 'view', runId);
    const run = await followWatch(deps, { runId, staleAfterMs: deps.env.RUNSHEET_WATCH_STALE_AFTER, onEvent: (event) => io.out(watchLine(event)) });
    return run.state === 'watched' ? EXIT.ok : EXIT.failed;
  },
};

/** One line per thing a watch did, as `runsheet watch` prints it. */
export function watchLine(event: FollowedWatchEvent): string {
  switch (event.type) {
    case 'watch.follow':
      return `The watch is run by ${event.runner}: following its results (this process takes over if that one stops).`;
    case 'watch.unchanged':
      return `Round ${event.round}: unchanged.`;
    case 'watch.started':
      return `Watch: ${event.payload.checks.join(', ')} every ${formatSpan(event.payload.everyMs)} until ${event.payload.endsAt}.`;
    case 'watch.runner':
      return `Runner ${event.payload.runner}: ${event.payload.reason}.`;
    case 'watch.round': {
      const changed = event.payload.results.map((result) => `${result.checkId} ${result.skipped ? 'skipped' : result.passed ? 'passed' : 'FAILED'}`).join(', ');
      const quiet = event.payload.unchangedRounds > 0 ? ` (after ${event.payload.unchangedRounds} unchanged round(s))` : '';
      if (event.payload.unreachable) return `Round ${event.payload.round}${quiet}: no check ran, no alarm: ${event.payload.unreachable}.`;
      return `Round ${event.payload.round}${quiet}: ${event.payload.passed ? 'all passed' : `failing: ${event.payload.failed.join(', ')}`}; changed: ${changed || 'nothing'}.`;
    }
    case 'watch.alarm':
      return `ALARM round ${event.payload.round}: ${event.payload.checkId} (${event.payload.title}) expected ${JSON.stringify(event.payload.expected)}, found ${JSON.stringify(event.payload.actual)}${event.payload.reason ? ` (${event.payload.reason})` : ''}; last passed ${event.payload.lastPassedAt ?? 'not since the watch began'}.`;
    case 'watch.extended':
      return `Extended to ${event.payload.endsAt}${event.payload.note ? `: ${event.payload.note}` : ''}.`;
    case 'watch.ended':
      return `Watch ended (${event.payload.reason.replace('_', ' ')}): ${event.payload.clean ? 'clean' : `${event.payload.alarms} alarm(s)`}, ${event.payload.rounds} round(s)${event.payload.note ? `; note: ${event.payload.note}` : ''}.`;
    case 'state.changed':
      return `Run: ${event.payload.from} → ${event.payload.to} (${event.payload.reason}).`;
    default:
      return `${event.type}`;
  }
}

export const runCommands: CliCommand[] = [
  runCommand,
  rehearseCommand,
  rollbackCommand,
  cancelCommand,
  watchCommand,
  restoreCommand,
  backupsCommand,
  pauseCommand,
  resumeCommand,
  tickCommand,
  criterionCommand,
  signOffCommand,
  prechecksCommand,
  waiveCommand,
  runsCommand,
];
