/**
 * The watch window after a verified apply (docs/decisions/030): the plan's `watch` checks re-run
 * on schedule while the run is `watching` (or `watch_alarm`), each round judged against the one
 * before. The run log keeps a round in full only when a result changed (unchanged rounds are a
 * count), an alarm for every check that passed and now fails (the first turns the run
 * `watch_alarm`), and the window's end (`watched` when it closed clean).
 *
 * At most one process runs a watch: the `run_watches` row names its runner and a heartbeat; a
 * process claims a row no one runs or whose heartbeat is stale (a takeover, logged), and records a
 * round only while it still holds the claim (checked in the round's store transaction). A watch
 * never holds the target's run lock: its checks run on the target's shared pool, read-only with
 * their statement timeouts, like every check.
 */
import type pg from 'pg';
import { WATCH_RUNNING_STATES, isWatchRunningState, type RunOutcome, type WatchCheckMemory } from '../../db/schema/index';
import { checkTargetOf, runChecks, type CheckResult } from '../checks/run-checks.server';
import { jsonSafe } from '../checks/evaluate-expectation';
import { watchChecks, type Check } from '../plans/plan-schema';
import type { PayloadOf, RunEvent, RunEventInput } from '../runs/run-events';
import { appendRunEvent, canonicalJson, inStoreTransaction, jsonPayload, readRunEvents, sha256Hex } from '../runs/run-log.server';
import { transitionRun, type RunRecord } from '../runs/run-store.server';
import { WATCH_POLL_MS, WATCH_STALE_AFTER_MS } from '../runtime/env.server';
import { RunsheetError } from '../runtime/errors';
import { formatSpan } from '../runtime/format';
import { checkpointRun } from './checkpoints.server';
import { ownerProcess, whoOf, type EngineActor, type EngineDeps } from './engine-deps.server';
import { thawPlan } from './frozen-plan.server';
import { authorize, checkResultPayload, getRun } from './runs.server';

/** How the run log says a verified apply stays 'applied' because its watch could not start ('run.error'). */
export const WATCH_COULD_NOT_START = 'the watch could not start';

export type WatchDeps = Pick<EngineDeps, 'store' | 'targets' | 'signingKeyPem' | 'anchorWebhookUrl'>;

export interface WatchRunnerOptions {
  /** Who runs the watches (`host:pid` of this process unless a test names it). */
  runner?: string;
  pollMs?: number;
  staleAfterMs?: number;
}

interface WatchRow {
  run_id: string;
  checks: string[];
  every_ms: number;
  started_at: string;
  ends_at: string;
  status: 'running' | 'ended';
  runner: string | null;
  rounds: number;
  unchanged_rounds: number;
  last_unchanged_at: string | null;
  last_results: Record<string, WatchCheckMemory>;
  due: boolean;
  closing: boolean;
}

const WATCH_COLUMNS = `run_id::text, checks, every_ms, ${iso('started_at')} as started_at, ${iso('ends_at')} as ends_at, status, runner, rounds, unchanged_rounds,
  ${iso('last_unchanged_at')} as last_unchanged_at, last_results, now() >= next_round_at as due, now() >= ends_at as closing`;

function iso(column: string): string {
  return `to_char((${column}) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/** A round lost the claim to another runner (or the watch ended) while its checks ran: nothing of it is kept. */
class ClaimLost extends Error {}

/** The watch row of a run, or undefined when its plan has none. */
export async function readWatch(executor: pg.Pool | pg.ClientBase, runId: string): Promise<Omit<WatchRow, 'due' | 'closing'> & { heartbeat_at: string | null; next_round_at: string } | undefined> {
  const { rows } = await executor.query(`select ${WATCH_COLUMNS}, ${iso('heartbeat_at')} as heartbeat_at, ${iso('next_round_at')} as next_round_at from run_watches where run_id = $1`, [runId]);
  return rows[0];
}

/**
 * After a verified apply whose plan declares a watch: the run moves applied → watching, its watch
 * row is written (the named checks start as having passed at the apply's verification), and
 * 'watch.started' says what runs, how often and until when. A run without a watch stays applied.
 */
export async function startWatch(deps: WatchDeps, run: RunRecord): Promise<RunRecord> {
  const { plan } = thawPlan(run.frozenPlan);
  if (!plan.watch || run.state !== 'applied' || run.kind !== 'execute') return run;
  const checks = watchChecks(plan).map((check) => check.id);
  const { rows } = await deps.store.pool.query<{ started_at: string; ends_at: string }>(
    `select ${iso('t')} as started_at, ${iso("t + $1::float8 * interval '1 millisecond'")} as ends_at from (select clock_timestamp() as t) as clock`,
    [plan.watch.for],
  );
  const { started_at: startedAt, ends_at: endsAt } = rows[0]!;
  const verifiedAt = run.finishedAt?.toISOString() ?? startedAt;
  const memory: Record<string, WatchCheckMemory> = Object.fromEntries(plan.watch.checks.map((id) => [id, { passed: true, skipped: false, digest: '', lastPassedAt: verifiedAt }]));
  const result = await transitionRun(deps.store, {
    runId: run.id,
    from: ['applied'],
    to: 'watching',
    reason: `the plan's watch: ${checks.length} check(s) every ${formatSpan(plan.watch.every)} for ${formatSpan(plan.watch.for)}`,
    actor: 'system',
    set: { outcome: { ...(run.outcome ?? {}), watch: { result: 'watching', startedAt, endsAt, rounds: 0, alarms: [] } } },
    also: async (client) => {
      await client.query(
        `insert into run_watches (run_id, checks, every_ms, started_at, ends_at, next_round_at, last_results) values ($1, $2, $3, $4, $5, $4, $6)`,
        [run.id, JSON.stringify(checks), plan.watch!.every, startedAt, endsAt, JSON.stringify(memory)],
      );
    },
    events: [{ type: 'watch.started', payload: { checks, everyMs: plan.watch.every, forMs: plan.watch.for, startedAt, endsAt } }],
  });
  if (!result.changed) return getRun(deps, run.id);
  await checkpointRun(deps, run.id, 'delta');
  return result.run;
}

/**
 * One look at the watches this runner may run: claim (or keep) every running watch no one else
 * holds with a fresh heartbeat, log each first claim and takeover, and hand back the claimed run
 * ids. `runId` limits it to one watch (the command line).
 */
export async function claimWatches(deps: WatchDeps, options: WatchRunnerOptions & { runId?: string } = {}): Promise<string[]> {
  const me = options.runner ?? ownerProcess();
  const staleAfterMs = options.staleAfterMs ?? WATCH_STALE_AFTER_MS;
  const { rows } = await deps.store.pool.query<{ run_id: string; previous: string | null; silent_ms: number | null }>(
    `update run_watches as w set runner = $1, heartbeat_at = now()
       from (select run_id, runner as previous, (extract(epoch from now() - heartbeat_at) * 1000)::int as silent_ms
               from run_watches
              where status = 'running' and ($3::uuid is null or run_id = $3::uuid)
                and (runner is null or runner = $1 or heartbeat_at < now() - $2::float8 * interval '1 millisecond')
              for update skip locked) as p
      where w.run_id = p.run_id
      returning w.run_id::text, p.previous, p.silent_ms`,
    [me, staleAfterMs, options.runId ?? null],
  );
  for (const row of rows.filter((candidate) => candidate.previous !== me)) {
    const reason =
      row.previous === null
        ? 'first claim: nobody ran the watch yet'
        : `took over: the watch's runner ${row.previous} had not sent a heartbeat for ${Math.round((row.silent_ms ?? 0) / 1000)} s`;
    await appendRunEvent(deps.store.pool, { runId: row.run_id, actor: 'system', type: 'watch.runner', payload: { runner: me, previous: row.previous, reason } });
    await checkpointRun(deps, row.run_id, 'delta');
  }
  return rows.map((row) => row.run_id);
}

/**
 * What is due on a watch this runner holds: the window's end once it has passed, else a round once
 * its time has come. Returns what it did.
 */
export async function advanceWatch(deps: WatchDeps, runId: string, options: WatchRunnerOptions = {}): Promise<'closed' | 'round' | 'idle'> {
  const me = options.runner ?? ownerProcess();
  const { rows } = await deps.store.pool.query<WatchRow>(`select ${WATCH_COLUMNS} from run_watches where run_id = $1 and status = 'running' and runner = $2`, [runId, me]);
  const watch = rows[0];
  if (!watch) return 'idle';
  try {
    if (watch.closing) return (await closeWindow(deps, watch, me)) ? 'closed' : 'idle';
    if (watch.due) return (await runRound(deps, watch, me)) ? 'round' : 'idle';
  } catch (error) {
    if (error instanceof ClaimLost) return 'idle';
    throw error;
  }
  return 'idle';
}

/** The run's current outcome with its watch part changed. */
function withWatch(current: RunRecord, change: (watch: NonNullable<RunOutcome['watch']>) => NonNullable<RunOutcome['watch']>): RunOutcome {
  const outcome = current.outcome ?? {};
  const watch = outcome.watch ?? { result: current.state, startedAt: '', endsAt: '' };
  return { ...outcome, watch: change(watch) };
}

async function writeOutcome(client: pg.ClientBase, runId: string, outcome: RunOutcome): Promise<void> {
  await client.query('update runs set outcome = $2 where id = $1', [runId, jsonPayload(outcome)]);
}

/** A result's identity between rounds: equal digests are an unchanged result. */
function digestOf(result: CheckResult): string {
  return sha256Hex(canonicalJson(jsonSafe({ passed: result.passed, skipped: result.skipped, expected: result.expected, actual: result.actual, error: result.error ?? null, reason: result.reason ?? null }) ?? null));
}

export interface JudgedRound {
  changed: CheckResult[];
  unchanged: string[];
  /** Checks that passed (or had not run) before and fail now. */
  regressions: { result: CheckResult; lastPassedAt: string | null }[];
  memory: Record<string, WatchCheckMemory>;
}

/** A round against the one before: what changed, what regressed, and what the next round compares with. */
export function judgeRound(before: Record<string, WatchCheckMemory>, results: CheckResult[]): JudgedRound {
  const judged: JudgedRound = { changed: [], unchanged: [], regressions: [], memory: {} };
  for (const result of results) {
    const previous = before[result.checkId];
    const digest = digestOf(result);
    if (previous?.digest === digest) judged.unchanged.push(result.checkId);
    else judged.changed.push(result);
    const failed = !result.passed && !result.skipped;
    if (failed && (previous === undefined || previous.passed)) judged.regressions.push({ result, lastPassedAt: previous?.lastPassedAt ?? null });
    judged.memory[result.checkId] = {
      passed: result.skipped ? (previous?.passed ?? true) : result.passed,
      skipped: result.skipped,
      digest,
      lastPassedAt: result.passed ? result.ranAt : (previous?.lastPassedAt ?? null),
    };
  }
  return judged;
}

/**
 * A round in which the target could not be reached: no result, no regression; each check keeps
 * whether it last passed, and forgets its last result, so the first round that reaches the target
 * again is kept in full.
 */
export function outageRound(before: Record<string, WatchCheckMemory>): JudgedRound {
  return { changed: [], unchanged: [], regressions: [], memory: Object.fromEntries(Object.entries(before).map(([id, memory]) => [id, { ...memory, digest: '' }])) };
}

function alarmReason(result: CheckResult): string {
  return result.error?.message ?? result.reason ?? `check ${result.checkId} failed`;
}

async function runRound(deps: WatchDeps, watch: WatchRow, me: string): Promise<boolean> {
  const run = await getRun(deps, watch.run_id);
  if (!isWatchRunningState(run.state)) return false;
  const thawed = thawPlan(run.frozenPlan);
  const byId = new Map<string, Check>(watchChecks(thawed.plan).map((check) => [check.id, check]));
  const checks = watch.checks.flatMap((id) => byId.get(id) ?? []);
  const target = deps.targets.get(run.target);
  const pool = deps.targets.pool(run.target);
  // A target that cannot be reached is an outage, not a regression: the round says so, no check is judged, nothing alarms.
  const probe = () =>
    pool.query('select 1').then(
      () => undefined,
      (error: Error) => `the target ${run.target} could not be reached: ${error.message}`,
    );
  let unreachable = await probe();
  let results = unreachable ? [] : await runChecks({ checks, sqlOf: thawed.sqlOf, target: checkTargetOf(target, { pool }, thawed.plan), phase: 'watch' });
  // A check that failed with an error may have lost the target mid-round: asked again, an unreachable target makes it an outage round too.
  if (!unreachable && results.some((result) => result.error && !result.passed && !result.skipped)) {
    unreachable = await probe();
    if (unreachable) results = [];
  }
  const round = watch.rounds + 1;
  const judged = unreachable ? outageRound(watch.last_results) : judgeRound(watch.last_results, results);
  const keep = round === 1 || judged.changed.length > 0 || unreachable !== undefined;
  const failed = results.filter((result) => !result.passed && !result.skipped).map((result) => result.checkId);
  const events: RunEventInput[] = [];
  if (keep) {
    events.push({
      type: 'watch.round',
      payload: {
        round,
        runner: me,
        passed: !unreachable && failed.length === 0,
        failed,
        results: judged.changed.map(checkResultPayload),
        unchanged: judged.unchanged,
        unchangedRounds: watch.unchanged_rounds,
        lastUnchangedAt: watch.last_unchanged_at,
        ...(unreachable ? { unreachable } : {}),
      },
    });
  }
  for (const { result, lastPassedAt } of judged.regressions) {
    const alarm: PayloadOf<'watch.alarm'> = {
      round,
      checkId: result.checkId,
      title: result.title,
      expected: result.expected as Record<string, unknown>,
      actual: jsonSafe(result.actual) ?? null,
      error: result.error ?? null,
      reason: alarmReason(result),
      ranAt: result.ranAt,
      lastPassedAt,
    };
    events.push({ type: 'watch.alarm', payload: alarm });
  }
  const alarmed = judged.regressions.length > 0 && run.state === 'watching';
  const changed = await transitionRun(deps.store, {
    runId: run.id,
    from: [run.state],
    ...(alarmed ? { to: 'watch_alarm' as const } : {}),
    reason: alarmed ? `watch round ${round}: ${judged.regressions.map(({ result }) => `${result.checkId} (${alarmReason(result)})`).join('; ')}` : `watch round ${round}`,
    actor: 'system',
    events,
    also: async (client, current) => {
      const updated = await client.query(
        `update run_watches
            set rounds = $3, last_round_at = now(), heartbeat_at = now(),
                next_round_at = greatest(next_round_at + every_ms * interval '1 millisecond', now()),
                unchanged_rounds = $4, last_unchanged_at = $5, last_results = $6
          where run_id = $1 and runner = $2 and status = 'running' and rounds = $7`,
        [run.id, me, round, keep ? 0 : watch.unchanged_rounds + 1, keep ? null : new Date().toISOString(), JSON.stringify(judged.memory), watch.rounds],
      );
      if (updated.rowCount === 0) throw new ClaimLost();
      const at = new Date().toISOString();
      await writeOutcome(
        client,
        run.id,
        withWatch(current, (previous) => ({
          ...previous,
          result: alarmed ? 'watch_alarm' : current.state,
          rounds: round,
          alarms: [...(previous.alarms ?? []), ...judged.regressions.map(({ result }) => ({ checkId: result.checkId, round, at }))],
        })),
      );
    },
  });
  if (changed.changed && events.length > 0) await checkpointRun(deps, run.id, 'delta');
  return changed.changed;
}

async function closeWindow(deps: WatchDeps, watch: WatchRow, me: string): Promise<boolean> {
  const run = await getRun(deps, watch.run_id);
  if (!isWatchRunningState(run.state)) return false;
  const clean = run.state === 'watching';
  const alarms = run.outcome?.watch?.alarms?.length ?? 0;
  const ended = await transitionRun(deps.store, {
    runId: run.id,
    from: [run.state],
    ...(clean ? { to: 'watched' as const } : {}),
    reason: clean ? `the watch window closed clean after ${watch.rounds} round(s)` : `the watch window closed after ${watch.rounds} round(s), with ${alarms} alarm(s)`,
    actor: 'system',
    events: [
      {
        type: 'watch.ended',
        payload: { reason: 'window_closed', clean, rounds: watch.rounds, unchangedRounds: watch.unchanged_rounds, lastUnchangedAt: watch.last_unchanged_at, alarms, endsAt: watch.ends_at },
      },
    ],
    also: async (client, current) => {
      const updated = await client.query(`update run_watches set status = 'ended', ended_at = now() where run_id = $1 and runner = $2 and status = 'running'`, [run.id, me]);
      if (updated.rowCount === 0) throw new ClaimLost();
      await writeOutcome(client, run.id, withWatch(current, (previous) => ({ ...previous, result: clean ? 'watched' : current.state, rounds: watch.rounds, finishedAt: new Date().toISOString(), endedBy: 'window_closed' })));
    },
  });
  if (ended.changed) await checkpointRun(deps, run.id, 'full');
  return ended.changed;
}

/** A running watch of a run a person acts on, or a clear refusal. */
async function runningWatchOf(deps: WatchDeps, run: RunRecord, doing: string) {
  const watch = await readWatch(deps.store.pool, run.id);
  if (!watch) throw new RunsheetError('state', `Refused: run ${run.id} has no watch (its plan declares none); nothing to ${doing}.`);
  if (watch.status !== 'running' || !isWatchRunningState(run.state)) throw new RunsheetError('state', `Refused: the watch of run ${run.id} has ended (the run is ${run.state}); nothing to ${doing}.`);
  return watch;
}

/**
 * A person ends the watch before its window closes, saying why: a clean watch ends `watched`, one
 * in alarm stays `watch_alarm` with its checks no longer running.
 */
export async function endWatch(deps: EngineDeps, input: { runId: string; actor: EngineActor; note: string }): Promise<RunRecord> {
  await authorize(deps, { actor: input.actor, action: 'end-watch', runId: input.runId });
  const note = input.note.trim();
  if (!note) throw new RunsheetError('invalid_input', 'Ending a watch early needs a note saying why (e.g. --note "traffic checked by hand, all clear").');
  const run = await getRun(deps, input.runId);
  const watch = await runningWatchOf(deps, run, 'end');
  const clean = run.state === 'watching';
  const alarms = run.outcome?.watch?.alarms?.length ?? 0;
  const ended = await transitionRun(deps.store, {
    runId: run.id,
    from: [run.state],
    ...(clean ? { to: 'watched' as const } : {}),
    reason: `${input.actor.email} ended the watch early: ${note}`,
    ...whoOf(input.actor),
    events: [
      { type: 'watch.ended', payload: { reason: 'ended_early', clean, rounds: watch.rounds, unchangedRounds: watch.unchanged_rounds, lastUnchangedAt: watch.last_unchanged_at, alarms, endsAt: watch.ends_at, note } },
    ],
    also: async (client, current) => {
      const updated = await client.query(`update run_watches set status = 'ended', ended_at = now() where run_id = $1 and status = 'running'`, [run.id]);
      if (updated.rowCount === 0) throw new RunsheetError('state', `Refused: the watch of run ${run.id} has just ended.`);
      const at = new Date().toISOString();
      await writeOutcome(
        client,
        run.id,
        withWatch(current, (previous) => ({ ...previous, result: clean ? 'watched' : current.state, finishedAt: at, endedBy: 'ended_early', endedEarly: { by: input.actor.email, note, at } })),
      );
    },
  });
  if (!ended.changed) throw new RunsheetError('state', `Refused: run ${run.id} changed state while the watch was being ended; look again.`);
  await checkpointRun(deps, run.id, 'delta');
  return ended.run;
}

/** A person moves the end of a running watch later by `byMs`, optionally saying why. */
export async function extendWatch(deps: EngineDeps, input: { runId: string; actor: EngineActor; byMs: number; note?: string }): Promise<RunRecord> {
  await authorize(deps, { actor: input.actor, action: 'end-watch', runId: input.runId });
  if (!Number.isFinite(input.byMs) || input.byMs < 1_000) throw new RunsheetError('invalid_input', 'Extend a watch by at least "1s" (e.g. --extend 12h).');
  const run = await getRun(deps, input.runId);
  const watch = await runningWatchOf(deps, run, 'extend');
  const endsAt = new Date(Date.parse(watch.ends_at) + input.byMs).toISOString();
  const note = input.note?.trim();
  const extended = await transitionRun(deps.store, {
    runId: run.id,
    from: [...WATCH_RUNNING_STATES],
    reason: `${input.actor.email} extended the watch to ${endsAt}`,
    ...whoOf(input.actor),
    events: [{ type: 'watch.extended', payload: { previousEndsAt: watch.ends_at, endsAt, ...(note ? { note } : {}) } }],
    also: async (client, current) => {
      const updated = await client.query(`update run_watches set ends_at = $2 where run_id = $1 and status = 'running' and ends_at = $3`, [run.id, endsAt, watch.ends_at]);
      if (updated.rowCount === 0) throw new RunsheetError('state', `Refused: the watch of run ${run.id} ended or changed meanwhile; look again.`);
      await writeOutcome(client, run.id, withWatch(current, (previous) => ({ ...previous, endsAt })));
    },
  });
  if (!extended.changed) throw new RunsheetError('state', `Refused: the watch of run ${run.id} has ended (the run is no longer watching).`);
  await checkpointRun(deps, run.id, 'delta');
  return extended.run;
}

/**
 * A rollback begins on a run in its watch: the watch ends first ('watch.ended', reason
 * rolled_back), in one store transaction with its row. Nothing when the run has no running watch.
 */
export async function endWatchForRollback(deps: WatchDeps, runId: string, actor: EngineActor): Promise<boolean> {
  return inStoreTransaction(deps.store.pool, async (client) => {
    const { rows } = await client.query<WatchRow>(`select ${WATCH_COLUMNS} from run_watches where run_id = $1 and status = 'running' for update`, [runId]);
    const watch = rows[0];
    if (!watch) return false;
    const { rows: runRows } = await client.query<{ outcome: RunOutcome | null }>('select outcome from runs where id = $1', [runId]);
    const alarms = runRows[0]?.outcome?.watch?.alarms?.length ?? 0;
    await client.query(`update run_watches set status = 'ended', ended_at = now() where run_id = $1`, [runId]);
    await appendRunEvent(client, {
      runId,
      ...whoOf(actor),
      type: 'watch.ended',
      payload: { reason: 'rolled_back', clean: alarms === 0, rounds: watch.rounds, unchangedRounds: watch.unchanged_rounds, lastUnchangedAt: watch.last_unchanged_at, alarms, endsAt: watch.ends_at },
    });
    return true;
  });
}

/**
 * The server's watch runner: every `pollMs` it claims what it may run (its heartbeat), then does
 * what is due on each watch it holds, one thing at a time per watch. Failures are reported, never
 * thrown. Returns the stop function (it waits for rounds in progress).
 */
export function startWatchRunner(deps: WatchDeps, report: (line: string) => void, options: WatchRunnerOptions = {}): () => Promise<void> {
  const busy = new Map<string, Promise<unknown>>();
  let looking = false;
  let stopped = false;
  const look = () => {
    if (looking || stopped) return;
    looking = true;
    claimWatches(deps, options)
      .then((runIds) => {
        for (const runId of runIds) {
          if (busy.has(runId) || stopped) continue;
          const work = advanceWatch(deps, runId, options)
            .catch((error: Error) => report(`The watch of run ${runId} could not go on: ${error.message}`))
            .finally(() => busy.delete(runId));
          busy.set(runId, work);
        }
      })
      .catch((error: Error) => report(`Could not look at the watches: ${error.message}`))
      .finally(() => (looking = false));
  };
  look();
  const timer = setInterval(look, options.pollMs ?? WATCH_POLL_MS);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await Promise.allSettled([...busy.values()]);
  };
}

/** What following a watch reports: its run-log events, who runs it when it is not this process, and rounds that changed nothing (kept only as a count). */
export type FollowedWatchEvent = RunEvent | { type: 'watch.follow'; runner: string } | { type: 'watch.unchanged'; round: number };

/**
 * `runsheet watch <run>`: runs the run's watch here (or follows it while another process holds it),
 * handing every watch event to `onEvent` as it is logged, until the watch ends.
 */
export async function followWatch(
  deps: WatchDeps,
  input: { runId: string; onEvent: (event: FollowedWatchEvent) => void; signal?: AbortSignal } & WatchRunnerOptions,
): Promise<RunRecord> {
  const run = await getRun(deps, input.runId);
  const first = await readWatch(deps.store.pool, run.id);
  if (!first) throw new RunsheetError('state', `Run ${run.id} has no watch: its plan declares none (the run is ${run.state}).`);
  // From the watch's start: what the run did before is not the watch's.
  const [started] = await readRunEvents(deps.store.pool, run.id, { types: ['watch.started'], limit: 1 });
  let afterSeq = started ? started.seq - 1 : 0;
  let roundTold = first.rounds;
  const drain = async () => {
    for (const event of await readRunEvents(deps.store.pool, run.id, { afterSeq })) {
      afterSeq = event.seq;
      if (event.type === 'watch.round') roundTold = Math.max(roundTold, Number(event.payload.round));
      if (event.type.startsWith('watch.') || event.type === 'state.changed') input.onEvent(event);
    }
    const now = await readWatch(deps.store.pool, run.id);
    for (; now && roundTold < now.rounds; ) input.onEvent({ type: 'watch.unchanged', round: ++roundTold });
  };
  let toldRunner: string | null = null;
  for (;;) {
    if (input.signal?.aborted) break;
    const mine = await claimWatches(deps, { ...input, runId: run.id });
    if (mine.length > 0) await advanceWatch(deps, run.id, input);
    await drain();
    const watch = await readWatch(deps.store.pool, run.id);
    if (!watch || watch.status === 'ended') break;
    if (mine.length === 0 && watch.runner && watch.runner !== toldRunner) {
      toldRunner = watch.runner;
      input.onEvent({ type: 'watch.follow', runner: watch.runner });
    }
    await new Promise((resolve) => setTimeout(resolve, input.pollMs ?? Math.min(WATCH_POLL_MS, Math.max(250, watch.every_ms / 4))));
  }
  await drain();
  return getRun(deps, run.id);
}
