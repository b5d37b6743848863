/**
 * The bench's results as JSON (BenchResults), its goals judged from the measurements, and the one
 * Markdown table it prints. Nothing here measures; everything shown comes from the results.
 */
import type { ApplyMeasurement } from './apply-under-load';
import type { CancelMeasurement } from './cancel-timing';
import type { FanOutMeasurement } from './fan-out';
import type { TwoInstancesMeasurement } from './two-instances';
import type { PsqlSuiteTiming, RunsheetSuiteTiming, SuiteState } from './check-suite';
import type { BenchOptions, HttpRun } from './run-bench';
import type { LoadResult } from './http-load';
import type { StartupSample } from './startup';

interface SuiteTotals {
  runsheetMs: number;
  psqlMs: number;
  /** Contrast: psql one check after another without the server's parallel workers. */
  psqlWithoutWorkersMs: number;
  ratio: number;
  samples: { runsheetMs: number[]; psqlMs: number[]; psqlWithoutWorkersMs: number[]; ratios: number[] };
}

/** One state's check suite, timed on each side. */
export interface SuiteMeasurement {
  state: SuiteState;
  runsheet: RunsheetSuiteTiming;
  psql: PsqlSuiteTiming;
  psqlWithoutWorkers: PsqlSuiteTiming;
}

interface WriterFigures {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ApplySummary {
  applyMs: number;
  executeMs: number;
  states: string[];
  failures: string[];
  writers: { before: WriterFigures; during: WriterFigures; longestStallMs: number; worstDuringMaxMs: number };
  runs: ApplyMeasurement[];
}

export type RouteSummary =
  | { path: string; bytes: number; requestsPerSecond: number; p50Ms: number; p99Ms: number; maxMs: number; samples: (LoadResult & { path: string })[] }
  | { missing: string };

export interface GoalVerdict {
  id: string;
  goal: string;
  /** null: could not be judged (not measured). */
  met: boolean | null;
  detail: string;
}

export interface BenchResults {
  version: 1;
  startedAt: string;
  finishedAt: string;
  options: BenchOptions;
  machine: {
    cores: number;
    totalMemoryBytes: number;
    cpuModel: string;
    node: string;
    postgres: string;
    postgresFull: string;
    psql: string;
    platform: string;
    loadAverageStart: number[];
    loadAverageEnd: number[];
  };
  sandbox: { users: number; organizations: number; memberships: number; generationMs: number; generationSamplesMs: number[] };
  checkSuite: {
    planId: string;
    wrapping: string;
    checks: { before: number; after: number };
    failed: string[];
    total: SuiteTotals;
    before: SuiteTotals;
    after: SuiteTotals;
    vacuumMs: number[];
    runs: SuiteMeasurement[];
  };
  apply: {
    writerLoad: { connections: number; writesPerSecondPerConnection: number; insertEvery: number; marginMs: number; statements: string[] };
    plan008: ApplySummary;
    online: ApplySummary | { status: string };
  };
  cancel: { planId: string; how: string; requestToEndMs: number; states: string[]; runs: CancelMeasurement[] };
  http: {
    connections: number;
    durationS: number;
    warmupRequests: number;
    account: string;
    reportRun: { runId: string; events: number; writeMs: number };
    bare: RouteSummary;
    plan: RouteSummary;
    report: RouteSummary;
    /** The pages on a server that keeps none: every view rendered (as while a run writes). */
    planRendered?: RouteSummary;
    reportRendered?: RouteSummary;
    diagnostics: Record<'plan' | 'report', { pageMs: number; loaderDataMs: number; renderMs: number; dataStatus: number } | undefined>;
    runs: HttpRun[];
  };
  fanOut: FanOutMeasurement;
  twoInstances: TwoInstancesMeasurement;
  startup: { emptyMs: number; warmMs: number; samples: StartupSample[] };
  memory: { peakRssBytes: number; samplesBytes: number[] };
  goals: GoalVerdict[];
  table: string;
}

const WRITER_WAIT_GOAL_MS = 250;
const CANCEL_GOAL_MS = 2_000;
const PAGE_P99_GOAL_MS = 250;
const FAN_OUT_QUERIES_GOAL = 2;
const DELIVERY_P99_GOAL_MS = 1_000;
const GOAL_USERS = 1_000_000;

const measuredRoute = (route: RouteSummary) => ('missing' in route ? undefined : route);
const isApplySummary = (value: ApplySummary | { status: string }): value is ApplySummary => 'applyMs' in value;

export function evaluateGoals(results: Omit<BenchResults, 'goals' | 'table'>): GoalVerdict[] {
  const goals: GoalVerdict[] = [];
  const ratio = results.checkSuite.total.ratio;
  goals.push({
    id: 'check-suite-ratio',
    goal: 'Check suite of plan 008: Runsheet / psql ≤ 1.0',
    met: Number.isFinite(ratio) ? ratio <= 1 : null,
    detail: `${fmtMs(results.checkSuite.total.runsheetMs)} / ${fmtMs(results.checkSuite.total.psqlMs)} = ${ratio}`,
  });

  const online = results.apply.online;
  goals.push({
    id: 'cancel',
    goal: `A cancel of a blocked apply, request to rolled back < ${CANCEL_GOAL_MS / 1000} s`,
    met: results.cancel.runs.length > 0 && results.cancel.states.every((state) => state === 'cancelled') ? results.cancel.requestToEndMs < CANCEL_GOAL_MS : null,
    detail: `${fmtMs(results.cancel.requestToEndMs)} (median of ${results.cancel.runs.length}); states: ${results.cancel.states.join(', ')}`,
  });
  const scale = results.options.users >= GOAL_USERS ? '' : ` (on ${results.options.users.toLocaleString('en-US')} users; the goal is stated for ${GOAL_USERS.toLocaleString('en-US')})`;
  goals.push(
    isApplySummary(online)
      ? {
          id: 'online-writer-wait',
          goal: `Plan 008 online: no writer waits longer than ${WRITER_WAIT_GOAL_MS} ms during the apply`,
          met: online.states.every((state) => state === 'applied') && online.writers.worstDuringMaxMs <= WRITER_WAIT_GOAL_MS,
          detail: `longest write during the apply, worst run: ${fmtMs(online.writers.worstDuringMaxMs)}${online.failures.length ? `; failures: ${online.failures.join('; ')}` : ''}${scale}`,
        }
      : { id: 'online-writer-wait', goal: `Plan 008 online: no writer waits longer than ${WRITER_WAIT_GOAL_MS} ms during the apply`, met: null, detail: online.status },
  );

  const bare = measuredRoute(results.http.bare);
  for (const [name, label, share, shareText] of [
    ['plan', 'Plan page', 0.5, '½'],
    ['report', `Report page (${results.http.reportRun.events.toLocaleString('en-US')} events)`, 0.25, '¼'],
  ] as const) {
    const route = measuredRoute(results.http[name]);
    if (!route || !bare) {
      const missing = !route ? (results.http[name] as { missing: string }).missing : 'the bare route was not measured';
      goals.push({ id: `${name}-throughput`, goal: `${label} ≥ ${shareText} of the bare route's throughput`, met: null, detail: missing });
      goals.push({ id: `${name}-p99`, goal: `${label} p99 < ${PAGE_P99_GOAL_MS} ms`, met: null, detail: missing });
      continue;
    }
    const fraction = route.requestsPerSecond / bare.requestsPerSecond;
    goals.push({
      id: `${name}-throughput`,
      goal: `${label} ≥ ${shareText} of the bare route's throughput`,
      met: fraction >= share,
      detail: `${route.requestsPerSecond} / ${bare.requestsPerSecond} req/s = ${(fraction * 100).toFixed(1)} %`,
    });
    goals.push({ id: `${name}-p99`, goal: `${label} p99 < ${PAGE_P99_GOAL_MS} ms`, met: route.p99Ms < PAGE_P99_GOAL_MS, detail: `p99 ${fmtMs(route.p99Ms)}` });
  }
  const fan = results.fanOut;
  goals.push({
    id: 'fan-out-queries',
    goal: `Live view, ${fan.streams} streams on one instance: ≤ ${FAN_OUT_QUERIES_GOAL} store queries per event`,
    met: fan.events > 0 ? fan.queriesPerEvent <= FAN_OUT_QUERIES_GOAL : null,
    detail: `${fan.queriesPerEvent} per event (${fan.statements.announcements} NOTIFY + ${fan.statements.feedReads} reads for ${fan.events} events, pg_stat_statements)`,
  });
  goals.push({
    id: 'fan-out-delivery',
    goal: `Live view: event delivery p99 < ${DELIVERY_P99_GOAL_MS / 1000} s`,
    met: fan.received > 0 && fan.incompleteStreams === 0 ? fan.deliveryMs.p99Ms < DELIVERY_P99_GOAL_MS : fan.received > 0 ? false : null,
    detail: `p99 ${fmtMs(fan.deliveryMs.p99Ms)} over ${fan.received} deliveries; ${fan.incompleteStreams} stream(s) missed an event`,
  });
  goals.push({
    id: 'two-instances-one-apply',
    goal: '20 executes of one run split across two instances start one apply',
    met: results.twoInstances.executes.started === 1 && results.twoInstances.executes.applyPhasesStarted === 1,
    detail: `${results.twoInstances.executes.started} started, ${results.twoInstances.executes.applyPhasesStarted} apply phase(s)`,
  });
  return goals;
}

export function renderTable(results: Omit<BenchResults, 'table'>): string {
  const { machine, sandbox, checkSuite, apply, http, startup, memory, options } = results;
  const verdict = (id: string) => {
    const goal = results.goals.find((candidate) => candidate.id === id);
    return goal ? (goal.met === null ? 'n/a' : goal.met ? 'met' : '**missed**') : '';
  };
  const both = (...ids: string[]) => ids.map(verdict).join(', ');
  const rows: string[][] = [];
  rows.push([
    'Sandbox generation',
    fmtMs(sandbox.generationMs),
    `${sandbox.users.toLocaleString('en-US')} users, ${sandbox.organizations.toLocaleString('en-US')} organizations, ${sandbox.memberships.toLocaleString('en-US')} memberships; n = ${sandbox.generationSamplesMs.length}`,
    '',
    '',
  ]);
  rows.push([
    'Check suite of 008: Runsheet (pool of 4)',
    fmtMs(checkSuite.total.runsheetMs),
    `before the apply ${fmtMs(checkSuite.before.runsheetMs)} (${checkSuite.checks.before} checks), after ${fmtMs(checkSuite.after.runsheetMs)} (${checkSuite.checks.after} checks)` +
      (checkSuite.failed.length ? `; failed: ${checkSuite.failed.join(', ')}` : '; all passed'),
    '',
    '',
  ]);
  rows.push([
    'Check suite of 008: psql (one session)',
    fmtMs(checkSuite.total.psqlMs),
    `before ${fmtMs(checkSuite.before.psqlMs)}, after ${fmtMs(checkSuite.after.psqlMs)}; same statements, wrapped as Runsheet wraps them, one at a time with the server's parallel workers`,
    '',
    '',
  ]);
  rows.push([
    'Check suite of 008: psql without parallel workers',
    fmtMs(checkSuite.total.psqlWithoutWorkersMs),
    `before ${fmtMs(checkSuite.before.psqlWithoutWorkersMs)}, after ${fmtMs(checkSuite.after.psqlWithoutWorkersMs)}; the same psql run with max_parallel_workers_per_gather=0, as Runsheet's checks side by side run (decision 036)`,
    'contrast',
    '',
  ]);
  rows.push(['Runsheet / psql', String(checkSuite.total.ratio), `before ${checkSuite.before.ratio}, after ${checkSuite.after.ratio}`, '≤ 1.0', verdict('check-suite-ratio')]);
  rows.push(applyRow(`Apply 008 (one transaction)`, apply.plan008, 'contrast', ''));
  rows.push(
    isApplySummary(apply.online)
      ? applyRow('Apply 008 online', apply.online, `no write > ${WRITER_WAIT_GOAL_MS} ms during the apply`, verdict('online-writer-wait'))
      : ['Apply 008 online', apply.online.status, '', `no write > ${WRITER_WAIT_GOAL_MS} ms during the apply`, 'n/a'],
  );
  rows.push([
    'Cancel of a blocked apply',
    fmtMs(results.cancel.requestToEndMs),
    `request to rolled back and cancelled (${results.cancel.states.join(', ')}); the step had waited ${results.cancel.runs.map((run) => fmtMs(run.waitedBeforeCancelMs)).join(', ')} for another session's lock`,
    `< ${CANCEL_GOAL_MS / 1000} s`,
    verdict('cancel'),
  ]);
  const bare = measuredRoute(http.bare);
  rows.push(routeRow('Bare guarded route (ceiling)', http.bare, undefined, '', ''));
  rows.push(routeRow('Plan page', http.plan, bare, `≥ ½ bare; p99 < ${PAGE_P99_GOAL_MS} ms`, both('plan-throughput', 'plan-p99'), http.diagnostics.plan));
  rows.push(
    routeRow(`Report page (${http.reportRun.events.toLocaleString('en-US')} events)`, http.report, bare, `≥ ¼ bare; p99 < ${PAGE_P99_GOAL_MS} ms`, both('report-throughput', 'report-p99'), http.diagnostics.report),
  );
  // Kept pages are sent while the store is unchanged; while a run writes, every view renders (decision 035).
  if (http.planRendered) rows.push(routeRow('Plan page, rendered on every view (no page kept)', http.planRendered, bare, 'contrast', ''));
  if (http.reportRendered) rows.push(routeRow('Report page, rendered on every view (no page kept)', http.reportRendered, bare, 'contrast', ''));
  const fan = results.fanOut;
  rows.push([
    `Live view fan-out (${fan.streams} streams, one instance)`,
    `${fan.queriesPerEvent} queries/event`,
    `${fan.events} events of a running apply of 008 (${fan.state}); ${fan.statements.announcements} NOTIFY + ${fan.statements.feedReads} feed reads (pg_stat_statements); beside them ${fan.feedChecksPerSecond} timed feed checks, ${fan.presencePerSecond} presence and ${fan.sessionRechecksPerSecond} session re-check statements/s`,
    `≤ ${FAN_OUT_QUERIES_GOAL}`,
    verdict('fan-out-queries'),
  ]);
  rows.push([
    'Live view delivery (commit to stream read)',
    fmtMs(fan.deliveryMs.p50Ms),
    `p99 ${fmtMs(fan.deliveryMs.p99Ms)}, max ${fmtMs(fan.deliveryMs.maxMs)} over ${fan.received.toLocaleString('en-US')} deliveries; ${fan.incompleteStreams} stream(s) missed an event`,
    `p99 < ${DELIVERY_P99_GOAL_MS / 1000} s`,
    verdict('fan-out-delivery'),
  ]);
  const two = results.twoInstances;
  rows.push([
    'Plan page on two instances, one store',
    `${two.requestsPerSecond} req/s`,
    `${two.perInstance.map((load) => `${load.requestsPerSecond} req/s, p99 ${fmtMs(load.p99Ms)}`).join(' + ')} (half the readers on each, at once)`,
    '',
    '',
  ]);
  rows.push([
    'Executes split across two instances',
    `${two.executes.started} of ${two.executes.sent} started`,
    `${two.executes.applyPhasesStarted} apply phase(s); answers ${Object.entries(two.executes.answers).map(([status, count]) => `${count} × ${status}`).join(', ')}; run ${two.executes.state}`,
    'one apply',
    verdict('two-instances-one-apply'),
  ]);
  rows.push(['Start-up, empty data folder', fmtMs(startup.emptyMs), 'node bin/start.js to the first 200 from /login: initdb, store migrations, demo accounts, 10,000-user sandbox', '', '']);
  rows.push(['Start-up, warm data folder', fmtMs(startup.warmMs), 'the same folder, started again', '', '']);
  rows.push(['Server peak RSS', fmtBytes(memory.peakRssBytes), `VmHWM of the server process after the load tests (${http.connections} readers)`, '', '']);

  const caption =
    `Runsheet bench, ${new Date(results.startedAt).toISOString().slice(0, 16).replace('T', ' ')} UTC: ${sandbox.users.toLocaleString('en-US')} users, ` +
    `median of ${options.runs} run(s)${options.quick ? ' (quick)' : ''}; ${machine.cores} cores, ${fmtBytes(machine.totalMemoryBytes)} memory, ${machine.cpuModel}; ` +
    `PostgreSQL ${machine.postgres}, Node ${machine.node}; load average ${machine.loadAverageStart[0]} → ${machine.loadAverageEnd[0]}; ` +
    `HTTP: ${http.connections} signed-in readers, ${http.durationS} s each after ${http.warmupRequests} untimed request(s) per reader; writers: ${apply.writerLoad.connections} × ${apply.writerLoad.writesPerSecondPerConnection}/s`;
  const header = ['Figure', 'Median', 'Detail', 'Goal', 'Verdict'];
  const lines = [caption, '', `| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const row of rows) lines.push(`| ${row.map((cell) => cell.replace(/\|/g, '\\|')).join(' | ')} |`);
  return lines.join('\n');
}

function applyRow(label: string, summary: ApplySummary, goal: string, verdict: string): string[] {
  const { before, during } = summary.writers;
  const figures = (entry: WriterFigures) => `${fmtMs(entry.p50Ms)} / ${fmtMs(entry.p99Ms)} / ${fmtMs(entry.maxMs)}`;
  const states = summary.states.every((state) => state === 'applied') ? '' : `; states: ${summary.states.join(', ')}`;
  return [
    label,
    fmtMs(summary.applyMs),
    `writes p50 / p99 / max: before ${figures(before)}; during the apply ${figures(during)}; longest stall ${fmtMs(summary.writers.longestStallMs)}${states}`,
    goal,
    verdict,
  ];
}

function routeRow(
  label: string,
  route: RouteSummary,
  bare: Exclude<RouteSummary, { missing: string }> | undefined,
  goal: string,
  verdict: string,
  diagnostics?: { pageMs: number; loaderDataMs: number; renderMs: number },
): string[] {
  if ('missing' in route) return [label, 'not measured', route.missing, goal, 'n/a'];
  const share = bare ? ` (${((route.requestsPerSecond / bare.requestsPerSecond) * 100).toFixed(0)} % of bare)` : '';
  const split = diagnostics ? `; alone: page ${fmtMs(diagnostics.pageMs)}, loader data ${fmtMs(diagnostics.loaderDataMs)}` : '';
  return [label, `${route.requestsPerSecond} req/s${share}`, `p50 ${fmtMs(route.p50Ms)}, p99 ${fmtMs(route.p99Ms)}; ${fmtBytes(route.bytes)} per answer${split}`, goal, verdict];
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '–';
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${bytes} B`;
}
