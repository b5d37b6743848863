/**
 * Lints a plan's migration and rollback SQL with squawk (a PostgreSQL migration linter). Findings
 * are data shown beside the plan (and a target may require them waived), never a reason to refuse
 * loading it. squawk runs once per file content: results are cached by sha256.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Plan } from './plan-schema';
import { translateBatchTemplate } from '../steps/batch-template.server';
import { sha256Hex } from './plan-checksum.server';
import { splitSql, type SqlStatement } from '../sql/split-sql.server';

export interface LintFinding {
  /** The file as the plan errors name it, e.g. "plans/008-…/008_add_active_org_tracking.sql". */
  file: string;
  /** 1-based; 0 when the finding is about the whole file (squawk could not run). */
  line: number;
  /** 1-based, in characters. */
  column?: number;
  /** squawk's rule name, e.g. "require-concurrent-index-creation". */
  rule: string;
  /** squawk's own level. */
  level: 'warning' | 'error';
  message: string;
  help?: string;
  /** The statement (SqlStatement.index) the finding is about, when its line falls in one. */
  statementIndex?: number;
  /** Whether the file runs in the plan's apply or its rollback (apply when both). */
  section?: 'apply' | 'rollback';
}

/**
 * squawk's style rules: about types and re-runnability, not about the locks a statement takes
 * on a live table. A `strict` lint gate lets them pass; every other rule (and any rule squawk
 * adds later) counts until a person waives it.
 */
export const ADVISORY_RULES: readonly string[] = [
  'prefer-robust-stmts',
  'prefer-bigint-over-int',
  'prefer-bigint-over-smallint',
  'prefer-big-int',
  'prefer-identity',
  'prefer-text-field',
  'prefer-timestamp-tz',
  'prefer-timestamptz',
  'ban-char-field',
];

/** Removing what the apply added is what a rollback is for: in rollback files these do not count under `strict`. */
export const ROLLBACK_EXPECTED_RULES: readonly string[] = ['ban-drop-column', 'ban-drop-table', 'ban-drop-not-null'];

/**
 * Whether a finding keeps a target's lint-clean gate closed (until waived in the run), under the
 * plan's `lint_gate`: `errors` counts squawk's error level only; `strict` counts every rule but the
 * advisory ones. A file squawk could not lint counts under both: clean cannot be shown.
 */
export function blocksLintGate(finding: LintFinding, gate: Plan['lint_gate']): boolean {
  if (finding.level === 'error' || finding.rule === 'squawk-unavailable') return true;
  if (gate !== 'strict') return false;
  if (ADVISORY_RULES.includes(finding.rule)) return false;
  return !(finding.section === 'rollback' && ROLLBACK_EXPECTED_RULES.includes(finding.rule));
}

export interface SqlFileToLint {
  /** How findings name the file. */
  file: string;
  content: string;
  sha256: string;
  /** Runs inside a transaction Runsheet owns (squawk then knows CONCURRENTLY is impossible). */
  transactional: boolean;
}

export interface LintOptions {
  /** The PostgreSQL version squawk assumes; the embedded and sandbox servers are 18. */
  pgVersion?: string;
  /** The squawk executable; default: the native binary of the installed squawk-cli. */
  squawkBinary?: string;
}

/**
 * Rules the runner satisfies itself: it sets each step's lock_timeout and statement_timeout
 * (StepSchema) before the file's first statement, so asking the file to set them is noise.
 */
const RULES_SATISFIED_BY_RUNNER = ['require-lock-timeout', 'require-statement-timeout'];

const DEFAULT_PG_VERSION = '18';
const SQUAWK_TIMEOUT_MS = 30_000;

/** A finding without its file name, as cached per content: equal files share one squawk run. */
type FileFinding = Omit<LintFinding, 'file'>;

const findingsByContent = new Map<string, Promise<FileFinding[]>>();
/** Every edit of a file adds an entry; the oldest go first (Map keeps insertion order). */
const MAX_CACHED_FILES = 500;

/** Every SQL file the plan's apply and rollback steps run, linted once per content and mode. */
export async function lintPlan(
  plan: Plan,
  files: readonly { path: string; content: string; sha256: string }[],
  fileLabel: (path: string) => string,
  options: LintOptions = {},
): Promise<LintFinding[]> {
  const targets = new Map<string, SqlFileToLint & { section: 'apply' | 'rollback' }>();
  const steps = [...plan.apply.map((step) => ({ step, section: 'apply' as const })), ...plan.rollback.steps.map((step) => ({ step, section: 'rollback' as const }))];
  for (const { step, section } of steps) {
    const file = files.find((candidate) => candidate.path === step.file);
    if (!file) continue;
    const key = `${file.path}\0${step.transactional}\0${step.kind}`;
    if (targets.has(key)) continue;
    let { content, sha256 } = file;
    if (step.kind === 'batched_backfill') {
      // squawk reads :batch_start as a syntax error: it lints what is sent, with $1 and $2.
      const template = await translateBatchTemplate(content);
      if (template.ok) {
        content = template.sql;
        sha256 = sha256Hex(content);
      }
    }
    targets.set(key, { file: fileLabel(file.path), content, sha256, transactional: step.transactional, section });
  }
  const results = await Promise.all([...targets.values()].map(async ({ section, ...target }) => (await lintSqlFile(target, options)).map((finding) => ({ ...finding, section }))));
  return results.flat();
}

export async function lintSqlFile(target: SqlFileToLint, options: LintOptions = {}): Promise<LintFinding[]> {
  const pgVersion = options.pgVersion ?? DEFAULT_PG_VERSION;
  const key = [target.sha256, target.transactional, pgVersion, options.squawkBinary ?? ''].join(':');
  let cached = findingsByContent.get(key);
  if (!cached) {
    cached = runSquawk(target.content, target.transactional, pgVersion, options.squawkBinary);
    findingsByContent.set(key, cached);
    if (findingsByContent.size > MAX_CACHED_FILES) findingsByContent.delete(findingsByContent.keys().next().value!);
    // A failure to run is not a property of the content: try again next time.
    cached.catch(() => findingsByContent.delete(key));
  }
  try {
    return (await cached).map((finding) => ({ file: target.file, ...finding }));
  } catch (error) {
    return [
      {
        file: target.file,
        line: 0,
        rule: 'squawk-unavailable',
        level: 'warning',
        message: `The SQL was not linted: squawk could not run (${error instanceof Error ? error.message : String(error)}).`,
        help: 'Check that npm installed squawk-cli with its platform binary (npm install --include=optional), then reload the plan.',
      },
    ];
  }
}

/** Forget cached findings (after upgrading squawk in a long-running process). */
export function clearLintCache(): void {
  findingsByContent.clear();
}

interface SquawkViolation {
  line: number;
  column: number;
  level: string;
  message: string;
  help: string | null;
  rule_name: string;
}

async function runSquawk(content: string, transactional: boolean, pgVersion: string, binary?: string): Promise<FileFinding[]> {
  const args = [
    '--reporter',
    'json',
    '--pg-version',
    pgVersion,
    '--exclude',
    RULES_SATISFIED_BY_RUNNER.join(','),
    '--stdin-filepath',
    'plan.sql',
    ...(transactional ? ['--assume-in-transaction'] : []),
  ];
  // The content goes through stdin, so what is linted is exactly what was hashed.
  const stdout = await execSquawk(binary ?? squawkBinaryPath(), args, content);
  let violations: SquawkViolation[];
  try {
    violations = JSON.parse(stdout) as SquawkViolation[];
    if (!Array.isArray(violations)) throw new Error('not a JSON array');
  } catch (error) {
    throw new Error(`unexpected output from squawk (${String(error)}): ${stdout.slice(0, 200)}`);
  }
  const split = await splitSql(content);
  const statements = split.ok ? split.statements : [];
  const lines = content.split('\n');
  const lineStarts = lines.reduce<number[]>((starts, text, index) => [...starts, index === 0 ? 0 : starts[index - 1]! + lines[index - 1]!.length + 1], []);
  return violations.map((violation) => {
    // squawk counts lines from 0 and columns in bytes from 0.
    const line = violation.line + 1;
    const column = characterColumn(lines[violation.line] ?? '', violation.column);
    const statement = statementAt(statements, (lineStarts[violation.line] ?? 0) + column - 1, line);
    return {
      line,
      column,
      rule: violation.rule_name,
      level: violation.level.toLowerCase() === 'error' ? 'error' : 'warning',
      message: violation.message,
      ...(violation.help ? { help: violation.help } : {}),
      ...(statement ? { statementIndex: statement.index } : {}),
    };
  });
}

function execSquawk(binary: string, args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      binary,
      args,
      { cwd: os.tmpdir(), timeout: SQUAWK_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        // squawk exits 1 when it found something: that is an answer, not a failure.
        if (error && !(typeof error.code === 'number' && error.code === 1 && stdout.trim().startsWith('['))) {
          reject(new Error(stderr.trim() || error.message));
          return;
        }
        resolve(stdout);
      },
    );
    child.stdin?.on('error', () => {}); // a binary that dies early closes stdin; the callback reports why
    child.stdin?.end(input);
  });
}

function squawkBinaryPath(): string {
  // squawk-cli's bin is a Node wrapper around a per-platform native binary; run the binary itself.
  const require = createRequire(import.meta.url);
  const { getBinaryPath } = require('squawk-cli/js/index.js') as { getBinaryPath(): string };
  return getBinaryPath();
}

/** The statement whose text holds the position; else the first one on the finding's line. */
function statementAt(statements: SqlStatement[], index: number, line: number): SqlStatement | undefined {
  return (
    statements.find((statement) => statement.startOffset <= index && index < statement.startOffset + statement.sql.length) ??
    statements.find((statement) => statement.startLine <= line && line <= statement.endLine)
  );
}

function characterColumn(lineText: string, byteColumn: number): number {
  return Buffer.from(lineText, 'utf8').subarray(0, byteColumn).toString('utf8').length + 1;
}
