/**
 * `npm run bench`: Runsheet measured on a sandbox of `--users` users (default 1,000,000), every
 * figure the median of `--runs` runs (default 3; `--quick`: 1 run, short HTTP loads). Prints one
 * Markdown table and writes the JSON to bench-results/<timestamp>.json (and `--out`).
 *
 * Everything runs on its own embedded PostgreSQL under `--data-dir` (default .data/bench), never
 * the dashboard's .data; the web server runs as a child (`node bin/start.js`) on the same folder,
 * and the start-up measurements use folders of their own. docs/benchmarks.md explains each figure.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { eq } from 'drizzle-orm';
import pg from 'pg';
import { factSnapshots } from '../db/schema/index';
import type { CheckResult } from '../app/checks/run-checks.server';
import { requireValidPlan } from '../app/checks/plan-checks.server';
import type { EngineActor, EngineDeps } from '../app/engine/engine-deps.server';
import { loadPlan } from '../app/plans/load-plans.server';
import { startRuntime, type Runtime } from '../app/boot/runtime.server';
import { writeSandboxApiTokens } from '../app/sandbox/sandbox-api-tokens.server';
import { generateSandbox } from '../app/sandbox/generate-sandbox.server';
import { createTargetRegistry } from '../app/targets/target-registry.server';
import runsheetConfig from '../runsheet.config';
import { applyUnderLoad, type ApplyMeasurement } from './apply-under-load';
import { measureCancel, type CancelMeasurement } from './cancel-timing';
import { ensureFreshBuild } from './build';
import {
  psqlConnectionOf,
  withoutParallelWorkers,
  timeScriptWithPsql,
  timeSuiteWithRunsheet,
  writePsqlScript,
  type PsqlSuiteTiming,
  type RunsheetSuiteTiming,
  type SuiteState,
} from './check-suite';
import { currentRssBytes, getOnce, loadRoute, peakRssBytes, readDemoAccount, signIn, startServerProcess, type LoadResult } from './http-load';
import { createReportRun } from './report-run';
import { measureFanOut, type FanOutMeasurement } from './fan-out';
import { measureTwoInstances, type TwoInstancesMeasurement } from './two-instances';
import { rollbackRun } from '../app/engine/engine.server';
import { measureStartup, type StartupSample } from './startup';
import { median, round } from './stats';
import { evaluateGoals, renderTable, type BenchResults, type GoalVerdict, type SuiteMeasurement } from './table';

export const PLAN_ID = '008-add-active-org-tracking';
export const ONLINE_PLAN_ID = '008-add-active-org-tracking-online';
const ENGINEER: EngineActor = { email: 'engineer@runsheet.local', role: 'engineer' };
const ROOT = path.resolve(import.meta.dirname, '..');

export interface BenchOptions {
  users: number;
  runs: number;
  quick: boolean;
  out?: string;
  dataDir: string;
  seed: number;
  writers: number;
  writerRate: number;
  insertEvery: number;
  marginS: number;
  connections: number;
  durationS: number;
  warmupRequests: number;
  events: number;
  streams: number;
}

const USAGE = `Usage: npm run bench -- [--users N] [--runs R] [--quick] [--out FILE] [--data-dir DIR]
  --users N        sandbox users (default 1000000)
  --runs R         runs per figure, the table shows medians (default 3; --quick: 1)
  --quick          one run, short HTTP loads (the smoke test's mode)
  --out FILE       also write the JSON here (it always goes to bench-results/<timestamp>.json)
  --data-dir DIR   the bench's own embedded PostgreSQL and files (default .data/bench)
  --writers N      concurrent writer connections during an apply (default 4)
  --writer-rate N  writes per second per writer connection (default 50)
  --connections N  concurrent HTTP readers (default 50)
  --duration S     seconds of each measured HTTP load (default 10; --quick: 3)
  --warmup N       untimed requests per reader before each load (default 2; --quick: 1)
  --events N       events in the report page's run (default 10000)
  --streams N      live-view event streams following one apply (default 500; --quick: 50)`;

export function parseBenchOptions(argv: string[]): BenchOptions | { help: true } {
  const { values } = parseArgs({
    args: argv,
    options: {
      users: { type: 'string', default: '1000000' },
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'data-dir': { type: 'string', default: path.join('.data', 'bench') },
      seed: { type: 'string', default: '1' },
      writers: { type: 'string', default: '4' },
      'writer-rate': { type: 'string', default: '50' },
      connections: { type: 'string', default: '50' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      events: { type: 'string', default: '10000' },
      streams: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return { help: true };
  const quick = values.quick === true;
  const whole = (name: string, text: string | undefined, fallback: number, min = 1): number => {
    const value = text === undefined ? fallback : Number(text);
    if (!Number.isSafeInteger(value) || value < min) throw new UsageError(`--${name} must be a whole number ≥ ${min}, not "${text}".`);
    return value;
  };
  return {
    users: whole('users', values.users, 1_000_000, 0),
    runs: whole('runs', values.runs, quick ? 1 : 3),
    quick,
    out: values.out,
    dataDir: path.resolve(values['data-dir']!),
    seed: whole('seed', values.seed, 1, 0),
    writers: whole('writers', values.writers, 4),
    writerRate: whole('writer-rate', values['writer-rate'], 50),
    insertEvery: 4,
    marginS: 5,
    connections: whole('connections', values.connections, 50),
    durationS: whole('duration', values.duration, quick ? 3 : 10),
    warmupRequests: whole('warmup', values.warmup, quick ? 1 : 2, 0),
    events: whole('events', values.events, 10_000, 12),
    streams: whole('streams', values.streams, quick ? 50 : 500),
  };
}

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  let options: BenchOptions;
  try {
    const parsed = parseBenchOptions(argv);
    if ('help' in parsed) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    options = parsed;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  try {
    const results = await runBench(options, (line) => process.stderr.write(`[bench] ${line}\n`));
    process.stdout.write(`${results.table}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`[bench] failed: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}

export async function runBench(options: BenchOptions, log: (line: string) => void): Promise<BenchResults> {
  const startedAt = new Date();
  const loadAverageStart = os.loadavg();
  fs.mkdirSync(options.dataDir, { recursive: true });
  log(`${options.users.toLocaleString('en-US')} users, ${options.runs} run(s)${options.quick ? ', quick' : ''}; data under ${options.dataDir}`);

  log('production build: checking it is fresh');
  await ensureFreshBuild(ROOT, log);

  // Start-up first, while nothing else of the bench runs.
  const startup: StartupSample[] = [];
  for (let run = 0; run < options.runs; run++) {
    let sample: StartupSample | undefined;
    // A source edited meanwhile makes the server rebuild at start: build, and measure that run again (once).
    for (let attempt = 0; attempt < 2 && (!sample || sample.rebuilt); attempt++) {
      await ensureFreshBuild(ROOT, log);
      sample = await measureStartup(ROOT, path.join(options.dataDir, 'startup', `run-${run + 1}`), log);
    }
    startup.push(sample!);
  }

  // The bench's own runtime: embedded PostgreSQL on --data-dir, targets from this environment only.
  const source: NodeJS.ProcessEnv = { ...process.env, RUNSHEET_DATA_DIR: options.dataDir };
  for (const key of Object.keys(source)) if (key.startsWith('TARGET_') || key === 'DATABASE_URL' || key === 'PORT') delete source[key];
  const runtime = await startRuntime({ source, sandboxUsers: 1_000, log });
  // The bench process calls no API: its applies skip the http checks (they are no part of the suite).
  const sandboxUrl = runtime.targets.get('sandbox').url;
  const benchTargets = createTargetRegistry({ addresses: new Map([['sandbox', { url: sandboxUrl }]]), config: runsheetConfig });
  try {
    const deps: EngineDeps = { store: runtime.store, plansDir: runtime.plansDir, signingKeyPem: runtime.signingKeyPem, targets: benchTargets };
    const pool = runtime.targets.pool('sandbox');
    const versions = await pool.query<{ server_version: string; version: string }>('select current_setting($1) as server_version, version() as version', ['server_version']);

    const plan = await requireValidPlan(runtime.plansDir, PLAN_ID);
    const online = await loadPlan(runtime.plansDir, ONLINE_PLAN_ID);
    const onlineStatus = !online ? 'pending plan' : online.ok ? 'measured' : `plan invalid: ${online.errors[0]?.file} ${online.errors[0]?.path}: ${online.errors[0]?.message}`;
    log(`plan ${ONLINE_PLAN_ID}: ${onlineStatus}`);

    const scripts = path.join(options.dataDir, 'scripts');
    const psqlFiles: Record<SuiteState, string> = {
      before: await writePsqlScript(plan, 'before', scripts),
      after: await writePsqlScript(plan, 'after', scripts),
    };
    const psqlConnection = psqlConnectionOf(sandboxUrl);
    const psqlVersion = await psqlVersionText();

    const generation: { durationMs: number; users: number; organizations: number; memberships: number }[] = [];
    const suites: SuiteMeasurement[] = [];
    const applies: { plan008: ApplyMeasurement[]; online: ApplyMeasurement[] } = { plan008: [], online: [] };
    const vacuumMs: number[] = [];
    const cancels: CancelMeasurement[] = [];
    // The report run's 'checks.ran' events carry real results: the last run's.
    let lastCheckResults: { phase: string; results: CheckResult[] }[] = [];
    const tagBase = Date.now().toString(36);

    for (let run = 0; run < options.runs; run++) {
      log(`run ${run + 1}/${options.runs}`);
      // An applied run stays its plan's working run until rolled back (a regenerated sandbox does not
      // end it): the next run's apply is a new run only once the last one is rolled back, on the
      // sandbox it changed.
      const previous = applies.plan008.at(-1);
      if (previous) {
        log(`  rolling back run ${previous.runId} of ${PLAN_ID} first`);
        await rollbackRun(deps, { runId: previous.runId, actor: ENGINEER });
      }
      if (online?.ok) {
        generation.push(await regenerate(runtime, options, log));
        log(`  applying ${ONLINE_PLAN_ID} under writer load`);
        const measured = await applyUnderLoad(deps, { planId: ONLINE_PLAN_ID, actor: ENGINEER, targetPool: pool, targetUrl: sandboxUrl, writer: writerOptions(options), tag: `${tagBase}r${run}o`, log });
        logApply(measured, log);
        applies.online.push(measured);
        if (measured.state === 'applied' && run + 1 < options.runs) {
          log(`  rolling back run ${measured.runId} of ${ONLINE_PLAN_ID}, for the next run`);
          await rollbackRun(deps, { runId: measured.runId, actor: ENGINEER });
        }
      }
      generation.push(await regenerate(runtime, options, log));
      const { results: beforeResults, ...before } = await measureSuite('before', run, plan, pool, psqlConnection, psqlFiles.before, log);
      suites.push(before);

      // A cancel of an apply blocked by another session's lock: nothing commits, the sandbox stays as it was.
      cancels.push(await measureCancel(deps, { planId: PLAN_ID, actor: ENGINEER, targetUrl: sandboxUrl, log }));

      log(`  applying ${PLAN_ID} under writer load`);
      const measured = await applyUnderLoad(deps, { planId: PLAN_ID, actor: ENGINEER, targetPool: pool, targetUrl: sandboxUrl, writer: writerOptions(options), tag: `${tagBase}r${run}p`, log });
      logApply(measured, log);
      applies.plan008.push(measured);
      if (measured.state !== 'applied') throw new Error(`plan ${PLAN_ID} did not apply (${measured.state}): ${measured.failure ?? 'see its run log'}`);

      // The backfill leaves a million dead tuples: vacuum them first, so the after-apply suite is
      // timed on a settled table (the same for both sides), not on whichever side meets them first.
      const vacuumStarted = performance.now();
      await pool.query('vacuum (analyze) platform.users, platform.organization_members');
      vacuumMs.push(round(performance.now() - vacuumStarted));
      const { results: afterResults, ...after } = await measureSuite('after', run, plan, pool, psqlConnection, psqlFiles.after, log);
      suites.push(after);
      lastCheckResults = [...beforeResults, ...afterResults];
    }

    log(`report run: writing ${options.events.toLocaleString('en-US')} events`);
    const reportRun = await createReportRun(deps, { planId: PLAN_ID, actor: ENGINEER, events: options.events, checkResults: lastCheckResults });
    log(`  run ${reportRun.runId}: ${reportRun.events} events in ${(reportRun.writeMs / 1000).toFixed(1)} s`);

    const http = await measureHttp(options, reportRun.runId, log);
    const { fanOut, twoInstances } = await measureFanOutAndTwoInstances(deps, runtime, options, applies.plan008.at(-1)!.runId, log);

    const results = assemble({
      options,
      startedAt,
      loadAverageStart,
      postgresVersion: versions.rows[0]!.server_version,
      postgresVersionFull: versions.rows[0]!.version,
      psqlVersion,
      generation,
      suites,
      applies,
      onlineStatus,
      vacuumMs,
      cancels,
      reportRun,
      http,
      fanOut,
      twoInstances,
      startup,
    });
    writeResults(results, options, log);
    return results;
  } finally {
    await benchTargets.close();
    await runtime.stop();
  }
}

function writerOptions(options: BenchOptions) {
  return { connections: options.writers, ratePerConnection: options.writerRate, insertEvery: options.insertEvery, marginMs: options.marginS * 1000 };
}

function logApply(measured: ApplyMeasurement, log: (line: string) => void): void {
  const { during, before } = measured.writers;
  log(
    `  ${measured.planId}: ${measured.state} in ${(measured.applyMs / 1000).toFixed(1)} s; writers before p99 ${before.p99Ms} ms, ` +
      `during p99 ${during.p99Ms} ms max ${during.maxMs} ms, longest stall ${measured.writers.longestStallMs} ms` +
      (measured.failure ? `; failure: ${measured.failure}` : ''),
  );
}

/** A fresh sandbox (as `npx runsheet sandbox reset` makes it): no ledger, no cached facts. */
async function regenerate(runtime: Runtime, options: BenchOptions, log: (line: string) => void) {
  const client = await runtime.targets.pool('sandbox').connect();
  try {
    const summary = await generateSandbox(client, { users: options.users, seed: options.seed });
    await client.query('drop schema if exists runsheet cascade');
    writeSandboxApiTokens(runtime.env.dataDir, summary.apiTokens);
    await runtime.store.db.delete(factSnapshots).where(eq(factSnapshots.target, 'sandbox'));
    log(`  sandbox: ${summary.users.toLocaleString('en-US')} users, ${summary.memberships.toLocaleString('en-US')} memberships in ${(summary.durationMs / 1000).toFixed(1)} s`);
    return { durationMs: summary.durationMs, users: summary.users, organizations: summary.organizations, memberships: summary.memberships };
  } finally {
    client.release();
  }
}

/** One untimed pass of each side (caches, hint bits), then both timed, in alternating order per run. */
async function measureSuite(
  state: SuiteState,
  run: number,
  plan: Awaited<ReturnType<typeof requireValidPlan>>,
  pool: pg.Pool,
  connection: ReturnType<typeof psqlConnectionOf>,
  psqlFile: string,
  log: (line: string) => void,
): Promise<SuiteMeasurement & { results: { phase: string; results: CheckResult[] }[] }> {
  await timeScriptWithPsql(connection, psqlFile);
  await timeSuiteWithRunsheet(plan, state, pool);
  let runsheet: Awaited<ReturnType<typeof timeSuiteWithRunsheet>>;
  let psql: PsqlSuiteTiming;
  if (run % 2 === 0) {
    psql = await timeScriptWithPsql(connection, psqlFile);
    runsheet = await timeSuiteWithRunsheet(plan, state, pool);
  } else {
    runsheet = await timeSuiteWithRunsheet(plan, state, pool);
    psql = await timeScriptWithPsql(connection, psqlFile);
  }
  // Contrast, not the goal's baseline: psql one check after another without parallel workers.
  const psqlWithoutWorkers = await timeScriptWithPsql(withoutParallelWorkers(connection), psqlFile);
  log(
    `  check suite ${state} the apply: Runsheet ${(runsheet.timing.wallMs / 1000).toFixed(2)} s, psql ${(psql.wallMs / 1000).toFixed(2)} s, ` +
      `psql without parallel workers ${(psqlWithoutWorkers.wallMs / 1000).toFixed(2)} s` +
      (runsheet.timing.failed.length ? ` (failed: ${runsheet.timing.failed.join(', ')})` : ''),
  );
  return { state, runsheet: runsheet.timing, psql, psqlWithoutWorkers, results: runsheet.results };
}

export interface HttpRun {
  readyMs: number;
  routes: Record<'bare' | 'plan' | 'report', (LoadResult & { path: string; bytes: number }) | { path: string; missing: string }> &
    /** The same pages on a server that keeps none (RUNSHEET_PAGE_CACHE=off): every view rendered, as while a run writes to the store. */
    Partial<Record<'planRendered' | 'reportRendered', LoadResult & { path: string; bytes: number }>>;
  /** Sequential, unloaded: the whole page versus its loader's data alone (single fetch .data). */
  diagnostics: Record<'plan' | 'report', { pageMs: number; dataMs: number; dataStatus: number } | undefined>;
  peakRssBytes?: number;
  sampledPeakRssBytes?: number;
}

async function measureHttp(options: BenchOptions, reportRunId: string, log: (line: string) => void): Promise<HttpRun[]> {
  const paths = {
    bare: '/bench/bare',
    plan: `/plans/${PLAN_ID}?target=sandbox`,
    report: `/runs/${reportRunId}/report`,
  } as const;
  const dataPaths = {
    plan: `/plans/${PLAN_ID}.data?target=sandbox&_routes=${encodeURIComponent('routes/plans.$planId')}`,
    report: `/runs/${reportRunId}/report.data?_routes=${encodeURIComponent('routes/runs.$runId_.report')}`,
  } as const;
  const runs: HttpRun[] = [];
  for (let run = 0; run < options.runs; run++) {
    const server = await startFreshServer(options.dataDir, log);
    let sampledPeak = 0;
    const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, currentRssBytes(server.pid) ?? 0)), 200);
    try {
      const cookie = await signIn(server, readDemoAccount(options.dataDir, 'viewer'));
      const routes = {} as HttpRun['routes'];
      for (const [name, pathAndQuery] of Object.entries(paths) as [keyof typeof paths, string][]) {
        const first = await getOnce(server, pathAndQuery, cookie);
        if (first.status === 404 && name !== 'plan') {
          routes[name] = { path: pathAndQuery, missing: `GET ${pathAndQuery} answered 404: the route is missing from this build` };
          log(`  ${name}: ${routes[name].missing}`);
          continue;
        }
        if (first.status !== 200) throw new Error(`GET ${pathAndQuery} answered ${first.status} to a signed-in viewer`);
        const load = await loadRoute(server, pathAndQuery, cookie, options);
        if (load.non2xx > 0 || load.errors > 0) throw new Error(`GET ${pathAndQuery} under load: ${load.non2xx} non-2xx answers, ${load.errors} errors`);
        routes[name] = { ...load, path: pathAndQuery, bytes: first.bytes };
        log(`  ${name}: ${load.requestsPerSecond} req/s, p50 ${load.p50Ms} ms, p99 ${load.p99Ms} ms (${(first.bytes / 1024).toFixed(0)} KiB)`);
      }
      const diagnostics = {} as HttpRun['diagnostics'];
      for (const name of ['plan', 'report'] as const) {
        if ('missing' in routes[name]) continue;
        const page: number[] = [];
        const data: number[] = [];
        let dataStatus = 0;
        for (let i = 0; i < 10; i++) {
          page.push((await getOnce(server, paths[name], cookie)).ms);
          const answer = await getOnce(server, dataPaths[name], cookie);
          dataStatus = answer.status;
          data.push(answer.ms);
        }
        diagnostics[name] = { pageMs: round(median(page)), dataMs: round(median(data)), dataStatus };
      }
      runs.push({ readyMs: server.readyMs, routes, diagnostics, peakRssBytes: peakRssBytes(server.pid), sampledPeakRssBytes: sampledPeak || undefined });
    } finally {
      clearInterval(sampler);
      await server.stop();
    }
    // A kept page is sent again only while the store is unchanged (docs/decisions/035); while a run
    // writes events, every view renders. That cost, measured on a server that keeps no page:
    const rendering = await startFreshServer(options.dataDir, log, { RUNSHEET_PAGE_CACHE: 'off' });
    try {
      const cookie = await signIn(rendering, readDemoAccount(options.dataDir, 'viewer'));
      const routes = runs[runs.length - 1]!.routes;
      for (const name of ['plan', 'report'] as const) {
        if ('missing' in routes[name]) continue;
        const first = await getOnce(rendering, paths[name], cookie);
        const load = await loadRoute(rendering, paths[name], cookie, options);
        if (load.non2xx > 0 || load.errors > 0) throw new Error(`GET ${paths[name]} rendered on every view: ${load.non2xx} non-2xx answers, ${load.errors} errors`);
        routes[`${name}Rendered`] = { ...load, path: paths[name], bytes: first.bytes };
        log(`  ${name}, rendered on every view: ${load.requestsPerSecond} req/s, p50 ${load.p50Ms} ms, p99 ${load.p99Ms} ms`);
      }
    } finally {
      await rendering.stop();
    }
  }
  return runs;
}

/**
 * Once, on a fresh server: the live view's fan-out (the last apply of 008 is rolled back, then 008
 * is executed again by this process while `--streams` event streams follow it), then two instances
 * on one store (rolled back again; the plan page's load split across both, and 20 executes of one
 * ready run split across both).
 */
async function measureFanOutAndTwoInstances(
  deps: EngineDeps,
  runtime: Runtime,
  options: BenchOptions,
  appliedRunId: string,
  log: (line: string) => void,
): Promise<{ fanOut: FanOutMeasurement; twoInstances: TwoInstancesMeasurement }> {
  log(`fan-out: rolling back run ${appliedRunId} first`);
  await rollbackRun(deps, { runId: appliedRunId, actor: ENGINEER });
  // The superuser (pg_stat_statements needs it) on the store's own database.
  const adminStoreUrl = new URL(runtime.embeddedAdminUrl!);
  adminStoreUrl.pathname = new URL((runtime.store.pool as unknown as { options: { connectionString: string } }).options.connectionString).pathname;
  const server = await startFreshServer(options.dataDir, log);
  try {
    const cookie = await signIn(server, readDemoAccount(options.dataDir, 'viewer'));
    const fanOut = await measureFanOut(deps, { server, cookie, streams: options.streams, planId: PLAN_ID, actor: ENGINEER, adminStoreUrl: adminStoreUrl.toString(), log });
    log(
      `  fan-out: ${fanOut.streams} streams, ${fanOut.events} events (${fanOut.state}): ${fanOut.queriesPerEvent} store queries per event; ` +
        `delivery p50 ${fanOut.deliveryMs.p50Ms} ms, p99 ${fanOut.deliveryMs.p99Ms} ms; ${fanOut.incompleteStreams} incomplete stream(s)`,
    );
    log(`two instances: rolling back run ${fanOut.runId} first`);
    await rollbackRun(deps, { runId: fanOut.runId, actor: ENGINEER });
    const twoInstances = await measureTwoInstances(deps, {
      root: ROOT,
      dataDir: options.dataDir,
      adminUrl: runtime.embeddedAdminUrl!,
      first: server,
      pathAndQuery: `/plans/${PLAN_ID}?target=sandbox`,
      planId: PLAN_ID,
      actor: ENGINEER,
      load: options,
      log,
    });
    return { fanOut, twoInstances };
  } finally {
    await server.stop();
  }
}

/** The server on a fresh build; a start that fails (a source caught half-edited, rebuilt by start.js) is tried twice more. */
async function startFreshServer(dataDir: string, log: (line: string) => void, env?: Record<string, string>) {
  for (let attempt = 1; ; attempt++) {
    await ensureFreshBuild(ROOT, log);
    try {
      return await startServerProcess(ROOT, dataDir, env ? { env } : {});
    } catch (error) {
      if (attempt >= 3) throw error;
      log(`the server did not start (${(error as Error).message.split('\n')[0]}); trying again`);
    }
  }
}

async function psqlVersionText(): Promise<string> {
  const { execFileSync } = await import('node:child_process');
  try {
    return execFileSync('psql', ['--version'], { encoding: 'utf8' }).trim();
  } catch (error) {
    throw new Error(`psql is needed for the check-suite comparison: ${(error as Error).message}`);
  }
}

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) return match[1]!.trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function assemble(input: {
  options: BenchOptions;
  startedAt: Date;
  loadAverageStart: number[];
  postgresVersion: string;
  postgresVersionFull: string;
  psqlVersion: string;
  generation: { durationMs: number; users: number; organizations: number; memberships: number }[];
  suites: SuiteMeasurement[];
  applies: { plan008: ApplyMeasurement[]; online: ApplyMeasurement[] };
  onlineStatus: string;
  vacuumMs: number[];
  cancels: CancelMeasurement[];
  reportRun: { runId: string; events: number; writeMs: number };
  http: HttpRun[];
  fanOut: FanOutMeasurement;
  twoInstances: TwoInstancesMeasurement;
  startup: StartupSample[];
}): BenchResults {
  const { options, suites, applies, http } = input;
  const suiteTotals = (state?: SuiteState) => {
    const picked = suites.filter((suite) => !state || suite.state === state);
    // Per run: before + after (each run measured both states once).
    const perRun = (side: 'runsheet' | 'psql' | 'psqlWithoutWorkers') => {
      const values: number[] = [];
      for (let run = 0; run < options.runs; run++) {
        const ofRun = picked.filter((_suite, index) => Math.floor(index / (state ? 1 : 2)) === run);
        values.push(round(ofRun.reduce((sum, suite) => sum + suite[side].wallMs, 0)));
      }
      return values;
    };
    const runsheet = perRun('runsheet');
    const psql = perRun('psql');
    const psqlWithoutWorkers = perRun('psqlWithoutWorkers');
    const ratios = runsheet.map((value, index) => round(value / psql[index]!, 3));
    return {
      runsheetMs: median(runsheet),
      psqlMs: median(psql),
      psqlWithoutWorkersMs: median(psqlWithoutWorkers),
      ratio: round(median(ratios), 3),
      samples: { runsheetMs: runsheet, psqlMs: psql, psqlWithoutWorkersMs: psqlWithoutWorkers, ratios },
    };
  };
  const applySummary = (measured: ApplyMeasurement[]) => {
    if (measured.length === 0) return undefined;
    const pick = (select: (entry: ApplyMeasurement) => number) => round(median(measured.map(select)));
    return {
      applyMs: pick((entry) => entry.applyMs),
      executeMs: pick((entry) => entry.executeMs),
      states: measured.map((entry) => entry.state),
      failures: measured.map((entry) => entry.failure).filter((failure): failure is string => Boolean(failure)),
      writers: {
        before: { p50Ms: pick((entry) => entry.writers.before.p50Ms), p99Ms: pick((entry) => entry.writers.before.p99Ms), maxMs: pick((entry) => entry.writers.before.maxMs) },
        during: { p50Ms: pick((entry) => entry.writers.during.p50Ms), p99Ms: pick((entry) => entry.writers.during.p99Ms), maxMs: pick((entry) => entry.writers.during.maxMs) },
        longestStallMs: pick((entry) => entry.writers.longestStallMs),
        worstDuringMaxMs: Math.max(...measured.map((entry) => entry.writers.during.maxMs)),
      },
      runs: measured,
    };
  };
  const route = (name: 'bare' | 'plan' | 'report' | 'planRendered' | 'reportRendered') => {
    const loads = http.map((run) => run.routes[name]).filter((entry): entry is LoadResult & { path: string; bytes: number } => entry !== undefined && !('missing' in entry));
    const missing = http.map((run) => run.routes[name]).find((entry) => entry !== undefined && 'missing' in entry) as { missing: string } | undefined;
    if (loads.length === 0) return { missing: missing?.missing ?? 'not measured' };
    const pick = (select: (entry: LoadResult) => number) => round(median(loads.map(select)));
    return {
      path: loads[0]!.path,
      bytes: loads[0]!.bytes,
      requestsPerSecond: pick((entry) => entry.requestsPerSecond),
      p50Ms: pick((entry) => entry.p50Ms),
      p99Ms: pick((entry) => entry.p99Ms),
      maxMs: pick((entry) => entry.maxMs),
      samples: loads,
    };
  };
  const diagnostic = (name: 'plan' | 'report') => {
    const entries = http.map((run) => run.diagnostics[name]).filter((entry) => entry !== undefined);
    if (entries.length === 0) return undefined;
    const pageMs = round(median(entries.map((entry) => entry.pageMs)));
    const dataMs = round(median(entries.map((entry) => entry.dataMs)));
    return { pageMs, loaderDataMs: dataMs, renderMs: round(pageMs - dataMs), dataStatus: entries[0]!.dataStatus };
  };
  const usable = input.startup.filter((sample) => !sample.rebuilt);
  const startupSamples = usable.length > 0 ? usable : input.startup;
  const peaks = http.map((run) => run.peakRssBytes).filter((value): value is number => value !== undefined);
  const generationMs = input.generation.map((entry) => entry.durationMs);
  const last = input.generation.at(-1);

  const partial: Omit<BenchResults, 'goals' | 'table'> = {
    version: 1,
    startedAt: input.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    options,
    machine: {
      cores: os.cpus().length,
      totalMemoryBytes: os.totalmem(),
      cpuModel: cpuModel(),
      node: process.version,
      postgres: input.postgresVersion,
      postgresFull: input.postgresVersionFull,
      psql: input.psqlVersion,
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      loadAverageStart: input.loadAverageStart.map((value) => round(value, 2)),
      loadAverageEnd: os.loadavg().map((value) => round(value, 2)),
    },
    sandbox: {
      users: last?.users ?? options.users,
      organizations: last?.organizations ?? 0,
      memberships: last?.memberships ?? 0,
      generationMs: round(median(generationMs)),
      generationSamplesMs: generationMs,
    },
    checkSuite: {
      planId: PLAN_ID,
      wrapping:
        'Both sides send the same statements: each check in its own transaction (BEGIN READ ONLY for sql checks, BEGIN for probes), ' +
        "set_config of statement_timeout and lock_timeout, the visibility probe before pg_stat_activity checks, the check's statements, ROLLBACK. " +
        "Runsheet: runChecks over the target pool (4 connections, 4 checks at a time), phase after phase; checks run side by side also set max_parallel_workers_per_gather to 0 in that set_config (decision 036), a phase's lone check keeps the server's setting. " +
        "psql: one check after another with the server's settings, as a person would run them: psql -X -q -f <file> in one session, " +
        'its wall time from spawn to exit (connection included); beside it, as contrast, the same psql run with max_parallel_workers_per_gather=0 (PGOPTIONS). After the apply the tables are vacuumed first; one untimed pass of each side precedes the timed ones.',
      checks: { before: suites.find((suite) => suite.state === 'before')?.runsheet.checkCount ?? 0, after: suites.find((suite) => suite.state === 'after')?.runsheet.checkCount ?? 0 },
      failed: [...new Set(suites.flatMap((suite) => suite.runsheet.failed))],
      total: suiteTotals(),
      before: suiteTotals('before'),
      after: suiteTotals('after'),
      vacuumMs: input.vacuumMs,
      runs: suites,
    },
    apply: {
      writerLoad: {
        connections: options.writers,
        writesPerSecondPerConnection: options.writerRate,
        insertEvery: options.insertEvery,
        marginMs: options.marginS * 1000,
        statements: ['update platform.users set updated_at = now() where id = $1', 'insert into platform.users (email, display_name) values ($1, $2)'],
      },
      plan008: applySummary(applies.plan008)!,
      online: applySummary(applies.online) ?? { status: input.onlineStatus },
    },
    cancel: {
      planId: PLAN_ID,
      how: "another session holds SHARE on platform.users; when the apply's step is logged waiting for it, cancelRun is called; the figure ends when executeRun returns",
      requestToEndMs: round(median(input.cancels.map((entry) => entry.requestToEndMs))),
      states: input.cancels.map((entry) => entry.state),
      runs: input.cancels,
    },
    http: {
      connections: options.connections,
      durationS: options.durationS,
      warmupRequests: options.warmupRequests,
      account: 'viewer (demo account, signed in through POST /login)',
      reportRun: input.reportRun,
      bare: route('bare'),
      plan: route('plan'),
      report: route('report'),
      planRendered: route('planRendered'),
      reportRendered: route('reportRendered'),
      diagnostics: { plan: diagnostic('plan'), report: diagnostic('report') },
      runs: http,
    },
    fanOut: input.fanOut,
    twoInstances: input.twoInstances,
    startup: {
      emptyMs: round(median(startupSamples.map((sample) => sample.emptyMs))),
      warmMs: round(median(startupSamples.map((sample) => sample.warmMs))),
      samples: input.startup,
    },
    memory: {
      peakRssBytes: peaks.length > 0 ? median(peaks) : Number.NaN,
      samplesBytes: peaks,
    },
  };
  const goals: GoalVerdict[] = evaluateGoals(partial);
  const withGoals = { ...partial, goals };
  return { ...withGoals, table: renderTable(withGoals) };
}

function writeResults(results: BenchResults, options: BenchOptions, log: (line: string) => void): void {
  const dir = path.join(ROOT, 'bench-results');
  fs.mkdirSync(dir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  const file = path.join(dir, `${stamp}.json`);
  const text = `${JSON.stringify(results, (_key, value) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`;
  fs.writeFileSync(file, text);
  log(`results: ${path.relative(process.cwd(), file)}`);
  if (options.out) {
    fs.mkdirSync(path.dirname(path.resolve(options.out)), { recursive: true });
    fs.writeFileSync(options.out, text);
    log(`results: ${options.out}`);
  }
}
