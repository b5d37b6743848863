/**
 * Two app instances on one store, as behind a proxy: the first is the usual embedded-mode server;
 * the second connects to the first's PostgreSQL with DATABASE_URL (the app role) and
 * DATABASE_OWNER_URL, the same SESSION_SECRET and SIGNING_KEY, and a data folder of its own. The
 * same page load is split across both (half the readers on each, at the same time), and 20
 * executes of one ready run are sent at once, half to each: exactly one may start the apply.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { EngineActor, EngineDeps } from '../app/engine/engine-deps.server';
import { thawPlan } from '../app/engine/frozen-plan.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../app/engine/runs.server';
import { readRunEvents } from '../app/runs/run-log.server';
import { findRun } from '../app/runs/run-store.server';
import { isFinalState } from '../app/runs/run-timeline';
import type { RunState } from '../db/run-lifecycle';
import { databaseUrl } from '../app/runtime/embedded-postgres.server';
import { ensureEmbeddedStoreRoles } from '../app/runtime/store-roles.server';
import { loadRoute, readDemoAccount, signIn, startServerProcess, type LoadResult, type ServerProcess } from './http-load';
import { round } from './stats';

export interface TwoInstancesMeasurement {
  path: string;
  /** Both loads at once, `connections / 2` readers each. */
  perInstance: LoadResult[];
  requestsPerSecond: number;
  p99Ms: number;
  executes: { sent: number; started: number; refused: number; answers: Record<string, number>; applyPhasesStarted: number; state: string };
}

export async function measureTwoInstances(
  deps: EngineDeps,
  input: {
    root: string;
    dataDir: string;
    adminUrl: string;
    first: ServerProcess;
    pathAndQuery: string;
    planId: string;
    actor: EngineActor;
    load: { connections: number; durationS: number; warmupRequests: number };
    log(line: string): void;
  },
): Promise<TwoInstancesMeasurement> {
  const { log } = input;
  const roles = await ensureEmbeddedStoreRoles(input.adminUrl, input.dataDir, 'runsheet');
  const secrets = JSON.parse(fs.readFileSync(path.join(input.dataDir, 'secrets.json'), 'utf8')) as { sessionSecret: string; signingKeyPem: string };
  const secondDir = path.join(input.dataDir, 'second-instance');
  fs.mkdirSync(secondDir, { recursive: true });
  const second = await startServerProcess(input.root, secondDir, {
    env: {
      DATABASE_URL: roles.appUrl,
      DATABASE_OWNER_URL: roles.ownerUrl,
      SESSION_SECRET: secrets.sessionSecret,
      SIGNING_KEY: secrets.signingKeyPem,
      TARGET_SANDBOX_URL: databaseUrl(input.adminUrl, 'sandbox'),
    },
  });
  try {
    const viewer = await signIn(input.first, readDemoAccount(input.dataDir, 'viewer'));
    const half = { ...input.load, connections: Math.max(1, Math.floor(input.load.connections / 2)) };
    const perInstance = await Promise.all([input.first, second].map((server) => loadRoute(server, input.pathAndQuery, viewer, half)));
    log(`  two instances: ${perInstance.map((load) => `${load.requestsPerSecond} req/s (p99 ${load.p99Ms} ms)`).join(' + ')}`);

    const { run } = await openWorkingRun(deps, { planId: input.planId, target: 'sandbox', kind: 'execute', actor: input.actor, newAttempt: true });
    const { plan } = thawPlan(run.frozenPlan);
    for (const item of plan.prerequisites.filter((candidate) => candidate.required)) await tickPrerequisite(deps, { runId: run.id, itemId: item.id, ticked: true, actor: input.actor });
    await runRunChecks(deps, { runId: run.id, phase: 'pre', actor: input.actor });
    const engineer = await signIn(input.first, readDemoAccount(input.dataDir, 'engineer'));
    const sent = 20;
    const answers = await Promise.all(
      Array.from({ length: sent }, (_, index) => {
        const server = index % 2 === 0 ? input.first : second;
        // To the app's own origin (localhost), as a browser would: the Origin check compares it with the Host.
        return fetch(`${server.origin}/plans/${input.planId}?target=sandbox`, {
          method: 'POST',
          redirect: 'manual',
          headers: { Cookie: engineer, Origin: server.origin, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ intent: 'execute' }).toString(),
        }).then(async (response) => {
          await response.arrayBuffer();
          return { status: response.status, location: response.headers.get('location') };
        });
      }),
    );
    const counts: Record<string, number> = {};
    for (const answer of answers) counts[answer.status] = (counts[answer.status] ?? 0) + 1;
    const started = answers.filter((answer) => answer.status === 302 && answer.location === `/runs/${run.id}`).length;
    // Wait for the one apply to finish before anything else uses the sandbox (a run none started stays ready).
    let state = (await findRun(deps.store.pool, run.id))!.state;
    while (started > 0 && !isFinalState(state as RunState)) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      state = (await findRun(deps.store.pool, run.id))!.state;
    }
    const events = await readRunEvents(deps.store.pool, run.id);
    const applyPhasesStarted = events.filter((event) => event.type === 'phase.started' && event.payload.phase === 'apply').length;
    log(`  two instances: ${sent} executes → ${started} started, answers ${JSON.stringify(counts)}; ${applyPhasesStarted} apply phase(s); run ${state}`);
    return {
      path: input.pathAndQuery,
      perInstance,
      requestsPerSecond: round(perInstance.reduce((sum, load) => sum + load.requestsPerSecond, 0)),
      p99Ms: Math.max(...perInstance.map((load) => load.p99Ms)),
      executes: { sent, started, refused: sent - started, answers: counts, applyPhasesStarted, state },
    };
  } finally {
    await second.stop();
  }
}
