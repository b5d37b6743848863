import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { LintFinding } from '../../app/plans/lint-plan.server';
import { loadPlans, type LoadedPlan } from '../../app/plans/load-plans.server';
import { formatPlanError } from '../../app/plans/plan-error';
import { readEnv } from '../../app/runtime/env.server';
import type { CliCommand } from '../command';
import { EXIT, usageError } from '../exit-codes';

const USAGE = 'plans [--plans-dir <dir>] [--json]';

export const plansCommand: CliCommand = {
  name: 'plans',
  summary: 'List and validate every plan: checksum, errors (file, path, what to do), lint findings; exit 2 if any plan is invalid.',
  usage: USAGE,
  needsRuntime: false,
  async run(args, { io }) {
    let values;
    try {
      ({ values } = parseArgs({ args, options: { 'plans-dir': { type: 'string' }, json: { type: 'boolean', default: false } } }));
    } catch (error) {
      throw usageError(`${(error as Error).message}\nUsage: npx runsheet ${USAGE}`);
    }
    const plansDir = path.resolve(values['plans-dir'] ?? readEnv().plansDir);
    if (!fs.statSync(plansDir, { throwIfNoEntry: false })?.isDirectory()) {
      throw usageError(`No plans folder at ${plansDir}: pass --plans-dir <dir> with one folder per plan (plans/<id>/plan.yaml).`);
    }
    const plans = await loadPlans(plansDir);
    if (values.json) io.out(JSON.stringify(plans, null, 2));
    else io.out(formatPlans(plans, plansDir));
    return plans.every((plan) => plan.ok) ? EXIT.ok : EXIT.usage;
  },
};

function formatPlans(plans: LoadedPlan[], plansDir: string): string {
  if (plans.length === 0) return `No plans under ${plansDir}.`;
  const lines: string[] = [];
  for (const loaded of plans) {
    if (loaded.ok) {
      lines.push(`OK       ${loaded.id}  ${loaded.checksum.slice(0, 12)}  ${loaded.plan.title}`);
      lines.push(`         lint: ${summariseLint(loaded.lint)}`);
    } else {
      lines.push(`INVALID  ${loaded.id}  (${loaded.errors.length} ${loaded.errors.length === 1 ? 'error' : 'errors'})`);
      for (const error of loaded.errors) lines.push(`         ${formatPlanError(error)}`);
    }
  }
  const invalid = plans.filter((plan) => !plan.ok).length;
  lines.push('', `${plans.length} ${plans.length === 1 ? 'plan' : 'plans'}, ${invalid} invalid.`);
  return lines.join('\n');
}

/** "3 warnings (require-concurrent-index-creation, ban-drop-column ×2)". */
function summariseLint(findings: LintFinding[]): string {
  if (findings.length === 0) return 'no findings';
  const errors = findings.filter((finding) => finding.level === 'error').length;
  const warnings = findings.length - errors;
  const counts = [errors ? `${errors} ${errors === 1 ? 'error' : 'errors'}` : '', warnings ? `${warnings} ${warnings === 1 ? 'warning' : 'warnings'}` : '']
    .filter(Boolean)
    .join(', ');
  const byRule = new Map<string, number>();
  for (const finding of findings) byRule.set(finding.rule, (byRule.get(finding.rule) ?? 0) + 1);
  const rules = [...byRule].map(([rule, count]) => (count > 1 ? `${rule} ×${count}` : rule)).join(', ');
  return `${counts} (${rules})`;
}
