/**
 * The report of a runbook import (IMPORT.md beside the new plan): every part of the runbook the
 * importer could not map or had to guess, each with its runbook line and what the author must
 * decide. Pure data and text, so the command line, the import page and tests share it.
 */

/**
 * - `decide`: the plan is not right until a person acts (a missing file, an expectation that
 *   could not be read, a check the importer believes is wrong).
 * - `guess`: the importer chose something the runbook did not say; confirm or change it.
 * - `skipped`: a part of the runbook Runsheet does not carry as data (it records it itself, or
 *   it is not something a plan does).
 */
export type ImportItemKind = 'decide' | 'guess' | 'skipped';

export interface ImportItem {
  /** 1-based line of the runbook. */
  line: number;
  kind: ImportItemKind;
  /** What the runbook says or does there, in a few words. */
  subject: string;
  /** What the importer did, and what the author must do. */
  text: string;
}

export const IMPORT_REPORT_FILE = 'IMPORT.md';

/** The largest runbook the importer reads: a runbook is prose and SQL, not a data dump. */
export const MAX_RUNBOOK_BYTES = 1024 * 1024;

const HEADINGS: Record<ImportItemKind, string> = {
  decide: 'To decide before the review is cleared',
  guess: 'Guessed: confirm or change',
  skipped: 'Not carried over',
};

export function countItems(items: readonly ImportItem[]): Record<ImportItemKind, number> {
  return {
    decide: items.filter((item) => item.kind === 'decide').length,
    guess: items.filter((item) => item.kind === 'guess').length,
    skipped: items.filter((item) => item.kind === 'skipped').length,
  };
}

/** IMPORT.md: the items by kind, in runbook order, each with its line. */
export function renderImportReport(input: { planId: string; sourceName: string; sourceSha256: string; items: readonly ImportItem[] }): string {
  const sorted = [...input.items].sort((a, b) => a.line - b.line);
  const counts = countItems(sorted);
  const lines = [
    `# Import report: ${input.planId}`,
    '',
    `Imported by \`runsheet import\` from \`${input.sourceName}\` (sha256 \`${input.sourceSha256}\`). Line numbers are the runbook's.`,
    '',
    'The plan is under review: `review: pending` in plan.yaml makes the review gate refuse to execute or rehearse it.',
    'Resolve every item to decide (edit plan.yaml and the SQL files beside it), check the guesses, then remove the',
    '`review:` line. The format is docs/plan-format.md; `npx runsheet plans` validates the folder.',
    '',
    `${counts.decide} to decide, ${counts.guess} guessed, ${counts.skipped} not carried over.`,
  ];
  for (const kind of ['decide', 'guess', 'skipped'] as const) {
    const ofKind = sorted.filter((item) => item.kind === kind);
    if (ofKind.length === 0) continue;
    lines.push('', `## ${HEADINGS[kind]} (${ofKind.length})`, '');
    for (const item of ofKind) lines.push(`${kind === 'decide' ? '- [ ]' : '-'} Line ${item.line}: ${item.subject}. ${item.text}`);
  }
  return `${lines.join('\n')}\n`;
}
