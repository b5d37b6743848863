/**
 * `runsheet import <runbook.md>` and `runsheet new <id>`: a new plan folder in the plans folder,
 * from a Markdown runbook (app/plans/import-runbook.server.ts) or from the scaffold, under review.
 * An id that exists is refused; an import is recorded in the audit log.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { recordAudit } from '../../app/audit/audit-log.server';
import { countItems, IMPORT_REPORT_FILE, MAX_RUNBOOK_BYTES } from '../../app/plans/import-report';
import { formatPlanError } from '../../app/plans/plan-error';
import { readEnv } from '../../app/runtime/env.server';
import { fromRoot } from '../../app/runtime/paths.server';
import type { CliCommand } from '../command';
import { EXIT, usageError } from '../exit-codes';

const IMPORT_USAGE = 'import <runbook.md> [--id NNN-name] [--plans-dir <dir>]';

/** The Markdown parser and the zip writer load only for these commands: every other command starts as fast as before. */
const importer = () => import('../../app/plans/import-runbook.server');
const planFolder = () => import('../../app/plans/plan-folder.server');
const NEW_USAGE = 'new <id> [--plans-dir <dir>]';

/** The editor schema's path relative to a plan folder of `plansDir` (docs/plan.schema.json of this checkout). */
function schemaRefFor(plansDir: string, id: string): string {
  return path.relative(path.join(plansDir, id), fromRoot('docs', 'plan.schema.json')).split(path.sep).join('/');
}

function plansDirOf(value: string | undefined): string {
  const plansDir = path.resolve(value ?? readEnv().plansDir);
  if (!fs.statSync(plansDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw usageError(`No plans folder at ${plansDir}: pass --plans-dir <dir>, or set RUNSHEET_PLANS_DIR.`);
  }
  return plansDir;
}

export const importCommand: CliCommand = {
  name: 'import',
  summary: 'Import a Markdown runbook as a new plan folder under review, with IMPORT.md listing what to decide (an existing id is refused).',
  usage: IMPORT_USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    let parsed;
    try {
      parsed = parseArgs({ args, allowPositionals: true, options: { id: { type: 'string' }, 'plans-dir': { type: 'string' } } });
    } catch (error) {
      throw usageError(`${(error as Error).message}\nUsage: npx runsheet ${IMPORT_USAGE}`);
    }
    if (parsed.positionals.length !== 1) throw usageError(`Name one runbook.\nUsage: npx runsheet ${IMPORT_USAGE}`);
    const file = path.resolve(parsed.positionals[0]!);
    const stat = fs.statSync(file, { throwIfNoEntry: false });
    if (!stat?.isFile()) throw usageError(`No runbook at ${file}.`);
    if (stat.size > MAX_RUNBOOK_BYTES) throw usageError(`${file} is ${(stat.size / 1024 / 1024).toFixed(1)} MiB: Runsheet imports runbooks of at most 1 MiB.`);
    const plansDir = plansDirOf(parsed.values['plans-dir'] ?? runtime?.plansDir);
    const markdown = fs.readFileSync(file, 'utf8');
    const sourceName = path.basename(file);
    const { importRunbook } = await importer();
    const { validatePlanFiles, writeNewPlanFolder } = await planFolder();
    const imported = await importRunbook({ markdown, id: parsed.values.id, sourceName, schemaRef: (id) => schemaRefFor(plansDir, id) });
    const actor = `cli:${os.userInfo().username}`;
    const counts = countItems(imported.items);
    const audit = (outcome: 'ok' | 'refused', reason: string | null) =>
      runtime
        ? recordAudit(runtime.store.db, {
            actor,
            action: 'plan.imported',
            subject: imported.id,
            outcome,
            reason,
            detail: { via: 'cli', runbook: sourceName, sha256: imported.sourceSha256, files: imported.files.map((entry) => entry.path), ...counts },
          })
        : Promise.resolve();
    let target: string;
    try {
      target = await writeNewPlanFolder(plansDir, imported.id, imported.files);
    } catch (error) {
      await audit('refused', (error as Error).message);
      throw error;
    }
    await audit('ok', null);
    const validation = await validatePlanFiles(imported.id, imported.files);
    io.out(`Imported ${sourceName} as ${target} (under review: review: pending).`);
    io.out(`  ${imported.files.map((entry) => entry.path).join(', ')}`);
    io.out(`  ${IMPORT_REPORT_FILE}: ${counts.decide} to decide, ${counts.guess} guessed, ${counts.skipped} not carried over.`);
    for (const item of imported.items.filter((entry) => entry.kind === 'decide')) io.out(`  line ${item.line}: ${item.subject}`);
    if (!validation.ok) {
      io.out('The plan does not load yet:');
      for (const error of validation.errors) io.out(`  ${formatPlanError(error)}`);
    }
    io.out(`Resolve ${path.join(target, IMPORT_REPORT_FILE)}, then remove the review line from plan.yaml.`);
    return EXIT.ok;
  },
};

export const newCommand: CliCommand = {
  name: 'new',
  summary: 'Create a plan folder with an example of every section (under review); an existing id is refused.',
  usage: NEW_USAGE,
  needsRuntime: false,
  async run(args, { io }) {
    let parsed;
    try {
      parsed = parseArgs({ args, allowPositionals: true, options: { 'plans-dir': { type: 'string' } } });
    } catch (error) {
      throw usageError(`${(error as Error).message}\nUsage: npx runsheet ${NEW_USAGE}`);
    }
    if (parsed.positionals.length !== 1) throw usageError(`Name the new plan's id.\nUsage: npx runsheet ${NEW_USAGE}`);
    const id = parsed.positionals[0]!;
    const plansDir = plansDirOf(parsed.values['plans-dir']);
    const { writeNewPlanFolder } = await planFolder();
    const { scaffoldPlan } = await import('../../app/plans/scaffold-plan.server');
    const target = await writeNewPlanFolder(plansDir, id, scaffoldPlan(id, { schemaRef: schemaRefFor(plansDir, id) }));
    io.out(`Created ${target}: plan.yaml (an example of every section), 01_apply.sql and rollback.sql (placeholders that refuse to run).`);
    io.out('Write the plan, validate it with `npx runsheet plans`, then remove the review line from plan.yaml.');
    return EXIT.ok;
  },
};
