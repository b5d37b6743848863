/**
 * The live view of one run: everything so far for the loader (a reload mid-run shows the same
 * page), and the stream of what follows as server-sent events. The stream polls the run log,
 * whoever drives the run (this web process, another one, or the command line), so it needs no
 * in-process hook into the engine.
 */
import { roleCan } from '../accounts/permissions';
import type { SignedInUser } from '../auth/require.server';
import type { EngineDeps } from '../engine/engine-deps.server';
import { cancelRequestedMessage, cancelRun } from '../engine/engine.server';
import { actorOf } from './actor.server';
import { thawPlan } from '../engine/frozen-plan.server';
import { getRun, readRunDetail } from '../engine/runs.server';
import { WATCH_COULD_NOT_START } from '../engine/watch.server';
import type { RunEvent } from '../runs/run-events';
import { parseRunId } from '../runs/run-log.server';
import { followRunEvents } from '../runs/run-event-feed.server';
import { readRunWatchers, watchRun, type Watcher } from '../runs/run-watchers.server';
import { findRuns } from '../runs/run-store.server';
import { isFinalState } from '../runs/run-timeline';
import { isoOf } from '../runtime/format';
import { splitSql } from '../sql/split-sql.server';
import { asHttpResponse, refusalOf, type IntentOutcome } from './http-answers.server';
import { watchStream } from './stream-watch.server';

export type RunViewDeps = EngineDeps;

export interface StatementText {
  index: number;
  line: number;
  endLine: number;
  sql: string;
}

export interface RunView {
  run: {
    id: string;
    kind: 'execute' | 'rehearsal';
    state: string;
    planId: string;
    planChecksum: string;
    target: string;
    targetLabel: string;
    createdBy: string;
    createdAt: string;
    signedOffBy: string | null;
    startedAt: string | null;
    finishedAt: string | null;
    executedBy: string | null;
    verified: boolean | null;
  };
  plan: { title: string; estimated: Record<string, number | undefined> };
  /** The frozen plan's step files split into statements: the failing statement's SQL comes from here. */
  statements: Record<string, StatementText[]>;
  events: RunEvent[];
  earlierRuns: { id: string; kind: string; state: string; createdAt: string; executedBy: string | null }[];
  watchers: Watcher[];
  may: { cancel: boolean };
  /** The database clock's idea of now when the page was read (elapsed time ticks from here). */
  readAt: string;
}

/** A run id from the URL, or a 404 that says what a run id looks like. */
export function runIdOrNotFound(value: string | undefined): string {
  const runId = parseRunId(value ?? '');
  if (!runId) throw new Response(`No run "${value}": a run id is a uuid.`, { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
  return runId;
}

export async function loadRunView(deps: RunViewDeps, input: { runId: string; user: SignedInUser }): Promise<RunView> {
  const detail = await readRunDetail(deps, input.runId).catch((error: unknown) => {
    throw asHttpResponse(error);
  });
  const { run } = detail;
  const thawed = thawPlan(run.frozenPlan);
  const statements: Record<string, StatementText[]> = {};
  for (const step of [...thawed.plan.apply, ...thawed.plan.rollback.steps]) {
    const split = await splitSql(thawed.stepSql(step));
    statements[step.id] = split.ok ? split.statements.map((statement) => ({ index: statement.index, line: statement.startLine, endLine: statement.endLine, sql: statement.sql })) : [];
  }
  const earlier = await findRuns(deps.store.pool, { planId: run.planId, target: run.target, limit: 10 });
  return {
    run: {
      id: run.id,
      kind: run.kind,
      state: run.state,
      planId: run.planId,
      planChecksum: run.planChecksum,
      target: run.target,
      targetLabel: deps.targets.find(run.target)?.label ?? run.target,
      createdBy: run.createdBy,
      createdAt: isoOf(run.createdAt),
      signedOffBy: run.signedOffBy,
      startedAt: isoOf(run.startedAt),
      finishedAt: isoOf(run.finishedAt),
      executedBy: run.executedBy,
      verified: run.outcome?.verified ?? null,
    },
    plan: { title: thawed.plan.title, estimated: thawed.plan.estimated_duration },
    statements,
    events: detail.events,
    earlierRuns: earlier
      .filter((candidate) => candidate.id !== run.id && candidate.createdAt < run.createdAt)
      .map((candidate) => ({ id: candidate.id, kind: candidate.kind, state: candidate.state, createdAt: isoOf(candidate.createdAt), executedBy: candidate.executedBy })),
    watchers: await readRunWatchers(deps.store.pool, run.id),
    may: { cancel: roleCan(input.user.role, 'cancel') },
    readAt: new Date().toISOString(),
  };
}

const KEEPALIVE_MS = 15_000;
/** Tells the browser how long to wait before reconnecting after the connection drops. */
const RETRY_MS = 2_000;

/**
 * The run's events after `afterSeq` as server-sent events, each with `id: <seq>` so that a
 * reconnect resumes from Last-Event-ID; a 'watchers' event whenever who is watching changes (on
 * any instance); a 'feed' event saying whether new events arrive as the store announces them
 * ('live') or by polling while the announcements cannot arrive ('polling'); an 'end' event (and
 * the stream closes) once the run is in a final state and every event is sent; a 'closed' event
 * with why (and the stream closes) when a re-check ends it (stream-watch.server.ts). Events come
 * from this instance's one feed (run-event-feed.server.ts), read once for all its streams.
 */
export async function streamRunEvents(deps: RunViewDeps, input: { runId: string; afterSeq: number; user: SignedInUser; signal: AbortSignal }): Promise<Response> {
  const { runId, user, signal } = input;
  // A missing run is a 404 before the stream opens, not an empty stream.
  const run = await getRun(deps, runId).catch((error: unknown) => {
    throw asHttpResponse(error);
  });
  // An apply whose plan declares a watch is 'applied' for an instant before it is 'watching' (docs/decisions/030): not the end, unless the watch could not start.
  const watchFollows = run.kind === 'execute' && Boolean(thawPlan(run.frozenPlan).plan.watch);
  let watchCouldNotStart = false;
  const endsHere = (state: string) => isFinalState(state) && !(state === 'applied' && watchFollows && !watchCouldNotStart);

  const encoder = new TextEncoder();
  let closed = false;
  let keepAliveTimer: NodeJS.Timeout | undefined;
  let stopWatching = () => {};

  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (text: string) => {
        if (closed) return;
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          close();
        }
      };
      const close = () => {
        if (closed) return;
        closed = true;
        clearInterval(keepAliveTimer);
        stopWatching();
        signal.removeEventListener('abort', close);
        try {
          controller.close();
        } catch {
          // already closed by the client
        }
      };

      send(`retry: ${RETRY_MS}\n\n`);
      let lastSeq = input.afterSeq;
      const stopFeed = followRunEvents(deps.store.pool, { runId, afterSeq: input.afterSeq }, {
        events(events, state) {
          for (const event of events) {
            send(`id: ${event.seq}\nevent: run-event\ndata: ${JSON.stringify(event)}\n\n`);
            lastSeq = event.seq;
            if (event.type === 'run.error' && event.payload.message.startsWith(WATCH_COULD_NOT_START)) watchCouldNotStart = true;
          }
          if (state !== undefined && endsHere(state)) {
            send(`event: end\ndata: ${JSON.stringify({ state, lastSeq })}\n\n`);
            close();
          }
        },
        gone() {
          send(`event: closed\ndata: ${JSON.stringify({ reason: 'run-gone', message: 'This run no longer exists.' })}\n\n`);
          close();
        },
        mode(mode) {
          send(`event: feed\ndata: ${JSON.stringify({ mode })}\n\n`);
        },
        failed(message) {
          // The store blipped: say so in the stream (a comment); the feed reads again on its own.
          send(`: read failed: ${message.replace(/\n/g, ' ')}\n\n`);
        },
      });
      const stopPresence = watchRun(deps.store.pool, runId, { email: user.email, role: user.role }, (watchers) => send(`event: watchers\ndata: ${JSON.stringify(watchers)}\n\n`));
      // Re-checked with every other open stream of this process: a disabled viewer's stream ends ('closed', with why).
      const stopRechecks = watchStream(deps.store.pool, {
        runId,
        accountId: user.accountId,
        sessionIdHash: user.sessionIdHash,
        openedAt: Date.now(),
        end: (why) => {
          send(`event: closed\ndata: ${JSON.stringify(why)}\n\n`);
          close();
        },
      });
      stopWatching = () => {
        stopFeed();
        stopPresence();
        stopRechecks();
      };
      if (closed) stopWatching();
      keepAliveTimer = setInterval(() => send(': keep-alive\n\n'), KEEPALIVE_MS);
      signal.addEventListener('abort', close, { once: true });
      if (signal.aborted) return close();
    },
    cancel() {
      closed = true;
      clearInterval(keepAliveTimer);
      stopWatching();
    },
  });

  return new Response(stream, {
    headers: {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    },
  });
}

/** The largest seq a run's log can hold (run_events.seq is an integer column). */
const MAX_SEQ = 2_147_483_647;

/**
 * Where a (re)connecting stream resumes: the browser's Last-Event-ID, else `?after=`, else the
 * start. A value no log can reach is ignored, as a malformed one is.
 */
export function resumeSeq(request: Request): number {
  const header = Number(request.headers.get('Last-Event-ID'));
  const query = Number(new URL(request.url).searchParams.get('after'));
  const candidates = [header, query].filter((value) => Number.isInteger(value) && value >= 0 && value <= MAX_SEQ);
  return candidates.length > 0 ? Math.max(...candidates) : 0;
}

/** The live view's Cancel: asks the engine to stop the run (it records who asked in the run log). */
export async function cancelFromRunView(deps: RunViewDeps, input: { runId: string; user: SignedInUser }): Promise<IntentOutcome> {
  try {
    return { kind: 'done', message: cancelRequestedMessage(await cancelRun(deps, { runId: input.runId, actor: actorOf(input.user) })) };
  } catch (error) {
    return refusalOf(error);
  }
}
