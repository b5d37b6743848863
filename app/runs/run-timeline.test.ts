import { describe, expect, it } from 'vitest';
import { parseRunEvent, type PayloadOf, type RunEvent, type RunEventType } from './run-events';
import { sampleEvent } from './run-log-fixtures';
import { failureOf, foldTimeline } from './run-timeline';

let seq = 0;
const at = (second: number) => `2025-11-25T12:00:${String(second).padStart(2, '0')}.000000Z`;
/** An event of the union: the type's example payload with these fields over it. */
const event = <T extends RunEventType>(type: T, payload: Partial<PayloadOf<T>> = {}, second = seq): RunEvent => sampleEvent(type, payload, { seq: ++seq, at: at(second) });

describe('foldTimeline', () => {
  it('shows a step a resumed run skipped as done, saying why, before the step it resumed at', () => {
    seq = 0;
    const view = foldTimeline([
      event('execute.started', { gates: [] }),
      event('phase.started', { phase: 'apply', plannedMs: null }),
      event('step.skipped', { stepId: 'add-slug', title: 'Add slug', transactional: true, completedBy: 'run-a', resumes: 'run-a', reason: 'completed by run run-a; this run resumes the apply of run run-a: resumes at step slug-index' }),
      event('step.started', { stepId: 'slug-index', title: 'Index', file: 'i.sql', transactional: false, statementCount: 1 }),
    ]);
    const [skipped, started] = view.attempts[0]!.phases[0]!.steps;
    expect(skipped).toMatchObject({ stepId: 'add-slug', status: 'done', statementCount: null, statements: [] });
    expect(skipped!.notes.map((note) => note.text)).toEqual(['Skipped: completed by run run-a; this run resumes the apply of run run-a: resumes at step slug-index']);
    expect(started).toMatchObject({ stepId: 'slug-index', status: 'running' });
  });

  it('folds a drive into phases, steps, statements, progress and its end state', () => {
    seq = 0;
    const view = foldTimeline([
      event('run.created'),
      event('prerequisite.ticked', { itemId: 'backup-taken' }),
      event('state.changed', { from: 'draft', to: 'ready', reason: 'gates closed' }),
      event('execute.started', { gates: [] }),
      event('state.changed', { from: 'ready', to: 'applying', reason: 'execute' }),
      event('phase.started', { phase: 'apply', plannedMs: 120_000 }),
      event('step.started', { stepId: 'apply-008', title: 'Apply', file: 'a.sql', transactional: true, statementCount: 2 }),
      event('statement.completed', { stepId: 'apply-008', index: 0, line: 3, endLine: 3, command: 'ALTER', durationMs: 4, rowCount: null, notices: [{ severity: 'NOTICE', message: 'exists, skipping' }] }),
      event('progress', { stepId: 'apply-008', done: 50, total: 100, rate: 10, etaMs: 5000 }),
      event('statement.completed', { stepId: 'apply-008', index: 1, line: 5, endLine: 9, command: 'UPDATE', durationMs: 40, rowCount: 100, notices: [] }),
      event('step.completed', { stepId: 'apply-008', ok: true, durationMs: 50 }),
      event('phase.completed', { phase: 'apply', ok: true, plannedMs: 120_000, actualMs: 60 }),
      event('execute.finished', { state: 'applied' }),
      event('state.changed', { from: 'applying', to: 'applied', reason: 'applied and verified' }),
    ]);
    expect(view.state).toBe('applied');
    expect(view.attempts).toHaveLength(1);
    const [attempt] = view.attempts;
    expect(attempt!.finishedState).toBe('applied');
    const [phase] = attempt!.phases;
    expect(phase).toMatchObject({ phase: 'apply', status: 'done', plannedMs: 120_000, actualMs: 60 });
    const [step] = phase!.steps;
    expect(step!.statements.map((statement) => statement.line)).toEqual([3, 5]);
    expect(step!.statements[0]!.notices[0]!.message).toBe('exists, skipping');
    expect(step!.progress).toMatchObject({ done: 50, total: 100, etaMs: 5000 });
    expect(view.lastSeq).toBe(14);
  });

  it('opens the newest failure and keeps earlier attempts', () => {
    seq = 0;
    const view = foldTimeline([
      event('execute.started'),
      event('lock.held', { holders: [] }),
      event('execute.started'),
      event('phase.started', { phase: 'apply' }),
      event('step.started', { stepId: 's', title: 'S', statementCount: 3 }),
      event('step.failed', { stepId: 's', failure: { stepId: 's', statementIndex: 2, line: 11, sqlstate: '42P01', message: 'relation does not exist', blockers: [{ pid: 7, lockMode: 'AccessShareLock' }], cancelled: false }, summary: 'Statement 3 failed' }),
      event('phase.completed', { phase: 'apply', ok: false, actualMs: 5 }),
      event('execute.finished', { state: 'failed' }),
      event('execute.refused', { reason: 'not ready', openGates: [{ id: 'prechecks', label: 'Pre-checks', passed: false, detail: 'not run' }] }),
    ]);
    expect(view.attempts).toHaveLength(2);
    expect(view.attempts[0]!.lockHeld).toBe(true);
    const failure = failureOf(view.attempts[1]!);
    expect(failure?.failure).toMatchObject({ line: 11, sqlstate: '42P01', statementIndex: 2 });
    expect(failure?.failure.blockers[0]).toMatchObject({ pid: 7, lockMode: 'AccessShareLock' });
    expect(view.refusals[0]!.openGates[0]!.id).toBe('prechecks');
  });

  it('closes a drive the process abandoned when the run is marked interrupted', () => {
    seq = 0;
    const view = foldTimeline([
      event('execute.started'),
      event('phase.started', { phase: 'apply' }),
      event('step.started', { stepId: 's', title: 'S' }),
      event('state.changed', { from: 'applying', to: 'interrupted', reason: 'heartbeat stale' }),
    ]);
    expect(view.state).toBe('interrupted');
    expect(view.attempts[0]!.finishedState).toBe('interrupted');
    expect(view.attempts[0]!.phases[0]!.status).toBe('stopped');
  });

  it('ignores events it does not know and payloads that do not fit (both parse as unrecognised)', () => {
    seq = 0;
    const stored = (type: string, payload: unknown) => parseRunEvent({ runId: 'r', seq: ++seq, at: at(0), actor: 'system', role: null, type, payload });
    const view = foldTimeline([stored('something.new', { x: 1 }), stored('statement.completed', { stepId: 42 }), stored('phase.completed', {})], 'ready');
    expect(view.lastSeq).toBe(3);
    expect(view.state).toBe('ready');
    expect(view.attempts).toEqual([]);
  });
});
