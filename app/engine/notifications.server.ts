/**
 * Delivering the notifications outbox (docs/decisions/033): a worker per process claims due rows
 * of the channels it has an address for (FOR UPDATE SKIP LOCKED, one row per store transaction,
 * per channel and run in seq order), builds the body from the run event it announces, posts it
 * with a timeout, and records the attempt: delivered, the next retry (exponential back-off), or
 * given up. It runs beside the engine, never inside a run's transactions: a receiver that is down
 * or slow never blocks or fails a run. Woken by the store's LISTEN/NOTIFY when rows are added, and
 * by a timer for retries (and for hints lost while the listening connection was down).
 */
import type pg from 'pg';
import { channelHost, type NotificationChannel, type NotificationChannels } from '../notifications/channels.server';
import { NOTIFICATION_KIND_WORDS, type NotificationKind } from '../notifications/notification-kinds';
import { claimDueDelivery, giveUpOldDeliveries, msUntilNextDelivery, recordDeliveryAttempt, type AttemptResult, type DeliveryRow, type RetryPolicy } from '../notifications/outbox.server';
import { DELIVERY_HEADER, SIGNATURE_HEADER, signWebhookBody } from '../notifications/webhook-signature';
import { fillTeamMessage, teamMessageValues } from '../plans/team-messages';
import type { RunEvent } from '../runs/run-events';
import { readRunEvents } from '../runs/run-log.server';
import { findRun, type RunRecord } from '../runs/run-store.server';
import { NOTIFICATIONS_CHANNEL, storeListenerOf } from '../runtime/store-notifications.server';
import type { TargetRegistry } from '../targets/target-registry.server';
import { ownerProcess } from './engine-deps.server';
import { thawPlan } from './frozen-plan.server';

export interface NotificationDeps {
  store: { pool: pg.Pool };
  targets: Pick<TargetRegistry, 'find'>;
  channels: NotificationChannels;
  /** The dashboard's address: bodies link to the run there. */
  origin?: string;
}

export interface NotificationWorkerOptions extends Partial<RetryPolicy> {
  /** How long a receiver has to answer one delivery (default 10 s). */
  timeoutMs?: number;
  /** The longest sleep between passes when nothing wakes the worker (default 5 s). */
  pollMs?: number;
  /** Deliveries in flight at once in this process (default 2). */
  concurrency?: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 10_000, capMs: 3_600_000, giveUpAfterMs: 24 * 3_600_000 };

/** What a receiver gets: the body exactly as signed, and its headers. */
export interface NotificationRequest {
  body: string;
  headers: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Bodies

/** The JSON body of a run's notification: small, documented in docs/notifications.md. */
export interface RunNotificationBody {
  delivery_id: string;
  kind: NotificationKind;
  /** One line for people (the Slack format's line where the plan has no team message). */
  text: string;
  run_id: string;
  seq: number;
  /** The event's database clock (UTC). */
  at: string;
  plan: string;
  checksum: string;
  target: string;
  target_label: string;
  /** The run's state as of this event. */
  state: string;
  /** Who acted (absent for the system's own events). */
  actor?: string;
  /** The run on the dashboard. */
  url?: string;
  /** What the kind adds: the failed phase, the regressed check, why the run ended… */
  detail: Record<string, unknown>;
}

export interface TestNotificationBody {
  delivery_id: string;
  kind: 'test';
  text: string;
  channel: string;
  at: string;
  actor?: string;
}

interface RunFacts {
  row: DeliveryRow & { runId: string; seq: number; kind: NotificationKind };
  run: RunRecord;
  event: RunEvent;
  state: string;
  targetLabel: string;
  url?: string;
}

async function runFacts(deps: NotificationDeps, row: DeliveryRow): Promise<RunFacts> {
  const runId = row.runId!;
  const seq = row.seq!;
  const run = await findRun(deps.store.pool, runId);
  if (!run) throw new Error(`run ${runId} does not exist`);
  const [event] = await readRunEvents(deps.store.pool, runId, { afterSeq: seq - 1, limit: 1 });
  if (!event || event.seq !== seq) throw new Error(`run ${runId} has no event ${seq}`);
  return {
    row: row as RunFacts['row'],
    run,
    event,
    state: row.runState ?? run.state,
    targetLabel: deps.targets.find(run.target)?.label ?? run.target,
    ...(deps.origin ? { url: `${deps.origin.replace(/\/+$/, '')}/runs/${runId}` } : {}),
  };
}

/** What the kind adds, from the event it announces. */
function detailOf(facts: RunFacts): Record<string, unknown> {
  const { event } = facts;
  switch (event.type) {
    case 'signoff.ready':
      return { prerequisites: event.payload.prerequisites, prechecks: event.payload.prechecks };
    case 'watch.alarm':
      return { check: event.payload.checkId, title: event.payload.title, expected: event.payload.expected, actual: event.payload.actual ?? null, last_passed_at: event.payload.lastPassedAt };
    case 'watch.ended':
      return { reason: event.payload.reason, clean: event.payload.clean, rounds: event.payload.rounds, alarms: event.payload.alarms, ...(event.payload.note ? { note: event.payload.note } : {}) };
    case 'state.changed': {
      const failedPhase = facts.row.kind === 'phase.failed' ? facts.run.outcome?.phases?.find((phase) => phase.ok === false)?.phase : undefined;
      return { from: event.payload.from, reason: event.payload.reason, ...(failedPhase ? { phase: failedPhase } : {}) };
    }
    default:
      return {};
  }
}

/** The one line a notification without a team message says: plan, target, what happened, the link. */
function oneLine(facts: RunFacts): string {
  const detail = detailOf(facts);
  const what = NOTIFICATION_KIND_WORDS[facts.row.kind];
  const extra =
    facts.row.kind === 'phase.failed'
      ? `${detail.phase ? ` (phase ${String(detail.phase)})` : ''}: ${String(detail.reason)}`
      : facts.event.type === 'watch.alarm'
        ? `: check ${String(detail.check)} (${String(detail.title)}) now fails`
        : facts.event.type === 'watch.ended'
          ? detail.reason === 'ended_early'
            ? ' (ended early)'
            : detail.clean ? ' (the window closed clean)' : ` (the window closed with ${String(detail.alarms)} alarm(s))`
          : facts.row.kind === 'cancelled'
            ? `: ${String(detail.reason)}`
            : '';
  const byWhom = facts.event.actor !== 'system' && facts.row.kind !== 'phase.failed' && facts.row.kind !== 'watch.regression';
  return `Plan ${facts.run.planId} on ${facts.targetLabel} ${what}${byWhom ? ` by ${facts.event.actor}` : ''}${extra}.${facts.url ? ` ${facts.url}` : ''}`;
}

/** The plan's team message for this kind, filled by the one filler the plan page uses; undefined when the plan has none for it. */
function teamMessageText(facts: RunFacts): string | undefined {
  const which = facts.row.kind === 'signoff.ready' ? 'pre' : facts.row.kind === 'applied' ? 'post' : facts.row.kind === 'rolled_back' ? 'rollback' : undefined;
  if (!which) return undefined;
  const { plan } = thawPlan(facts.run.frozenPlan);
  const message = plan.team_messages[which];
  if (!message) return undefined;
  // The apply's end is this event's clock, so a redelivery says the same thing.
  const run = which === 'post' ? { ...facts.run, finishedAt: new Date(facts.event.at) } : facts.run;
  const target = { name: facts.run.target, label: facts.targetLabel };
  return fillTeamMessage(message, teamMessageValues({ target, checksum: facts.run.planChecksum, planId: facts.run.planId, run }, which)).text;
}

export async function notificationRequest(deps: NotificationDeps, channel: NotificationChannel, row: DeliveryRow, nowMs: number = Date.now()): Promise<NotificationRequest> {
  let payload: RunNotificationBody | TestNotificationBody | { text: string };
  if (row.kind === 'test') {
    const text = `Test notification from Runsheet to channel ${channel.name}${row.requestedBy ? `, sent by ${row.requestedBy}` : ''}.`;
    payload = channel.format === 'slack' ? { text } : { delivery_id: row.id, kind: 'test', text, channel: channel.name, at: row.createdAt, ...(row.requestedBy ? { actor: row.requestedBy } : {}) };
  } else {
    const facts = await runFacts(deps, row);
    const line = oneLine(facts);
    if (channel.format === 'slack') {
      const message = teamMessageText(facts);
      payload = { text: message ? `${message}${facts.url ? `\n${facts.url}` : ''}` : line };
    } else {
      payload = {
        delivery_id: row.id,
        kind: facts.row.kind,
        text: line,
        run_id: facts.run.id,
        seq: facts.row.seq,
        at: facts.event.at,
        plan: facts.run.planId,
        checksum: facts.run.planChecksum,
        target: facts.run.target,
        target_label: facts.targetLabel,
        state: facts.state,
        ...(facts.event.actor !== 'system' ? { actor: facts.event.actor } : {}),
        ...(facts.url ? { url: facts.url } : {}),
        detail: detailOf(facts),
      };
    }
  }
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = { 'Content-Type': 'application/json', [DELIVERY_HEADER]: row.id, 'User-Agent': 'Runsheet-Notifications' };
  if (channel.format === 'json') headers[SIGNATURE_HEADER] = signWebhookBody(body, channel.secret!, nowMs);
  return { body, headers };
}

// ---------------------------------------------------------------------------------------------
// Delivery

async function post(url: string, request: NotificationRequest, timeoutMs: number): Promise<AttemptResult> {
  try {
    const answer = await fetch(url, { method: 'POST', headers: request.headers, body: request.body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    await answer.body?.cancel().catch(() => {});
    if (answer.status >= 200 && answer.status < 300) return { delivered: true, responseCode: answer.status, error: null };
    return { delivered: false, responseCode: answer.status, error: `the receiver answered ${answer.status}${answer.statusText ? ` ${answer.statusText}` : ''}` };
  } catch (error) {
    const cause = (error as { cause?: { message?: string; code?: string } }).cause;
    const message = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `${(error as Error).message}${cause?.code ?? cause?.message ? ` (${cause.code ?? cause.message})` : ''}`;
    return { delivered: false, responseCode: null, error: message };
  }
}

/**
 * Claims and delivers one due row of the channels this process delivers, in a store transaction of
 * its own that holds the row until its attempt is recorded (a process that dies mid-delivery
 * leaves the row pending, and another delivers it again with the same delivery id). False when
 * nothing was due.
 */
export async function deliverOne(deps: NotificationDeps, options: { retry?: RetryPolicy; timeoutMs?: number } = {}): Promise<DeliveryRow | false> {
  const deliverable = deps.channels.deliverable();
  if (deliverable.length === 0) return false;
  const client = await deps.store.pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const row = await claimDueDelivery(client, deliverable.map((channel) => channel.name));
    if (!row) {
      await client.query('commit');
      return false;
    }
    const channel = deps.channels.find(row.channel)!;
    let result: AttemptResult;
    try {
      result = await post(channel.url!, await notificationRequest(deps, channel, row), options.timeoutMs ?? 10_000);
    } catch (error) {
      result = { delivered: false, responseCode: null, error: `the notification could not be built: ${(error as Error).message}` };
    }
    const recorded = await recordDeliveryAttempt(client, row.id, result, options.retry ?? DEFAULT_RETRY);
    await client.query('commit');
    return recorded;
  } catch (error) {
    await client.query('rollback').catch((rollbackError: Error) => (broken = rollbackError));
    throw error;
  } finally {
    client.release(broken);
  }
}

/** Starts this process's delivery worker; the returned function stops it (waiting for deliveries in flight). */
export function startNotificationWorker(deps: NotificationDeps, report: (line: string) => void, options: NotificationWorkerOptions = {}): () => Promise<void> {
  const retry: RetryPolicy = {
    baseMs: options.baseMs ?? DEFAULT_RETRY.baseMs,
    capMs: options.capMs ?? DEFAULT_RETRY.capMs,
    giveUpAfterMs: options.giveUpAfterMs ?? DEFAULT_RETRY.giveUpAfterMs,
  };
  const pollMs = options.pollMs ?? 5_000;
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const names = deps.channels.deliverable().map((channel) => channel.name);
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  const failing = new Set<string>();

  const lane = async () => {
    while (!stopped) {
      const done = await deliverOne(deps, { retry, timeoutMs: options.timeoutMs });
      if (!done) return;
      const where = `${done.channel} (${channelHost(deps.channels.find(done.channel) ?? {}) ?? '?'})`;
      if (done.status === 'delivered') {
        if (failing.delete(done.channel)) report(`notifications to ${where} are delivered again`);
      } else if (done.status === 'failed') {
        report(`gave up a notification to ${where} (delivery ${done.id}) after ${done.attempts} attempts: ${done.lastError}`);
      } else if (!failing.has(done.channel)) {
        failing.add(done.channel);
        report(`a notification to ${where} failed (${done.lastError}); retrying with back-off`);
      }
    }
  };
  let sweptAt = 0;
  const pass = async () => {
    // Rows no process delivers are given up too; a sweep a minute is enough for a 24 h age.
    if (Date.now() - sweptAt >= Math.min(60_000, retry.giveUpAfterMs)) {
      sweptAt = Date.now();
      await giveUpOldDeliveries(deps.store.pool, retry.giveUpAfterMs);
    }
    await Promise.all(Array.from({ length: concurrency }, lane));
  };
  const schedule = async () => {
    if (stopped) return;
    const due = await msUntilNextDelivery(deps.store.pool, names).catch(() => undefined);
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(kick, Math.max(20, Math.min(pollMs, due ?? pollMs)));
    timer.unref();
  };
  function kick(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass()
      .catch((error: Error) => report(`notification delivery: ${error.message}`))
      .then(async () => {
        if (again && !stopped) {
          again = false;
          running = undefined;
          kick();
          return;
        }
        await schedule();
        running = undefined;
        if (again) {
          again = false;
          kick();
        }
      });
  }

  const unsubscribe = names.length > 0 ? storeListenerOf(deps.store.pool).subscribe(NOTIFICATIONS_CHANNEL, kick) : () => {};
  if (names.length > 0) report(`notifications: delivering ${names.join(', ')} from ${ownerProcess()}`);
  kick();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    unsubscribe();
    while (running) await running;
  };
}
