/**
 * Waivers of lint findings: an engineer accepts one squawk finding of the plan, for one run, with
 * a reason. The waiver is a 'lint.waived' event in that run's log (who, role and when come with
 * the event; the payload names the plan, its checksum, the file, line and rule, and why), and the
 * lint-clean gate of that run honours it. Nothing else does: another run of the same plan needs
 * its own waiver, and a changed plan (another checksum) is another run anyway. The waiving
 * itself is waiveLintFinding (waive-lint.server.ts); this module only reads.
 */
import { blocksLintGate, type LintFinding } from '../plans/lint-plan.server';
import type { Plan } from '../plans/plan-schema';
import { eventsOf, type RunEvent } from '../runs/run-events';

/** Which finding: its file (as findings name it, "plans/<id>/<file>", or relative to the plan folder), line and rule. */
export interface FindingRef {
  file: string;
  line: number;
  rule: string;
}

export interface LintWaiver extends FindingRef {
  planId: string;
  checksum: string;
  reason: string;
  by: string;
  role: string | null;
  /** Database clock. */
  at: string;
  seq: number;
}

/** The waivers of a run's log that apply to `checksum` (the run's). */
export function lintWaiversFromEvents(events: readonly RunEvent[], checksum: string): LintWaiver[] {
  return eventsOf(events, 'lint.waived')
    .filter((event) => event.payload.checksum === checksum)
    .map((event) => ({
      planId: event.payload.planId,
      checksum: event.payload.checksum,
      file: event.payload.file,
      line: event.payload.line,
      rule: event.payload.rule,
      reason: event.payload.reason,
      by: event.actor,
      role: event.role,
      at: event.at,
      seq: event.seq,
    }));
}

/** The finding a reference names: the file may be given as findings name it or relative to the plan folder. */
export function findingMatches(finding: Pick<LintFinding, 'file' | 'line' | 'rule'>, ref: FindingRef): boolean {
  return finding.rule === ref.rule && finding.line === ref.line && (finding.file === ref.file || finding.file.endsWith(`/${ref.file.replace(/^\.\//, '')}`));
}

/** The waiver (if any) that covers a finding. */
export function waiverFor(finding: LintFinding, waivers: readonly LintWaiver[]): LintWaiver | undefined {
  return waivers.find((waiver) => finding.rule === waiver.rule && finding.line === waiver.line && finding.file === waiver.file);
}

/** The findings that keep a lint-clean gate closed for this plan, each with its waiver when it has one. */
export function gateFindings(plan: Plan, lint: readonly LintFinding[], waivers: readonly LintWaiver[]): { finding: LintFinding; waiver?: LintWaiver }[] {
  return lint.filter((finding) => blocksLintGate(finding, plan.lint_gate)).map((finding) => {
    const waiver = waiverFor(finding, waivers);
    return waiver ? { finding, waiver } : { finding };
  });
}

