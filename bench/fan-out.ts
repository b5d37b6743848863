/**
 * The live view's fan-out: `streams` signed-in event streams (/runs/<id>/events, what each open
 * live view holds) on one server instance, all following one run that the bench process executes
 * (another process, as when one instance drives and another serves the viewers). Store work is
 * counted by PostgreSQL itself (pg_stat_statements, reset once every stream has read its backlog),
 * never by a counter in the fan-out code: per event written, the announcements (pg_notify) and the
 * feed's reads of new events; beside them, per second, the feed's timed checks (one statement for
 * every run an instance follows, whatever the events), the presence statements and the session
 * re-checks. Delivery delay is from the event's `at` (the database clock when the event was
 * written, just before its commit) to when this process read it off the stream.
 */
import pg from 'pg';
import { executeRun } from '../app/engine/engine.server';
import type { EngineActor, EngineDeps } from '../app/engine/engine-deps.server';
import { thawPlan } from '../app/engine/frozen-plan.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../app/engine/runs.server';
import type { ServerProcess } from './http-load';
import { round, summarizeLatencies, type LatencySummary } from './stats';

export interface FanOutMeasurement {
  streams: number;
  runId: string;
  state: string;
  /** Events written while the streams followed the run. */
  events: number;
  /** Seconds from execute to every stream having the run's end. */
  seconds: number;
  /** Statements the store ran, by what they were, over the window (pg_stat_statements calls). */
  statements: { announcements: number; feedReads: number; feedChecks: number; presence: number; sessionRechecks: number };
  /** (announcements + feed reads) / events: the store queries the live view costs per event, for all the streams together. */
  queriesPerEvent: number;
  feedChecksPerSecond: number;
  presencePerSecond: number;
  sessionRechecksPerSecond: number;
  /** From the event's `at` to the read off the stream, over every stream and event. */
  deliveryMs: LatencySummary;
  /** Stream events received, over every stream (each should get every event once). */
  received: number;
  /** Streams that did not get every event of the window, in order. */
  incompleteStreams: number;
}

interface StreamReader {
  arrivals: { seq: number; delayMs: number }[];
  ready: Promise<void>;
  ended: Promise<void>;
  cancel(): void;
}

export async function measureFanOut(
  deps: EngineDeps,
  input: { server: ServerProcess; cookie: string; streams: number; planId: string; actor: EngineActor; adminStoreUrl: string; log(line: string): void },
): Promise<FanOutMeasurement> {
  const { log } = input;
  const admin = new pg.Client({ connectionString: input.adminStoreUrl });
  await admin.connect();
  try {
    await admin.query('create extension if not exists pg_stat_statements');
    const { run } = await openWorkingRun(deps, { planId: input.planId, target: 'sandbox', kind: 'execute', actor: input.actor, newAttempt: true });
    const { plan } = thawPlan(run.frozenPlan);
    for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
      await tickPrerequisite(deps, { runId: run.id, itemId: item.id, ticked: true, actor: input.actor });
    }
    await runRunChecks(deps, { runId: run.id, phase: 'pre', actor: input.actor });

    log(`  fan-out: opening ${input.streams} event streams on run ${run.id}`);
    const readers: StreamReader[] = [];
    for (let index = 0; index < input.streams; index++) readers.push(readStream(`${input.server.base}/runs/${run.id}/events`, input.server.origin, input.cookie));
    await Promise.all(readers.map((reader) => reader.ready));
    const { rows: before } = await admin.query<{ seq: number }>('select coalesce(max(seq), 0) as seq from run_events where run_id = $1', [run.id]);
    const fromSeq = before[0]!.seq;
    await admin.query('select pg_stat_statements_reset()');

    const started = performance.now();
    const done = await executeRun(deps, { runId: run.id, actor: input.actor });
    await Promise.all(readers.map((reader) => reader.ended));
    const seconds = (performance.now() - started) / 1000;

    const { rows: counts } = await admin.query<{ kind: string; calls: string }>(
      `select case
                when query ilike '%pg_notify%' then 'announcements'
                when query ilike '%left join lateral%' and query ilike '%from run_events where run_id = r.id%' then 'feedReads'
                when query ilike '%"newestSeq"%' then 'feedChecks'
                when query ilike '%run_watchers%' then 'presence'
                when query ilike '%select ''run'', id::text, state from runs%' then 'sessionRechecks'
                else 'other'
              end as kind,
              sum(calls)::text as calls
         from pg_stat_statements
        where dbid = (select oid from pg_database where datname = current_database())
        group by 1`,
    );
    const calls = (kind: string) => Number(counts.find((row) => row.kind === kind)?.calls ?? 0);
    const { rows: written } = await admin.query<{ seq: number }>('select seq from run_events where run_id = $1 and seq > $2 order by seq', [run.id, fromSeq]);
    const expected = written.map((row) => row.seq);
    for (const reader of readers) reader.cancel();

    const delays = readers.flatMap((reader) => reader.arrivals.filter((arrival) => arrival.seq > fromSeq).map((arrival) => arrival.delayMs));
    const incompleteStreams = readers.filter((reader) => {
      const seqs = reader.arrivals.map((arrival) => arrival.seq).filter((seq) => seq > fromSeq);
      // A stream ends at the run's final state; events written after it (signing, anchors) are not awaited.
      return seqs.join(',') !== expected.slice(0, seqs.length).join(',') || seqs.length === 0;
    }).length;
    const statements = { announcements: calls('announcements'), feedReads: calls('feedReads'), feedChecks: calls('feedChecks'), presence: calls('presence'), sessionRechecks: calls('sessionRechecks') };
    return {
      streams: input.streams,
      runId: run.id,
      state: done.state,
      events: expected.length,
      seconds: round(seconds),
      statements,
      // Two decimals: 59 statements for 29 events is 2.03, over a goal of 2, not "2".
      queriesPerEvent: round((statements.announcements + statements.feedReads) / Math.max(1, expected.length), 2),
      feedChecksPerSecond: round(statements.feedChecks / seconds, 2),
      presencePerSecond: round(statements.presence / seconds),
      sessionRechecksPerSecond: round(statements.sessionRechecks / seconds),
      deliveryMs: summarizeLatencies(delays),
      received: delays.length,
      incompleteStreams,
    };
  } finally {
    await admin.end();
  }
}

/** One live view's stream, read as an EventSource would; ready once the server sent its backlog (the first run events). */
function readStream(url: string, origin: string, cookie: string): StreamReader {
  const controller = new AbortController();
  const arrivals: StreamReader['arrivals'] = [];
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const ended = (async () => {
    const response = await fetch(url, { headers: { Cookie: cookie, Accept: 'text/event-stream', Origin: origin }, signal: controller.signal });
    if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}`);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done) return;
      const now = Date.now();
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        // Ready once the stream's own backlog read has answered (the prepared run always has events):
        // 'feed' and 'watchers' come before it, and a backlog read landing after the reset would be
        // counted as a read of the run's new events.
        if (event === 'run-event') markReady();
        if (event === 'end') return;
        if (event === 'run-event' && data) {
          const parsed = JSON.parse(data) as { seq: number; at: string };
          arrivals.push({ seq: parsed.seq, delayMs: now - Date.parse(parsed.at) });
        }
      }
    }
  })();
  ended.catch(() => markReady());
  return { arrivals, ready, ended, cancel: () => controller.abort() };
}
