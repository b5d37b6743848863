/**
 * A separate Runsheet process for the engine tests (`node --import tsx engine-worker.ts`): it
 * builds its own EngineDeps from ENGINE_WORKER (JSON) and executes runs, printing one JSON line
 * of results. Killing it mid-apply is how the crash test makes an interrupted run.
 */
import pg from 'pg';
import type { EngineActor, EngineDeps } from '../../app/engine/engine-deps.server';
import { executeRun } from '../../app/engine/engine.server';
import { openStore } from '../../app/runtime/store.server';
import { TargetRulesSchema } from '../../app/targets/target-config';
import { openTargetPool, type Target } from '../../app/targets/targets.server';

export interface WorkerJob {
  storeUrl: string;
  plansDir: string;
  signingKeyPem: string;
  targets: { name: string; url: string; rules?: Record<string, unknown> }[];
  actor: EngineActor;
  /** Each entry is one executeRun call, all fired at once. */
  executes: string[];
}

const job = JSON.parse(process.env.ENGINE_WORKER ?? '{}') as WorkerJob;
const store = openStore(job.storeUrl, { max: 12 });
const pools = new Map<string, pg.Pool>(job.targets.map((target) => [target.name, openTargetPool(target.url, { max: 4 })]));
const targets = new Map<string, Target>(
  job.targets.map((target) => {
    const rules = TargetRulesSchema.parse(target.rules ?? {});
    return [target.name, { name: target.name, label: target.name, url: target.url, displayUrl: target.url, rules }];
  }),
);
const deps: EngineDeps = {
  store,
  plansDir: job.plansDir,
  signingKeyPem: job.signingKeyPem,
  targetPool: (name) => pools.get(name)!,
  findTarget: (name) => targets.get(name),
};

const results = await Promise.all(
  job.executes.map((runId) =>
    executeRun(deps, { runId, actor: job.actor }).then(
      (run) => ({ runId, state: run.state as string }),
      (error: Error & { kind?: string }) => ({ runId, error: error.kind ?? error.name, message: error.message }),
    ),
  ),
);
process.stdout.write(`${JSON.stringify({ pid: process.pid, results })}\n`);
await Promise.all([store.close(), ...[...pools.values()].map((pool) => pool.end())]);
process.exit(0);
