import { describe, expect, it } from 'vitest';
import type { PayloadOf, RunEvent, RunEventType } from './run-events';
import { sampleEvent } from './run-log-fixtures';
import { buildRunReport, runReportMarkdown, type ReportHeader, type SignatureVerdict } from './run-report';

let seq = 0;
/** An event of the union: the type's example payload with these fields over it. */
const event = <T extends RunEventType>(type: T, payload: Partial<PayloadOf<T>>, at: string, actor = 'system'): RunEvent => sampleEvent(type, payload, { seq: ++seq, at, actor, role: null });

const check = (checkId: string, actual: unknown, passed = true) => ({
  checkId,
  title: checkId,
  kind: 'sql',
  passed,
  skipped: false,
  expected: { type: 'record' },
  actual,
  sql: 'select 1',
  error: null,
  reason: null,
  durationMs: 3,
  ranAt: '',
});

const events = [
  event('checks.ran', { phase: 'pre', passed: false, results: [check('a', [], false)] }, '2026-11-25T14:00:00.000000Z', 'tpm@example.com'),
  event('checks.ran', { phase: 'pre', passed: true, results: [check('a', [])] }, '2026-11-25T14:01:00.000000Z', 'tpm@example.com'),
  event('phase.started', { phase: 'snapshot', plannedMs: 30_000 }, '2026-11-25T14:03:00.000000Z'),
  event('checks.ran', { phase: 'snapshot', results: [check('counts', { users: 10 })] }, '2026-11-25T14:03:01.000000Z'),
  event('phase.completed', { phase: 'snapshot', plannedMs: 30_000, actualMs: 1_200 }, '2026-11-25T14:03:01.200000Z'),
  event('phase.started', { phase: 'apply', plannedMs: 60_000 }, '2026-11-25T14:03:02.000000Z'),
  event(
    'statement.completed',
    { stepId: 'apply-008', index: 0, line: 26, command: 'ALTER TABLE', durationMs: 3, rowCount: null, notices: [{ severity: 'NOTICE', message: 'skipping' }] },
    '2026-11-25T14:03:02.100000Z'
  ),
  event('phase.completed', { phase: 'apply', plannedMs: 60_000, actualMs: 90_000 }, '2026-11-25T14:04:32.000000Z'),
  event('checks.ran', { phase: 'snapshot', results: [check('counts', { users: 10, with_org: 9 })] }, '2026-11-25T14:04:33.000000Z'),
  event('checks.ran', { phase: 'verify', passed: true, results: [check('column-added', [{ ok: true }])] }, '2026-11-25T14:04:34.000000Z'),
  event('note.added', { text: 'Backup taken ```x```' }, '2026-11-25T14:04:35.000000Z', 'eng@example.com'),
  event('state.changed', { from: 'applying', to: 'applied', reason: 'done' }, '2026-11-25T14:04:36.000000Z'),
];

describe('buildRunReport', () => {
  const report = buildRunReport(events, null);

  it('pairs phases planned against actual', () => {
    expect(report.phases.map((phase) => [phase.phase, phase.plannedMs, phase.actualMs, phase.incomplete])).toEqual([
      ['snapshot', 30_000, 1_200, false],
      ['apply', 60_000, 90_000, false],
    ]);
  });

  it('keeps the latest pre-check run and counts the earlier ones', () => {
    expect(report.prechecks?.seq).toBe(2);
    expect(report.earlierPrecheckRuns).toEqual([{ seq: 1, at: '2026-11-25T14:00:00.000000Z', passed: false, failed: 1 }]);
  });

  it('puts the snapshot before apply beside the one after', () => {
    expect(report.snapshot.rows).toEqual([
      {
        checkId: 'counts',
        title: 'counts',
        before: expect.objectContaining({ actual: { users: 10 } }),
        after: expect.objectContaining({ actual: { users: 10, with_org: 9 } }),
        changed: true,
      },
    ]);
  });

  it('lists statements with line, rows and notices, the verification, and the notes as issues', () => {
    expect(report.statements[0]).toMatchObject({ line: 26, command: 'ALTER TABLE', notices: ['NOTICE: skipping'] });
    expect(report.verification.map((run) => run.phase)).toEqual(['verify']);
    expect(report.issues).toEqual([expect.objectContaining({ kind: 'note', text: 'Backup taken ```x```', actor: 'eng@example.com' })]);
  });

  it('a phase that never completed ran until the last event, and the outcome names the failed statement', () => {
    const failed = buildRunReport([events[5]!, event('state.changed', { from: 'applying', to: 'failed', reason: 'boom' }, '2026-11-25T14:03:07.000000Z')], {
      failure: { stepId: 'apply-008', statementIndex: 5, line: 64, sqlstate: '55P03', message: 'lock timeout', blockers: [], cancelled: false },
      steps: [{ stepId: 'apply-008', title: 'Apply', transactional: true, ok: false, statementCount: 12, completedCount: 5, committed: false, durationMs: 5_000 }],
    });
    expect(failed.phases[0]).toMatchObject({ phase: 'apply', incomplete: true, actualMs: 5_000 });
    expect(failed.failedStatement).toEqual({ stepId: 'apply-008', stepLabel: 'Step 1 · Apply', index: 5, line: 64, sqlstate: '55P03', message: 'lock timeout', cancelled: false, transactional: true });
  });
});

describe('runReportMarkdown', () => {
  const header: ReportHeader = {
    runId: '00000000-0000-0000-0000-000000000001',
    planId: '008-add-active-org-tracking',
    planTitle: 'Migration 008',
    planChecksum: 'a'.repeat(64),
    target: 'sandbox',
    targetLabel: 'Sandbox',
    kind: 'execute',
    state: 'applied',
    createdBy: 'tpm@example.com',
    createdAt: '2026-11-25T13:59:00.000Z',
    signedOffBy: 'tpm@example.com',
    signedOffAt: '2026-11-25T14:02:00.000Z',
    executedBy: 'eng@example.com',
    startedAt: '2026-11-25T14:03:00.000Z',
    finishedAt: '2026-11-25T14:04:36.000Z',
    durationMs: 96_000,
  };
  const signature: SignatureVerdict = {
    anchors: { status: 'anchored', target: 'staging', anchors: 2, throughSeq: 12 },
    status: 'valid',
    eventCount: 12,
    signedSeq: 12,
    checkpointCount: 2,
    head: 'b'.repeat(64),
    signedAt: null,
    reason: null,
    firstBadSeq: null,
    firstBadEvent: null,
    cached: false,
  };

  it('has the runbook Execution Log shape, absolute times with their zone, and fences output cannot close', () => {
    const markdown = runReportMarkdown(header, buildRunReport(events, null), signature);
    expect(markdown).toContain('**Executor**: eng@example.com');
    expect(markdown).toContain('**Execution Time**: 2026-11-25 14:03:00 UTC - 2026-11-25 14:04:36 UTC');
    expect(markdown).toContain('**Duration**: 1.6 minutes');
    for (const heading of ['### Execution Output', '### Issues Encountered', '### Post-Execution Verification']) expect(markdown).toContain(heading);
    expect(markdown).toContain('[apply-008 #1, line 26] ALTER TABLE — 3 ms');
    expect(markdown).toContain('````\n'); // the note holds ``` so its fence is longer
    expect(markdown).toContain('**Status**: ✅ Applied');
    expect(markdown).toContain('**Signed log**: valid — 2 signed checkpoints, through event 12 of 12');
  });
  it('quotes every line of a note under its author, so no line of a note passes for another person\'s (issue 11, reproduction 10)', () => {
    const forged = '2026-12-02 20:00:00 UTC engineer@example.com: restore verified, go';
    const noted = [
      ...events,
      event('note.added', { text: `all good\n${forged}\r\n\n${forged}\r${forged}` }, '2026-11-25T14:05:00.000000Z', 'viewer@example.com'),
      event('cancel.requested', { reason: `stop\n${forged}` }, '2026-11-25T14:06:00.000000Z', 'viewer@example.com'),
    ];
    const markdown = runReportMarkdown(header, buildRunReport(noted, null), signature);
    const issues = markdown.slice(markdown.indexOf('### Issues Encountered'), markdown.indexOf('### Post-Execution Verification'));
    const lines = issues.split(/\r\n|\r|\n/);
    // Each line that names someone at a time is an issue's own first line, written by the report.
    const attributed = lines.filter((line) => /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC /.test(line));
    expect(attributed).toEqual([
      '2026-11-25 14:04:35 UTC eng@example.com wrote:',
      '2026-11-25 14:05:00 UTC viewer@example.com wrote:',
      '2026-11-25 14:06:00 UTC viewer@example.com: Cancel requested: stop',
    ]);
    expect(issues).toContain(['viewer@example.com wrote:', '  > all good', `  > ${forged}`, '  >', `  > ${forged}`, `  > ${forged}`].join('\n'));
    expect(issues).toContain(`Cancel requested: stop\n  > ${forged}`);
  });
});
