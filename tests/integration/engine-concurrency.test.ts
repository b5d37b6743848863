/**
 * Issue "Execution engine", done-when: concurrent executes apply exactly once. In one process:
 * 20 executes of one ready run, and 20 ready runs of one target executed at once. Across two
 * processes: each fires 10 executes. Every other attempt is refused with a reason, and the
 * target's ledger holds exactly one row.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun } from '../../app/engine/engine.server';
import { createRun } from '../../app/engine/runs.server';
import { ENGINE_PLANS, ENGINEER, ledgerRows, ROOT, startEngineHarness, type EngineHarness } from './engine-harness';
import type { WorkerJob } from './engine-worker';

let harness: EngineHarness;
/** How a losing execute is refused: another run holds the target, a gate, the run is no longer ready, the lock. */
const REFUSALS = ['busy', 'gate', 'state'];

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: ENGINE_PLANS, targets: [{ name: 'one' }, { name: 'many' }, { name: 'procs' }] });
});

afterAll(async () => {
  await harness?.close();
});

async function readyRuns(target: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let index = 0; index < count; index++) {
    const run = await createRun(harness.deps, { planId: 'create-table', target, kind: 'execute', actor: ENGINEER });
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

  it('20 ready runs of one target executed at once: exactly one applies', async () => {
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
      plansDir: ENGINE_PLANS,
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

interface WorkerOutput {
  pid: number;
  results: { runId: string; state?: string; error?: string; message?: string }[];
}

function runWorker(job: WorkerJob): Promise<WorkerOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'tests/integration/engine-worker.ts')], {
      cwd: ROOT,
      env: { ...process.env, ENGINE_WORKER: JSON.stringify(job) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`worker exited ${code}: ${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as WorkerOutput);
      } catch {
        reject(new Error(`worker printed no result: ${stdout}\n${stderr}`));
      }
    });
  });
}
