import os from 'node:os';
import { parseArgs } from 'node:util';
import { requireValidPlan, runPlanChecks } from '../../app/checks/plan-checks.server';
import { requireTargetApiForPlan } from '../target-api';
import type { CheckResult } from '../../app/checks/run-checks.server';
import { CHECK_PHASES, type CheckPhase } from '../../app/plans/plan-schema';
import type { CliCommand } from '../command';
import { CliError, EXIT, usageError } from '../exit-codes';

const USAGE = `check <plan> [--target sandbox] [--phase ${CHECK_PHASES.join('|')}] [--json]`;

export const checkCommand: CliCommand = {
  name: 'check',
  summary: "Run a plan's checks of one phase server-side against a target; exit 1 if any fails.",
  usage: USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parseCheckArgs(args);
    const phase = values.phase as CheckPhase;
    {
      const plan = await requireValidPlan(runtime!.plansDir, positionals[0]!);
      requireTargetApiForPlan(runtime!, { targetName: values.target!, planId: plan.id, plan: plan.plan }, [phase]);
      const outcome = await runPlanChecks(runtime!, {
        planId: positionals[0]!,
        targetName: values.target!,
        phase,
        ranBy: `cli:${os.userInfo().username}`,
      });
      const failed = outcome.results.filter((result) => !result.passed && !result.skipped);
      if (values.json) {
        io.out(
          JSON.stringify(
            { plan: outcome.plan.id, checksum: outcome.plan.checksum, target: outcome.target.name, phase, passed: failed.length === 0, results: outcome.results },
            null,
            2,
          ),
        );
      } else {
        io.out(`${outcome.plan.id} on ${outcome.target.name}, phase ${phase} (checksum ${outcome.plan.checksum.slice(0, 12)})`);
        for (const result of outcome.results) io.out(formatResult(result));
        const skipped = outcome.results.filter((result) => result.skipped).length;
        io.out(`${outcome.results.length - failed.length - skipped} passed, ${failed.length} failed${skipped ? `, ${skipped} skipped` : ''}`);
      }
      return failed.length === 0 ? EXIT.ok : EXIT.failed;
    }
  },
};

export function parseCheckArgs(args: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        target: { type: 'string', default: 'sandbox' },
        phase: { type: 'string', default: 'pre' },
        json: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    throw usageError(`${(error as Error).message}\nUsage: npx runsheet ${USAGE}`);
  }
  if (parsed.positionals.length !== 1) throw usageError(`Name one plan.\nUsage: npx runsheet ${USAGE}`);
  if (!(CHECK_PHASES as readonly string[]).includes(parsed.values.phase!)) {
    throw usageError(`Unknown phase "${parsed.values.phase}": use one of ${CHECK_PHASES.join(', ')}.`);
  }
  return parsed;
}

export function formatResult(result: CheckResult): string {
  const mark = result.skipped ? 'SKIP' : result.passed ? 'PASS' : 'FAIL';
  const lines = [`  ${mark}  ${result.checkId}  ${result.title}  (${result.durationMs} ms)`];
  if (!result.passed || result.skipped) {
    if (result.reason) lines.push(`        ${result.reason}`);
    if (result.error?.sqlstate) lines.push(`        SQLSTATE ${result.error.sqlstate}: ${result.error.message}`);
  }
  if (result.expected.type === 'record') lines.push(`        ${JSON.stringify(result.actual)}`);
  // An object check's result is its words: what it found (the reason above adds what it expected).
  if (result.expected.type === 'object' && result.passed && typeof result.actual === 'string') lines.push(`        ${result.actual}`);
  return lines.join('\n');
}
