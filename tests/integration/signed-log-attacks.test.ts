/**
 * Issue "A run log that no one can quietly cut or rewrite", reproductions 1 and 2, played as the
 * store's superuser with the triggers switched off (session_replication_role = replica): a log cut
 * back to an earlier checkpoint (events and checkpoints deleted together) is caught by the heads the
 * target anchored, in `runsheet log verify --run` and the report's badge, naming the missing
 * checkpoint; a tick rewritten (hashes recomputed) is caught by the checkpoint signed right after
 * the tick, and the run is refused execute. Every event says how it came (`via`), and each signed
 * checkpoint is also POSTed to RUNSHEET_ANCHOR_URL.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignedInUser } from '../../app/auth/require.server';
import { executeRun } from '../../app/engine/engine.server';
import { openWorkingRun, tickPrerequisite } from '../../app/engine/runs.server';
import { loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import { readStoredRunEvents, hashRunEvent, runEventBody, genesisHash } from '../../app/runs/run-log.server';
import { readRunAnchors } from '../../app/targets/ledger.server';
import { performChecklistIntent } from '../../app/web/plan-page.server';
import { readRunReport } from '../../app/web/report-page.server';
import { ENGINE_PLANS, ENGINEER, REAL_PLANS, ROOT, startEngineHarness, TPM, waitFor, type EngineHarness } from './engine-harness';

const run = promisify(execFile);
let harness: EngineHarness;

let plansDir: string;

beforeAll(async () => {
  // The engine fixtures, and plan 008 for its prerequisites (a tick to rewrite).
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-attacks-'));
  fs.cpSync(ENGINE_PLANS, plansDir, { recursive: true });
  fs.cpSync(path.join(REAL_PLANS, PLAN_008), path.join(plansDir, PLAN_008), { recursive: true });
  harness = await startEngineHarness({ plansDir, targets: [{ name: 'cut' }, { name: 'ticked' }, { name: 'webhook' }, { name: 'via' }] });
});

afterAll(async () => {
  await harness?.close();
  fs.rmSync(plansDir, { recursive: true, force: true });
});

const PLAN_008 = '008-add-active-org-tracking';

/** As the store's superuser, triggers off: what reproduction 1 and 2 did. */
async function asSuperuserWithoutTriggers(work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
  const client = await harness.store.pool.connect();
  try {
    await client.query('begin');
    await client.query('set local session_replication_role = replica');
    await work(client);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

async function verifyFromCli(runId: string, target: string): Promise<{ code: number; stdout: string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    DATABASE_URL: harness.storeDb.url,
    RUNSHEET_ALLOW_SUPERUSER: '1',
    SESSION_SECRET: randomBytes(32).toString('hex'),
    SIGNING_KEY: harness.signingKeyPem,
    [`TARGET_${target.toUpperCase()}_URL`]: harness.targets.get(target)!.db.url,
  };
  try {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), 'log', 'verify', '--run', runId], { env, cwd: ROOT });
    return { code: 0, stdout };
  } catch (error) {
    const failure = error as { code: number; stdout: string };
    return { code: failure.code, stdout: failure.stdout };
  }
}

describe('a signed log cut back to an earlier checkpoint (reproduction 1)', () => {
  it('is caught by the heads its target anchored: log verify --run fails and the report badge says broken, naming the missing checkpoint', async () => {
    const { run: created } = await openWorkingRun(harness.deps, { planId: 'create-table', target: 'cut', kind: 'execute', actor: ENGINEER });
    const applied = await executeRun(harness.deps, { runId: created.id, actor: ENGINEER });
    expect(applied.state).toBe('applied');
    const anchors = await readRunAnchors(harness.targets.get('cut')!.pool, created.id);
    // The apply's ledger row carries a head, and the drive's end wrote its final one.
    expect(anchors.map((anchor) => anchor.source).sort()).toEqual(['end', 'ledger']);
    const before = await verifyFromCli(created.id, 'cut');
    expect(before.code, before.stdout).toBe(0);
    expect(before.stdout).toMatch(/anchors: 2 on target cut/);

    // Cut back to the checkpoint signed when the drive started: its events and checkpoints after it deleted.
    const { rows } = await harness.store.pool.query<{ seq: number }>(`select seq from run_checkpoints where run_id = $1 and kind = 'full' order by seq limit 1`, [created.id]);
    const keep = rows[0]!.seq;
    const final = anchors.find((anchor) => anchor.source === 'end')!;
    await asSuperuserWithoutTriggers(async (client) => {
      await client.query('delete from run_checkpoints where run_id = $1 and seq > $2', [created.id, keep]);
      await client.query('delete from run_events where run_id = $1 and seq > $2', [created.id, keep]);
    });

    const after = await verifyFromCli(created.id, 'cut');
    expect(after.code).toBe(1);
    expect(after.stdout).toContain(`FAILED: the stored log of run ${created.id} does not hold what its target anchored`);
    const named = /the signed checkpoint through event (\d+) \(head [0-9a-f]{16}…\), anchored on target cut at .*, is missing from the store: the log was cut back/.exec(after.stdout);
    expect(named, after.stdout).not.toBeNull();
    expect(anchors.map((anchor) => anchor.seq)).toContain(Number(named![1]));
    expect(Number(named![1])).toBeGreaterThan(keep);
    expect(final.seq).toBeGreaterThan(keep);

    const report = (await readRunReport(harness.deps, { runId: created.id }))!;
    expect(report.signature.status).toBe('broken');
    expect(report.signature.reason).toMatch(new RegExp(`checkpoint through event \\d+ .* is missing from the store`));
  });
});

describe('a rewritten tick (reproduction 2)', () => {
  it('is caught by the checkpoint signed right after it, and the run is refused execute instead of signing the forgery', async () => {
    const { run: created } = await openWorkingRun(harness.deps, { planId: PLAN_008, target: 'ticked', kind: 'execute', actor: TPM });
    const plan = (await loadPlan(plansDir, PLAN_008)) as ValidPlan;
    await tickPrerequisite(harness.deps, { runId: created.id, itemId: plan.plan.prerequisites[0]!.id, ticked: true, actor: TPM });

    const events = await readStoredRunEvents(harness.store.pool, created.id);
    const target = events.findLast((event) => event.type === 'prerequisite.ticked')!;
    // The forger rewrites who did it and redoes every hash from there, as the issue did.
    await asSuperuserWithoutTriggers(async (client) => {
      let prev = target.seq === 1 ? genesisHash(created.id) : events[target.seq - 2]!.hash;
      for (const event of events.filter((candidate) => candidate.seq >= target.seq)) {
        const actor = event.seq === target.seq ? 'ghost@example.com' : event.actor;
        const hash = hashRunEvent(prev, runEventBody(created.id, { ...event, actor }));
        await client.query('update run_events set actor = $3, prev_hash = $4, hash = $5 where run_id = $1 and seq = $2', [created.id, event.seq, actor, prev, hash]);
        prev = hash;
      }
    });

    const verify = await verifyFromCli(created.id, 'ticked');
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(new RegExp(`event ${target.seq} \\(${target.type.replace('.', '\\.')}\\) differs from what was signed .*actor`));
    const refused = await executeRun(harness.deps, { runId: created.id, actor: ENGINEER }).catch((error: Error) => error);
    expect(refused).toMatchObject({ kind: 'integrity' });
    expect((refused as Error).message).toMatch(/the run's log does not match what was signed/);
  });
});

describe('how each event came, and the anchor webhook', () => {
  it('records via web (and how the person signed in) on what the dashboard does', async () => {
    const user: SignedInUser = { accountId: '00000000-0000-4000-8000-0000000000e1', email: ENGINEER.email, name: 'Engineer', role: 'engineer', via: 'proxy' };
    const plan = (await loadPlan(plansDir, 'create-table')) as ValidPlan;
    const outcome = await performChecklistIntent(harness.deps, { plan, target: harness.deps.targets.get('via'), user, intent: { intent: 'run-checks', phase: 'pre' } });
    expect(outcome.kind).toBe('done');
    const { run: opened } = await openWorkingRun(harness.deps, { planId: 'create-table', target: 'via', kind: 'execute', actor: ENGINEER });
    await performChecklistIntent(harness.deps, { plan, target: harness.deps.targets.get('via'), user, intent: { intent: 'add-note', text: 'checked the replica lag' } });
    const note = (await readStoredRunEvents(harness.store.pool, opened.id)).find((event) => event.type === 'note.added')!;
    expect(note.payload.via).toEqual({ channel: 'web', auth: 'proxy' });
  });

  it('POSTs every signed checkpoint to RUNSHEET_ANCHOR_URL, retrying a receiver that failed, never holding the run up', async () => {
    const received: { runId: string; seq: number; kind: string; head: string; envelope: { payload: string } }[] = [];
    let failFirst = true;
    const receiver = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        if (failFirst) {
          failFirst = false;
          response.writeHead(500).end();
          return;
        }
        received.push(JSON.parse(body));
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as { port: number }).port;
    try {
      const deps = { ...harness.deps, anchorWebhookUrl: `http://127.0.0.1:${port}/anchors` };
      const { run: opened } = await openWorkingRun(deps, { planId: 'create-table', target: 'webhook', kind: 'execute', actor: ENGINEER });
      const applied = await executeRun(deps, { runId: opened.id, actor: ENGINEER });
      expect(applied.state).toBe('applied');
      const stored = (await harness.store.pool.query<{ seq: number; head: string; kind: string }>('select seq, head, kind from run_checkpoints where run_id = $1 order by seq', [opened.id])).rows;
      await waitFor('every checkpoint delivered', async () => received.filter((post) => post.runId === opened.id).length === stored.length, 30_000, 100);
      const delivered = received.filter((post) => post.runId === opened.id).sort((a, b) => a.seq - b.seq);
      expect(delivered.map(({ seq, head, kind }) => ({ seq, head, kind }))).toEqual(stored);
      expect(delivered.every((post) => typeof post.envelope.payload === 'string')).toBe(true);
    } finally {
      receiver.close();
    }
  });
});
