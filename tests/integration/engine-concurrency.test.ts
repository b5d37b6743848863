/**
 * Issue "Execution engine", done-when: concurrent executes apply exactly once. In one process:
 * 20 executes of one ready run, and ready runs of 20 plans that make the same change
 * (equivalent_to) executed at once on one target. Across two processes: each fires 10 executes.
 * Every other attempt is refused with a reason, and the target's ledger holds exactly one row.
 * And two processes opening the working run of one plan at the same instant get one draft.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun } from '../../app/engine/engine.server';
import { openWorkingRun } from '../../app/engine/runs.server';
import { ENGINE_PLANS, ENGINEER, ledgerRows, startEngineHarness, startEngineWorker, type EngineHarness } from './engine-harness';
import type { WorkerJob } from './engine-worker';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

let harness: EngineHarness;
let plansDir: string;
/** Twenty copies of create-table under other ids, each equivalent_to it: one open run each, and once one applied, the ledger refuses the rest. */
const TWINS = Array.from({ length: 20 }, (_, index) => `create-table-twin-${String(index + 1).padStart(2, '0')}`);
/** How a losing execute is refused: another run holds the target, a gate, the run is no longer ready, the lock. */
const REFUSALS = ['busy', 'gate', 'state'];

beforeAll(async () => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-concurrency-'));
  fs.cpSync(ENGINE_PLANS, plansDir, { recursive: true });
  const original = fs.readFileSync(path.join(ENGINE_PLANS, 'create-table', 'plan.yaml'), 'utf8');
  for (const twin of TWINS) {
    fs.cpSync(path.join(ENGINE_PLANS, 'create-table'), path.join(plansDir, twin), { recursive: true });
    fs.writeFileSync(path.join(plansDir, twin, 'plan.yaml'), `${original.replace('id: create-table', `id: ${twin}`)}equivalent_to: [create-table]\n`);
  }
  harness = await startEngineHarness({ plansDir, targets: [{ name: 'one' }, { name: 'many' }, { name: 'procs' }, { name: 'drafts' }] });
});

afterAll(async () => {
  await harness?.close();
  fs.rmSync(plansDir, { recursive: true, force: true });
});

/** One ready run each of `count` twin plans (one open run per plan and target). */
async function readyRuns(target: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (const planId of TWINS.slice(0, count)) {
    const run = await openRun(harness.deps, { planId, target, kind: 'execute', actor: ENGINEER });
    expect(run.state).toBe('ready');
    ids.push(run.id);
  }
  return ids;
}

async function appliedRuns(target: string): Promise<string[]> {
  const { rows } = await harness.store.pool.query(`select id::text from runs where target = $1 and state = 'applied'`, [target]);
  return rows.map((row) => row.id);
}

function expectOneApplied(settled: PromiseSettledResult<{ state: string }>[]): void {
  const applied = settled.filter((result) => result.status === 'fulfilled' && result.value.state === 'applied');
  const refused = settled.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
  expect(applied).toHaveLength(1);
  expect(refused).toHaveLength(settled.length - 1);
  for (const refusal of refused) {
    expect(REFUSALS).toContain(refusal.reason.kind);
    expect(refusal.reason.message).toMatch(/\S{10,}/);
  }
}

describe('concurrent executes in one process', () => {
  it('20 executes of one ready run: exactly one applies', async () => {
    const [runId] = await readyRuns('one', 1);
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => executeRun(harness.deps, { runId: runId!, actor: ENGINEER })));
    expectOneApplied(settled);
    expect(await ledgerRows(harness.targets.get('one')!.pool)).toHaveLength(1);
  });

  it('ready runs of 20 plans making the same change, executed at once on one target: exactly one applies', async () => {
    const runIds = await readyRuns('many', 20);
    const settled = await Promise.allSettled(runIds.map((runId) => executeRun(harness.deps, { runId, actor: ENGINEER })));
    expectOneApplied(settled);
    expect(await ledgerRows(harness.targets.get('many')!.pool)).toHaveLength(1);
    expect(await appliedRuns('many')).toHaveLength(1);
    // The refused runs were never claimed: none is left applying.
    const { rows } = await harness.store.pool.query(`select count(*)::int as n from runs where target = 'many' and state = 'applying'`);
    expect(rows[0].n).toBe(0);
  });
});

describe('concurrent executes from two processes', () => {
  it('each fires 10 executes over the same ready runs: exactly one applies', async () => {
    const runIds = await readyRuns('procs', 4);
    const procs = harness.targets.get('procs')!;
    const job = (offset: number): WorkerJob => ({
      storeUrl: harness.storeDb.url,
      plansDir,
      signingKeyPem: harness.signingKeyPem,
      targets: [{ name: 'procs', url: procs.db.url }],
      actor: ENGINEER,
      executes: Array.from({ length: 10 }, (_, index) => runIds[(index + offset) % runIds.length]!),
    });
    const outputs = await Promise.all([runWorker(job(0)), runWorker(job(1))]);
    const results = outputs.flatMap((output) => output.results);
    expect(new Set(outputs.map((output) => output.pid)).size).toBe(2);
    expect(results).toHaveLength(20);
    // On failure, say what each attempt answered.
    expect(results.filter((result) => result.state === 'applied'), JSON.stringify(results, null, 1)).toHaveLength(1);
    for (const result of results.filter((candidate) => candidate.state !== 'applied')) expect(REFUSALS).toContain(result.error);
    expect(await ledgerRows(procs.pool)).toHaveLength(1);
    expect(await appliedRuns('procs')).toHaveLength(1);
  });
});

describe('opening the working run from two processes at once', () => {
  it('each opens the run of one plan five times at the same instant, five rounds: always exactly one draft, and every caller gets it', async () => {
    const drafts = harness.targets.get('drafts')!;
    for (const planId of TWINS.slice(0, 5)) {
      const atEpochMs = Date.now() + 2_500;
      const job: WorkerJob = {
        storeUrl: harness.storeDb.url,
        plansDir,
        signingKeyPem: harness.signingKeyPem,
        targets: [{ name: 'drafts', url: drafts.db.url }],
        actor: ENGINEER,
        executes: [],
        opens: { planId, target: 'drafts', count: 5, atEpochMs },
      };
      const outputs = await Promise.all([runWorker(job), runWorker(job)]);
      const opened = outputs.flatMap((output) => output.opened ?? []);
      expect(opened, JSON.stringify(opened)).toHaveLength(10);
      expect(new Set(opened.map((entry) => entry.runId)).size, JSON.stringify(opened)).toBe(1);
      expect(opened.filter((entry) => entry.opened)).toHaveLength(1);
      const { rows } = await harness.store.pool.query(`select id::text from runs where plan_id = $1 and target = 'drafts'`, [planId]);
      expect(rows).toHaveLength(1);
    }
  });
});

interface WorkerOutput {
  pid: number;
  results: { runId: string; state?: string; error?: string; message?: string }[];
  opened?: { runId?: string; opened?: boolean; error?: string }[];
}

async function runWorker(job: WorkerJob): Promise<WorkerOutput> {
  const { code, stdout, stderr } = await startEngineWorker(job).done;
  if (code !== 0) throw new Error(`worker exited ${code}: ${stderr}`);
  try {
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as WorkerOutput;
  } catch {
    throw new Error(`worker printed no result: ${stdout}\n${stderr}`);
  }
}
