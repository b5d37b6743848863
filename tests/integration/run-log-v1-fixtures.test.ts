/**
 * Logs exported before the run-event union (tests/fixtures/run-logs-v1) still verify, and their
 * report still renders: a signed log is a public format, and a reader change must never orphan
 * the logs already handed to auditors.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildRunReport, runReportMarkdown, type ReportHeader } from '../../app/runs/run-report';
import { verifyEnvelope } from '../../app/runs/verify-run-log.server';
import { parseRunEvent } from '../../app/runs/run-events';
import type { RunOutcome } from '../../db/schema/run-outcome';

const folder = path.resolve(import.meta.dirname, '../fixtures/run-logs-v1');
const publicKeyPem = fs.readFileSync(path.join(folder, 'signing-key.pem'), 'utf8');
const readFixture = (name: string): unknown => JSON.parse(fs.readFileSync(path.join(folder, name), 'utf8'));

function renderedReport(name: string) {
  const verification = verifyEnvelope(readFixture(name), [publicKeyPem]);
  if (!verification.ok) throw new Error(`${name} does not verify: ${verification.reason}`);
  const { run, events } = verification;
  const parsed = events.map((event) => parseRunEvent({ runId: run.id, seq: event.seq, at: event.at, actor: event.actor, role: event.role, type: event.type, payload: event.payload }));
  const report = buildRunReport(parsed, run.outcome as RunOutcome);
  const header: ReportHeader = {
    runId: run.id,
    planId: run.plan_id,
    planTitle: null,
    planChecksum: run.plan_checksum,
    target: run.target,
    targetLabel: run.target,
    kind: run.kind,
    state: run.state,
    createdBy: run.created_by,
    createdAt: run.created_at,
    signedOffBy: run.signed_off_by,
    signedOffAt: run.signed_off_at,
    executedBy: run.executed_by,
    startedAt: run.started_at,
    finishedAt: run.finished_at,
    durationMs: null,
  };
  const signature = { status: 'valid' as const, eventCount: events.length, signedSeq: events.length, checkpointCount: 1, head: verification.head, signedAt: null, reason: null, firstBadSeq: null, firstBadEvent: null, cached: false, anchors: { status: 'none' as const, target: run.target, reason: 'an exported file: anchors are on its target' } };
  return { verification, report, markdown: runReportMarkdown(header, report, signature) };
}

describe('run logs exported before the run-event union', () => {
  it('plan 008 executed and rolled back: verifies, and its report shows every phase and the rollback', () => {
    const { verification, report, markdown } = renderedReport('plan-008-execute-rollback.json');
    expect(verification.ok && verification.events).toHaveLength(54);
    expect(report.phases.map((phase) => phase.phase)).toEqual(['snapshot', 'apply', 'verification', 'post_execution', 'rollback', 'rollback_verification']);
    expect(report.statements.filter((statement) => statement.stepId === 'apply-008')).toHaveLength(12);
    expect(report.statements.filter((statement) => statement.stepId === 'rollback-008')).toHaveLength(5);
    expect(markdown).toContain('**Status**: ↩️ Rolled back');
    expect(markdown).toContain('api-validate');
  });

  it('plan 008 rehearsed: verifies, and its report is marked a rehearsal', () => {
    const { verification, markdown } = renderedReport('plan-008-rehearsal.json');
    expect(verification.ok && verification.run.kind).toBe('rehearsal');
    expect(markdown).toContain('## Execution Log (rehearsal)');
    expect(markdown).toContain('Rehearsed');
  });

  it('a failing step: verifies, and its report names the line and SQLSTATE', () => {
    const { report, markdown } = renderedReport('failing-step.json');
    expect(report.failedStatement).toMatchObject({ stepId: 'apply-broken', line: 11, sqlstate: '42P01' });
    expect(markdown).toContain('SQLSTATE 42P01');
  });
});
