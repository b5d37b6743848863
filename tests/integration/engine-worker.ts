/**
 * A separate Runsheet process for the engine tests (`node --import tsx engine-worker.ts`): it
 * builds its own EngineDeps from ENGINE_WORKER (JSON) and executes runs, or opens the working
 * run of a plan, printing one JSON line of results. Killing it mid-apply is how the crash test
 * makes an interrupted run; two of them opening at once is how the draft race is tested.
 */
import pg from 'pg';
import type { EngineActor, EngineDeps } from '../../app/engine/engine-deps.server';
import { executeRun } from '../../app/engine/engine.server';
import { openWorkingRun } from '../../app/engine/runs.server';
import { openStore } from '../../app/runtime/store.server';
import { TargetRulesSchema } from '../../app/runtime/target-config';
import { createTargetRegistry } from '../../app/targets/target-registry.server';

export interface WorkerJob {
  storeUrl: string;
  plansDir: string;
  signingKeyPem: string;
  targets: { name: string; url: string; rules?: Record<string, unknown> }[];
  actor: EngineActor;
  /** Each entry is one executeRun call, all fired at once. */
  executes: string[];
  /** openWorkingRun calls, all fired at once at `atEpochMs` (both processes wait for the same instant). */
  opens?: { planId: string; target: string; count: number; atEpochMs: number };
}

const job = JSON.parse(process.env.ENGINE_WORKER ?? '{}') as WorkerJob;
const store = openStore(job.storeUrl, { max: 12 });
const targets = createTargetRegistry({
  addresses: new Map(job.targets.map((target) => [target.name, { url: target.url }])),
  rules: new Map(job.targets.map((target) => [target.name, TargetRulesSchema.parse(target.rules ?? {})])),
  config: { targets: {} },
});
const deps: EngineDeps = { store, plansDir: job.plansDir, signingKeyPem: job.signingKeyPem, targets };

if (job.opens) {
  const { planId, target, count, atEpochMs } = job.opens;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, atEpochMs - Date.now())));
  const opened = await Promise.all(
    Array.from({ length: count }, () =>
      openWorkingRun(deps, { planId, target, kind: 'execute', actor: job.actor }).then(
        ({ run, opened: created }) => ({ runId: run.id, opened: created }),
        (error: Error) => ({ error: error.message }),
      ),
    ),
  );
  process.stdout.write(`${JSON.stringify({ pid: process.pid, opened })}\n`);
  await Promise.all([store.close(), targets.close()]);
  process.exit(0);
}

const results = await Promise.all(
  job.executes.map((runId) =>
    executeRun(deps, { runId, actor: job.actor }).then(
      (run) => ({ runId, state: run.state as string }),
      (error: Error & { kind?: string }) => ({ runId, error: error.kind ?? error.name, message: error.message }),
    ),
  ),
);
process.stdout.write(`${JSON.stringify({ pid: process.pid, results })}\n`);
await Promise.all([store.close(), targets.close()]);
process.exit(0);
