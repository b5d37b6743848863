/**
 * The go/no-go gates of a run. Each gate is judged from what is stored and read live (the run
 * log, the run's check results, the plan on disk, the target's ledger, the other runs), never
 * from a flag someone set. A refusal names every open gate.
 */
import { ACTIVE_RUN_STATES, APPLIED_STATES, type RunKind } from '../../db/run-lifecycle';
import { latestRunPhaseResults } from '../checks/run-checks.server';
import { loadPlan } from '../plans/load-plans.server';
import type { Plan } from '../plans/plan-schema';
import { eventsOf, type RunEvent, type RunEventType } from '../runs/run-events';
import { readRunEvents } from '../runs/run-log.server';
import { findRunSummaries, type RunRecord } from '../runs/run-store.server';
import { readPlanLedgerState } from '../targets/ledger.server';
import type { EngineDeps, Gate } from './engine-deps.server';
import { unknownTargetError } from '../targets/target-registry.server';
import type { Target } from '../targets/targets.server';
import { thawPlan } from './frozen-plan.server';
import { gateFindings, lintWaiversFromEvents } from './lint-waivers.server';
import { decideResume, prechecksSkippedBy, resumeGate } from './resume.server';

export interface PrerequisiteTick {
  itemId: string;
  ticked: boolean;
  by: string;
  role: string | null;
  /** Database clock, from the run log. */
  at: string;
}

/** Ticks are replayed from the run log: the newest tick or untick of each item wins. */
/** The events a run's preparation is read from (ticks, criteria, sign-offs, waivers, notes): what the gates and the plan page need, not a backfill's thousands of statements. */
export const PREPARATION_EVENT_TYPES = [
  'prerequisite.ticked',
  'prerequisite.unticked',
  'criterion.ticked',
  'criterion.unticked',
  'signoff',
  'lint.waived',
  'note.added',
] as const satisfies readonly RunEventType[];

export function ticksFromEvents(events: readonly RunEvent[]): Map<string, PrerequisiteTick> {
  const ticks = new Map<string, PrerequisiteTick>();
  for (const event of eventsOf(events, 'prerequisite.ticked', 'prerequisite.unticked')) {
    const { itemId } = event.payload;
    ticks.set(itemId, { itemId, ticked: event.type === 'prerequisite.ticked', by: event.actor, role: event.role, at: event.at });
  }
  return ticks;
}

/** Success criteria ticked by hand, replayed the same way, by their index in the plan. */
export function criteriaTicksFromEvents(events: readonly RunEvent[]): Map<number, { ticked: boolean; by: string; at: string }> {
  const ticks = new Map<number, { ticked: boolean; by: string; at: string }>();
  for (const event of eventsOf(events, 'criterion.ticked', 'criterion.unticked')) ticks.set(event.payload.index, { ticked: event.type === 'criterion.ticked', by: event.actor, at: event.at });
  return ticks;
}

/** Everyone who signed off the run, from its log (the runs row keeps only the latest). */
export function signoffsFromEvents(events: readonly RunEvent[]): { by: string; role: string | null; at: string }[] {
  return eventsOf(events, 'signoff').map((event) => ({ by: event.actor, role: event.role, at: event.at }));
}

export interface GateOptions {
  /** Who would execute: four-eyes needs a sign-off by someone else. Unset: judged as "signed off by anyone". */
  executor?: string;
  /** What the executor typed as the target's name (confirm_target_name). */
  typedTargetName?: string;
  /** The run's events, when the caller has read them already. */
  events?: RunEvent[];
}

export type PrecheckRow = Awaited<ReturnType<typeof latestRunPhaseResults>>[number];

export async function evaluateGates(deps: EngineDeps, run: RunRecord, options: GateOptions = {}): Promise<Gate[]> {
  const events = options.events ?? (await readRunEvents(deps.store.pool, run.id, { types: PREPARATION_EVENT_TYPES }));
  const { plan } = thawPlan(run.frozenPlan);
  const current = await loadPlan(deps.plansDir, run.planId).catch((error: Error) => error);
  const gates: Gate[] = [];

  // The plan on disk is still the one this run froze.
  let diskChecksum: string | undefined;
  let diskProblem: string | undefined;
  if (current instanceof Error) diskProblem = `the plan cannot be read: ${current.message}`;
  else if (!current) diskProblem = `plan ${run.planId} no longer exists under the plans folder`;
  else if (!current.ok) diskProblem = `the plan on disk is not valid now (${current.errors.length} error(s), first: ${current.errors[0]?.message})`;
  else diskChecksum = current.checksum;

  const precheckRows = run.kind === 'execute' ? await latestRunPhaseResults(deps.store.db, { runId: run.id, phase: 'pre' }) : [];
  const checksumDetail = (): { passed: boolean; detail: string } => {
    if (diskProblem) return { passed: false, detail: diskProblem };
    if (diskChecksum !== run.planChecksum) {
      return { passed: false, detail: `the plan changed on disk since this run was opened (now ${diskChecksum!.slice(0, 12)}, run ${run.planChecksum.slice(0, 12)}): open a new run` };
    }
    const stale = precheckRows.filter((row) => row.planChecksum !== run.planChecksum).map((row) => row.checkId);
    if (stale.length > 0) return { passed: false, detail: `pre-checks ${stale.join(', ')} ran under another checksum: run them again` };
    return { passed: true, detail: `the plan on disk is the frozen plan (${run.planChecksum.slice(0, 12)})` };
  };
  gates.push({ id: 'checksum', label: 'Plan unchanged since the run was opened', ...checksumDetail() });

  gates.push(await targetFreeGate(deps, run));
  gates.push(...planGates(plan, run.kind));
  if (run.kind === 'rehearsal') return gates;

  // A resumable plan: where the apply starts, and the pre-checks a resumed run skips (docs/decisions/027).
  const resume = plan.resumable ? await decideResume(deps, run) : undefined;
  gates.push(prerequisitesGate(plan, events));
  gates.push(prechecksGate(plan, precheckRows, resume ? prechecksSkippedBy(resume) : new Set()));
  const resumeLine = resume ? resumeGate(resume) : undefined;
  if (resumeLine) gates.push(resumeLine);

  const target = deps.targets.find(run.target);
  if (!target) {
    gates.push({ id: 'target', label: `Target ${run.target} is configured`, passed: false, detail: unknownTargetError(run.target, deps.targets.list().map((known) => known.name)).message });
    return gates;
  }
  gates.push(await ledgerGate(deps, run, plan));

  if (target.rules.require_signoff) {
    const signers = signoffsFromEvents(events);
    const others = options.executor ? signers.filter((signer) => signer.by !== options.executor) : signers;
    gates.push({
      id: 'signoff',
      label: 'Signed off by a person other than the executor (four-eyes)',
      passed: others.length > 0,
      detail:
        others.length > 0
          ? `signed off by ${others.map((signer) => signer.by).join(', ')}${options.executor ? '' : ' (the executor must be someone else)'}`
          : signers.length > 0
            ? `signed off only by ${signers.map((signer) => signer.by).join(', ')}, who cannot also execute: another person must sign off`
            : 'nobody has signed off yet',
    });
  }
  for (const other of target.rules.require_applied_on) gates.push(await appliedOnGate(deps, run, other));
  for (const other of target.rules.require_watched_on) gates.push(await watchedOnGate(deps, run, other));
  const confirm = confirmTargetNameGate(target, options.typedTargetName, 'executing');
  if (confirm) gates.push(confirm);
  if (target.rules.require_lint_clean) {
    // Which findings count is the plan's lint_gate (errors, or strict); each is passed only by a waiver in this run.
    const counted = current && !(current instanceof Error) && current.ok ? gateFindings(plan, current.lint, lintWaiversFromEvents(events, run.planChecksum)) : undefined;
    const open = counted?.filter((entry) => !entry.waiver) ?? [];
    const waived = counted?.filter((entry) => entry.waiver) ?? [];
    const name = (entry: { finding: { file: string; line: number; rule: string } }) => `${entry.finding.file}:${entry.finding.line} ${entry.finding.rule}`;
    gates.push({
      id: 'lint-clean',
      label: plan.lint_gate === 'strict' ? 'No squawk finding about locks or rewrites, unless waived (strict)' : 'No squawk finding of level error, unless waived',
      passed: counted !== undefined && open.length === 0,
      detail:
        counted === undefined
          ? 'the plan could not be linted'
          : [
              open.length === 0 ? (waived.length === 0 ? `no finding the gate counts (lint_gate: ${plan.lint_gate})` : 'every finding the gate counts is waived') : `not waived: ${open.map(name).join('; ')}`,
              ...(waived.length > 0 ? [`waived: ${waived.map((entry) => `${name(entry)} by ${entry.waiver!.by} (${entry.waiver!.reason})`).join('; ')}`] : []),
            ].join('; '),
    });
  }
  return gates;
}

/** On a target with confirm_target_name, the person acting (executing or rolling back) types its name; undefined where not required. */
export function confirmTargetNameGate(target: Pick<Target, 'name' | 'rules'>, typed: string | undefined, acting: 'executing' | 'rolling back'): Gate | undefined {
  if (!target.rules.confirm_target_name) return undefined;
  return {
    id: 'confirm-target-name',
    label: `The ${acting === 'executing' ? 'executor' : 'engineer rolling back'} typed the target's name (${target.name})`,
    passed: typed === target.name,
    atExecute: true,
    detail: typed === undefined ? `type "${target.name}" when ${acting}` : typed === target.name ? 'typed' : `typed "${typed}", not "${target.name}"`,
  };
}

/**
 * The gates judged from the plan alone, so they are judged before a run is opened as well as on
 * it: a rehearsal the plan cannot take is refused without leaving a run behind.
 */
export function planGates(plan: Plan, kind: RunKind): Gate[] {
  const gates = [reviewGate(plan)];
  if (kind === 'rehearsal') gates.push(transactionalStepsGate(plan));
  return gates;
}

function reviewGate(plan: Plan): Gate {
  const pending = plan.review === 'pending';
  return {
    id: 'review',
    label: 'The plan is not under review',
    passed: !pending,
    detail: pending
      ? 'plan.yaml says review: pending (an imported or new plan): an engineer resolves its IMPORT.md, then removes the key'
      : 'no review pending',
  };
}

function transactionalStepsGate(plan: Plan): Gate {
  const nonTransactional = [...plan.apply, ...plan.rollback.steps].filter((step) => !step.transactional).map((step) => step.id);
  return {
    id: 'transactional-steps',
    label: 'Every step is transactional (a rehearsal rolls everything back)',
    passed: nonTransactional.length === 0,
    detail:
      nonTransactional.length === 0
        ? "every apply and rollback step runs in the rehearsal's transaction"
        : `the plan cannot be rehearsed: step(s) ${nonTransactional.join(', ')} are not transactional, so their statements would commit and could not be rolled back`,
  };
}

export const openGates = (gates: readonly Gate[], options: { includeAtExecute?: boolean } = {}): Gate[] =>
  gates.filter((gate) => !gate.passed && (options.includeAtExecute !== false || !gate.atExecute));

export function prerequisitesGate(plan: Plan, events: readonly RunEvent[]): Gate {
  const ticks = ticksFromEvents(events);
  const missing = plan.prerequisites.filter((item) => item.required && !ticks.get(item.id)?.ticked).map((item) => item.id);
  return {
    id: 'prerequisites',
    label: 'Every required prerequisite ticked',
    passed: missing.length === 0,
    detail: missing.length === 0 ? 'all ticked' : `not ticked: ${missing.join(', ')}`,
  };
}

/**
 * Every pre-check passed in this run, recently; those a resumed run skips (unless_resuming) are
 * left out, and one of them skipped while the run would have resumed counts as not run when it no
 * longer does.
 */
export function prechecksGate(plan: Plan, rows: readonly PrecheckRow[], skippedByResume: ReadonlySet<string>): Gate {
  const byId = new Map(rows.map((row) => [row.checkId, row]));
  const problems: string[] = [];
  const judged = plan.prechecks.filter((check) => !skippedByResume.has(check.id));
  const notRun = judged.filter((check) => !byId.has(check.id) || (check.unless_resuming === true && byId.get(check.id)!.skipped)).map((check) => check.id);
  if (notRun.length > 0) problems.push(`not run in this run: ${notRun.join(', ')}`);
  const failed = judged.filter((check) => byId.get(check.id) && !byId.get(check.id)!.passed && !byId.get(check.id)!.skipped).map((check) => check.id);
  if (failed.length > 0) problems.push(`failed: ${failed.join(', ')}`);
  const freshness = plan.precheck_freshness;
  const stale = judged.filter((check) => (byId.get(check.id)?.ageMs ?? 0) > freshness).map((check) => check.id);
  if (stale.length > 0) problems.push(`older than ${Math.round(freshness / 60_000)} min: ${stale.join(', ')} (run the pre-checks again)`);
  const skipped = skippedByResume.size > 0 ? `; skipped because the run resumes (unless_resuming): ${[...skippedByResume].join(', ')}` : '';
  return {
    id: 'prechecks',
    label: `Every pre-check passed in this run within ${Math.round(freshness / 60_000)} min`,
    passed: problems.length === 0,
    detail: problems.length === 0 ? (plan.prechecks.length === 0 ? 'the plan has no pre-checks' : `${judged.length} passed${skipped}`) : `${problems.join('; ')}${skipped}`,
  };
}

async function targetFreeGate(deps: EngineDeps, run: RunRecord): Promise<Gate> {
  const rows = await findRunSummaries(deps.store.pool, { target: run.target, states: ACTIVE_RUN_STATES, exceptId: run.id });
  return {
    id: 'target-free',
    label: `No other run is applying, rolling back or rehearsing on ${run.target}`,
    passed: rows.length === 0,
    detail: rows.length === 0 ? 'the target is free' : rows.map((row) => `run ${row.id} is ${row.state}${row.executedBy ? ` (by ${row.executedBy})` : ''}`).join('; '),
  };
}

async function ledgerGate(deps: EngineDeps, run: RunRecord, plan: Plan): Promise<Gate> {
  const label = `The target's ledger does not already record this checksum as applied`;
  try {
    // A row of an equivalent plan (either side of equivalent_to) counts: the same change is not made twice.
    const ledger = await readPlanLedgerState(deps.targets.pool(run.target), run.planId, { equivalentTo: plan.equivalent_to });
    const decisive = ledger.history.find((entry) => entry.outcome !== 'partial');
    if (decisive && decisive.outcome === 'applied') {
      if (decisive.checksum === run.planChecksum) {
        return { id: 'ledger', label, passed: false, detail: `already applied on ${run.target} by run ${decisive.runId} (${decisive.by}, ${decisive.at}) at this checksum` };
      }
      if (decisive.planId !== run.planId) {
        return { id: 'ledger', label, passed: false, detail: `applied on ${run.target} by the equivalent plan ${decisive.planId} (run ${decisive.runId}, ${decisive.at})` };
      }
    }
    return { id: 'ledger', label, passed: true, detail: ledger.ledgerPresent ? `ledger state: ${ledger.state}` : 'no ledger on the target yet' };
  } catch (error) {
    return { id: 'ledger', label, passed: false, detail: `cannot read the ledger of ${run.target}: ${(error as Error).message}` };
  }
}

async function appliedOnGate(deps: EngineDeps, run: RunRecord, other: string): Promise<Gate> {
  const id = `applied-on:${other}`;
  const label = `The same checksum applied and verified on ${other} first`;
  let ledgerApplied = false;
  let ledgerDetail: string;
  try {
    const ledger = await readPlanLedgerState(deps.targets.pool(other), run.planId);
    const decisive = ledger.history.find((entry) => entry.outcome !== 'partial');
    ledgerApplied = decisive?.outcome === 'applied' && decisive.checksum === run.planChecksum;
    ledgerDetail = ledgerApplied ? `the ledger of ${other} records it applied (run ${decisive!.runId})` : `the ledger of ${other} does not record checksum ${run.planChecksum.slice(0, 12)} as applied`;
  } catch (error) {
    ledgerDetail = `cannot read the ledger of ${other}: ${(error as Error).message}`;
  }
  // Watching, watched or in a watch alarm: the apply still stands (a rollback would have left these states).
  const [verified] = await findRunSummaries(deps.store.pool, { target: other, checksum: run.planChecksum, kind: 'execute', states: APPLIED_STATES, verified: true, limit: 1 });
  const verifiedRun = verified?.id;
  const passed = ledgerApplied && verifiedRun !== undefined;
  return {
    id,
    label,
    passed,
    detail: passed
      ? `${ledgerDetail}; run ${verifiedRun} verified it`
      : [ledgerDetail, verifiedRun ? `run ${verifiedRun} verified it` : `no run on ${other} applied and verified this checksum`].join('; '),
  };
}

/**
 * require_watched_on: the same checksum went through a clean watch window on `other` first: a run
 * there ended `watched` because its window closed with no regression (a watch ended early by a
 * person does not count: its window never closed).
 */
async function watchedOnGate(deps: EngineDeps, run: RunRecord, other: string): Promise<Gate> {
  const runs = await findRunSummaries(deps.store.pool, { target: other, checksum: run.planChecksum, kind: 'execute', states: ['watched'], verified: true, limit: 20 });
  const closed = runs.find((candidate) => candidate.outcome?.watch?.endedBy === 'window_closed');
  const early = runs.find((candidate) => candidate.outcome?.watch?.endedBy === 'ended_early');
  return {
    id: `watched-on:${other}`,
    label: `The same checksum watched on ${other} through a clean window first`,
    passed: closed !== undefined,
    detail: closed
      ? `run ${closed.id} on ${other} closed its watch window clean (${closed.outcome?.watch?.rounds ?? 0} rounds)`
      : early
        ? `run ${early.id} on ${other} had its watch ended early by a person: its window never closed; watch a run there to the end`
        : `no run on ${other} closed a watch window clean at checksum ${run.planChecksum.slice(0, 12)}`,
  };
}
