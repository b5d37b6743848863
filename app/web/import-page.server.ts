/**
 * The import page's model: a Markdown runbook (uploaded, at most 1 MiB) imported by the domain's
 * importer (app/plans/import-runbook.server.ts), validated in a temporary folder and shown as the
 * plan's checklist beside its import report; then saved into the plans folder (an existing id is
 * refused) or, where that folder cannot be written, downloaded as a zip. Saving and downloading
 * import the same text again (the importer is a pure function of it) and are audited.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { recordAudit } from '../audit/audit-log.server';
import { expectationOf } from '../checks/object-expectation';
import type { SignedInUser } from '../auth/require.server';
import { countItems, IMPORT_REPORT_FILE, type ImportItem } from '../plans/import-report';
import { importRunbook, MAX_RUNBOOK_BYTES, type ImportedRunbook } from '../plans/import-runbook.server';
import type { PlanError } from '../plans/plan-error';
import { planFolderExists, plansDirWritable, validatePlanFiles, writeNewPlanFolder, zipPlanFolder } from '../plans/plan-folder.server';
import { checksOfPhase, TEAM_MESSAGE_PLACEHOLDERS, type Check, type Plan } from '../plans/plan-schema';
import { RunsheetError } from '../runtime/errors';
import type { Store } from '../runtime/store.server';
import { stepKindOf } from '../steps/step-kinds.server';
import { fromRoot } from '../runtime/paths.server';

export type ImportDeps = { store: Pick<Store, 'db'>; plansDir: string };

export { MAX_RUNBOOK_BYTES };

export interface OutlineCheck {
  id: string;
  title: string;
  kind: string;
  expect: { type: string } & Record<string, unknown>;
}

export interface OutlineStep {
  id: string;
  title: string;
  file: string;
  how: string;
}

/** The plan as its checklist shows it, numbered by position, every heading from the plan's own sections. */
export interface PlanOutline {
  title: string;
  summary?: string;
  source?: string;
  underReview: boolean;
  prerequisites: { id: string; text: string; required: boolean; details: string[] }[];
  prechecks: OutlineCheck[];
  snapshot: OutlineCheck[];
  apply: OutlineStep[];
  verification: OutlineCheck[];
  apiTests: OutlineCheck[];
  dataQuality: OutlineCheck[];
  rollbackSteps: OutlineStep[];
  rollbackVerification: OutlineCheck[];
  successCriteria: { text: string; checks: string[] }[];
  risk: Plan['risk'];
  notes: Plan['notes'];
  teamMessages: { pre?: { notify: string[]; body: string }; post?: { notify: string[]; body: string } };
}

export interface ImportPreview {
  id: string;
  title: string;
  sourceName: string;
  /** The runbook, sent back with the save and download forms (imported again there). */
  markdown: string;
  sourceSha256: string;
  files: { path: string; bytes: number }[];
  items: ImportItem[];
  counts: Record<'decide' | 'guess' | 'skipped', number>;
  importReport: string;
  /** The plan as it loads, or why it does not load yet. */
  outline: PlanOutline | null;
  errors: PlanError[];
  exists: boolean;
  writable: boolean;
  placeholders: string[];
}

/** The runbook's text from an upload, or a clear refusal (too big, not UTF-8, empty). */
export async function readRunbookUpload(file: FormDataEntryValue | null): Promise<{ markdown: string; sourceName: string }> {
  if (!file || typeof file === 'string') throw new RunsheetError('invalid_input', 'Choose a Markdown runbook (.md) to import.');
  if (file.size > MAX_RUNBOOK_BYTES) {
    throw new RunsheetError('invalid_input', `${file.name} is ${(file.size / 1024 / 1024).toFixed(1)} MiB: Runsheet imports runbooks of at most 1 MiB.`);
  }
  if (file.size === 0) throw new RunsheetError('invalid_input', `${file.name} is empty: choose the runbook itself.`);
  let markdown: string;
  try {
    markdown = new TextDecoder('utf-8', { fatal: true }).decode(await file.arrayBuffer());
  } catch {
    throw new RunsheetError('invalid_input', `${file.name} is not UTF-8 text: save the runbook as UTF-8 Markdown.`);
  }
  return { markdown, sourceName: safeSourceName(file.name) };
}

/** A file name as shown and recorded: its last path segment, printable characters only. */
export function safeSourceName(name: string): string {
  return (path.basename(name.replace(/\\/g, '/')).replace(/[^\w.@ +-]/g, '_').slice(0, 120) || 'runbook.md').trim();
}

function schemaRefFor(plansDir: string, id: string): string {
  return path.relative(path.join(plansDir, id), fromRoot('docs', 'plan.schema.json')).split(path.sep).join('/');
}

async function importFor(deps: ImportDeps, input: { markdown: string; sourceName: string; id?: string }): Promise<ImportedRunbook> {
  return importRunbook({ markdown: input.markdown, sourceName: input.sourceName, id: input.id, schemaRef: (id) => schemaRefFor(deps.plansDir, id) });
}

export async function previewRunbookImport(deps: ImportDeps, input: { markdown: string; sourceName: string; id?: string }): Promise<ImportPreview> {
  const imported = await importFor(deps, input);
  const [loaded, exists, writable] = await Promise.all([validatePlanFiles(imported.id, imported.files), planFolderExists(deps.plansDir, imported.id), plansDirWritable(deps.plansDir)]);
  return {
    id: imported.id,
    title: imported.title,
    sourceName: input.sourceName,
    markdown: input.markdown,
    sourceSha256: imported.sourceSha256,
    files: imported.files.map((file) => ({ path: file.path, bytes: Buffer.byteLength(file.content, 'utf8') })),
    items: imported.items,
    counts: countItems(imported.items),
    importReport: imported.files.find((file) => file.path === IMPORT_REPORT_FILE)?.content ?? '',
    outline: loaded.ok ? planOutline(loaded.plan) : null,
    errors: loaded.ok ? [] : loaded.errors,
    exists,
    writable,
    placeholders: Object.keys(TEAM_MESSAGE_PLACEHOLDERS),
  };
}

function auditDetail(imported: ImportedRunbook, sourceName: string, via: string) {
  return { via, runbook: sourceName, sha256: imported.sourceSha256, files: imported.files.map((file) => file.path), ...countItems(imported.items) };
}

/** Writes the plan folder (refusing an id that exists), audited either way. */
export async function saveRunbookImport(deps: ImportDeps, input: { markdown: string; sourceName: string; id: string; user: SignedInUser; ip?: string }): Promise<{ id: string; dir: string }> {
  const imported = await importFor(deps, input);
  const entry = { actor: input.user.email, actorRole: input.user.role, action: 'plan.imported', subject: imported.id, ip: input.ip ?? null };
  try {
    const dir = await writeNewPlanFolder(deps.plansDir, imported.id, imported.files);
    await recordAudit(deps.store.db, { ...entry, outcome: 'ok', detail: auditDetail(imported, input.sourceName, 'web') });
    return { id: imported.id, dir };
  } catch (error) {
    await recordAudit(deps.store.db, { ...entry, outcome: 'refused', reason: (error as Error).message, detail: auditDetail(imported, input.sourceName, 'web') });
    throw error;
  }
}

/** The plan folder as a zip, for a plans folder this process cannot write; audited. */
export async function downloadRunbookImport(deps: ImportDeps, input: { markdown: string; sourceName: string; id: string; user: SignedInUser; ip?: string }): Promise<{ fileName: string; bytes: Uint8Array }> {
  const imported = await importFor(deps, input);
  const bytes = zipPlanFolder(imported.id, imported.files);
  await recordAudit(deps.store.db, {
    actor: input.user.email,
    actorRole: input.user.role,
    action: 'plan.import.downloaded',
    subject: imported.id,
    outcome: 'ok',
    ip: input.ip ?? null,
    detail: { ...auditDetail(imported, input.sourceName, 'web'), zipSha256: createHash('sha256').update(bytes).digest('hex') },
  });
  return { fileName: `${imported.id}.zip`, bytes };
}

function outlineCheck(check: Check): OutlineCheck {
  return { id: check.id, title: check.title, kind: check.kind, expect: expectationOf(check) as OutlineCheck['expect'] };
}

function outlineSteps(steps: Plan['apply']): OutlineStep[] {
  return steps.map((step) => ({ id: step.id, title: step.title, file: step.file, how: stepKindOf(step).describe(step) }));
}

export function planOutline(plan: Plan): PlanOutline {
  return {
    title: plan.title,
    summary: plan.summary,
    source: plan.source,
    underReview: plan.review === 'pending',
    prerequisites: plan.prerequisites.map((item) => ({ id: item.id, text: item.text, required: item.required, details: item.details })),
    prechecks: checksOfPhase(plan, 'pre').map(outlineCheck),
    snapshot: checksOfPhase(plan, 'snapshot').map(outlineCheck),
    apply: outlineSteps(plan.apply),
    verification: checksOfPhase(plan, 'verify').map(outlineCheck),
    apiTests: plan.post_execution.api_tests.map(outlineCheck),
    dataQuality: plan.post_execution.data_quality.map(outlineCheck),
    rollbackSteps: outlineSteps(plan.rollback.steps),
    rollbackVerification: checksOfPhase(plan, 'rollback').map(outlineCheck),
    successCriteria: plan.success_criteria.map((criterion) => ({ text: criterion.text, checks: criterion.checks })),
    risk: plan.risk,
    notes: plan.notes,
    teamMessages: {
      ...(plan.team_messages.pre ? { pre: { notify: plan.team_messages.pre.notify, body: plan.team_messages.pre.body } } : {}),
      ...(plan.team_messages.post ? { post: { notify: plan.team_messages.post.notify, body: plan.team_messages.post.body } } : {}),
    },
  };
}
