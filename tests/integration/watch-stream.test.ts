/**
 * The live view of an apply whose plan declares a watch (docs/decisions/030): the run is 'applied'
 * for an instant before it is 'watching'. The event stream ended at that 'applied' (a final
 * state), so the live view said "Applied" and stopped while the run was watching, and a follower
 * never saw the watch start. Reproduced by holding the watch's row back (a SHARE lock on
 * run_watches in the store) while the apply finishes: the stream must not end at 'applied', and
 * sends the change to 'watching' once the watch starts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignedInUser } from '../../app/auth/require.server';
import { executeRun } from '../../app/engine/engine.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { findRun } from '../../app/runs/run-store.server';
import { streamRunEvents } from '../../app/web/run-page.server';
import { ENGINEER, REAL_PLANS, startEngineHarness, TPM, waitFor, type EngineHarness } from './engine-harness';

const PLAN = '008-add-active-org-tracking';
const VIEWER: SignedInUser = { accountId: '00000000-0000-4000-8000-00000000000b', email: 'viewer@example.com', name: 'Viewer', role: 'viewer', via: 'session' };
let harness: EngineHarness;
let plansDir: string;

beforeAll(async () => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-watch-stream-'));
  fs.cpSync(path.join(REAL_PLANS, PLAN), path.join(plansDir, PLAN), { recursive: true });
  const file = path.join(plansDir, PLAN, 'plan.yaml');
  const document = parseDocument(fs.readFileSync(file, 'utf8'));
  document.set('watch', { for: '1h', every: '1m', checks: ['column-added'] });
  fs.writeFileSync(file, document.toString());
  harness = await startEngineHarness({ plansDir, targets: [{ name: 'sandbox', sandboxUsers: 100 }] });
});

afterAll(async () => {
  await harness?.close();
  fs.rmSync(plansDir, { recursive: true, force: true });
});

describe('the event stream of an apply that goes on into its watch', () => {
  it("does not end at the instant the run is 'applied': it sends the change to 'watching'", { timeout: 120_000 }, async () => {
    const { run } = await openWorkingRun(harness.deps, { planId: PLAN, target: 'sandbox', kind: 'execute', actor: TPM, newAttempt: true });
    for (const item of thawPlan(run.frozenPlan).plan.prerequisites.filter((candidate) => candidate.required)) {
      await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
    }
    await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });

    // The watch's row cannot be written while this transaction holds SHARE on run_watches (reads go on).
    const holder = new pg.Client({ connectionString: harness.storeDb.url });
    await holder.connect();
    await holder.query('begin');
    await holder.query('lock table run_watches in share mode');
    const applying = executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
    let text = '';
    const abort = new AbortController();
    try {
      await waitFor('the apply to be verified', async () => (await findRun(harness.store.pool, run.id))!.state === 'applied', 90_000);
      const stream = await streamRunEvents(harness.deps, { runId: run.id, afterSeq: 0, user: VIEWER, signal: abort.signal });
      const reader = stream.body!.getReader();
      const decoder = new TextDecoder();
      // Everything logged so far, 'applied' included, is sent before the watch can start.
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
        if (text.includes('"to":"applied"') || text.includes('event: end')) break;
      }
      await holder.query('rollback');
      for (;;) {
        if (text.includes('event: end') || text.includes('"to":"watching"')) break;
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
      abort.abort();
      await reader.cancel().catch(() => {});
    } finally {
      await holder.query('rollback').catch(() => {});
      await holder.end();
    }
    expect((await applying).state).toBe('watching');
    expect(text).toContain('"to":"applied"');
    expect(text).not.toContain('event: end');
    expect(text).toContain('"to":"watching"');
  });
});
