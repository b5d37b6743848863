/**
 * One apply of a plan through the engine (openWorkingRun → ticks → pre-checks → executeRun) on the
 * sandbox, under the concurrent writer load of bench/writer-load.ts: the writers start
 * `marginMs` before executeRun is called and stop `marginMs` after the apply phase ends. Writes
 * are grouped by when they ran: before (ended before executeRun was called), during (overlapping the
 * apply phase, from its 'phase.started' to its 'phase.completed' event) and the longest stall is the
 * longest time in which no writer completed a write.
 */
import type pg from 'pg';
import { executeRun } from '../app/engine/engine.server';
import type { EngineActor, EngineDeps } from '../app/engine/engine-deps.server';
import { thawPlan } from '../app/engine/frozen-plan.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../app/engine/runs.server';
import type { RunEvent } from '../app/runs/run-events';
import { epochMs, round, summarizeLatencies, type LatencySummary } from './stats';
import { startWriterLoad, type WriteRecord } from './writer-load';

export interface WriterOptions {
  connections: number;
  ratePerConnection: number;
  insertEvery: number;
  marginMs: number;
}

export interface ApplyMeasurement {
  planId: string;
  runId: string;
  state: string;
  /** The engine's own time of the apply phase (runs.outcome.phases). */
  applyMs: number;
  /** executeRun from call to return (gates, snapshot, apply, verification, post-execution). */
  executeMs: number;
  failure?: string;
  preChecksFailed: string[];
  writers: {
    before: LatencySummary;
    during: LatencySummary;
    after: LatencySummary;
    /** Longest time in which no writer completed a write, over the whole load. */
    longestStallMs: number;
    /** The same, counted inside the apply phase only (from its start to the first write completed after its end). */
    longestStallDuringApplyMs: number;
    writes: number;
    errors: number;
    firstErrors: string[];
    loadMs: number;
  };
}

export async function applyUnderLoad(
  deps: EngineDeps,
  input: { planId: string; actor: EngineActor; targetPool: pg.Pool; targetUrl: string; writer: WriterOptions; tag: string; log(line: string): void },
): Promise<ApplyMeasurement> {
  const { actor, log } = input;
  const { run } = await openWorkingRun(deps, { planId: input.planId, target: 'sandbox', kind: 'execute', actor });
  const { plan } = thawPlan(run.frozenPlan);
  for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(deps, { runId: run.id, itemId: item.id, ticked: true, actor });
  }
  const pre = await runRunChecks(deps, { runId: run.id, phase: 'pre', actor });
  const preChecksFailed = pre.filter((result) => !result.passed && !result.skipped).map((result) => result.checkId);

  const userIds = await sampleUserIds(input.targetPool, 20_000);
  const load = await startWriterLoad({
    url: input.targetUrl,
    connections: input.writer.connections,
    ratePerConnection: input.writer.ratePerConnection,
    insertEvery: input.writer.insertEvery,
    userIds,
    // Bounded whatever happens: the apply's own statement_timeout is at most minutes.
    maxDurationMs: 20 * 60_000,
    tag: input.tag,
  });
  log(`  writers started (${input.writer.connections} connections, ${input.writer.ratePerConnection}/s each); executeRun in ${input.writer.marginMs / 1000} s`);

  let applyStart: number | undefined;
  let applyEnd: number | undefined;
  let stopping: Promise<WriteRecord[]> | undefined;
  const onEvent = (event: RunEvent) => {
    if ((event.type !== 'phase.started' && event.type !== 'phase.completed') || event.payload.phase !== 'apply') return;
    if (event.type === 'phase.started') applyStart = epochMs();
    if (event.type === 'phase.completed' && !stopping) {
      applyEnd = epochMs();
      // The writers stop `marginMs` after the apply, while executeRun goes on verifying.
      stopping = sleep(input.writer.marginMs).then(() => load.stop());
    }
  };

  await sleep(input.writer.marginMs);
  const executeCalled = epochMs();
  let done: Awaited<ReturnType<typeof executeRun>> | undefined;
  let failure: string | undefined;
  try {
    done = await executeRun(deps, { runId: run.id, actor, onEvent });
  } catch (error) {
    failure = (error as Error).message;
  }
  const executeReturned = epochMs();
  // The apply never started or never ended: stop the writers now.
  const writes = await (stopping ?? load.stop());
  const phases = done?.outcome?.phases ?? [];
  const applyMs = phases.find((phase) => phase.phase === 'apply')?.actualMs ?? Number.NaN;
  if (done && !failure && done.outcome?.failure) {
    const stepFailure = done.outcome.failure;
    failure = `${stepFailure.stepId} line ${stepFailure.line}${stepFailure.sqlstate ? ` SQLSTATE ${stepFailure.sqlstate}` : ''}: ${stepFailure.message}`;
  }

  const latency = (write: WriteRecord) => write.endMs - write.startMs;
  // A write that failed still waited: every write counts in the latencies (errors are counted apart).
  const before = writes.filter((write) => write.endMs <= executeCalled);
  const during = applyStart !== undefined && applyEnd !== undefined ? writes.filter((write) => write.endMs >= applyStart! && write.startMs <= applyEnd!) : [];
  const after = applyEnd !== undefined ? writes.filter((write) => write.startMs > applyEnd!) : [];
  const completions = writes.map((write) => write.endMs).sort((a, b) => a - b);
  const loadEnd = completions.at(-1) ?? load.startedAtMs;
  const errors = writes.filter((write) => write.error);
  return {
    planId: input.planId,
    runId: run.id,
    state: done?.state ?? 'refused',
    applyMs,
    executeMs: done ? round(executeReturned - executeCalled) : Number.NaN,
    ...(failure ? { failure } : {}),
    preChecksFailed,
    writers: {
      before: summarizeLatencies(before.map(latency)),
      during: summarizeLatencies(during.map(latency)),
      after: summarizeLatencies(after.map(latency)),
      longestStallMs: round(longestGap(completions, load.startedAtMs, loadEnd)),
      longestStallDuringApplyMs:
        applyStart !== undefined && applyEnd !== undefined ? round(longestGap(completions, applyStart, firstAfter(completions, applyEnd) ?? applyEnd)) : Number.NaN,
      writes: writes.length,
      errors: errors.length,
      firstErrors: [...new Set(errors.map((write) => write.error!))].slice(0, 3),
      loadMs: round(loadEnd - load.startedAtMs),
    },
  };
}

/** The longest interval inside [from, to] that holds no completion (the edges count as boundaries). */
export function longestGap(sortedCompletions: readonly number[], from: number, to: number): number {
  let previous = from;
  let longest = 0;
  for (const at of sortedCompletions) {
    if (at < from) continue;
    if (at > to) break;
    longest = Math.max(longest, at - previous);
    previous = at;
  }
  return Math.max(longest, to - previous);
}

function firstAfter(sorted: readonly number[], at: number): number | undefined {
  return sorted.find((value) => value >= at);
}

async function sampleUserIds(pool: pg.Pool, wanted: number): Promise<string[]> {
  const { rows: count } = await pool.query<{ n: number }>(`select reltuples::float8 as n from pg_class where oid = 'platform.users'::regclass`);
  const percent = Math.min(100, Math.max(0.01, (100 * wanted * 1.2) / Math.max(1, count[0]?.n ?? wanted)));
  const { rows } = await pool.query<{ id: string }>(`select id::text as id from platform.users tablesample bernoulli ($1) limit $2`, [percent, wanted]);
  if (rows.length > 0) return rows.map((row) => row.id);
  const fallback = await pool.query<{ id: string }>('select id::text as id from platform.users limit $1', [wanted]);
  return fallback.rows.map((row) => row.id);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
