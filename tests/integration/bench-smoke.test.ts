/**
 * `npm run bench` in its quick mode on a small sandbox, so the benchmark cannot rot: it must run
 * end to end (start-up, sandbox, check suite against psql, both applies under writer load, the
 * HTTP loads, memory) and its JSON must hold every figure. No timing thresholds: this machine is
 * shared with other tests; docs/benchmarks.md holds the measured numbers.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
fs.mkdirSync(path.join(ROOT, '.data'), { recursive: true });
const dataDir = fs.mkdtempSync(path.join(ROOT, '.data', 'bench-smoke-'));
const outFile = path.join(dataDir, 'results.json');

interface BenchRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBench(args: string[]): Promise<BenchRun> {
  return new Promise((resolve) => {
    execFile('npm', ['run', '--silent', 'bench', '--', ...args], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 20 * 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const isNumber = (value: unknown) => typeof value === 'number' && Number.isFinite(value);

afterAll(() => {
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('npm run bench (quick, 20,000 users)', () => {
  it('runs end to end, prints one table and writes JSON with every figure', { timeout: 25 * 60_000 }, async () => {
    const run = await runBench(['--users', '20000', '--runs', '1', '--quick', '--data-dir', dataDir, '--out', outFile]);
    expect(run.code, run.stderr.slice(-4000)).toBe(0);

    // The JSON also went to bench-results/<timestamp>.json: check it, then leave no trace.
    const saved = /results: (bench-results\/\S+\.json)/.exec(run.stderr)?.[1];
    expect(saved).toBeDefined();
    expect(fs.readFileSync(path.join(ROOT, saved!), 'utf8')).toBe(fs.readFileSync(outFile, 'utf8'));
    fs.rmSync(path.join(ROOT, saved!));

    const results = JSON.parse(fs.readFileSync(outFile, 'utf8'));
    expect(results.machine.cores).toBeGreaterThan(0);
    expect(results.machine.totalMemoryBytes).toBeGreaterThan(0);
    expect(results.machine.postgres).toMatch(/^\d+/);
    expect(results.sandbox.users).toBe(20_002);
    expect(isNumber(results.sandbox.generationMs)).toBe(true);

    for (const part of [results.checkSuite.total, results.checkSuite.before, results.checkSuite.after]) {
      expect(isNumber(part.runsheetMs) && isNumber(part.psqlMs) && isNumber(part.ratio)).toBe(true);
    }
    expect(results.checkSuite.checks.before).toBeGreaterThan(0);
    expect(results.checkSuite.checks.after).toBeGreaterThan(0);
    expect(results.checkSuite.failed).toEqual([]);

    const plan008 = results.apply.plan008;
    expect(plan008.states).toEqual(['applied']);
    expect(isNumber(plan008.applyMs)).toBe(true);
    for (const window of [plan008.writers.before, plan008.writers.during]) {
      expect(isNumber(window.p50Ms) && isNumber(window.p99Ms) && isNumber(window.maxMs)).toBe(true);
    }
    expect(isNumber(plan008.writers.longestStallMs)).toBe(true);
    // The online plan is measured when it exists, else named as pending.
    const online = results.apply.online;
    if ('status' in online) expect(online.status).toMatch(/pending plan|plan invalid/);
    else expect(isNumber(online.applyMs) && isNumber(online.writers.during.maxMs)).toBe(true);

    for (const name of ['bare', 'plan', 'report', 'planRendered', 'reportRendered']) {
      const route = results.http[name];
      if ((name === 'report' || name === 'reportRendered') && 'missing' in route) continue;
      expect(isNumber(route.requestsPerSecond) && isNumber(route.p50Ms) && isNumber(route.p99Ms), name).toBe(true);
    }
    expect(results.http.reportRun.events).toBe(10_000);
    expect(isNumber(results.startup.emptyMs) && isNumber(results.startup.warmMs)).toBe(true);
    expect(results.memory.peakRssBytes).toBeGreaterThan(0);
    // The cancel of a blocked apply ran to the end (its timing is a goal, never asserted here).
    expect(results.cancel.states).toEqual(['cancelled']);
    expect(isNumber(results.cancel.requestToEndMs)).toBe(true);
    expect(results.goals.map((goal: { id: string }) => goal.id)).toEqual([
      'check-suite-ratio',
      'cancel',
      'online-writer-wait',
      'plan-throughput',
      'plan-p99',
      'report-throughput',
      'report-p99',
      'fan-out-queries',
      'fan-out-delivery',
      'two-instances-one-apply',
    ]);
    // Two instances on one store: both served the plan page, and one execute of twenty started the apply.
    expect(results.twoInstances.perInstance.map((load: { requests: number }) => load.requests > 0)).toEqual([true, true]);
    expect(results.twoInstances.executes.started).toBe(1);
    expect(results.twoInstances.executes.applyPhasesStarted).toBe(1);
    // The fan-out followed a real apply on every stream (its figures are goals, never asserted here).
    expect(results.fanOut.streams).toBe(50);
    expect(results.fanOut.state).toBe('applied');
    expect(results.fanOut.events).toBeGreaterThan(0);
    expect(results.fanOut.statements.feedReads).toBeGreaterThan(0);
    expect(isNumber(results.fanOut.feedChecksPerSecond)).toBe(true);
    expect(results.fanOut.incompleteStreams).toBe(0);
    expect(isNumber(results.fanOut.queriesPerEvent) && isNumber(results.fanOut.deliveryMs.p99Ms)).toBe(true);

    // stdout is the one table (with its caption line), the same the JSON carries.
    expect(run.stdout.trim()).toBe(results.table.trim());
    expect(run.stdout).toMatch(/\| Figure \| Median \| Detail \| Goal \| Verdict \|/);
    for (const figure of ['Sandbox generation', 'Runsheet / psql', 'Apply 008 (one transaction)', 'Apply 008 online', 'Plan page', 'Report page', 'Live view fan-out', 'Live view delivery', 'Plan page on two instances', 'Executes split across two instances', 'Start-up, empty data folder', 'Server peak RSS']) {
      expect(run.stdout).toContain(figure);
    }
  });
});
