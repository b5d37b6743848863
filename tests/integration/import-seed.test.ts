/**
 * The seed runbook imported unaided: the plan folder it makes loads, under review, and on a real
 * sandbox every other gate can be closed (prerequisites ticked, pre-checks passed) while execute
 * is still refused, by the review gate alone; a rehearsal is refused without a run left behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun } from '../../app/engine/engine.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { importRunbook } from '../../app/plans/import-runbook.server';
import { loadPlan } from '../../app/plans/load-plans.server';
import { writeNewPlanFolder } from '../../app/plans/plan-folder.server';
import { findRuns } from '../../app/runs/run-store.server';
import type { RunsheetError } from '../../app/runtime/errors';
import { ENGINEER, ROOT, startEngineHarness, TPM, type EngineHarness } from './engine-harness';

const SEED = path.join(ROOT, 'tests/fixtures/runbooks/000_278a046374b023c5.txt');

describe('the seed runbook, imported', () => {
  let harness: EngineHarness;
  let plansDir: string;
  let id: string;

  beforeAll(async () => {
    plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-import-seed-'));
    const imported = await importRunbook({ markdown: fs.readFileSync(SEED, 'utf8'), sourceName: path.basename(SEED) });
    id = imported.id;
    await writeNewPlanFolder(plansDir, id, imported.files);
    harness = await startEngineHarness({ plansDir, targets: [{ name: 'sandbox', rules: { sandbox: true }, sandboxUsers: 300 }] });
  });

  afterAll(async () => {
    await harness?.close();
    fs.rmSync(plansDir, { recursive: true, force: true });
  });

  it('loads, under review, with IMPORT.md beside it', async () => {
    const loaded = await loadPlan(plansDir, id);
    expect(loaded?.ok ? loaded.plan.review : loaded).toBe('pending');
    expect(fs.readFileSync(path.join(plansDir, id, 'IMPORT.md'), 'utf8')).toContain('Line 66: the runbook runs');
  });

  it('refuses to execute by the review gate alone once every other gate is closed', async () => {
    const { run } = await openWorkingRun(harness.deps, { planId: id, target: 'sandbox', kind: 'execute', actor: TPM });
    const loaded = await loadPlan(plansDir, id);
    if (!loaded?.ok) throw new Error('the imported seed does not load');
    for (const item of loaded.plan.prerequisites) await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
    const prechecks = await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
    expect(prechecks.filter((result) => !result.passed)).toEqual([]);

    const refusal = (await executeRun(harness.deps, { runId: run.id, actor: ENGINEER }).catch((error) => error)) as RunsheetError;
    expect(refusal).toMatchObject({ kind: 'gate' });
    expect(refusal.gates?.map((gate) => gate.id)).toEqual(['review']);
    expect(refusal.gates?.[0]?.detail).toMatch(/review: pending/);
    // Nothing ran on the target: the placeholder migration was never sent.
    const { rows } = await harness.targets.get('sandbox')!.pool.query(`select to_regclass('runsheet.ledger') as ledger`);
    expect(rows[0].ledger).toBeNull();
  });

  it('refuses a rehearsal by the review gate without opening a run', async () => {
    const refusal = (await openWorkingRun(harness.deps, { planId: id, target: 'sandbox', kind: 'rehearsal', actor: ENGINEER }).catch((error) => error)) as RunsheetError;
    expect(refusal.gates?.map((gate) => gate.id)).toEqual(['review']);
    expect(await findRuns(harness.store.pool, { planId: id, kind: 'rehearsal' })).toEqual([]);
  });
});
