/**
 * Reads the plans under `plans/<id>/`: plan.yaml (YAML, validated by the one PlanSchema), then the
 * checks the schema alone cannot make (files exist inside the folder, ids unique and referenced,
 * expectations fit their check kind, the SQL splits as psql would). Every error of a plan is
 * returned with its file and path; one bad plan never hides the good ones.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { includedPlanPath, PlanSchema, withIncludedChecks, type Check, type Plan, type ProbeCheck, type SqlCheck } from './plan-schema';
import { planChecksum, planManifest, sha256Hex } from './plan-checksum.server';
import { lintPlan, type LintFinding, type LintOptions } from './lint-plan.server';
import { findTransactionControl, splitSql } from '../sql/split-sql.server';
import { stepKindNamed } from '../steps/step-kinds.server';
import { readRegularFile, REGULAR_FILE_OPEN_FLAGS, regularFileProblem } from './regular-file.server';
import type { PlanError } from './plan-error';

export type { PlanError } from './plan-error';

export const PLAN_FILE = 'plan.yaml';
/** A plan's optional sandbox fixture: SQL run on a sandbox target after it is regenerated. */
export const SANDBOX_FIXTURE_FILE = 'sandbox.sql';

export interface PlanFile {
  /** Relative to the plan folder, "/"-separated: "plan.yaml", "008_add_active_org_tracking.sql". */
  path: string;
  content: string;
  sha256: string;
}

export interface ValidPlan {
  ok: true;
  id: string;
  /** Absolute path of the plan folder. */
  dir: string;
  plan: Plan;
  /**
   * plan.yaml and every SQL file it names, sorted by path; with include_checks_from, also the
   * included plan's plan.yaml and check files, as `../<id>/<file>`.
   */
  files: PlanFile[];
  /** sha256 of `manifest` (plan-checksum.server.ts). */
  checksum: string;
  manifest: string;
  lint: LintFinding[];
  /** sandbox.sql beside plan.yaml, when the plan has one (not part of `files` or the checksum). */
  sandboxFixture?: PlanFile;
}

export interface InvalidPlan {
  ok: false;
  id: string;
  dir: string;
  errors: PlanError[];
}

export type LoadedPlan = ValidPlan | InvalidPlan;

export interface LoadPlanOptions {
  /** Lint the step SQL with squawk (default true; results are cached per file content). */
  lint?: boolean;
  lintOptions?: LintOptions;
}

/** Set while loading a plan another plan includes: includes go one level deep. */
interface IncludeContext {
  includedBy: string;
}

/** Every folder under `plansDir` (hidden ones aside), valid or not, sorted by id. */
export async function loadPlans(plansDir: string, options: LoadPlanOptions = {}): Promise<LoadedPlan[]> {
  let entries: string[];
  try {
    entries = await fs.readdir(plansDir);
  } catch (error) {
    throw new Error(`Cannot read the plans folder ${plansDir}: ${(error as Error).message}`);
  }
  const folders: string[] = [];
  for (const entry of entries) {
    if (entry.startsWith('.')) continue;
    const stat = await fs.stat(path.join(plansDir, entry)).catch(() => undefined);
    if (stat?.isDirectory()) folders.push(entry);
  }
  folders.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return Promise.all(folders.map((folder) => loadPlanFolderCached(plansDir, folder, options)));
}

/**
 * A plan folder read now, never from the cache: for folders that only exist for a moment (an
 * import's preview is validated in a temporary folder before it is saved).
 */
export async function loadPlanUncached(plansDir: string, id: string, options: LoadPlanOptions = {}): Promise<LoadedPlan> {
  return loadPlanFolder(plansDir, id, options);
}

/** One plan by id; undefined when no such folder exists (ids from URLs are checked here). */
export async function loadPlan(plansDir: string, id: string, options: LoadPlanOptions = {}): Promise<LoadedPlan | undefined> {
  if (!isPlanId(id)) return undefined;
  const stat = await fs.stat(path.join(plansDir, id)).catch(() => undefined);
  if (!stat?.isDirectory()) return undefined;
  return loadPlanFolderCached(plansDir, id, options);
}

/**
 * Validating a plan parses its YAML and splits every SQL file with PostgreSQL's parser: too much
 * to repeat on every page view. The result is kept while the bytes of every file in the plan's
 * folder (and in the folder of a plan it includes checks from) stay the same; any edit reloads it.
 */
const planCache = new Map<string, { fingerprint: string; folders: string[]; result: LoadedPlan }>();

async function loadPlanFolderCached(plansDir: string, id: string, options: LoadPlanOptions): Promise<LoadedPlan> {
  const key = JSON.stringify([path.resolve(plansDir), id, options.lint ?? true, options.lintOptions ?? null]);
  const cached = planCache.get(key);
  if (cached && cached.fingerprint === (await foldersFingerprint(plansDir, cached.folders))) return cached.result;
  const result = await loadPlanFolder(plansDir, id, options);
  const included = result.ok ? result.plan.include_checks_from?.plan : undefined;
  const folders = included ? [id, included] : [id];
  planCache.set(key, { fingerprint: await foldersFingerprint(plansDir, folders), folders, result });
  return result;
}

/** sha256 over every file's relative path and bytes (their sha256), in each of the folders. */
async function foldersFingerprint(plansDir: string, folders: string[]): Promise<string> {
  const hash = createHash('sha256');
  const visit = async (relative: string): Promise<void> => {
    const full = path.join(plansDir, relative);
    const entries = await fs.readdir(full, { withFileTypes: true }).catch(() => undefined);
    if (!entries) {
      hash.update(`missing:${relative}\0`);
      return;
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const child = path.join(relative, entry.name);
      if (entry.isDirectory()) await visit(child);
      else hash.update(child).update('\0').update(await fileDigest(path.join(plansDir, child))).update('\0');
    }
  };
  for (const folder of folders) await visit(folder);
  return hash.digest('hex');
}

/**
 * A file's sha256 for the fingerprint, read again only when the file's stat changed (device, inode,
 * size, modification and change times), as git trusts its index: every page view asks, and most
 * plans never change. The stat is the open file's (fstat), not lstat's: opening makes an NFS client
 * ask the server, where lstat may answer from its attribute cache for a minute. A file changed
 * within RACY_MS of being read is not remembered: on a file system with coarse times a second edit
 * in the same tick could keep the same stat. Links and special files are never opened.
 */
async function fileDigest(fullPath: string): Promise<Buffer> {
  const linkStat = await fs.lstat(fullPath).catch(() => undefined);
  const handle = linkStat?.isFile() ? await fs.open(fullPath, REGULAR_FILE_OPEN_FLAGS).catch(() => undefined) : undefined;
  if (handle) {
    try {
      const stat = await handle.stat({ bigint: true });
      if (stat.isFile()) {
        const statKey = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
        const known = fileDigests.get(fullPath);
        if (known && known.statKey === statKey) return known.digest;
        const digest = createHash('sha256').update(await handle.readFile()).digest();
        if (Date.now() - Number(stat.mtimeMs > stat.ctimeMs ? stat.mtimeMs : stat.ctimeMs) > RACY_MS) {
          if (fileDigests.size >= FILE_DIGESTS_KEPT) fileDigests.clear();
          fileDigests.set(fullPath, { statKey, digest });
        }
        return digest;
      }
    } finally {
      await handle.close();
    }
  }
  return createHash('sha256').update(await fingerprintBytes(fullPath)).digest();
}

const fileDigests = new Map<string, { statKey: string; digest: Buffer }>();
const FILE_DIGESTS_KEPT = 10_000;
const RACY_MS = 2_000;

/** A file's bytes for the fingerprint; for anything but a regular file, what it is (never opened: a FIFO would block). */
async function fingerprintBytes(fullPath: string): Promise<Buffer> {
  const read = await readRegularFile(fullPath);
  if (read.ok) return read.bytes;
  if (read.problem === 'link') return Buffer.from(`link:${await fs.readlink(fullPath).catch(() => '')}`);
  return Buffer.from(read.problem === 'not-regular' ? `special:${read.kind}` : read.problem);
}

/** The SQL a sql or probe check runs: its inline `sql`, or the content of its `file`. */
export function checkSql(loaded: ValidPlan, check: SqlCheck | ProbeCheck): string {
  if (check.sql !== undefined) return check.sql;
  const file = loaded.files.find((candidate) => candidate.path === check.file);
  if (!file) throw new Error(`Check "${check.id}" of plan ${loaded.id} names ${check.file}, which was not loaded with the plan`);
  return file.content;
}

/** Every check of a plan with where it sits in plan.yaml ("prechecks[0]"). */
export function planChecks(plan: Plan): { path: string; check: Check }[] {
  return CHECK_SECTIONS.flatMap((sectionPath) =>
    ((valueAt(plan, sectionPath) as Check[] | undefined) ?? []).map((check, index) => ({ path: formatPath([...sectionPath, index]), check })),
  );
}

/** Where plan.yaml holds checks, in the order a run meets them. */
const CHECK_SECTIONS: readonly (readonly string[])[] = [
  ['prechecks'],
  ['snapshot'],
  ['verification'],
  ['post_execution', 'api_tests'],
  ['post_execution', 'data_quality'],
  ['rollback', 'verification'],
  ['watch', 'extra_checks'],
];

/** The schema's own rule for ids: a folder name that breaks it can never be a plan's id. */
const isPlanId = (name: string): boolean => PlanSchema.shape.id.safeParse(name).success;
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

async function loadPlanFolder(plansDir: string, id: string, options: LoadPlanOptions, including?: IncludeContext): Promise<LoadedPlan> {
  const dir = path.resolve(plansDir, id);
  const label = (relative: string) => path.relative(path.dirname(path.resolve(plansDir)), path.join(dir, relative)).split(path.sep).join('/');
  const planLabel = label(PLAN_FILE);
  const fail = (errors: PlanError[]): InvalidPlan => ({ ok: false, id, dir, errors });

  const planRead = await readRegularFile(path.join(dir, PLAN_FILE));
  if (!planRead.ok) {
    const message =
      planRead.problem === 'missing'
        ? `${planLabel} is missing: every folder of the plans folder is a plan and needs a plan.yaml (or move the folder out).`
        : regularFileProblem(planLabel, planRead);
    return fail([{ file: planLabel, path: '', message }]);
  }
  const planBytes = planRead.bytes;
  const planText = decodeUtf8(planBytes);
  if (planText === undefined) {
    return fail([{ file: planLabel, path: '', message: `${planLabel} is not valid UTF-8: save it as UTF-8.` }]);
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(planText, { lineCounter, prettyErrors: false });
  const [firstYamlError] = doc.errors;
  if (firstYamlError) {
    // Only the first: the parser's later errors are mostly the same mistake seen again from further on.
    const { line, col } = lineCounter.linePos(firstYamlError.pos[0]);
    return fail([
      {
        file: planLabel,
        path: '',
        line,
        column: col,
        message: `YAML syntax error at line ${line}, column ${col}: ${firstYamlError.message} (${firstYamlError.code}). Fix the YAML there; nothing else in the plan was checked.`,
      },
    ]);
  }
  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (error) {
    // e.g. more alias expansions than the yaml package allows (a "billion laughs" document).
    return fail([{ file: planLabel, path: '', message: `${planLabel} cannot be read as data: ${(error as Error).message}. Simplify its anchors and aliases.` }]);
  }
  const yamlLine = (issuePath: readonly PropertyKey[]) => lineOfPath(doc, lineCounter, issuePath);
  const errors: PlanError[] = [];
  const parsed = PlanSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      for (const described of describeIssue(issue, raw)) {
        errors.push({ file: planLabel, path: formatPath(described.path), message: described.message, line: yamlLine(described.path) });
      }
    }
  }

  // The cross-checks read the raw document, so a plan with schema errors still hears about its
  // missing files and dangling references in the same answer.
  const files = new Map<string, PlanFile>();
  const inlineSqlFirstLine = (issuePath: readonly PropertyKey[]) => firstLineOfScalar(doc, lineCounter, issuePath);
  const includeRaw = asRecord(raw).include_checks_from;
  const included = await loadIncludedPlan(plansDir, id, typeof includeRaw === 'string' ? includeRaw : asRecord(includeRaw).plan, including, (message) =>
    errors.push({ file: planLabel, path: 'include_checks_from', message, line: yamlLine(['include_checks_from']) }),
  );
  const context: CrossCheckContext = { id, dir, label, planLabel, raw: asRecord(raw), files, errors, yamlLine, inlineSqlFirstLine, included };
  await crossCheck(context);
  const sandboxFixture = await readSandboxFixture(context);

  if (!parsed.success || errors.length > 0) return fail(inReadingOrder(errors));

  const planFile: PlanFile = { path: PLAN_FILE, content: planText, sha256: sha256Hex(planBytes) };
  const allFiles = [planFile, ...files.values(), ...(included ? includedFiles(included) : [])].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const manifest = planManifest(allFiles);
  const plan = included ? withIncludedChecks(parsed.data, included.plan) : parsed.data;
  const lint = options.lint === false ? [] : await lintPlan(plan, allFiles, label, options.lintOptions);
  return { ok: true, id, dir, plan, files: allFiles, checksum: planChecksum(manifest), manifest, lint, ...(sandboxFixture ? { sandboxFixture } : {}) };
}

/**
 * The plan's sandbox fixture, `sandbox.sql` beside plan.yaml (docs/decisions/019a): checked like a
 * step's file (it splits as psql would, and leaves the transaction it runs in alone). It sets up
 * a sandbox target's starting state and never runs anywhere else, so it is not part of the plan's
 * manifest or checksum.
 */
async function readSandboxFixture(context: CrossCheckContext): Promise<PlanFile | undefined> {
  const file = context.label(SANDBOX_FIXTURE_FILE);
  const refuse = (message: string, line?: number) => {
    context.errors.push({ file, path: '', message, ...(line !== undefined ? { line } : {}) });
    return undefined;
  };
  const fullPath = path.join(context.dir, SANDBOX_FIXTURE_FILE);
  const read = await readRegularFile(fullPath);
  if (!read.ok && read.problem === 'missing') return undefined;
  if (!read.ok) return refuse(`${regularFileProblem(file, read)} The sandbox fixture is a .sql file inside the plan folder.`);
  const bytes = read.bytes;
  const content = decodeUtf8(bytes);
  if (content === undefined) return refuse(`${file} is not valid UTF-8: save it as UTF-8.`);
  const split = await splitSql(content);
  if (!split.ok) {
    for (const error of split.errors) refuse(`Line ${error.line} of the sandbox fixture: ${withFullStop(error.message)}`, error.line);
    return undefined;
  }
  for (const control of findTransactionControl(split.statements)) {
    refuse(`${control.command} on line ${control.line}: the sandbox fixture runs in one transaction Runsheet owns (all of it or none). Remove it.`, control.line);
  }
  return { path: SANDBOX_FIXTURE_FILE, content, sha256: sha256Hex(bytes) };
}

/**
 * The plan an include_checks_from names: a valid plan folder beside this one, that includes no
 * plan itself (one level: no cycles, and what runs is visible in two files at most).
 */
async function loadIncludedPlan(
  plansDir: string,
  id: string,
  reference: unknown,
  including: IncludeContext | undefined,
  refuse: (message: string) => void,
): Promise<ValidPlan | undefined> {
  if (typeof reference !== 'string' || !isPlanId(reference)) return undefined;
  if (including) {
    refuse(`This plan is included by ${including.includedBy}, so it cannot include ${reference} in turn: includes go one level deep. Include ${reference} from ${including.includedBy} directly.`);
    return undefined;
  }
  if (reference === id) {
    refuse('A plan cannot include its own checks: name another plan (a folder beside this one).');
    return undefined;
  }
  const stat = await fs.stat(path.join(plansDir, reference)).catch(() => undefined);
  if (!stat?.isDirectory()) {
    refuse(`No plan folder "${reference}" beside this one: include_checks_from names another plan of the plans folder by its id.`);
    return undefined;
  }
  const loaded = await loadPlanFolder(plansDir, reference, { lint: false }, { includedBy: id });
  if (!loaded.ok) {
    const first = loaded.errors[0];
    refuse(`The plan ${reference} whose checks this plan includes is not valid (${loaded.errors.length} error(s), first: ${first?.file} ${first?.path}: ${first?.message}). Fix it first.`);
    return undefined;
  }
  return loaded;
}

/** The included plan's files this plan's manifest lists: its plan.yaml (the checks live there) and the files its checks read. */
function includedFiles(included: ValidPlan): PlanFile[] {
  const checkFiles = new Set(planChecks(included.plan).flatMap(({ check }) => ((check.kind === 'sql' || check.kind === 'probe') && check.file !== undefined ? [check.file] : [])));
  return included.files
    .filter((file) => file.path === PLAN_FILE || checkFiles.has(file.path))
    .map((file) => ({ ...file, path: includedPlanPath(included.id, file.path) }));
}

interface CrossCheckContext {
  id: string;
  dir: string;
  label(relative: string): string;
  planLabel: string;
  raw: Record<string, unknown>;
  /** SQL files read so far, by their path relative to the plan folder. */
  files: Map<string, PlanFile>;
  errors: PlanError[];
  yamlLine(issuePath: readonly PropertyKey[]): number | undefined;
  /** The plan.yaml line that holds line 1 of the inline SQL at `issuePath`. */
  inlineSqlFirstLine(issuePath: readonly PropertyKey[]): number;
  /** The plan whose checks include_checks_from adds (already valid on its own). */
  included?: ValidPlan;
}

async function crossCheck(context: CrossCheckContext): Promise<void> {
  const { raw, errors, planLabel } = context;
  const planError = (issuePath: PropertyKey[], message: string) =>
    errors.push({ file: planLabel, path: formatPath(issuePath), message, line: context.yamlLine(issuePath) });

  if (typeof raw.id === 'string' && raw.id !== context.id) {
    planError(['id'], `The plan's id is "${raw.id}" but its folder is "${context.id}": a plan's id is its folder name. Rename the folder or change the id.`);
  }
  if (!isPlanId(context.id)) {
    planError([], `The folder name "${context.id}" cannot be a plan id: use lower-case letters, digits, "-" and "_", starting with a letter or digit.`);
  }

  // Steps: their files exist, and a transactional step's file does not control the transaction.
  const stepIds = new Map<string, string>();
  const stepLists: [PropertyKey[], unknown][] = [
    [['apply'], raw.apply],
    [['rollback', 'steps'], asRecord(raw.rollback).steps],
  ];
  for (const [listPath, list] of stepLists) {
    for (const [index, step] of asArray(list).entries()) {
      const stepPath = [...listPath, index];
      const record = asRecord(step);
      claimUniqueId(stepIds, record.id, stepPath, 'step', planError);
      if (typeof record.file !== 'string') continue;
      const file = await readPlanSqlFile(context, [...stepPath, 'file'], record.file);
      if (!file) continue;
      // Each step kind checks its file against what it runs (app/steps).
      const where = formatPath([...stepPath, 'file']);
      for (const problem of await stepKindNamed(record.kind).validate(record, file.content)) {
        context.errors.push({ file: context.label(file.path), path: where, message: problem.message, ...(problem.line !== undefined ? { line: problem.line } : {}) });
      }
    }
  }
  for (const [index, reference] of asArray(raw.equivalent_to).entries()) {
    if (reference === context.id) planError(['equivalent_to', index], 'A plan is always equivalent to itself: list other plans that make the same change.');
  }

  const prerequisiteIds = new Map<string, string>();
  for (const [index, item] of asArray(raw.prerequisites).entries()) {
    claimUniqueId(prerequisiteIds, asRecord(item).id, ['prerequisites', index], 'prerequisite', planError);
  }

  // Checks: unique ids, one SQL source that exists and splits, an expectation that fits the kind.
  // Included checks come first and keep their ids: one of this plan's may not reuse one.
  const checkIds = new Map<string, string>();
  const checksBySection = new Map<string, string[]>();
  const except = asArray(asRecord(raw.include_checks_from).except).filter((item): item is string => typeof item === 'string');
  const includedAll = context.included ? planChecks(context.included.plan) : [];
  for (const [index, reference] of context.included ? except.entries() : []) {
    if (!includedAll.some(({ check }) => check.id === reference)) {
      planError(['include_checks_from', 'except', index], `${context.included!.id} has no check "${reference}": name one of its checks (${quoteList(includedAll.map(({ check }) => check.id))}).`);
    }
  }
  const includedChecks = includedAll.filter(({ check }) => !except.includes(check.id));
  for (const { path: where, check } of includedChecks) checkIds.set(check.id, `${where} of ${context.included!.id} (include_checks_from)`);
  for (const sectionPath of CHECK_SECTIONS) {
    const section = formatPath(sectionPath);
    const ids: string[] = includedChecks.filter(({ path: where }) => where.startsWith(`${section}[`)).map(({ check }) => check.id);
    checksBySection.set(section, ids);
    for (const [index, check] of asArray(valueAt(raw, sectionPath)).entries()) {
      const checkPath = [...sectionPath, index];
      const record = asRecord(check);
      if (typeof record.id === 'string') ids.push(record.id);
      claimUniqueId(checkIds, record.id, checkPath, 'check', planError);
      await crossCheckCheck(context, checkPath, record, planError);
    }
  }

  const precheckIds = checksBySection.get('prechecks') ?? [];
  for (const [index, item] of asArray(raw.prerequisites).entries()) {
    const reference = asRecord(item).check;
    if (typeof reference !== 'string' || precheckIds.includes(reference)) continue;
    const elsewhere = checkIds.get(reference);
    planError(
      ['prerequisites', index, 'check'],
      elsewhere
        ? `"${reference}" is the check at ${elsewhere}, not a pre-check: a prerequisite is backed by a pre-check. Move the check to prechecks or name a pre-check.`
        : `No pre-check has the id "${reference}": name one of ${quoteList(precheckIds)}.`,
    );
  }
  const watchable = [...(checksBySection.get('verification') ?? []), ...(checksBySection.get('post_execution.api_tests') ?? []), ...(checksBySection.get('post_execution.data_quality') ?? [])];
  for (const [index, reference] of asArray(asRecord(raw.watch).checks).entries()) {
    if (typeof reference !== 'string' || watchable.includes(reference)) continue;
    const elsewhere = checkIds.get(reference);
    planError(
      ['watch', 'checks', index],
      elsewhere
        ? `"${reference}" is the check at ${elsewhere}: a watch runs verification and post-execution checks again. Name one of those, or add the check to watch.extra_checks.`
        : `No verification or post-execution check has the id "${reference}": name one of ${quoteList(watchable)}, or add it to watch.extra_checks.`,
    );
  }
  for (const [index, criterion] of asArray(raw.success_criteria).entries()) {
    for (const [position, reference] of asArray(asRecord(criterion).checks).entries()) {
      if (typeof reference !== 'string' || checkIds.has(reference)) continue;
      planError(['success_criteria', index, 'checks', position], `No check has the id "${reference}": name one of the plan's checks (${quoteList([...checkIds.keys()])}).`);
    }
  }
}

type PlanErrorAt = (issuePath: PropertyKey[], message: string) => void;

function claimUniqueId(seen: Map<string, string>, id: unknown, itemPath: PropertyKey[], what: string, planError: PlanErrorAt): void {
  if (typeof id !== 'string') return;
  const first = seen.get(id);
  if (first) {
    planError([...itemPath, 'id'], `The ${what} id "${id}" is already used at ${first}: ${what} ids are unique within a plan (results and references name them). Rename one.`);
    return;
  }
  seen.set(id, formatPath(itemPath));
}

async function crossCheckCheck(context: CrossCheckContext, checkPath: PropertyKey[], check: Record<string, unknown>, planError: PlanErrorAt): Promise<void> {
  const kind = check.kind;
  const expectType = asRecord(check.expect).type;
  if (kind === 'sql' || kind === 'probe') {
    if (expectType === 'http') {
      planError([...checkPath, 'expect', 'type'], `A ${kind} check cannot expect "http": use no_rows, exists, rows, value, sqlstate or record, or make it kind: http.`);
    }
    const hasSql = typeof check.sql === 'string';
    const hasFile = typeof check.file === 'string';
    if (hasSql && hasFile) {
      planError(checkPath, 'The check has both "sql" and "file": keep one (inline SQL, or a .sql file beside plan.yaml).');
    } else if (!hasSql && !hasFile) {
      planError(checkPath, 'The check has neither "sql" nor "file": write its query as "sql", or name a .sql file beside plan.yaml as "file".');
    } else if (hasSql) {
      await checkCheckSql(context, [...checkPath, 'sql'], kind, check.sql as string, inlineSqlPosition(context, [...checkPath, 'sql']));
    } else {
      const file = await readPlanSqlFile(context, [...checkPath, 'file'], check.file as string);
      if (file) await checkCheckSql(context, [...checkPath, 'file'], kind, file.content, { file: context.label(file.path), firstLine: 1 });
    }
  } else if (kind === 'http') {
    if (typeof expectType === 'string' && expectType !== 'http') {
      planError([...checkPath, 'expect', 'type'], `An http check is judged by its response: use expect.type "http" with a status (and json_has / json_equals), or make it a sql check.`);
    }
    const request = asRecord(check.request);
    const placeholders = new Set([...findPlaceholders(request.body), ...findPlaceholders(asRecord(check.expect).json_equals)]);
    if (placeholders.size > 0 && typeof request.vars_sql !== 'string') {
      planError([...checkPath, 'request'], `The check uses ${[...placeholders].map((name) => `{{${name}}}`).join(', ')} but has no request.vars_sql to fill them: add a query whose columns have those names.`);
    }
    if (typeof request.vars_sql === 'string') {
      await checkCheckSql(context, [...checkPath, 'request', 'vars_sql'], 'vars_sql', request.vars_sql, inlineSqlPosition(context, [...checkPath, 'request', 'vars_sql']));
    }
  }
}

interface SqlPosition {
  /** The file the SQL lives in, as errors name it. */
  file: string;
  /** The line of `file` where the SQL's line 1 is. */
  firstLine: number;
}

function inlineSqlPosition(context: CrossCheckContext, issuePath: PropertyKey[]): SqlPosition {
  return { file: context.planLabel, firstLine: context.inlineSqlFirstLine(issuePath) };
}

/**
 * A sql check and vars_sql are one read-only query; a probe is a script the runner rolls back.
 * None of them may end or split the transaction the runner wraps around them.
 */
async function checkCheckSql(context: CrossCheckContext, issuePath: PropertyKey[], role: 'sql' | 'probe' | 'vars_sql', sql: string, position: SqlPosition): Promise<void> {
  const where = formatPath(issuePath);
  const sqlError = (line: number | undefined, message: string) =>
    context.errors.push({ file: position.file, path: where, message, line: line === undefined ? undefined : position.firstLine + line - 1 });
  const split = await splitSql(sql);
  if (!split.ok) {
    for (const error of split.errors) sqlError(error.line, `Line ${error.line} of the SQL: ${withFullStop(error.message)}`);
    return;
  }
  const statements = split.statements;
  if (statements.length === 0) {
    sqlError(undefined, 'The SQL has no statement: write the query.');
    return;
  }
  for (const control of findTransactionControl(statements)) {
    sqlError(control.line, `${control.command} on line ${control.line} of the SQL: the runner owns the transaction around a check (a probe's is always rolled back). Remove it.`);
  }
  if (role !== 'probe' && statements.length > 1) {
    sqlError(
      statements[1]!.startLine,
      `The SQL has ${statements.length} statements: ${role === 'sql' ? 'a sql check' : 'vars_sql'} is one query. Keep one, or make the check a probe (which runs several and judges the last).`,
    );
  }
}

/**
 * Reads a SQL file a plan names, refusing any path that could leave the plan folder. Each file is
 * read once however many steps and checks name it.
 */
async function readPlanSqlFile(context: CrossCheckContext, issuePath: PropertyKey[], name: string): Promise<PlanFile | undefined> {
  const where = formatPath(issuePath);
  const refuse = (message: string) => {
    context.errors.push({ file: context.planLabel, path: where, message, line: context.yamlLine(issuePath) });
    return undefined;
  };
  const folder = `${context.label('')}/`;
  if (path.posix.isAbsolute(name) || path.win32.isAbsolute(name) || name.split(/[\\/]/).includes('..')) {
    return refuse(`"${name}" points outside the plan folder: a plan's SQL files live inside ${folder} and are named relative to it (e.g. "rollback.sql").`);
  }
  if (/[\u0000-\u001f\u007f\\]/.test(name)) {
    return refuse(`"${name}" contains a control character or a backslash: name the file with "/" separators and printable characters.`);
  }
  if (path.posix.normalize(name) !== name) {
    return refuse(`Write "${name}" as "${path.posix.normalize(name)}": one spelling per file keeps the plan's manifest and checksum stable.`);
  }
  const cached = context.files.get(name);
  if (cached) return cached;

  const fullPath = path.join(context.dir, name);
  const realDir = await fs.realpath(context.dir);
  const realFile = await fs.realpath(fullPath).catch(() => undefined);
  if (!realFile) return refuse(`"${name}" does not exist in ${folder}: add the file, or correct the name.`);
  if (!realFile.startsWith(realDir + path.sep)) {
    return refuse(`"${name}" is a link to a file outside ${folder}: copy the file into the plan folder instead (a plan's checksum covers only its own files).`);
  }
  const read = await readRegularFile(fullPath);
  if (!read.ok) return refuse(regularFileProblem(`"${name}" in ${folder}`, read));
  const bytes = read.bytes;
  const content = decodeUtf8(bytes);
  if (content === undefined) return refuse(`"${name}" is not valid UTF-8: save it as UTF-8.`);
  const file: PlanFile = { path: name, content, sha256: sha256Hex(bytes) };
  context.files.set(name, file);
  return file;
}

// ---- zod issues in the words of plan.yaml -------------------------------------------------------

interface DescribedIssue {
  path: PropertyKey[];
  message: string;
}

/** Zod's issues rephrased to say what is wrong and what to write instead. */
function describeIssue(issue: z.core.$ZodIssue, raw: unknown): DescribedIssue[] {
  const issuePath = issue.path;
  const value = valueAt(raw, issuePath);
  const key = String(issuePath[issuePath.length - 1] ?? 'plan.yaml');
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((unknownKey) => ({
        path: [...issuePath, unknownKey],
        message: `Unknown key "${unknownKey}": remove it or correct its spelling (see app/plans/plan-schema.ts for what this part of a plan may say).`,
      }));
    case 'invalid_type':
      if (issuePath.length === 0) {
        // Its kind only: a file that is no plan at all (a key copied here by mistake) is not echoed.
        const found = typeof value === 'string' ? `text (${value.length} characters)` : describeValue(value);
        return [{ path: issuePath, message: `plan.yaml must be a mapping of keys (id, title, apply, rollback, …), not ${found}.` }];
      }
      if (value === undefined) return [{ path: issuePath, message: `"${key}" is missing: add it (${withArticle(issue.expected)}).` }];
      return [{ path: issuePath, message: `Expected ${withArticle(issue.expected)}, found ${describeValue(value)}: write ${withArticle(issue.expected)} here.` }];
    case 'invalid_union': {
      if ('discriminator' in issue && issue.discriminator) {
        // A discriminator with a default (a step's kind) lists "undefined" among the options.
        const options = ((issue as { options?: unknown[] }).options ?? []).filter((option) => option !== undefined && option !== null);
        const choices = quoteList(options.map(String));
        return [
          {
            path: issuePath,
            message:
              value === undefined
                ? `"${key}" is missing: add one of ${choices}.`
                : `${describeValue(value)} is not a known ${key}: use one of ${choices}.`,
          },
        ];
      }
      const expected = [...new Set(issue.errors.flat().flatMap((nested) => (nested.code === 'invalid_type' ? [nested.expected] : [])))];
      if (expected.length > 0 && issue.errors.every((nested) => nested.length === 1 && nested[0]!.code === 'invalid_type')) {
        const wanted = expected.map(withArticle).join(' or ');
        return [{ path: issuePath, message: value === undefined ? `"${key}" is missing: add it (${wanted}).` : `Expected ${wanted}, found ${describeValue(value)}.` }];
      }
      return [{ path: issuePath, message: `${describeValue(value)} does not fit here: ${issue.message}.` }];
    }
    case 'invalid_value':
      // A schema's own message (e.g. "a create_index_concurrently step never runs in a transaction") says more than the list.
      if (!/^Invalid/.test(issue.message)) return [{ path: issuePath, message: `${describeValue(value)} is not allowed: ${withFullStop(issue.message)}` }];
      return [{ path: issuePath, message: `${describeValue(value)} is not allowed: use one of ${quoteList(issue.values.map(String))}.` }];
    case 'invalid_format':
      return [{ path: issuePath, message: `${describeValue(value)} is not allowed here: ${issue.message}.` }];
    case 'too_small':
    case 'too_big':
      return [{ path: issuePath, message: `${issue.message}.` }];
    default:
      return [{ path: issuePath, message: issue.message }];
  }
}

function withArticle(type: string): string {
  const article = /^[aeiou]/.test(type) ? 'an' : 'a';
  return type === 'null' ? 'null' : `${article} ${type}`;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `"${value.length > 60 ? `${value.slice(0, 57)}…` : value}"`;
  return `${typeof value} ${String(value)}`;
}

function quoteList(values: string[]): string {
  return values.length === 0 ? '(none)' : [...new Set(values)].map((value) => `"${value}"`).join(', ');
}

function withFullStop(sentence: string): string {
  return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
}

// ---- small helpers --------------------------------------------------------------------------

/** Schema and cross-check errors interleaved by line, file by file, as a reader meets them. */
function inReadingOrder(errors: PlanError[]): PlanError[] {
  const fileOrder = [...new Set(errors.map((error) => error.file))];
  return errors
    .map((error, index) => ({ error, index }))
    .sort((a, b) => fileOrder.indexOf(a.error.file) - fileOrder.indexOf(b.error.file) || (a.error.line ?? 0) - (b.error.line ?? 0) || a.index - b.index)
    .map(({ error }) => error);
}

/** `prechecks[2].expect.type` */
export function formatPath(issuePath: readonly PropertyKey[]): string {
  return issuePath
    .map((segment, index) => (typeof segment === 'number' ? `[${segment}]` : index === 0 ? String(segment) : `.${String(segment)}`))
    .join('');
}

/** The line of the deepest node along `issuePath` that exists in the YAML (a missing key: its parent). */
function lineOfPath(doc: Document, lineCounter: LineCounter, issuePath: readonly PropertyKey[]): number | undefined {
  for (let length = issuePath.length; length >= 0; length--) {
    const node = doc.getIn(issuePath.slice(0, length), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return lineCounter.linePos(node.range[0]).line;
    if (length === 0 && doc.contents?.range) return lineCounter.linePos(doc.contents.range[0]).line;
  }
  return undefined;
}

/**
 * A literal block scalar (`sql: |`) keeps its lines, starting on the line after the `|`; other
 * scalars fold lines, so only their first line is known.
 */
function firstLineOfScalar(doc: Document, lineCounter: LineCounter, issuePath: readonly PropertyKey[]): number {
  const node = doc.getIn(issuePath, true);
  if (!isScalar(node) || !node.range) return lineOfPath(doc, lineCounter, issuePath) ?? 1;
  const line = lineCounter.linePos(node.range[0]).line;
  return node.type === 'BLOCK_LITERAL' ? line + 1 : line;
}

function valueAt(root: unknown, issuePath: readonly PropertyKey[]): unknown {
  let current = root;
  for (const segment of issuePath) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function findPlaceholders(value: unknown): string[] {
  if (typeof value === 'string') return [...value.matchAll(PLACEHOLDER)].map((match) => match[1]!);
  if (Array.isArray(value)) return value.flatMap(findPlaceholders);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(findPlaceholders);
  return [];
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}
