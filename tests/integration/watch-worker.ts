/**
 * A separate Runsheet process running watches (`node --import tsx watch-worker.ts`), as a server
 * does: startWatchRunner with the intervals of WATCH_WORKER (JSON), until it is killed. Two of them
 * are how the watch test shows one runner per watch and a takeover when the runner dies.
 */
import type { EngineDeps } from '../../app/engine/engine-deps.server';
import { startWatchRunner } from '../../app/engine/watch.server';
import { openStore } from '../../app/runtime/store.server';
import { TargetRulesSchema } from '../../app/runtime/target-config';
import { createTargetRegistry } from '../../app/targets/target-registry.server';

export interface WatchWorkerJob {
  storeUrl: string;
  plansDir: string;
  signingKeyPem: string;
  targets: { name: string; url: string }[];
  pollMs: number;
  staleAfterMs: number;
}

const job = JSON.parse(process.env.WATCH_WORKER ?? '{}') as WatchWorkerJob;
const store = openStore(job.storeUrl, { max: 6 });
const targets = createTargetRegistry({
  addresses: new Map(job.targets.map((target) => [target.name, { url: target.url }])),
  rules: new Map(job.targets.map((target) => [target.name, TargetRulesSchema.parse({})])),
  config: { targets: {} },
});
const deps: EngineDeps = { store, plansDir: job.plansDir, signingKeyPem: job.signingKeyPem, targets };
const stop = startWatchRunner(deps, (line) => process.stderr.write(`${line}\n`), { pollMs: job.pollMs, staleAfterMs: job.staleAfterMs });
process.stdout.write(`${JSON.stringify({ pid: process.pid, ready: true })}\n`);
process.once('SIGTERM', () => {
  void stop().then(() => Promise.all([store.close(), targets.close()]).then(() => process.exit(0)));
});
