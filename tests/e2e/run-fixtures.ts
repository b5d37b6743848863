/**
 * Runs written straight into the e2e store, for the report tests and screenshots that need a
 * finished run without driving a whole migration: a run row with the real plan 008 frozen into it,
 * a realistic log (ticks, checks, sign-off, phases, statements, notes) and signed checkpoints,
 * made with the app's own run-log and signing code. Events are inserted set-based (hashes computed
 * here, one INSERT per batch), which the chain trigger accepts: each row extends the chain by one.
 * Every event is checked against the run-event union first (as appendRunEvent would), and a run
 * is inserted in its final state (the lifecycle trigger checks changes of state, not inserts).
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import { checksOfPhase, type Check } from '../../app/plans/plan-schema';
import { expectationOf } from '../../app/checks/object-expectation';
import { RunEventBodySchema } from '../../app/runs/run-events';
import { genesisHash, hashRunEvent, runEventBody } from '../../app/runs/run-log.server';
import { signCheckpoint } from '../../app/runs/signing.server';

export const PLAN_ID = '008-add-active-org-tracking';

/** The e2e server's store (its embedded PostgreSQL, database `runsheet`) and its signing key. */
export function e2eStore(dataDir: string): { pool: pg.Pool; signingKeyPem: string } {
  const record = JSON.parse(fs.readFileSync(path.join(dataDir, 'postgres.json'), 'utf8')) as { port: number; password: string };
  const secrets = JSON.parse(fs.readFileSync(path.join(dataDir, 'secrets.json'), 'utf8')) as { signingKeyPem: string };
  const pool = new pg.Pool({ connectionString: `postgres://postgres:${encodeURIComponent(record.password)}@127.0.0.1:${record.port}/runsheet`, max: 4 });
  return { pool, signingKeyPem: secrets.signingKeyPem };
}

export interface FixtureEvent {
  /** ms after the run's creation: the event's `at`. */
  offsetMs: number;
  actor: string;
  role: string | null;
  type: string;
  payload: Record<string, unknown>;
}

/** `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the run log's clock format. */
const atText = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');

let planCache: ValidPlan | undefined;
async function plan008(): Promise<ValidPlan> {
  if (planCache) return planCache;
  const loaded = await loadPlan(path.resolve('plans'), PLAN_ID, { lint: false });
  if (!loaded?.ok) throw new Error(`plans/${PLAN_ID} is missing or invalid`);
  return (planCache = loaded);
}

/** Append events set-based: the hashes chained here, 500 rows per INSERT, in seq order. */
export async function insertEvents(client: pg.ClientBase, runId: string, createdAtMs: number, events: readonly FixtureEvent[]): Promise<void> {
  const last = await client.query<{ seq: number; hash: string }>('select seq, hash from run_events where run_id = $1 order by seq desc limit 1', [runId]);
  let seq = last.rows[0]?.seq ?? 0;
  let prevHash = last.rows[0]?.hash ?? genesisHash(runId);
  for (let start = 0; start < events.length; start += 500) {
    const values: string[] = [];
    const params: unknown[] = [];
    for (const event of events.slice(start, start + 500)) {
      const fits = RunEventBodySchema.safeParse({ type: event.type, payload: event.payload });
      if (!fits.success) throw new Error(`fixture event ${event.type} does not fit the run-event union: ${fits.error.message}`);
      seq += 1;
      const at = atText(createdAtMs + event.offsetMs);
      const hash = hashRunEvent(prevHash, runEventBody(runId, { seq, at, actor: event.actor, role: event.role, type: event.type, payload: event.payload }));
      const base = params.length;
      values.push(`($${base + 1}::uuid, $${base + 2}::int, $${base + 3}, $${base + 4}, $${base + 5}, $${base + 6}, $${base + 7}::jsonb, $${base + 8}, $${base + 9})`);
      params.push(runId, seq, at, event.actor, event.role, event.type, JSON.stringify(event.payload), prevHash, hash);
      prevHash = hash;
    }
    await client.query(`insert into run_events (run_id, seq, at, actor, role, type, payload, prev_hash, hash) values ${values.join(', ')}`, params);
  }
}

export interface FixtureRunOptions {
  kind?: 'execute' | 'rehearsal';
  target?: string;
  tpm: string;
  engineer: string;
  /** When the run was created (default: now minus an hour). */
  createdAtMs?: number;
}

interface RunFacts {
  state: string;
  executedBy?: string | null;
  signedOffBy?: string | null;
  signedOffAtMs?: number | null;
  startedAtMs?: number | null;
  finishedAtMs?: number | null;
  outcome?: unknown;
}

async function insertRun(client: pg.ClientBase, plan: ValidPlan, options: FixtureRunOptions, createdAtMs: number, facts: RunFacts): Promise<string> {
  const frozen = { manifest: plan.manifest, files: plan.files.map((file) => ({ path: file.path, sha256: file.sha256, content: file.content })) };
  const date = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms));
  const { rows } = await client.query<{ id: string }>(
    `insert into runs (plan_id, plan_checksum, target, kind, state, frozen_plan, created_by, created_at, executed_by, signed_off_by, signed_off_at, started_at, finished_at, outcome)
     values ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14::jsonb) returning id::text as id`,
    [
      plan.id,
      plan.checksum,
      options.target ?? 'sandbox',
      options.kind ?? 'execute',
      facts.state,
      JSON.stringify(frozen),
      options.tpm,
      new Date(createdAtMs),
      facts.executedBy ?? null,
      facts.signedOffBy ?? null,
      date(facts.signedOffAtMs),
      date(facts.startedAtMs),
      date(facts.finishedAtMs),
      facts.outcome === undefined ? null : JSON.stringify(facts.outcome),
    ],
  );
  return rows[0]!.id;
}

/** The 'run.created' payload of plan 008 on a target. */
const runCreated = (plan: ValidPlan, target: string, kind: string) => ({ planId: plan.id, checksum: plan.checksum, target, kind, files: plan.files.map((file) => ({ path: file.path, sha256: file.sha256 })) });

/** A plausible actual value for a check that passed. */
function passingActual(check: Check): unknown {
  const expect = expectationOf(check) as { type: string; rows?: unknown; value?: unknown; column?: string; sqlstate?: string; status?: number };
  switch (expect.type) {
    case 'no_rows':
      return [];
    case 'rows':
      return expect.rows;
    case 'exists':
      return [{ present: true }];
    case 'value':
      return { [expect.column ?? 'value']: expect.value };
    case 'sqlstate':
      return { sqlstate: expect.sqlstate };
    case 'http':
      return { status: expect.status };
    default:
      return null;
  }
}

function checkResults(checks: readonly Check[], actualOf: (check: Check) => unknown, failing: ReadonlySet<string> = new Set()) {
  return checks.map((check, index) => ({
    checkId: check.id,
    title: check.title,
    kind: check.kind,
    passed: !failing.has(check.id),
    skipped: false,
    expected: expectationOf(check),
    actual: failing.has(check.id) ? [{ unexpected: 'row' }] : actualOf(check),
    sql: 'sql' in check && check.sql ? check.sql : '',
    error: null,
    reason: null,
    durationMs: 4 + ((index * 7) % 23),
    ranAt: '',
  }));
}

const STATEMENTS = [
  { line: 24, command: 'SET', rowCount: null, durationMs: 0.4, notices: [] },
  { line: 26, command: 'ALTER TABLE', rowCount: null, durationMs: 3.1, notices: [] },
  { line: 30, command: 'DO', rowCount: null, durationMs: 1.2, notices: [] },
  { line: 43, command: 'COMMENT', rowCount: null, durationMs: 0.6, notices: [] },
  { line: 54, command: 'UPDATE', rowCount: 9_874, durationMs: 412.7, notices: [] },
  { line: 64, command: 'ALTER TABLE', rowCount: null, durationMs: 38.2, notices: [] },
  { line: 75, command: 'CREATE INDEX', rowCount: null, durationMs: 21.9, notices: [{ severity: 'NOTICE', message: 'relation "idx_users_active_org" already exists, skipping' }] },
  { line: 82, command: 'CREATE FUNCTION', rowCount: null, durationMs: 1.8, notices: [] },
  { line: 118, command: 'CREATE FUNCTION', rowCount: null, durationMs: 1.5, notices: [] },
];

export type FixtureOutcome = 'applied' | 'failed' | 'rehearsed' | 'ready';

/**
 * A run of plan 008 written as the engine would have written it, ending `outcome`, with signed
 * checkpoints (after the pre-checks and at the end). Returns the run id.
 */
export async function createFixtureRun(pool: pg.Pool, signingKeyPem: string, options: FixtureRunOptions & { outcome: FixtureOutcome }): Promise<string> {
  const plan = await plan008();
  const createdAtMs = options.createdAtMs ?? Date.now() - 3_600_000;
  const rehearsal = options.outcome === 'rehearsed';
  const kind = rehearsal ? 'rehearsal' : options.kind ?? 'execute';
  const { tpm, engineer } = options;
  const events: FixtureEvent[] = [];
  let t = 0;
  const push = (step: number, actor: string, role: string | null, type: string, payload: Record<string, unknown>) => {
    t += step;
    events.push({ offsetMs: t, actor, role, type, payload });
  };

  push(0, rehearsal ? engineer : tpm, rehearsal ? 'engineer' : 'tpm', 'run.created', runCreated(plan, options.target ?? 'sandbox', kind));
  if (!rehearsal) {
    for (const item of plan.plan.prerequisites) push(20_000, tpm, 'tpm', 'prerequisite.ticked', { itemId: item.id, text: item.text, required: item.required });
  }
  const pre = checkResults(checksOfPhase(plan.plan, 'pre'), passingActual);
  push(30_000, tpm, 'tpm', 'checks.ran', { phase: 'pre', planChecksum: plan.checksum, passed: true, failed: [], skipped: [], results: pre });
  push(500, 'system', null, 'state.changed', { from: 'draft', to: 'ready', reason: 'every gate judged before execute is closed' });
  if (!rehearsal) push(60_000, tpm, 'tpm', 'signoff', { checksum: plan.checksum });
  if (options.outcome === 'ready') {
    return finish({ state: 'ready', signedOffBy: tpm, signedOffAtMs: createdAtMs + t });
  }

  const startedOffset = t + 90_000;
  push(90_000, engineer, 'engineer', 'state.changed', { from: 'ready', to: rehearsal ? 'rehearsing' : 'applying', reason: rehearsal ? 'rehearse' : 'execute' });
  const phase = (name: string, plannedMs: number, actualMs: number, body: () => void, completes = true) => {
    push(100, 'system', null, 'phase.started', { phase: name, plannedMs });
    const before = t;
    body();
    t = Math.max(t, before + actualMs);
    if (completes) events.push({ offsetMs: t, actor: 'system', role: null, type: 'phase.completed', payload: { phase: name, ok: true, plannedMs, actualMs } });
  };
  const snapshotChecks = checksOfPhase(plan.plan, 'snapshot');
  phase('snapshot', 30_000, 1_840, () => {
    push(1_700, 'system', null, 'checks.ran', {
      phase: 'snapshot',
      planChecksum: plan.checksum,
      passed: true,
      failed: [],
      skipped: [],
      results: checkResults(snapshotChecks, () => [{ users: 10_002, users_with_membership: 9_874, memberships: 12_661, users_with_active_org: 0 }]),
    });
  });
  let failedAt: (typeof STATEMENTS)[number] | undefined;
  phase(
    rehearsal ? 'rehearsal' : 'apply',
    120_000,
    options.outcome === 'failed' ? 5_240 : 186_300,
    () => {
      for (const [index, statement] of STATEMENTS.entries()) {
        if (options.outcome === 'failed' && index === 5) {
          failedAt = statement;
          break;
        }
        push(Math.max(1, Math.round(statement.durationMs)), 'system', null, 'statement.completed', {
          stepId: 'apply-008',
          index,
          endLine: statement.line + 2,
          startedAt: '',
          ...statement,
        });
      }
    },
    options.outcome !== 'failed'
  );
  if (options.outcome === 'failed') {
    const failure = {
      stepId: 'apply-008',
      statementIndex: 5,
      line: failedAt!.line,
      sqlstate: '55P03',
      message: 'canceling statement due to lock timeout',
      blockers: [{ pid: 48211, user: 'app', application: 'api', state: 'idle in transaction', lockMode: 'AccessShareLock', relation: 'platform.organizations' }],
      cancelled: false,
    };
    push(10, engineer, 'engineer', 'note.added', {
      text: 'Lock timeout on platform.organizations: an idle-in-transaction API session held it. Retry after the API deploy finishes.',
    });
    push(5, 'system', null, 'state.changed', {
      from: 'applying',
      to: 'failed',
      reason: `statement 6 (line ${failedAt!.line}) failed: SQLSTATE 55P03 canceling statement due to lock timeout; the transaction was rolled back`,
    });
    return finish({
      state: 'failed',
      executedBy: engineer,
      signedOffBy: tpm,
      signedOffAtMs: createdAtMs + startedOffset - 90_000,
      startedAtMs: createdAtMs + startedOffset,
      finishedAtMs: createdAtMs + t,
      outcome: {
        result: 'failed',
        failure,
        retryable: true,
        phases: [
          { phase: 'snapshot', plannedMs: 30_000, actualMs: 1_840 },
          { phase: 'apply', plannedMs: 120_000, actualMs: 5_240 },
        ],
      },
    });
  }
  phase('verification', 30_000, 2_410, () => {
    push(2_300, 'system', null, 'checks.ran', { phase: 'verify', planChecksum: plan.checksum, passed: true, failed: [], skipped: [], results: checkResults(checksOfPhase(plan.plan, 'verify'), passingActual) });
  });
  push(200, 'system', null, 'checks.ran', {
    phase: 'snapshot',
    planChecksum: plan.checksum,
    passed: true,
    failed: [],
    skipped: [],
    results: checkResults(snapshotChecks, () => [{ users: 10_002, users_with_membership: 9_874, memberships: 12_661, users_with_active_org: rehearsal ? 0 : 9_874 }]),
  });
  phase('post_execution', 120_000, 149_600, () => {
    push(3_000, 'system', null, 'checks.ran', { phase: 'post', planChecksum: plan.checksum, passed: true, failed: [], skipped: [], results: checkResults(checksOfPhase(plan.plan, 'post'), passingActual) });
  });
  if (!rehearsal) push(30_000, engineer, 'engineer', 'note.added', { text: 'Backup: snapshot rds-prod-2025-11-25-1400 taken before sign-off. #eng-migrations notified.' });
  push(50, 'system', null, 'state.changed', {
    from: rehearsal ? 'rehearsing' : 'applying',
    to: options.outcome,
    reason: rehearsal ? 'rehearsal rolled back as planned' : 'applied and verified',
  });
  return finish({
    state: options.outcome,
    executedBy: engineer,
    signedOffBy: rehearsal ? null : tpm,
    signedOffAtMs: rehearsal ? null : createdAtMs + startedOffset - 90_000,
    startedAtMs: createdAtMs + startedOffset,
    finishedAtMs: createdAtMs + t,
    outcome: { result: options.outcome, verified: true, ledger: { written: rehearsal ? null : 'applied' } },
  });

  async function finish(facts: RunFacts): Promise<string> {
    const client = await pool.connect();
    let runId: string;
    try {
      await client.query('begin');
      runId = await insertRun(client, plan, { ...options, kind }, createdAtMs, facts);
      const signedAfter = events.findIndex((event) => event.type === 'state.changed');
      await insertEvents(client, runId, createdAtMs, events.slice(0, signedAfter + 1));
      await client.query('commit');
    } catch (error) {
      await client.query('rollback');
      throw error;
    } finally {
      client.release();
    }
    // Checkpoints as the engine signs them: once the run is ready, and at the end.
    await signCheckpoint(pool, runId, signingKeyPem);
    const rest = events.slice(events.findIndex((event) => event.type === 'state.changed') + 1);
    if (rest.length > 0) {
      const second = await pool.connect();
      try {
        await second.query('begin');
        await insertEvents(second, runId, createdAtMs, rest);
        await second.query('commit');
      } finally {
        second.release();
      }
      await signCheckpoint(pool, runId, signingKeyPem);
    }
    return runId;
  }
}

/** A finished run whose log holds `count` events (a long backfill's progress), signed at the end. */
export async function createLongRun(pool: pg.Pool, signingKeyPem: string, options: { count: number; tpm: string; engineer: string }): Promise<string> {
  const plan = await plan008();
  const createdAtMs = Date.now() - 7_200_000;
  const events: FixtureEvent[] = [
    { offsetMs: 0, actor: options.engineer, role: 'engineer', type: 'run.created', payload: runCreated(plan, 'sandbox', 'execute') },
    { offsetMs: 1_000, actor: 'system', role: null, type: 'phase.started', payload: { phase: 'apply', plannedMs: 600_000 } },
  ];
  for (let index = events.length; index < options.count - 1; index++) {
    const done = (index - 1) * 1_000;
    events.push({
      offsetMs: 1_000 + index * 50,
      actor: 'system',
      role: null,
      type: 'progress',
      payload: { stepId: 'backfill', done, total: options.count * 1_000, rate: 20_000, etaMs: (options.count - index) * 50, updated: done, batches: index - 1, lastKey: String(done) },
    });
  }
  events.push({
    offsetMs: 1_000 + options.count * 50,
    actor: 'system',
    role: null,
    type: 'phase.completed',
    payload: { phase: 'apply', ok: true, plannedMs: 600_000, actualMs: options.count * 50 },
  });
  const client = await pool.connect();
  let runId: string;
  try {
    await client.query('begin');
    runId = await insertRun(client, plan, { tpm: options.engineer, engineer: options.engineer }, createdAtMs, {
      state: 'applied',
      executedBy: options.engineer,
      signedOffBy: options.tpm,
      signedOffAtMs: createdAtMs + 500,
      startedAtMs: createdAtMs + 1_000,
      finishedAtMs: createdAtMs + 1_000 + options.count * 50,
      outcome: { result: 'applied' },
    });
    await insertEvents(client, runId, createdAtMs, events);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
  await signCheckpoint(pool, runId, signingKeyPem);
  return runId;
}

/** A draft run with only its 'run.created' event and no checkpoint: nothing signed to download. */
export async function createUnsignedRun(pool: pg.Pool, options: { tpm: string; target?: string }): Promise<string> {
  const plan = await plan008();
  const createdAtMs = Date.now() - 60_000;
  const client = await pool.connect();
  try {
    await client.query('begin');
    const runId = await insertRun(client, plan, { tpm: options.tpm, engineer: options.tpm, target: options.target }, createdAtMs, { state: 'draft' });
    await insertEvents(client, runId, createdAtMs, [{ offsetMs: 0, actor: options.tpm, role: 'tpm', type: 'run.created', payload: runCreated(plan, options.target ?? 'sandbox', 'execute') }]);
    await client.query('commit');
    return runId;
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}
