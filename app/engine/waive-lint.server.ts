/**
 * Waiving a lint finding for one run (see lint-waivers.server.ts): the engine action behind the
 * dashboard's waive button and `runsheet waive`.
 */
import { loadPlan } from '../plans/load-plans.server';
import { blocksLintGate } from '../plans/lint-plan.server';
import { appendRunEvent, assertRunId, readRunEvents, type LoggedRunEvent } from '../runs/run-log.server';
import { checkpointRun } from './checkpoints.server';
import { type EngineActor, type EngineDeps, whoOf } from './engine-deps.server';
import { thawPlan } from './frozen-plan.server';
import { findingMatches, lintWaiversFromEvents, waiverFor, type FindingRef, type LintWaiver } from './lint-waivers.server';
import { authorize, getRun, refreshReadiness } from './runs.server';
import { isPreparingState } from '../../db/run-lifecycle';
import { RunsheetError } from '../runtime/errors';

const MIN_REASON_LENGTH = 10;
const MAX_REASON_LENGTH = 2_000;

/**
 * Waives one finding of the run's plan for this run: an engineer (the 'execute' permission),
 * before the run executes (draft or ready), with a reason of at least 10 characters. The finding
 * must be one the plan's lint reports now and one the lint-clean gate counts (a waiver of
 * anything else would say nothing). Waiving a finding already waived in the run returns that
 * waiver. Refusals are logged in the run log.
 */
export async function waiveLintFinding(
  deps: EngineDeps,
  input: { runId: string; finding: FindingRef; reason: string; actor: EngineActor },
): Promise<{ waiver: LintWaiver; event?: LoggedRunEvent }> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: 'execute', runId });
  const run = await getRun(deps, runId);
  const refuse = async <E extends Error>(error: E): Promise<E> => {
    await appendRunEvent(deps.store.pool, { runId, ...whoOf(actor), type: 'action.refused', payload: { action: 'lint.waived', reason: error.message, finding: { ...input.finding } } }).catch(() => {});
    return error;
  };
  if (run.kind !== 'execute') throw await refuse(new RunsheetError('state', `Refused: run ${runId} is a rehearsal; lint waivers belong to the execute run whose gate they open.`));
  if (!isPreparingState(run.state)) {
    throw await refuse(new RunsheetError('state', `Refused: run ${runId} is ${run.state}; a finding is waived before the run executes (draft or ready).`));
  }
  const reason = input.reason.trim();
  if (reason.length < MIN_REASON_LENGTH) {
    throw await refuse(new RunsheetError('invalid_input', `A waiver needs a reason of at least ${MIN_REASON_LENGTH} characters: say why this finding is safe on this target.`));
  }
  if (reason.length > MAX_REASON_LENGTH) throw await refuse(new RunsheetError('invalid_input', `A reason is at most ${MAX_REASON_LENGTH} characters.`));
  const ref: FindingRef = { file: input.finding.file.trim(), line: Number(input.finding.line), rule: input.finding.rule.trim() };
  if (!Number.isInteger(ref.line) || ref.line < 0 || ref.file === '' || ref.rule === '') {
    throw await refuse(new RunsheetError('invalid_input', 'Name the finding by its file, line (a whole number) and rule.'));
  }

  // The findings are the plan's lint as it is on disk, which must still be the run's plan.
  const loaded = await loadPlan(deps.plansDir, run.planId);
  if (!loaded || !loaded.ok) throw await refuse(new RunsheetError('state', `Refused: plan ${run.planId} cannot be loaded now, so its findings cannot be read.`));
  if (loaded.checksum !== run.planChecksum) {
    throw await refuse(new RunsheetError('state', `Refused: the plan changed on disk since run ${runId} was opened (now ${loaded.checksum.slice(0, 12)}, run ${run.planChecksum.slice(0, 12)}): open a new run.`));
  }
  const plan = thawPlan(run.frozenPlan).plan;
  const matching = loaded.lint.filter((finding) => findingMatches(finding, ref));
  if (matching.length === 0) {
    const known = loaded.lint.map((finding) => `${finding.file}:${finding.line} ${finding.rule}`);
    throw await refuse(new RunsheetError('invalid_input', `The plan has no finding ${ref.rule} at ${ref.file}:${ref.line}. Its findings: ${known.length > 0 ? known.join('; ') : '(none)'}.`));
  }
  const finding = matching.find((candidate) => blocksLintGate(candidate, plan.lint_gate));
  if (!finding) {
    throw await refuse(
      new RunsheetError('invalid_input', `${ref.rule} at ${ref.file}:${ref.line} does not keep the lint-clean gate closed (plan lint_gate: ${plan.lint_gate}): there is nothing to waive.`),
    );
  }
  const events = await readRunEvents(deps.store.pool, runId);
  const existing = waiverFor(finding, lintWaiversFromEvents(events, run.planChecksum));
  if (existing) return { waiver: existing };

  const event = await appendRunEvent(deps.store.pool, {
    runId,
    ...whoOf(actor),
    type: 'lint.waived',
    payload: {
      planId: run.planId,
      checksum: run.planChecksum,
      file: finding.file,
      line: finding.line,
      rule: finding.rule,
      level: finding.level,
      message: finding.message,
      reason,
    },
  });
  await refreshReadiness(deps, runId);
  await checkpointRun(deps, runId, 'delta');
  const [waiver] = lintWaiversFromEvents([event], run.planChecksum);
  return { waiver: waiver!, event };
}
