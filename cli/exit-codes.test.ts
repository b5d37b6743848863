import { describe, expect, it } from 'vitest';
import type { RunOutcome } from '../db/schema/run-outcome';
import type { RunState } from '../db/run-lifecycle';
import { EXIT, exitCodeOfRun } from './exit-codes';

const phase = (name: string, ok?: boolean) => ({ phase: name, plannedMs: null, actualMs: 10, ...(ok === undefined ? {} : { ok }) });
const run = (state: RunState, outcome: RunOutcome | null) => ({ state, outcome });

describe('exitCodeOfRun (README: 1 when something ran and failed)', () => {
  it('is 0 for an applied, verified run whose every phase passed (and for phases logged before they carried ok)', () => {
    expect(exitCodeOfRun(run('applied', { verified: true, phases: [phase('snapshot', true), phase('apply', true), phase('verification', true), phase('post_execution', true)] }), 'apply')).toBe(EXIT.ok);
    expect(exitCodeOfRun(run('applied', { verified: true, phases: [phase('apply'), phase('verification')] }), 'apply')).toBe(EXIT.ok);
  });

  it('is 1 when any phase of the action failed, though the run reached its state', () => {
    expect(exitCodeOfRun(run('applied', { verified: true, phases: [phase('snapshot', false), phase('apply', true)] }), 'apply')).toBe(EXIT.failed);
    expect(exitCodeOfRun(run('applied', { verified: true, phases: [phase('apply', true), phase('post_execution', false)] }), 'apply')).toBe(EXIT.failed);
    expect(exitCodeOfRun(run('applied', { verified: false, phases: [phase('apply', true)] }), 'apply')).toBe(EXIT.failed);
    expect(exitCodeOfRun(run('rehearsed', { phases: [phase('rollback_verification', false)] }), 'rehearse')).toBe(EXIT.failed);
  });

  it('is 1 for every other ending: failed, rollback_failed, rehearsal_failed, interrupted', () => {
    expect(exitCodeOfRun(run('failed', { phases: [] }), 'apply')).toBe(EXIT.failed);
    expect(exitCodeOfRun(run('rollback_failed', { rollback: { result: 'rollback_failed', steps: [], phases: [phase('rollback', false)] } }), 'rollback')).toBe(EXIT.failed);
    expect(exitCodeOfRun(run('rehearsal_failed', { phases: [phase('apply', false)] }), 'rehearse')).toBe(EXIT.failed);
    expect(exitCodeOfRun(run('interrupted', null), 'apply')).toBe(EXIT.failed);
  });

  it("judges a rollback by its own phases, not the apply's before it", () => {
    const outcome: RunOutcome = { verified: true, phases: [phase('post_execution', false)], rollback: { result: 'rolled_back', steps: [], phases: [phase('rollback', true), phase('rollback_verification', true)] } };
    expect(exitCodeOfRun(run('rolled_back', outcome), 'rollback')).toBe(EXIT.ok);
    const unverified: RunOutcome = { rollback: { result: 'rolled_back', steps: [], phases: [phase('rollback', true), phase('rollback_verification', false)] } };
    expect(exitCodeOfRun(run('rolled_back', unverified), 'rollback')).toBe(EXIT.failed);
  });
});
