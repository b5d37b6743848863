/**
 * Everything the post-run report shows, read in one place for the page and the Markdown download:
 * the run's facts, the summarised events, the signature verdict (cached per chain head by
 * verifyStoredRunLog, so a view does not re-hash an unchanged log) and the first page of events.
 */
import { parse as parseYaml } from 'yaml';
import { readFrozenPlanYaml, readReportSummary, readReportSummaryDigest, readReportSummaryHead, readRunForReport, type RunForReport } from '../runs/run-store.server';
import { readRunEventsOfTypes, readRunEventsPage, REPORT_EVENTS_LIMIT, type RunEventsPage } from '../runs/run-log.server';
import type { EngineDeps } from '../engine/engine-deps.server';
import type { StoreDb } from '../runtime/store.server';
import { buildRunReport, digestStatements, INITIAL_EVENTS_PAGE, REPORT_EVENT_TYPES, STATEMENT_DIGEST, type ReportHeader, type RunReport, type SignatureVerdict } from '../runs/run-report';
import { readStoredRunEvents } from '../runs/run-log.server';
import { publishedSigningKeys } from '../runs/signing.server';
import { verifyRunAnchors, verifyStoredRunLog } from '../runs/verify-run-log.server';
import { readRunAnchors } from '../targets/ledger.server';
import { withTimeout } from '../runtime/with-timeout';
import { WATCH_EVENT_TYPES, watchStripOf, type WatchStrip } from '../runs/watch-strip';

export interface RunReportData {
  header: ReportHeader;
  report: RunReport;
  /** With `statements: 'digest'`, report.statements holds the digest (STATEMENT_DIGEST) of `total` statements; otherwise every one. */
  statements: { digest: boolean; total: number; slowestSeqs: number[] };
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

/**
 * The plan's title, from the plan.yaml frozen with the run. A checksum names one manifest, so its
 * title is read and parsed once per process, not per view (the YAML of a big plan is ~10 ms).
 */
async function planTitleOf(db: StoreDb, run: Pick<RunForReport, 'id' | 'planChecksum'>): Promise<string | null> {
  if (titles.has(run.planChecksum)) return titles.get(run.planChecksum)!;
  const title = titleOfYaml(await readFrozenPlanYaml(db, run.id));
  if (titles.size >= TITLES_KEPT) titles.delete(titles.keys().next().value!);
  titles.set(run.planChecksum, title);
  return title;
}

const titles = new Map<string, string | null>();
const TITLES_KEPT = 256;

function titleOfYaml(yaml: string | null): string | null {
  if (!yaml) return null;
  try {
    const doc = parseYaml(yaml) as { title?: unknown } | null;
    return typeof doc?.title === 'string' ? doc.title : null;
  } catch {
    return null;
  }
}

/**
 * The header's times are the apply's (or the rehearsal's) own, from its drive events when the log
 * has them: a later rollback has its own line in the report's actions and never stretches them.
 */
function headerOf(run: RunForReport, planTitle: string | null, targetLabel: string, report: RunReport): ReportHeader {
  const drive = report.actions.find((action) => action.action === 'execute' || action.action === 'rehearse');
  const startedAt = drive?.startedAt ?? run.startedAt?.toISOString() ?? null;
  const finishedAt = drive ? drive.finishedAt : (run.finishedAt?.toISOString() ?? null);
  const durationMs = startedAt && finishedAt ? Date.parse(finishedAt) - Date.parse(startedAt) : null;
  return {
    runId: run.id,
    planId: run.planId,
    planTitle,
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

type StoredDigest = NonNullable<Awaited<ReturnType<typeof readReportSummaryDigest>>>;

/**
 * The stored summary's digest, kept per process by the events it covers (run, through seq, head):
 * a stored summary is never changed, only replaced by one that covers more, so a kept digest is
 * never stale; a view reads which summary is stored, not the summary.
 */
async function storedDigest(db: StoreDb, runId: string): Promise<StoredDigest | undefined> {
  const head = await readReportSummaryHead(db, runId);
  if (!head) return undefined;
  const key = `${runId}|${head.throughSeq}|${head.head}`;
  const known = digests.get(key);
  if (known) return known;
  const read = await readReportSummaryDigest(db, runId, STATEMENT_DIGEST);
  if (read && read.throughSeq === head.throughSeq && read.head === head.head) {
    if (digests.size >= DIGESTS_KEPT) digests.delete(digests.keys().next().value!);
    digests.set(key, read);
  }
  return read;
}

const digests = new Map<string, StoredDigest>();
const DIGESTS_KEPT = 64;

/**
 * The report of one run (its event list opening after `afterSeq`); undefined when there is no such
 * run. The page asks for `statements: 'digest'` (a long statement list cut to its first, slowest
 * and last few, in the store); the Markdown download for every statement.
 */
export async function readRunReport(runtime: EngineDeps, input: { runId: string; afterSeq?: number; statements?: 'all' | 'digest' }): Promise<RunReportData | undefined> {
  const db = runtime.store.db;
  const run = await readRunForReport(db, { runId: input.runId });
  if (!run) return undefined;
  const digest = input.statements === 'digest';
  const [stored, signature, firstEvents, watchEvents, planTitle] = await Promise.all([
    digest ? storedDigest(db, run.id) : readReportSummary(db, run.id).then((found) => (found ? { ...found, statementCount: undefined, slowestSeqs: undefined } : undefined)),
    readSignatureVerdict(runtime, run),
    readRunEventsPage(db, { runId: run.id, afterSeq: Math.min(input.afterSeq ?? 0, Math.max(0, run.lastSeq - 1)), limit: INITIAL_EVENTS_PAGE }),
    readRunEventsOfTypes(db, { runId: run.id, types: WATCH_EVENT_TYPES }),
    planTitleOf(db, run),
  ]);
  // The summary stored at the latest checkpoint, while the log has not moved past it (a drive between checkpoints is summarised now).
  const fresh = stored && stored.throughSeq === run.lastSeq ? stored : undefined;
  const events = fresh ? [] : await readRunEventsOfTypes(db, { runId: run.id, types: REPORT_EVENT_TYPES });
  let report = fresh ? (fresh.summary as unknown as RunReport) : buildRunReport(events, run.outcome);
  let statements: RunReportData['statements'] = { digest: false, total: report.statements.length, slowestSeqs: [] };
  if (digest && fresh) {
    statements = { digest: true, total: fresh.statementCount ?? report.statements.length, slowestSeqs: fresh.slowestSeqs ?? [] };
  } else if (digest) {
    const cut = digestStatements(report.statements);
    report = { ...report, statements: cut.statements };
    statements = { digest: true, total: cut.total, slowestSeqs: cut.slowestSeqs };
  }
  const strip = watchStripOf(watchEvents);
  return {
    header: headerOf(run, planTitle, runtime.targets.find(run.target)?.label ?? run.target, report),
    report,
    statements,
    summarySource: fresh ? { stored: true, throughSeq: fresh.throughSeq } : { stored: false },
    summaryTruncated: events.length >= REPORT_EVENTS_LIMIT,
    signature: { ...signature, eventCount: signature.eventCount || run.eventCount },
    lastSeq: run.lastSeq,
    signedThroughSeq: run.signedThroughSeq,
    firstEvents,
    watch: strip ? { strip, nowIso: new Date().toISOString() } : null,
  };
}
