/**
 * Everything the post-run report shows, read in one place for the page and the Markdown download:
 * the run's facts, the summarised events, the signature verdict (cached per chain head by
 * verifyStoredRunLog, so a view does not re-hash an unchanged log) and the first page of events.
 */
import { parse as parseYaml } from 'yaml';
import { readReportSummary, readRunForReport, type RunForReport } from '../runs/run-store.server';
import { readRunEventsOfTypes, readRunEventsPage, REPORT_EVENTS_LIMIT, type RunEventsPage } from '../runs/run-log.server';
import type { EngineDeps } from '../engine/engine-deps.server';
import { buildRunReport, INITIAL_EVENTS_PAGE, REPORT_EVENT_TYPES, type ReportHeader, type RunReport, type SignatureVerdict } from '../runs/run-report';
import { readStoredRunEvents } from '../runs/run-log.server';
import { publishedSigningKeys } from '../runs/signing.server';
import { verifyRunAnchors, verifyStoredRunLog } from '../runs/verify-run-log.server';
import { readRunAnchors } from '../targets/ledger.server';
import { withTimeout } from '../runtime/with-timeout';
import { WATCH_EVENT_TYPES, watchStripOf, type WatchStrip } from '../runs/watch-strip';

export interface RunReportData {
  header: ReportHeader;
  report: RunReport;
  /** Where the summary came from: stored at the checkpoint through `throughSeq` (signed), or computed now from the events. */
  summarySource: { stored: true; throughSeq: number } | { stored: false };
  /** Whether the summarised events hit REPORT_EVENTS_LIMIT (the event list still has them all). */
  summaryTruncated: boolean;
  signature: SignatureVerdict;
  /** The highest seq of the log: events are numbered 1…lastSeq. */
  lastSeq: number;
  /** The last event the latest stored checkpoint covers; null when nothing was signed (nothing to download). */
  signedThroughSeq: number | null;
  firstEvents: RunEventsPage;
  /** The run's watch window as a strip (docs/decisions/030); null when its plan had none. */
  watch: { strip: WatchStrip; nowIso: string } | null;
}

function planTitleOf(run: RunForReport): string | null {
  if (!run.frozenPlanYaml) return null;
  try {
    const doc = parseYaml(run.frozenPlanYaml) as { title?: unknown } | null;
    return typeof doc?.title === 'string' ? doc.title : null;
  } catch {
    return null;
  }
}

/**
 * The header's times are the apply's (or the rehearsal's) own, from its drive events when the log
 * has them: a later rollback has its own line in the report's actions and never stretches them.
 */
function headerOf(run: RunForReport, targetLabel: string, report: RunReport): ReportHeader {
  const drive = report.actions.find((action) => action.action === 'execute' || action.action === 'rehearse');
  const startedAt = drive?.startedAt ?? run.startedAt?.toISOString() ?? null;
  const finishedAt = drive ? drive.finishedAt : (run.finishedAt?.toISOString() ?? null);
  const durationMs = startedAt && finishedAt ? Date.parse(finishedAt) - Date.parse(startedAt) : null;
  return {
    runId: run.id,
    planId: run.planId,
    planTitle: planTitleOf(run),
    planChecksum: run.planChecksum,
    target: run.target,
    targetLabel,
    kind: run.kind,
    state: run.state,
    createdBy: run.createdBy,
    createdAt: run.createdAt.toISOString(),
    signedOffBy: run.signedOffBy,
    signedOffAt: run.signedOffAt?.toISOString() ?? null,
    executedBy: run.executedBy,
    startedAt,
    finishedAt,
    durationMs,
  };
}

/** How long the report waits for the target's anchors before saying they cannot be read now. */
const ANCHOR_READ_TIMEOUT_MS = 3_000;

/**
 * The store's verdict on the run's log against its signed checkpoints, with the event that broke
 * it, and against the heads its target anchored (a log cut back in the store is broken here).
 */
export async function readSignatureVerdict(runtime: EngineDeps, run: Pick<RunForReport, 'id' | 'signedAt' | 'target'>): Promise<SignatureVerdict> {
  const keys = await publishedSigningKeys(runtime.store.pool, runtime.signingKeyPem);
  const target = runtime.targets.find(run.target);
  const [verdict, anchors] = await Promise.all([
    verifyStoredRunLog(
      runtime.store.pool,
      run.id,
      keys.map((key) => key.publicKeyPem)
    ),
    verifyRunAnchors(runtime.store.pool, run.id, {
      name: run.target,
      readAnchors: () =>
        target ? withTimeout(readRunAnchors(runtime.targets.pool(run.target), run.id), ANCHOR_READ_TIMEOUT_MS) : Promise.reject(new Error(`target ${run.target} is not configured here`)),
    }),
  ]);
  if (verdict.ok && anchors.status === 'broken') {
    return {
      status: 'broken',
      eventCount: verdict.eventCount,
      signedSeq: verdict.signedSeq,
      checkpointCount: verdict.checkpointCount,
      head: verdict.head || null,
      signedAt: run.signedAt?.toISOString() ?? null,
      reason: anchors.reason,
      firstBadSeq: null,
      firstBadEvent: null,
      cached: verdict.cached,
      anchors,
    };
  }
  if (verdict.ok) {
    return {
      status: verdict.signedSeq > 0 || verdict.checkpointCount > 0 ? 'valid' : 'unsigned',
      eventCount: verdict.eventCount,
      signedSeq: verdict.signedSeq,
      checkpointCount: verdict.checkpointCount,
      head: verdict.head || null,
      signedAt: run.signedAt?.toISOString() ?? null,
      reason: null,
      firstBadSeq: null,
      firstBadEvent: null,
      cached: verdict.cached,
      anchors,
    };
  }
  const bad = verdict.firstBadSeq ? (await readStoredRunEvents(runtime.store.pool, run.id, { afterSeq: verdict.firstBadSeq - 1, limit: 1 }))[0] : undefined;
  return {
    status: 'broken',
    eventCount: 0,
    signedSeq: 0,
    checkpointCount: 0,
    head: null,
    signedAt: run.signedAt?.toISOString() ?? null,
    reason: verdict.reason,
    firstBadSeq: verdict.firstBadSeq ?? null,
    firstBadEvent: bad && bad.seq === verdict.firstBadSeq ? { type: bad.type, at: bad.at } : null,
    cached: verdict.cached,
    anchors,
  };
}

/** The report of one run (its event list opening after `afterSeq`); undefined when there is no such run. */
export async function readRunReport(runtime: EngineDeps, input: { runId: string; afterSeq?: number }): Promise<RunReportData | undefined> {
  const db = runtime.store.db;
  const run = await readRunForReport(db, { runId: input.runId });
  if (!run) return undefined;
  const [stored, signature, firstEvents, watchEvents] = await Promise.all([
    readReportSummary(db, run.id),
    readSignatureVerdict(runtime, run),
    readRunEventsPage(db, { runId: run.id, afterSeq: Math.min(input.afterSeq ?? 0, Math.max(0, run.lastSeq - 1)), limit: INITIAL_EVENTS_PAGE }),
    readRunEventsOfTypes(db, { runId: run.id, types: WATCH_EVENT_TYPES }),
  ]);
  // The summary stored at the latest checkpoint, while the log has not moved past it (a drive between checkpoints is summarised now).
  const fresh = stored && stored.throughSeq === run.lastSeq ? (stored.summary as RunReport) : undefined;
  const events = fresh ? [] : await readRunEventsOfTypes(db, { runId: run.id, types: REPORT_EVENT_TYPES });
  const report = fresh ?? buildRunReport(events, run.outcome);
  const strip = watchStripOf(watchEvents);
  return {
    header: headerOf(run, runtime.targets.find(run.target)?.label ?? run.target, report),
    report,
    summarySource: fresh ? { stored: true, throughSeq: stored!.throughSeq } : { stored: false },
    summaryTruncated: events.length >= REPORT_EVENTS_LIMIT,
    signature: { ...signature, eventCount: signature.eventCount || run.eventCount },
    lastSeq: run.lastSeq,
    signedThroughSeq: run.signedThroughSeq,
    firstEvents,
    watch: strip ? { strip, nowIso: new Date().toISOString() } : null,
  };
}
