/**
 * Turns a Markdown runbook (like seeds/000_278a046374b023c5.txt) into a plan folder: plan.yaml,
 * the SQL files its steps run, and IMPORT.md listing every part that could not be mapped or had
 * to be guessed, each with its runbook line. A pure function of the text: the command line
 * (`runsheet import`) and the import page are two front ends over it, and neither writes
 * anything this module did not produce.
 *
 * The Markdown is read by a real parser (mdast-util-from-markdown with GFM, for task lists and
 * tables). Headings decide what things are (docs/decisions/019-runbook-import.md): task lists
 * under "Prerequisites" become prerequisites, SQL under a pre-check, snapshot, verification,
 * data-quality or rollback heading becomes checks of that phase, migration SQL becomes apply
 * steps, and so on. SQL is found in sql fences and in shell fences that run psql (`psql … -c
 * "…"`, `railway run psql … -f file`), read with a small shell tokenizer (shell-words.ts) and
 * split and classified by PostgreSQL's own parser (import-sql.server.ts). "Expected:" lines
 * become expectations only where they cannot be read two ways.
 *
 * The new plan carries `review: pending`: the review gate refuses to execute or rehearse it until
 * an engineer has resolved IMPORT.md and removed the key.
 */
import { createHash } from 'node:crypto';
import type { Blockquote, Code, Heading, List, ListItem, Nodes, Paragraph, Root, RootContent } from 'mdast';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { Document, isMap, isScalar, isSeq, type YAMLMap } from 'yaml';
import { RunsheetError } from '../runtime/errors';
import { findSqlComments } from '../sql/split-sql.server';
import { analyseSql, type AnalysedStatement } from './import-sql.server';
import { IMPORT_REPORT_FILE, MAX_RUNBOOK_BYTES, renderImportReport, type ImportItem } from './import-report';
import { PlanSchema, TEAM_MESSAGE_PLACEHOLDERS, type Expectation, type PlanObjects } from './plan-schema';
import { psqlInvocation, tokenizeShell } from './shell-words';

export { MAX_RUNBOOK_BYTES };

/** Where plan.yaml's editor schema line points from plans/<id>/ in this repository. */
export const DEFAULT_SCHEMA_REF = '../../docs/plan.schema.json';

export interface ImportRunbookInput {
  markdown: string;
  /** The new plan's id; derived from the runbook's title when absent. */
  id?: string;
  /** The runbook's file name, for IMPORT.md. */
  sourceName: string;
  /** What plan.yaml's `# yaml-language-server: $schema=` line points at, relative to the plan folder (given the id). */
  schemaRef?: string | ((id: string) => string);
}

export interface ImportedFile {
  /** Relative to the plan folder. */
  path: string;
  content: string;
}

export interface ImportedRunbook {
  id: string;
  title: string;
  /** plan.yaml, the SQL files it names, and IMPORT.md. */
  files: ImportedFile[];
  items: ImportItem[];
  /** sha256 of the runbook's UTF-8 bytes. */
  sourceSha256: string;
}

/** What a heading says the content under it is. */
type Section =
  | 'overview'
  | 'prerequisites'
  | 'prechecks'
  | 'snapshot'
  | 'apply'
  | 'verification'
  | 'post'
  | 'api_tests'
  | 'data_quality'
  | 'rollback'
  | 'rollback_verification'
  | 'success_criteria'
  | 'risk'
  | 'team'
  | 'team_pre'
  | 'team_post'
  | 'notes'
  | 'execution_log'
  | 'other';

/** A heading's own meaning; `pre` and `verify` take theirs from the headings above them. */
type Marker = Section | 'pre' | 'verify';

type CheckSection = 'prechecks' | 'snapshot' | 'verification' | 'api_tests' | 'data_quality' | 'rollback_verification';

const SECTION_NAMES: Record<Section, string> = {
  overview: 'the header',
  prerequisites: 'Prerequisites',
  prechecks: 'Pre-checks',
  snapshot: 'Snapshot',
  apply: 'Apply',
  verification: 'Verification',
  post: 'Post-execution validation',
  api_tests: 'API tests',
  data_quality: 'Data quality',
  rollback: 'Rollback',
  rollback_verification: 'Rollback verification',
  success_criteria: 'Success criteria',
  risk: 'Risk',
  team: 'Team communication',
  team_pre: 'Team message before executing',
  team_post: 'Team message after executing',
  notes: 'Notes',
  execution_log: 'Execution log',
  other: 'a section the importer does not know',
};

interface DraftCheck {
  line: number;
  check: Record<string, unknown>;
}

interface DraftStep {
  line: number;
  step: Record<string, unknown>;
}

interface Context {
  /** The nearest heading's text without "Step N:", for titles. */
  heading: string;
  headingLine: number;
  /** The heading numbers a step of the runbook ("Step 3: Verify the index"): it names what is under it. */
  stepHeading: boolean;
  /** A label just before the node (a list item's lead paragraph, a shell comment). */
  label?: string;
}

const SQL_LANGUAGES = new Set(['sql', 'postgres', 'postgresql', 'pgsql', 'plpgsql', 'psql']);
const SHELL_LANGUAGES = new Set(['bash', 'sh', 'shell', 'zsh', 'console', 'shell-session', 'shellsession', 'terminal']);
const HTTP_METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
/** Status marks a runbook puts after an item ("✅"); in Runsheet a person ticks it in the run. */
const STATUS_MARKS = ['✅', '✔️', '✔', '☑️', '☑', '⏳', '❌', '⚠️', '🟢', '🔴'];

export async function importRunbook(input: ImportRunbookInput): Promise<ImportedRunbook> {
  const bytes = Buffer.byteLength(input.markdown, 'utf8');
  if (bytes > MAX_RUNBOOK_BYTES) {
    throw new RunsheetError('invalid_input', `The runbook is ${(bytes / 1024 / 1024).toFixed(1)} MiB: Runsheet imports runbooks of at most 1 MiB. Import the runbook itself, without attachments or output dumps.`);
  }
  if (input.id !== undefined && !PlanSchema.shape.id.safeParse(input.id).success) {
    throw new RunsheetError('invalid_input', `"${input.id}" cannot be a plan id: use lower-case letters, digits, "-" and "_", starting with a letter or digit (e.g. 012-add-widget-sku).`);
  }
  const tree = fromMarkdown(input.markdown, { extensions: [gfm()], mdastExtensions: [gfmFromMarkdown()] });
  const importer = new RunbookImporter(input.markdown);
  await importer.walk(tree);
  const id = input.id ?? importer.derivedId();
  if (!id) {
    throw new RunsheetError('invalid_input', 'The runbook has no title to derive a plan id from: name one with --id (e.g. --id 012-add-widget-sku).');
  }
  const sourceSha256 = createHash('sha256').update(input.markdown, 'utf8').digest('hex');
  const schemaRef = typeof input.schemaRef === 'function' ? input.schemaRef(id) : (input.schemaRef ?? DEFAULT_SCHEMA_REF);
  const files = importer.files(id, schemaRef, input.sourceName);
  files.push({ path: IMPORT_REPORT_FILE, content: renderImportReport({ planId: id, sourceName: input.sourceName, sourceSha256, items: importer.items }) });
  return { id, title: importer.title(), files, items: [...importer.items].sort((a, b) => a.line - b.line), sourceSha256 };
}

class RunbookImporter {
  readonly items: ImportItem[] = [];
  private h1?: string;
  private subtitle?: string;
  private source?: string;
  private created?: string;
  private readonly prerequisites: { line: number; item: Record<string, unknown> }[] = [];
  private readonly checks: Record<CheckSection, DraftCheck[]> = { prechecks: [], snapshot: [], verification: [], api_tests: [], data_quality: [], rollback_verification: [] };
  private readonly applySteps: DraftStep[] = [];
  private readonly rollbackSteps: DraftStep[] = [];
  private readonly stepFiles = new Map<string, string>();
  private readonly successCriteria: { line: number; text: string }[] = [];
  private readonly risk: { level?: 'low' | 'medium' | 'high'; rationale: string[]; mitigation: string[]; list: 'rationale' | 'mitigation' } = { rationale: [], mitigation: [], list: 'rationale' };
  private readonly notes: { title: string; body: string }[] = [];
  private readonly teamMessages: { pre?: { notify: string[]; body?: string; line: number }; post?: { notify: string[]; body?: string; line: number } } = {};
  private readonly objects: { [K in 'columns' | 'indexes' | 'functions' | 'constraints']: PlanObjects[K] } = { columns: [], indexes: [], functions: [], constraints: [] };
  private readonly usedIds = new Set<string>();

  constructor(private readonly markdown: string) {}

  title(): string {
    const base = this.h1 ?? 'Imported runbook';
    return this.subtitle ? `${base} — ${this.subtitle}` : base;
  }

  /** "Migration 008 Execution Plan" + "Add Active Organization Tracking to platform.users" → "008-add-active-organization-tracking". */
  derivedId(): string | undefined {
    const number = /\b(?:migration|change|runbook)\s+#?(\d+)\b/i.exec(this.h1 ?? '')?.[1];
    const slug = slugWords(this.subtitle ?? (this.h1 ?? '').replace(/\b(?:migration|change|runbook)\s+#?\d+\b/i, '').replace(/execution plan|runbook/gi, ''), 40);
    const id = [number, slug].filter(Boolean).join('-');
    return PlanSchema.shape.id.safeParse(id).success ? id : undefined;
  }

  // ---- the walk ---------------------------------------------------------------------------

  async walk(tree: Root): Promise<void> {
    const stack: { depth: number; marker: Marker | undefined; text: string; line: number }[] = [];
    let titleTaken = false;
    let subtitleNext = false;
    const reportedSections = new Set<number>();
    for (const node of tree.children) {
      if (node.type === 'heading') {
        const text = textOf(node).trim();
        const line = lineOf(node);
        if (!titleTaken && node.depth === 1) {
          this.h1 = text;
          titleTaken = true;
          subtitleNext = true;
          continue;
        }
        if (subtitleNext && node.depth === 2 && stack.length === 0 && this.subtitle === undefined && !markerOf(text)) {
          this.subtitle = text;
          subtitleNext = false;
          continue;
        }
        subtitleNext = false;
        while (stack.length > 0 && stack[stack.length - 1]!.depth >= node.depth) stack.pop();
        stack.push({ depth: node.depth, marker: markerOf(text), text, line });
        if (effectiveSection(stack.map((entry) => entry.marker)) === 'execution_log' && !stack.slice(0, -1).some((entry) => entry.marker === 'execution_log')) {
          this.skip(line, `the "${text}" section`, 'Runsheet fills the execution log itself, from the run log: the run report and its Markdown download.');
        }
        continue;
      }
      if (node.type === 'thematicBreak' || node.type === 'html' || node.type === 'definition') continue;
      subtitleNext = false;
      const section = stack.length === 0 ? 'overview' : effectiveSection(stack.map((entry) => entry.marker));
      const nearest = stack[stack.length - 1];
      const context: Context = {
        heading: nearest ? withoutStepNumber(nearest.text) : this.title(),
        headingLine: nearest?.line ?? 1,
        stepHeading: nearest !== undefined && withoutStepNumber(nearest.text) !== nearest.text,
      };
      if (section === 'other') {
        if (nearest && !reportedSections.has(nearest.line)) {
          reportedSections.add(nearest.line);
          this.skip(nearest.line, `the section "${nearest.text}"`, 'Its heading does not say what it is (prerequisites, pre-checks, apply, verification, rollback, …), so nothing under it was imported: move what matters into a section of the plan by hand.');
        }
        continue;
      }
      await this.block(node, section, context);
    }
    this.finishTeamMessages();
  }

  private async block(node: RootContent, section: Section, context: Context): Promise<void> {
    if (section === 'execution_log') return;
    switch (node.type) {
      case 'paragraph':
        return this.paragraph(node, section);
      case 'list':
        return this.list(node, section, context);
      case 'code':
        return this.code(node, section, context);
      case 'blockquote':
        if (section === 'team_pre' || section === 'team_post') return this.teamBody(section, textOf(node).trim(), lineOf(node));
        for (const child of (node as Blockquote).children) await this.block(child, section, context);
        return;
      case 'table':
        this.skip(lineOf(node), `a table under "${context.heading}"`, 'Tables are not imported: carry what it says into the plan by hand.');
        return;
      default:
        return;
    }
  }

  private paragraph(node: Paragraph, section: Section): void {
    const text = textOf(node).trim();
    const line = lineOf(node);
    if (section === 'overview') return this.overviewFields(text, line);
    if (section === 'risk') return this.riskParagraph(text, line);
    if (section === 'team_pre' || section === 'team_post') {
      const notify = /^(?:notify|to|send to|audience|recipients)\s*:\s*(.+)$/i.exec(text);
      if (notify) this.teamMessage(section, line).notify.push(...splitOutsideParentheses(notify[1]!));
      return;
    }
    if (section === 'notes' && text !== '') {
      const [first, ...rest] = text.split(/(?<=[.!?])\s+/);
      this.notes.push({ title: shorten(first!, 80), body: rest.length > 0 ? rest.join(' ') : first! });
    }
    // Other prose ("If issues occur, roll back:") introduces what follows; it is not data.
  }

  /** "**Date Created**: 2025-11-22" lines of the runbook's header. */
  private overviewFields(text: string, line: number): void {
    for (const [offset, raw] of text.split('\n').entries()) {
      const colon = raw.indexOf(':');
      if (colon === -1) continue;
      const key = raw.slice(0, colon).trim().toLowerCase();
      const value = raw.slice(colon + 1).trim();
      const at = line + offset;
      if (value === '') continue;
      if (/^(date( created)?|created)$/.test(key)) this.created = value;
      else if (/migration( file)?|source|script/.test(key)) this.source = value;
      else if (/target|database|environment/.test(key)) {
        this.skip(at, `"${raw.trim()}"`, "A plan runs on any configured target (TARGET_<NAME>_URL, with its rules in runsheet.config.ts); pick the target on the plan page or with --target.");
      } else if (/executed by|executor|status|owner|author/.test(key)) {
        this.skip(at, `"${raw.trim()}"`, "Runsheet records who executed the run and its state in the run log.");
      } else this.skip(at, `"${raw.trim()}"`, 'Not a field of the plan format: keep it in the summary or a note if it matters.');
    }
  }

  private riskParagraph(text: string, line: number): void {
    const colon = text.indexOf(':');
    const label = (colon === -1 ? text : text.slice(0, colon)).trim().toLowerCase();
    const value = colon === -1 ? '' : text.slice(colon + 1).trim();
    if (/level|rating/.test(label)) {
      const word = value.toLowerCase();
      const level = /\blow\b/.test(word) ? 'low' : /\b(medium|moderate)\b/.test(word) ? 'medium' : /\b(high|critical)\b/.test(word) ? 'high' : undefined;
      if (level) this.risk.level = level;
      else this.decide(line, `risk level "${value}"`, 'It is not low, medium or high: set risk.level in plan.yaml (the risk section is left out until then).');
      return;
    }
    if (/mitigation/.test(label)) this.risk.list = 'mitigation';
    else if (/rationale|reason|why/.test(label)) this.risk.list = 'rationale';
    if (value !== '') this.risk[this.risk.list].push(value);
  }

  private async list(node: List, section: Section, context: Context): Promise<void> {
    for (const item of node.children) {
      const line = lineOf(item);
      const lead = item.children.find((child): child is Paragraph => child.type === 'paragraph');
      const text = cleanItemText(lead ? textOf(lead) : '');
      const nested = item.children.filter((child): child is List => child.type === 'list');
      const codes = item.children.filter((child): child is Code => child.type === 'code');
      const details = nested.flatMap((list) => list.children.map((child) => cleanItemText(textOf(child.children.find((grand) => grand.type === 'paragraph') ?? child))));

      if (codes.length > 0) {
        // "1. **Test `/api/auth/validate`**:" followed by its request.
        for (const code of codes) await this.code(code, section, { ...context, label: text.replace(/:$/, '') || undefined });
        continue;
      }
      switch (section) {
        case 'prerequisites':
        case 'prechecks':
          if (text) this.prerequisites.push({ line, item: { id: this.uniqueId(text, 'prerequisite'), text, ...(details.length > 0 ? { details } : {}) } });
          break;
        case 'success_criteria':
          if (text) this.successCriteria.push({ line, text });
          for (const detail of details) this.successCriteria.push({ line, text: detail });
          break;
        case 'risk':
          if (text) this.risk[this.risk.list].push(text);
          break;
        case 'notes':
          this.note(item, text, details);
          break;
        case 'verification':
        case 'post':
        case 'data_quality':
        case 'api_tests':
        case 'snapshot':
        case 'rollback_verification':
          if (text) {
            this.decide(
              line,
              `"${shorten(text, 90)}" (${SECTION_NAMES[section]})`,
              'An item without a query: write it as a check (a sql query, or a probe that is rolled back) in plan.yaml, or as a success criterion a person ticks.',
            );
          }
          break;
        case 'team_pre':
        case 'team_post':
          if (text) this.teamBody(section, text, line);
          break;
        default:
          if (text) this.skip(line, `"${shorten(text, 90)}" under "${context.heading}"`, `A list item in ${SECTION_NAMES[section]} is not something the plan carries: move it where it belongs by hand.`);
      }
    }
  }

  private note(item: ListItem, text: string, details: string[]): void {
    const lead = item.children.find((child): child is Paragraph => child.type === 'paragraph');
    const strong = lead?.children[0]?.type === 'strong' ? textOf(lead.children[0]).trim() : undefined;
    const title = strong ? strong.replace(/:$/, '') : shorten(text, 80);
    const rest = strong ? text.slice(text.indexOf(strong) + strong.length).replace(/^\s*:\s*/, '').trim() : '';
    const body = [rest, ...details].filter(Boolean).join('; ') || text;
    if (title) this.notes.push({ title, body: body.endsWith('.') || body === '' ? body : `${body}.` });
  }

  // ---- code ---------------------------------------------------------------------------------

  private async code(node: Code, section: Section, context: Context): Promise<void> {
    const line = lineOf(node);
    const firstLine = line + 1;
    const lang = (node.lang ?? '').toLowerCase();
    const value = node.value;
    if (section === 'team_pre' || section === 'team_post' || section === 'team') return this.teamBody(section, value, line);
    if (SQL_LANGUAGES.has(lang)) return this.sql(value, firstLine, section, context, {});
    const firstWords = value.trimStart().split(/\s+/, 2);
    if (!lang && HTTP_METHODS.has(firstWords[0] ?? '') && (firstWords[1] ?? '').startsWith('/')) return this.http(value, firstLine, section, context);
    if (SHELL_LANGUAGES.has(lang) || (!lang && tokenizeShell(value).commands.some((command) => psqlInvocation(command)))) return this.shell(value, firstLine, section, context);
    this.skip(line, `a ${lang ? `${lang} ` : ''}code block under "${context.heading}"`, 'It is neither SQL, nor a shell command that runs psql, nor an HTTP request: nothing was imported from it.');
  }

  private async shell(value: string, firstLine: number, section: Section, context: Context): Promise<void> {
    const script = tokenizeShell(value);
    for (const problem of script.problems) this.decide(firstLine + problem.line - 1, 'a shell command that does not parse', `${problem.message} Nothing of it was imported: fix the runbook and import again, or write the SQL into plan.yaml by hand.`);
    const runsPsql = script.commands.map((command) => ({ command, psql: psqlInvocation(command) }));
    const queries = runsPsql.reduce((sum, { psql }) => sum + (psql ? psql.commands.length + psql.files.length + (psql.stdin ? 1 : 0) : 0), 0);
    for (const [position, { command, psql }] of runsPsql.entries()) {
      const at = firstLine + command.line - 1;
      if (!psql) {
        this.skip(at, `shell command \`${shorten(command.words.map((word) => word.text).join(' '), 60)}\``, 'Runsheet runs SQL itself, not shell commands.');
        continue;
      }
      const previousLine = position > 0 ? runsPsql[position - 1]!.command.line : 0;
      const nextLine = runsPsql[position + 1]?.command.line ?? Number.MAX_SAFE_INTEGER;
      const before = script.comments.filter((comment) => comment.line > previousLine && comment.line < command.line && !isExpectation(comment.text));
      const after = script.comments.filter((comment) => comment.line > command.line && comment.line < nextLine);
      const expected = expectationFromComments(after.map((comment) => ({ text: comment.text, line: firstLine + comment.line - 1 })));
      const label = queries > 1 ? (cleanLabel(before.at(-1)?.text) ?? `${context.heading} (${position + 1})`) : undefined;
      const itemContext: Context = { ...context, label };
      for (const piece of psql.commands) {
        const pieceLine = firstLine + piece.line - 1;
        if (piece.expandsDollar) {
          this.decide(pieceLine, 'SQL in double quotes that contains "$"', 'The shell expands $… inside double quotes ($$ is its process id) before psql sees it: check that the SQL imported here is what the runbook meant.');
        }
        await this.sql(piece.text, pieceLine, section, itemContext, { expected });
      }
      for (const file of psql.files) this.sqlFile(file.path, firstLine + file.line - 1, section, itemContext);
      if (psql.stdin) await this.sql(psql.stdin.text, firstLine + psql.stdin.line - 1, section, itemContext, { expected });
    }
  }

  /**
   * SQL from a fence or a psql command. In a check section each read-only statement is a check;
   * in apply and rollback the statements are steps. `expected` is what the runbook says the
   * result is, when it says it beside the command instead of in SQL comments.
   */
  private async sql(text: string, firstLine: number, section: Section, context: Context, options: { expected?: ReadExpectation }): Promise<void> {
    const analysed = await analyseSql(text);
    if (!analysed.ok) {
      for (const error of analysed.errors) {
        this.decide(firstLine + error.line - 1, 'SQL that PostgreSQL\'s parser refuses', `${withFullStop(error.message)} It was not imported: fix it in the runbook and import again, or write it into the plan by hand.`);
      }
      return;
    }
    const statements = analysed.statements;
    if (statements.length === 0) return;
    if (section === 'apply') return this.steps(text, firstLine, statements, section, context);
    const target = checkSectionOf(section);
    if (!target) {
      this.skip(firstLine, `SQL under "${context.heading}"`, `${SECTION_NAMES[section]} holds no SQL in a plan: nothing was imported from it.`);
      return;
    }
    const comments = await findSqlComments(text);
    const reads = statements.filter((statement) => statement.readOnly);
    const writes = statements.filter((statement) => !statement.readOnly && !statement.transactionControl);
    if (target === 'rollback_verification' && writes.length > 0) {
      // Under a rollback heading, what changes the database is the rollback itself; what reads verifies it.
      await this.steps(text, firstLine, statements.filter((statement) => !statement.readOnly), 'rollback', context);
    } else {
      for (const statement of writes) {
        this.decide(
          firstLine + statement.startLine - 1,
          `a ${statement.kind.replace(/Stmt$/, '')} statement under "${context.heading}"`,
          `${SECTION_NAMES[section]} checks only read. It was not imported: make it a probe (its transaction is always rolled back), or move it into a step.`,
        );
      }
    }
    // A query under an API heading checks data, not the API.
    const bySection = target === 'api_tests' ? 'data_quality' : target;
    for (const [position, statement] of reads.entries()) {
      const previousEnd = position > 0 ? reads[position - 1]!.endLine : 0;
      const nextStart = reads[position + 1]?.startLine ?? Number.MAX_SAFE_INTEGER;
      const leading = comments.filter((comment) => comment.line > previousEnd && comment.line < statement.startLine && !isExpectation(comment.text));
      const trailing = comments.filter((comment) => comment.line > statement.endLine && comment.line < nextStart);
      const fromComments = expectationFromComments(trailing.map((comment) => ({ text: comment.text, line: firstLine + comment.line - 1 })));
      const expected = fromComments.kind !== 'none' ? fromComments : (options.expected ?? fromComments);
      // A "Step N:" heading names its one query; otherwise the comment just above the query does.
      const comment = cleanLabel(leading.at(-1)?.text);
      const title =
        reads.length > 1 || context.label ? (comment ?? context.label ?? `${context.heading} (${position + 1})`) : context.stepHeading ? context.heading : (comment ?? context.heading);
      this.addCheck(bySection, firstLine + statement.startLine - 1, title, sqlText(text, statement), statement, expected);
    }
  }

  private addCheck(section: CheckSection, line: number, title: string, sql: string, statement: AnalysedStatement, expected: ReadExpectation): void {
    const id = this.uniqueId(title, 'check');
    let expect: Expectation;
    switch (expected.kind) {
      case 'read':
        expect = expected.expect;
        if (expected.guess) this.guess(expected.line, `check ${id}: "${shorten(expected.text, 80)}"`, expected.guess);
        break;
      case 'unreadable':
        expect = { type: 'record' };
        this.decide(expected.line, `check ${id}: "${shorten(expected.text, 80)}"`, 'This expectation can be read more than one way, so the check only records its result (expect: record) and always passes: write its expect in plan.yaml (no_rows, exists, rows, value).');
        break;
      case 'none':
        expect = { type: 'record' };
        if (section !== 'snapshot') {
          this.decide(line, `check ${id} has no expected result`, 'The runbook says nothing about what it should return, so the check only records its result (expect: record) and always passes: write its expect in plan.yaml.');
        }
        break;
    }
    for (const doubt of statement.doubts) this.decide(line, `check ${id} may not prove what it says`, `${withFullStop(doubt)} Correct its SQL in plan.yaml.`);
    this.checks[section].push({ line, check: { id, kind: 'sql', title, sql, expect } });
  }

  /** A psql -f file: the runbook names the migration but does not give it. */
  private sqlFile(path: string, line: number, section: Section, context: Context): void {
    const name = uniqueFileName(this.stepFiles, basename(path));
    if (section !== 'apply' && section !== 'rollback') {
      this.decide(line, `\`psql -f ${path}\` under "${context.heading}"`, `A SQL file run in ${SECTION_NAMES[section]} was not imported: add its query to plan.yaml as a check (sql, or file: with the file beside plan.yaml).`);
      return;
    }
    this.stepFiles.set(name, placeholderSql(name, line, path));
    const steps = section === 'apply' ? this.applySteps : this.rollbackSteps;
    steps.push({ line, step: { id: this.uniqueId(context.label ?? context.heading, 'step'), title: context.label ?? context.heading, file: name } });
    this.decide(
      line,
      `the runbook runs \`${path}\` with psql -f but does not give it`,
      `Add its SQL to ${name} beside plan.yaml: a placeholder that refuses to run (it raises an exception) is there now. The step runs in one transaction Runsheet owns: remove BEGIN/COMMIT from the file, or set transactional: false (CONCURRENTLY needs that).`,
    );
  }

  /** Migration or rollback SQL as steps: one file per run of statements, each CONCURRENTLY statement its own step. */
  private async steps(text: string, firstLine: number, statements: AnalysedStatement[], section: 'apply' | 'rollback', context: Context): Promise<void> {
    let body = statements;
    const first = body[0]!;
    const last = body[body.length - 1]!;
    let bodyStart = 0;
    if (body.length >= 2 && first.transactionControl && last.transactionControl && /^(begin|start)/i.test(first.sql) && /^(commit|end)/i.test(last.sql)) {
      body = body.slice(1, -1);
      bodyStart = statementEnd(text, first);
      this.guess(firstLine + first.startLine - 1, `${first.sql.toUpperCase()} … ${last.sql.toUpperCase()} around the ${section === 'apply' ? 'migration' : 'rollback'}`, 'Left out: Runsheet owns the transaction of a step (and writes its ledger row in it).');
    }
    const groups: AnalysedStatement[][] = [];
    for (const statement of body) {
      const previous = groups[groups.length - 1];
      if (statement.outsideTransaction || !previous || previous[0]!.outsideTransaction) groups.push([statement]);
      else previous.push(statement);
    }
    const steps = section === 'apply' ? this.applySteps : this.rollbackSteps;
    const comments = await findSqlComments(text);
    for (const [groupIndex, group] of groups.entries()) {
      const lead = group[0]!;
      const groupStart = groupIndex === 0 ? bodyStart : statementEnd(text, groups[groupIndex - 1]!.at(-1)!);
      const line = firstLine + lead.startLine - 1;
      const stepComment = groups.length > 1 ? cleanLabel(comments.filter((comment) => comment.line < lead.startLine && comment.line >= lead.startLine - 2).at(-1)?.text) : undefined;
      const title = groups.length === 1 ? (context.label ?? context.heading) : (stepComment ?? stepTitle(group, context));
      const id = this.uniqueId(title, 'step');
      const prefix = section === 'apply' ? String(this.applySteps.length + 1).padStart(2, '0') : `rollback_${this.rollbackSteps.length + 1}`;
      const file = uniqueFileName(this.stepFiles, `${prefix}_${slugWords(title, 32, '_') || 'step'}.sql`);
      // The runbook's text of these statements, with the comments between them.
      this.stepFiles.set(file, `${dedent(text.slice(groupStart, statementEnd(text, group.at(-1)!)))}\n`);
      const transactionControl = group.filter((statement) => statement.transactionControl);
      const step: Record<string, unknown> = { id, title, file };
      const index = lead.concurrentIndex;
      if (index && group.length === 1 && index.schema && index.name && index.ifNotExists) {
        Object.assign(step, { kind: 'create_index_concurrently', index: { schema: index.schema, name: index.name } });
      } else if (lead.outsideTransaction || transactionControl.length > 0) {
        step.transactional = false;
        if (index) {
          this.decide(
            line,
            `CREATE INDEX CONCURRENTLY ${index.name ?? ''} as a plain step`,
            `Imported as a sql step with transactional: false. Make it kind: create_index_concurrently (which drops an INVALID leftover and checks the build) once the statement has ${[!index.ifNotExists ? 'IF NOT EXISTS' : '', !index.schema ? 'a schema-qualified table' : '', !index.name ? 'an index name' : ''].filter(Boolean).join(' and ')}.`,
          );
        }
        if (transactionControl.length > 0) {
          this.decide(line, `transaction control inside the ${section} SQL`, `${transactionControl.map((statement) => statement.sql.split(/\s/, 1)[0]!.toUpperCase()).join(', ')} inside the step: it runs statement by statement (transactional: false) so they are allowed, but each statement commits on its own. Prefer one transactional step without them.`);
        }
      }
      if (section === 'apply') for (const statement of group) this.addObjects(statement);
      steps.push({ line, step });
    }
  }

  private addObjects(statement: AnalysedStatement): void {
    for (const key of ['columns', 'indexes', 'functions', 'constraints'] as const) {
      for (const entry of statement.creates[key] ?? []) (this.objects[key] as unknown[]).push(entry);
    }
  }

  // ---- http ---------------------------------------------------------------------------------

  /** "GET /api/auth/validate", headers, "Body: {…}", "Expected …" → an http check. */
  private http(value: string, firstLine: number, section: Section, context: Context): void {
    const lines = value.split('\n');
    const [method, path] = lines[0]!.trim().split(/\s+/);
    const title = context.label ?? `${method} ${path}`;
    const id = this.uniqueId(title, 'check');
    const request: Record<string, unknown> = { method, path };
    const expect: Record<string, unknown> = { type: 'http' };
    const placeholders = new Set<string>();
    let statusGiven = false;
    // Header lines (Authorization: …) are left out: the request carries the target's own bearer token.
    for (let index = 1; index < lines.length; index++) {
      const raw = lines[index]!.trim();
      const at = firstLine + index;
      if (raw === '') continue;
      const colon = raw.indexOf(':');
      const label = colon === -1 ? '' : raw.slice(0, colon).trim().toLowerCase();
      if (label === 'body') {
        let json = raw.slice(colon + 1).trim();
        while (index + 1 < lines.length && lines[index + 1]!.trim() !== '' && !/^expected/i.test(lines[index + 1]!.trim())) json += `\n${lines[++index]}`;
        const body = parseJsonWithPlaceholders(json, placeholders);
        if (body && typeof body === 'object' && !Array.isArray(body)) request.body = body;
        else this.decide(at, `the request body of ${id}`, 'It is not a JSON object: write request.body in plan.yaml.');
        continue;
      }
      if (/^expected/i.test(raw)) {
        const said = colon === -1 ? raw.replace(/^expected\s*/i, '') : raw.slice(colon + 1).trim();
        const status = /^(?:status\s*)?(\d{3})\b/i.exec(said);
        const includes = /^(?:the\s+)?(?:response\s+)?(?:includes|contains|has)\s+(?:an?\s+|the\s+)?`?([A-Za-z_][\w.]*)`?\s*(?:field|key|property)?/i.exec(said.replace(/^response\s+/i, ''));
        if (status) {
          expect.status = Number(status[1]);
          statusGiven = true;
        } else if (said.startsWith('{')) {
          const equals = parseJsonWithPlaceholders(said, placeholders);
          if (equals && typeof equals === 'object' && !Array.isArray(equals) && Object.values(equals).every((entry) => entry === null || typeof entry !== 'object')) expect.json_equals = equals;
          else this.decide(at, `check ${id}: "${shorten(said, 80)}"`, 'Not a flat JSON object of expected fields: write expect.json_equals in plan.yaml.');
        } else if (includes) {
          expect.json_has = [...((expect.json_has as string[] | undefined) ?? []), includes[1]!];
        } else {
          this.decide(at, `check ${id}: "${shorten(said, 80)}"`, 'The expected answer could not be read: write expect (status, json_has, json_equals) in plan.yaml.');
        }
      }
    }
    if (!statusGiven) {
      expect.status = 200;
      this.guess(firstLine, `check ${id} (${method} ${path})`, "The runbook gives no status: 200 assumed. The request is sent with the target's bearer token (TARGET_<NAME>_API_TOKEN).");
    }
    if (placeholders.size > 0) {
      const names = [...placeholders];
      request.vars_sql = `SELECT ${names.map((name) => `NULL::text AS ${name}`).join(', ')}`;
      this.decide(
        firstLine,
        `check ${id} uses ${names.map((name) => `<${name}>`).join(', ')}`,
        `Imported as ${names.map((name) => `{{${name}}}`).join(', ')}, filled by request.vars_sql, which is a stub that returns NULL (so the check fails): write the query that picks ${names.length === 1 ? 'the value' : 'the values'} on the target.`,
      );
    }
    const target: CheckSection = section === 'verification' || section === 'prechecks' ? section : 'api_tests';
    this.checks[target].push({ line: firstLine - 1, check: { id, kind: 'http', title, request, expect } });
  }

  // ---- team messages --------------------------------------------------------------------------

  private teamMessage(section: 'team_pre' | 'team_post', line: number) {
    const key = section === 'team_pre' ? 'pre' : 'post';
    return (this.teamMessages[key] ??= { notify: [], line });
  }

  private teamBody(section: Section, text: string, line: number): void {
    if (section !== 'team_pre' && section !== 'team_post') {
      const key = !this.teamMessages.pre?.body ? 'team_pre' : !this.teamMessages.post?.body ? 'team_post' : undefined;
      if (!key) {
        this.skip(line, 'a third team message', 'A plan has one message before and one after executing.');
        return;
      }
      this.guess(line, 'a team message under a heading that says neither before nor after', `Taken as the message ${key === 'team_pre' ? 'before' : 'after'} executing.`);
      return this.teamBody(key, text, line);
    }
    const message = this.teamMessage(section, line);
    if (message.body !== undefined) {
      message.body = `${message.body}\n${text}`;
      return;
    }
    message.body = this.placeholders(text, line);
  }

  /** `<executor>`, `[Target]` → `{{executor}}`, `{{target}}`; others are reported. */
  private placeholders(text: string, line: number): string {
    const unknown = new Set<string>();
    const filled = text.replace(/\[([^\]\n]{1,40})\]|<([^>\n]{1,40})>/g, (whole, square: string | undefined, angle: string | undefined) => {
      const name = placeholderName(square ?? angle ?? '');
      if (name) return `{{${name}}}`;
      unknown.add(whole);
      return whole;
    });
    if (unknown.size > 0) {
      this.decide(line, `the team message has ${[...unknown].join(', ')}`, `Runsheet cannot fill ${unknown.size === 1 ? 'it' : 'them'}: write the text out, or use ${Object.keys(TEAM_MESSAGE_PLACEHOLDERS).map((name) => `{{${name}}}`).join(', ')}.`);
    }
    return filled.trimEnd();
  }

  private finishTeamMessages(): void {
    for (const key of ['pre', 'post'] as const) {
      const message = this.teamMessages[key];
      if (message && !message.body) {
        this.decide(message.line, `the team message ${key === 'pre' ? 'before' : 'after'} executing has no text`, 'Write its body in plan.yaml (team_messages), or remove it.');
        delete this.teamMessages[key];
      }
    }
  }

  // ---- items and ids --------------------------------------------------------------------------

  private decide(line: number, subject: string, text: string): void {
    this.items.push({ line, kind: 'decide', subject, text });
  }

  private guess(line: number, subject: string, text: string): void {
    this.items.push({ line, kind: 'guess', subject, text });
  }

  private skip(line: number, subject: string, text: string): void {
    this.items.push({ line, kind: 'skipped', subject, text });
  }

  private uniqueId(title: string, fallback: string): string {
    const base = slugWords(title, 48) || fallback;
    let id = base;
    for (let suffix = 2; this.usedIds.has(id); suffix++) id = `${base}-${suffix}`;
    this.usedIds.add(id);
    return id;
  }

  // ---- output ---------------------------------------------------------------------------------

  files(id: string, schemaRef: string, sourceName: string): ImportedFile[] {
    if (this.applySteps.length === 0) {
      const file = uniqueFileName(this.stepFiles, '01_apply.sql');
      this.stepFiles.set(file, placeholderSql(file, 1));
      this.applySteps.push({ line: 1, step: { id: this.uniqueId('apply', 'apply'), title: 'Apply the migration', file } });
      this.decide(1, 'no migration found', `The runbook has no SQL under an apply or execution heading: write the migration into ${file} (a placeholder that refuses to run is there now).`);
    }
    if (this.rollbackSteps.length === 0) {
      const file = uniqueFileName(this.stepFiles, 'rollback.sql');
      this.stepFiles.set(file, placeholderSql(file, 1));
      this.rollbackSteps.push({ line: 1, step: { id: this.uniqueId('rollback', 'rollback'), title: 'Roll back the migration', file } });
      this.decide(1, 'no rollback found', `The runbook has no rollback SQL: write it into ${file} (a placeholder that refuses to run is there now), idempotent (IF EXISTS), and a rollback verification.`);
    }
    if (!this.risk.level && (this.risk.rationale.length > 0 || this.risk.mitigation.length > 0)) {
      this.decide(1, 'the risk section has no level', 'Set risk.level (low, medium or high) in plan.yaml; the section is left out until then.');
    }

    const plan: Record<string, unknown> = { id, title: this.title(), review: 'pending' };
    if (this.source) plan.source = this.source.replace(/^`|`$/g, '');
    if (this.created) plan.created = this.created;
    if (this.prerequisites.length > 0) plan.prerequisites = this.prerequisites.map(({ item }) => item);
    if (this.checks.prechecks.length > 0) plan.prechecks = this.checks.prechecks.map(({ check }) => check);
    if (this.checks.snapshot.length > 0) plan.snapshot = this.checks.snapshot.map(({ check }) => check);
    plan.apply = this.applySteps.map(({ step }) => step);
    if (this.checks.verification.length > 0) plan.verification = this.checks.verification.map(({ check }) => check);
    if (this.checks.api_tests.length > 0 || this.checks.data_quality.length > 0) {
      plan.post_execution = {
        ...(this.checks.api_tests.length > 0 ? { api_tests: this.checks.api_tests.map(({ check }) => check) } : {}),
        ...(this.checks.data_quality.length > 0 ? { data_quality: this.checks.data_quality.map(({ check }) => check) } : {}),
      };
    }
    plan.rollback = {
      steps: this.rollbackSteps.map(({ step }) => step),
      ...(this.checks.rollback_verification.length > 0 ? { verification: this.checks.rollback_verification.map(({ check }) => check) } : {}),
    };
    if (this.successCriteria.length > 0) plan.success_criteria = this.successCriteria.map(({ text }) => ({ text }));
    if (this.risk.level) plan.risk = { level: this.risk.level, rationale: this.risk.rationale, mitigation: this.risk.mitigation };
    const objects = Object.fromEntries(Object.entries(this.objects).filter(([, list]) => list.length > 0));
    if (Object.keys(objects).length > 0) plan.objects = objects;
    if (this.notes.length > 0) plan.notes = this.notes;
    const team = Object.fromEntries(
      (['pre', 'post'] as const).flatMap((key) => {
        const message = this.teamMessages[key];
        return message?.body ? [[key, { ...(message.notify.length > 0 ? { notify: message.notify } : {}), body: `${message.body}\n` }]] : [];
      }),
    );
    if (Object.keys(team).length > 0) plan.team_messages = team;

    return [
      { path: 'plan.yaml', content: this.planYaml(plan, schemaRef, sourceName) },
      ...[...this.stepFiles].map(([path, content]) => ({ path, content })),
    ];
  }

  /** plan.yaml with the editor's schema line, and each item's runbook line as a comment above it. */
  private planYaml(plan: Record<string, unknown>, schemaRef: string, sourceName: string): string {
    const doc = new Document(plan);
    doc.commentBefore = [
      ` yaml-language-server: $schema=${schemaRef}`,
      ` Imported from ${sourceName} by \`runsheet import\`: see IMPORT.md beside this file for what to decide`,
      ' before the review is cleared (remove the `review: pending` line then). The format: docs/plan-format.md.',
    ].join('\n');
    const lineComments: [string[], { line: number }[]][] = [
      [['prerequisites'], this.prerequisites],
      [['prechecks'], this.checks.prechecks],
      [['snapshot'], this.checks.snapshot],
      [['apply'], this.applySteps],
      [['verification'], this.checks.verification],
      [['post_execution', 'api_tests'], this.checks.api_tests],
      [['post_execution', 'data_quality'], this.checks.data_quality],
      [['rollback', 'steps'], this.rollbackSteps],
      [['rollback', 'verification'], this.checks.rollback_verification],
    ];
    // A date in plain YAML is a timestamp to YAML 1.1 readers: keep it a string for every editor.
    const created = doc.get('created', true);
    if (isScalar(created)) created.type = 'QUOTE_SINGLE';
    for (const [path, drafts] of lineComments) {
      const sequence = doc.getIn(path, true);
      if (!isSeq(sequence)) continue;
      sequence.items.forEach((item, index) => {
        if (!isMap(item)) return;
        (item as YAMLMap).commentBefore = ` runbook line ${drafts[index]!.line}`;
        const expect = item.get('expect', true);
        if (isMap(expect) && expect.items.length === 1) expect.flow = true;
      });
    }
    return doc.toString({ lineWidth: 0, blockQuote: 'literal' });
  }
}

// ---- expectations ---------------------------------------------------------------------------------

type ReadExpectation =
  | { kind: 'read'; expect: Expectation; text: string; line: number; guess?: string }
  | { kind: 'unreadable'; text: string; line: number }
  | { kind: 'none' };

const isExpectation = (text: string) => /^expect(ed|s)?\b/i.test(text.trim());

/**
 * "Expected: No rows" → no_rows; "… should exist" → exists; "Expected output:" followed by a
 * psql result table → rows. Anything else is unreadable: the check records, and IMPORT.md asks.
 */
export function expectationFromComments(comments: { text: string; line: number }[]): ReadExpectation {
  const start = comments.findIndex((comment) => isExpectation(comment.text));
  if (start === -1) return { kind: 'none' };
  const first = comments[start]!;
  const said = first.text.replace(/^expect(?:ed|s)?(?:\s+(?:output|result|results))?\s*:?\s*/i, '').trim();
  const following = comments.slice(start + 1).map((comment) => comment.text);
  if (said === '' && following.length > 0) {
    const rows = psqlTableRows(following);
    if (rows) return { kind: 'read', expect: rows.length === 0 ? { type: 'no_rows' } : { type: 'rows', rows }, text: following.join(' / '), line: first.line };
    return { kind: 'unreadable', text: following.join(' '), line: first.line };
  }
  const words = said.toLowerCase().replace(/[.!]+$/, '');
  if (/^(no rows?|0 rows?|\(0 rows\)|none|nothing|empty( result)?)$/.test(words)) return { kind: 'read', expect: { type: 'no_rows' }, text: said, line: first.line };
  if (/^(both|all|every|each|the|[\w.]+)?\s*[\w. ]*\bshould (exist|be present)$/.test(words) || /^(it |they )?exists?$/.test(words)) {
    const several = /^(both|all|every|each)\b/.test(words);
    return {
      kind: 'read',
      expect: { type: 'exists' },
      text: said,
      line: first.line,
      ...(several ? { guess: 'Read as exists: it passes with one row as well. To require every one, expect their rows (type: rows).' } : {}),
    };
  }
  return { kind: 'unreadable', text: said, line: first.line };
}

/** A psql result table (header, a line of dashes and pluses, rows, "(n rows)") as rows of text values. */
export function psqlTableRows(lines: string[]): Record<string, string>[] | undefined {
  const separator = lines.findIndex((line) => line.trim() !== '' && [...line.trim()].every((char) => char === '-' || char === '+'));
  if (separator < 1) return undefined;
  const cells = (line: string) => line.split('|').map((cell) => cell.trim());
  const header = cells(lines[separator - 1]!);
  if (header.some((name) => name === '')) return undefined;
  const rows: Record<string, string>[] = [];
  for (const line of lines.slice(separator + 1)) {
    if (line.trim() === '' || /^\(\d+ rows?\)$/.test(line.trim())) continue;
    const values = cells(line);
    if (values.length !== header.length) return undefined;
    rows.push(Object.fromEntries(header.map((name, index) => [name, values[index]!])));
  }
  return rows;
}

// ---- small helpers ----------------------------------------------------------------------------

function markerOf(text: string): Marker | undefined {
  const words = withoutStepNumber(text).toLowerCase();
  const has = (...parts: string[]) => parts.some((part) => words.includes(part));
  if (has('execution log', 'execution output', 'issues encountered')) return 'execution_log';
  if (/\bteam\b|communicat|announce|notif/.test(words)) return /\bpre\b|pre-|before/.test(words) ? 'team_pre' : /\bpost\b|post-|after/.test(words) ? 'team_post' : 'team';
  if (/\brisks?\b/.test(words)) return 'risk';
  if (/\bnotes?\b/.test(words)) return 'notes';
  if (has('success criteria', 'acceptance criteria', 'definition of done')) return 'success_criteria';
  if (has('prerequisite', 'requirements')) return 'prerequisites';
  if (has('rollback', 'roll back', 'revert', 'undo')) return has('verif', 'check', 'confirm') ? 'rollback_verification' : 'rollback';
  if (has('snapshot', 'baseline')) return 'snapshot';
  if (has('data quality', 'data-quality')) return 'data_quality';
  if (/\bapi\b/.test(words)) return 'api_tests';
  if (/post[- ]?(execution|deploy|migration)|after (execution|deploy|the migration)/.test(words)) return 'post';
  if (/pre[- ]?(execution|check|flight|migration|deploy)|before|database state/.test(words)) {
    return has('verif', 'validat', 'state') || (has('check') && !has('checklist')) ? 'prechecks' : 'pre';
  }
  if (has('verif', 'validat', 'check', 'confirm')) return 'verify';
  if (has('apply', 'execut', 'migrat', 'deploy', 'steps', 'procedure')) return 'apply';
  return undefined;
}

/** The innermost heading that says what its content is, read with the headings above it. */
function effectiveSection(markers: (Marker | undefined)[]): Section {
  for (let index = markers.length - 1; index >= 0; index--) {
    const marker = markers[index];
    if (!marker) continue;
    const above = markers.slice(0, index);
    if (above.includes('execution_log')) return 'execution_log';
    const team = above.filter((entry): entry is 'team' | 'team_pre' | 'team_post' => entry === 'team' || entry === 'team_pre' || entry === 'team_post').at(-1);
    if (team) {
      if (marker === 'pre' || marker === 'prechecks' || marker === 'team_pre') return 'team_pre';
      if (marker === 'post' || marker === 'team_post') return 'team_post';
      return team;
    }
    switch (marker) {
      case 'verify':
        if (above.includes('rollback')) return 'rollback_verification';
        if (above.includes('pre') || above.includes('prechecks')) return 'prechecks';
        if (above.includes('post') || above.includes('data_quality')) return 'data_quality';
        return 'verification';
      case 'pre':
        return 'prechecks';
      case 'apply':
        return above.includes('rollback') ? 'rollback' : 'apply';
      default:
        return marker;
    }
  }
  return 'other';
}

function checkSectionOf(section: Section): CheckSection | undefined {
  switch (section) {
    case 'prechecks':
    case 'snapshot':
    case 'verification':
    case 'data_quality':
    case 'api_tests':
    case 'rollback_verification':
      return section;
    case 'post':
      return 'data_quality';
    case 'rollback':
      return 'rollback_verification';
    default:
      return undefined;
  }
}

function withoutStepNumber(text: string): string {
  return text.replace(/^\s*(?:step|phase)\s+\d+[a-z]?\s*[:.)–-]\s*/i, '').trim();
}

/** The text of a node: its text, inline code and children, as a person reads it. */
function textOf(node: Nodes): string {
  if ('value' in node && typeof node.value === 'string' && node.type !== 'html') return node.value;
  if (node.type === 'break') return '\n';
  if ('children' in node) return (node.children as Nodes[]).map(textOf).join(node.type === 'listItem' || node.type === 'blockquote' ? '\n' : '');
  return '';
}

function lineOf(node: { position?: { start: { line: number } } }): number {
  return node.position?.start.line ?? 1;
}

function cleanItemText(text: string): string {
  let cleaned = text.replace(/\s+/g, ' ').trim();
  for (let changed = true; changed; ) {
    changed = false;
    for (const mark of STATUS_MARKS) {
      if (cleaned.endsWith(mark)) {
        cleaned = cleaned.slice(0, -mark.length).trim();
        changed = true;
      }
    }
  }
  return cleaned.replace(/:$/, '').trim();
}

/** A comment as a title: "-- 1. Column doesn't already exist" → "Column doesn't already exist". */
function cleanLabel(text: string | undefined): string | undefined {
  if (!text) return undefined;
  const cleaned = text.replace(/^\s*(?:\d+[.)]|[-*•])\s*/, '').replace(/:$/, '').trim();
  return cleaned === '' ? undefined : cleaned;
}

/** Lower-case words joined by `separator`, whole words only, at most `max` characters, without a trailing "to", "of", … */
function slugWords(text: string, max: number, separator = '-'): string {
  const words = text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/['’]/g, '')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  const kept: string[] = [];
  for (const word of words) {
    if ([...kept, word].join(separator).length > max) break;
    kept.push(word);
  }
  while (kept.length > 1 && TRAILING_WORDS.has(kept[kept.length - 1]!)) kept.pop();
  return kept.join(separator) || (words[0] ?? '').slice(0, max);
}

const TRAILING_WORDS = new Set(['a', 'an', 'and', 'at', 'by', 'for', 'from', 'in', 'into', 'of', 'on', 'or', 'the', 'to', 'with']);

function shorten(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function withFullStop(sentence: string): string {
  return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
}

function basename(path: string): string {
  return path.split(/[\\/]/).pop() || 'migration.sql';
}

function uniqueFileName(taken: Map<string, string>, name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_');
  const dot = safe.lastIndexOf('.');
  const [stem, extension] = dot > 0 ? [safe.slice(0, dot), safe.slice(dot)] : [safe, '.sql'];
  let candidate = `${stem}${extension}`;
  for (let suffix = 2; taken.has(candidate) || candidate === 'plan.yaml' || candidate === IMPORT_REPORT_FILE; suffix++) candidate = `${stem}_${suffix}${extension}`;
  return candidate;
}

/** "Notify: Dylan (TPM), Frontend team (WS2 depends on this)" → two names, commas inside parentheses kept. */
function splitOutsideParentheses(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === '(') depth++;
    if (char === ')') depth = Math.max(0, depth - 1);
    if ((char === ',' || char === ';') && depth === 0) {
      parts.push(current.trim());
      current = '';
      continue;
    }
    current += char;
  }
  parts.push(current.trim());
  return parts.filter(Boolean);
}

const PLACEHOLDER_ALIASES: Record<string, keyof typeof TEAM_MESSAGE_PLACEHOLDERS> = {
  environment: 'target',
  env: 'target',
  target_database: 'target',
  database: 'target',
  executed_by: 'executor',
  executor_name: 'executor',
  engineer: 'executor',
  start: 'started_at',
  start_time: 'started_at',
  end: 'finished_at',
  end_time: 'finished_at',
  finished: 'finished_at',
  completed_at: 'finished_at',
  run_id: 'run',
  plan_id: 'plan',
};

function placeholderName(raw: string): keyof typeof TEAM_MESSAGE_PLACEHOLDERS | undefined {
  const name = raw.trim().toLowerCase().replace(/[\s-]+/g, '_');
  if (name in TEAM_MESSAGE_PLACEHOLDERS) return name as keyof typeof TEAM_MESSAGE_PLACEHOLDERS;
  return PLACEHOLDER_ALIASES[name];
}

/** JSON whose strings "<name>" are placeholders: they become "{{name}}" (filled by vars_sql). */
function parseJsonWithPlaceholders(text: string, found: Set<string>): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const walk = (entry: unknown): unknown => {
    if (typeof entry === 'string') {
      const name = /^<([A-Za-z_][A-Za-z0-9_]*)>$/.exec(entry)?.[1];
      if (!name) return entry;
      found.add(name);
      return `{{${name}}}`;
    }
    if (Array.isArray(entry)) return entry.map(walk);
    if (entry && typeof entry === 'object') return Object.fromEntries(Object.entries(entry).map(([key, inner]) => [key, walk(inner)]));
    return entry;
  };
  return walk(value);
}

/** A statement's SQL as a check runs it: its own lines, indentation removed, without the `;`. */
function sqlText(source: string, statement: AnalysedStatement): string {
  return dedent(statementSource(source, statement)).replace(/;\s*$/, '').trim();
}

/** Where a statement ends in the source, after its `;`. */
function statementEnd(source: string, statement: AnalysedStatement): number {
  const end = statement.startOffset + statement.sql.length;
  return end + (source.slice(end).match(/^\s*;/)?.[0].length ?? 0);
}

/** The statement's lines as the runbook wrote them (with its `;`). */
function statementSource(source: string, statement: AnalysedStatement): string {
  const lineStart = source.lastIndexOf('\n', statement.startOffset - 1) + 1;
  const prefix = source.slice(lineStart, statement.startOffset);
  const start = prefix.trim() === '' ? lineStart : statement.startOffset;
  const end = statement.startOffset + statement.sql.length;
  const semicolon = source.slice(end).match(/^\s*;/)?.[0].length ?? 0;
  return dedent(source.slice(start, end + semicolon));
}

function dedent(text: string): string {
  const lines = text.split('\n');
  const indents = lines.filter((line) => line.trim() !== '').map((line) => line.length - line.trimStart().length);
  const common = indents.length > 0 ? Math.min(...indents) : 0;
  return lines.map((line) => line.slice(Math.min(common, line.length - line.trimStart().length))).join('\n').trim();
}

function stepTitle(group: AnalysedStatement[], context: Context): string {
  const index = group[0]!.concurrentIndex;
  if (index?.name) return `Build index ${index.name} concurrently`;
  return `${context.label ?? context.heading}: ${group.map((statement) => statement.kind.replace(/Stmt$/, '')).join(', ')}`;
}

/** A SQL file the runbook names but does not give: it loads, and refuses to run until replaced. */
function placeholderSql(file: string, line: number, path?: string): string {
  const message = `runsheet import: ${file} is a placeholder; add the SQL${path ? ` of ${path}` : ''} (IMPORT.md)`.replace(/'/g, "''");
  return [
    `-- ${path ? `The runbook runs ${path} (line ${line}) but does not give its SQL.` : 'The runbook gives no SQL for this step.'}`,
    '-- Replace this statement with it (see IMPORT.md). Until then the step refuses to run.',
    `DO $$ BEGIN RAISE EXCEPTION '${message}'; END $$;`,
    '',
  ].join('\n');
}
