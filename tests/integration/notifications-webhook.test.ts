/**
 * Issue "After the run", notifications (docs/decisions/033), against real HTTP receivers
 * (node:http) and a real store: plan 008 with a watch of a 1 s period on a four-eyes target goes
 * through every kind a run announces (ready for sign-off, signed off, executing, applied, a watch
 * regression, the watch ended, rolled back), a failing plan and a cancelled run on another target
 * add a failed phase and a cancel. Each kind arrives, in seq order per run, signed, with a delivery
 * id that a redelivery repeats; a receiver answering 500 always gets retries at growing delays
 * while the run goes on; the Slack-format body carries the plan's team message filled.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelRun, executeRun, rollbackRun } from '../../app/engine/engine.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { deliverOne, startNotificationWorker, type NotificationDeps, type RunNotificationBody } from '../../app/engine/notifications.server';
import { openWorkingRun, runRunChecks, signOff, tickPrerequisite } from '../../app/engine/runs.server';
import { advanceWatch, claimWatches, endWatch } from '../../app/engine/watch.server';
import { buildNotificationChannels } from '../../app/notifications/channels.server';
import { enqueueTestDelivery, readDeliveries } from '../../app/notifications/outbox.server';
import { openStore } from '../../app/runtime/store.server';
import { verifyWebhookSignature } from '../../app/notifications/webhook-signature';
import { eventsOf } from '../../app/runs/run-events';
import { readRunEvents, type LoggedRunEvent } from '../../app/runs/run-log.server';
import { RunsheetConfigSchema } from '../../app/runtime/target-config';
import { readEnv } from '../../app/runtime/env.server';
import { loadNotificationsPage, performNotificationsIntent } from '../../app/web/notifications-page.server';
import type { SignedInUser } from '../../app/auth/require.server';
import { ENGINE_PLANS, ENGINEER, REAL_PLANS, startEngineHarness, TPM, waitFor, type EngineHarness } from './engine-harness';

const PLAN = '008-add-active-org-tracking';
const OPS_SECRET = 'ops-secret-for-the-test';
const DOWN_SECRET = 'down-secret-for-the-test';
const RETRY = { baseMs: 250, capMs: 4_000, giveUpAfterMs: 3_600_000 };
const ORIGIN = 'http://runsheet.test';

interface Arrival {
  path: string;
  delivery: string;
  signature: string | undefined;
  body: string;
  /** The receiver's clock when the request arrived. */
  at: number;
  answered: number;
}

let harness: EngineHarness;
let plansDir: string;
let receiver: http.Server;
let stopWorker: () => Promise<void>;
let deps: NotificationDeps;
const arrivals: Arrival[] = [];
/** Delivery ids the ops receiver answers 500 the first time it sees them. */
const failOnceOps = new Set<string>();
let failApplyOnce = true;

beforeAll(async () => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-notify-plans-'));
  fs.cpSync(path.join(REAL_PLANS, PLAN), path.join(plansDir, PLAN), { recursive: true });
  for (const fixture of ['partial-failure', 'slow-apply']) fs.cpSync(path.join(ENGINE_PLANS, fixture), path.join(plansDir, fixture), { recursive: true });
  const file = path.join(plansDir, PLAN, 'plan.yaml');
  const document = parseDocument(fs.readFileSync(file, 'utf8'));
  document.set('watch', { for: '1h', every: '1s', checks: ['column-added', 'active-org-is-a-membership'] });
  fs.writeFileSync(file, document.toString());

  receiver = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      const delivery = String(request.headers['x-runsheet-delivery'] ?? '');
      let answered = 200;
      if (request.url === '/down') answered = 500;
      else if (request.url === '/ops' && failApplyOnce && (JSON.parse(body) as RunNotificationBody).kind === 'applied') {
        failApplyOnce = false;
        failOnceOps.add(delivery);
        answered = 500;
      }
      arrivals.push({ path: request.url ?? '', delivery, signature: request.headers['x-runsheet-signature'] as string | undefined, body, at: Date.now(), answered });
      response.writeHead(answered, { 'Content-Type': 'text/plain' }).end(answered === 200 ? 'ok' : 'boom');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  const rules = {
    staging: { label: 'Staging', require_signoff: true, notify: ['ops', 'team', 'down'] },
    other: { label: 'Other', notify: ['ops'] },
  };
  harness = await startEngineHarness({
    plansDir,
    targets: [
      { name: 'staging', sandboxUsers: 200, rules: rules.staging },
      { name: 'other', rules: rules.other },
    ],
  });
  const config = RunsheetConfigSchema.parse({ targets: rules, channels: { ops: { format: 'json' }, team: { format: 'slack' }, down: { format: 'json' } } });
  const channels = buildNotificationChannels(
    config,
    new Map([
      ['ops', { url: `${base}/ops`, secret: OPS_SECRET }],
      ['team', { url: `${base}/team` }],
      ['down', { url: `${base}/down`, secret: DOWN_SECRET }],
    ]),
  );
  expect(channels.warnings).toEqual([]);
  deps = { store: harness.store, targets: harness.deps.targets, channels, origin: ORIGIN };
  stopWorker = startNotificationWorker(deps, () => {}, { ...RETRY, pollMs: 200, timeoutMs: 5_000 });
});

afterAll(async () => {
  await stopWorker?.();
  await harness?.close();
  await new Promise((resolve) => receiver?.close(resolve));
  fs.rmSync(plansDir, { recursive: true, force: true });
});

async function preparedRun(planId: string, target: string): Promise<string> {
  const { run } = await openWorkingRun(harness.deps, { planId, target, kind: 'execute', actor: TPM, newAttempt: true });
  const { plan } = thawPlan(run.frozenPlan);
  for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
  }
  if (plan.prechecks.length > 0) await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  return run.id;
}

const RUNNER = 'notify-test-runner:1';
async function advanceUntilRound(runId: string): Promise<void> {
  await waitFor('a watch round', async () => {
    await claimWatches(harness.deps, { runner: RUNNER, runId });
    return (await advanceWatch(harness.deps, runId, { runner: RUNNER })) === 'round';
  });
}

/** The JSON bodies the ops receiver accepted for a run, in arrival order. */
const acceptedOps = (runId: string) =>
  arrivals.filter((arrival) => arrival.path === '/ops' && arrival.answered === 200).map((arrival) => ({ arrival, body: JSON.parse(arrival.body) as RunNotificationBody })).filter(({ body }) => body.run_id === runId);

describe('notifications to real receivers', () => {
  let mainRun: string;
  let failedRun: string;
  let cancelledRun: string;

  it('runs plan 008 through every kind on a four-eyes target, a failing plan and a cancelled run on another', async () => {
    mainRun = await preparedRun(PLAN, 'staging');
    // Pre-checks run again before the sign-off: ready for sign-off is still said once.
    await runRunChecks(harness.deps, { runId: mainRun, phase: 'pre', actor: TPM });
    let events = await readRunEvents(harness.store.pool, mainRun);
    expect(eventsOf(events, 'signoff.ready')).toHaveLength(1);
    expect(eventsOf(events, 'signoff.ready')[0]!.seq).toBeLessThan(eventsOf(events, 'checks.ran').at(-1)!.seq);
    await signOff(harness.deps, { runId: mainRun, actor: TPM });
    const applied = await executeRun(harness.deps, { runId: mainRun, actor: ENGINEER });
    expect(applied.state).toBe('watching');
    await advanceUntilRound(mainRun);
    // A user's active organization now points at one they are not a member of: a regression.
    await harness.targets.get('staging')!.pool.query(`
      update platform.users as u
         set active_org_id = (select o.id from platform.organizations as o
                               where not exists (select 1 from platform.organization_members as m where m.user_id = u.id and m.organization_id = o.id)
                               order by o.id limit 1)
       where u.id = (select id from platform.users where active_org_id is not null order by id limit 1)`);
    await advanceUntilRound(mainRun);
    await endWatch(harness.deps, { runId: mainRun, actor: TPM, note: 'the regression is a test; rolling back' });
    const rolledBack = await rollbackRun(harness.deps, { runId: mainRun, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
    events = await readRunEvents(harness.store.pool, mainRun);
    expect(eventsOf(events, 'watch.alarm')).toHaveLength(1);

    failedRun = await preparedRun('partial-failure', 'other');
    expect((await executeRun(harness.deps, { runId: failedRun, actor: ENGINEER })).state).toBe('failed');

    cancelledRun = await preparedRun('slow-apply', 'other');
    let stepStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => (stepStarted = resolve));
    const execution = executeRun(harness.deps, { runId: cancelledRun, actor: ENGINEER, onEvent: (event: LoggedRunEvent) => event.type === 'step.started' && stepStarted() });
    await started;
    await cancelRun(harness.deps, { runId: cancelledRun, actor: ENGINEER });
    expect((await execution).state).toBe('cancelled');
  });

  it('delivers every kind of each run, in seq order per run, signed, with a delivery id', async () => {
    const expected: [string, string[]][] = [
      [mainRun, ['signoff.ready', 'signoff.given', 'execute.started', 'applied', 'watch.regression', 'watch.ended', 'rolled_back']],
      [failedRun, ['execute.started', 'phase.failed']],
      [cancelledRun, ['execute.started', 'cancelled']],
    ];
    for (const [runId, kinds] of expected) {
      await waitFor(`every notification of run ${runId}`, async () => acceptedOps(runId).length >= kinds.length);
      const accepted = acceptedOps(runId);
      expect(accepted.map(({ body }) => body.kind)).toEqual(kinds);
      const seqs = accepted.map(({ body }) => body.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
      const log = await readRunEvents(harness.store.pool, runId);
      for (const { arrival, body } of accepted) {
        expect(verifyWebhookSignature(arrival.body, arrival.signature, OPS_SECRET)).toMatchObject({ ok: true });
        expect(verifyWebhookSignature(arrival.body, arrival.signature, 'not-the-secret')).toMatchObject({ ok: false });
        expect(arrival.delivery).toMatch(/^[0-9a-f-]{36}$/);
        expect(body.delivery_id).toBe(arrival.delivery);
        // The body names the run event it announces.
        expect(log.find((event) => event.seq === body.seq)!.at).toBe(body.at);
        expect(body).toMatchObject({ run_id: runId, url: `${ORIGIN}/runs/${runId}` });
      }
    }
    const main = acceptedOps(mainRun).map(({ body }) => body);
    expect(main.find((body) => body.kind === 'signoff.ready')).toMatchObject({ plan: PLAN, target: 'staging', target_label: 'Staging', state: 'draft' });
    expect(main.find((body) => body.kind === 'execute.started')).toMatchObject({ actor: ENGINEER.email, state: 'applying' });
    expect(main.find((body) => body.kind === 'watch.regression')).toMatchObject({ state: 'watch_alarm', detail: { check: 'active-org-is-a-membership' } });
    expect(main.find((body) => body.kind === 'watch.ended')).toMatchObject({ detail: { reason: 'ended_early', clean: false } });
    expect(acceptedOps(failedRun).map(({ body }) => body).find((body) => body.kind === 'phase.failed')).toMatchObject({ detail: { phase: 'apply' } });
  });

  it('redelivers a notification its receiver answered 500 with the same delivery id and body', async () => {
    expect(failOnceOps.size).toBe(1);
    const [id] = [...failOnceOps];
    const attempts = arrivals.filter((arrival) => arrival.path === '/ops' && arrival.delivery === id);
    expect(attempts.map((attempt) => attempt.answered)).toEqual([500, 200]);
    expect(attempts[1]!.body).toBe(attempts[0]!.body);
    const row = (await readDeliveries(harness.store.pool, { channel: 'ops', runId: mainRun, limit: 50 })).find((candidate) => candidate.id === id)!;
    expect(row).toMatchObject({ kind: 'applied', status: 'delivered', attempts: 2, responseCode: 200 });
  });

  it('posts the plan’s team messages, filled, in the Slack format, and one line where the plan has none', async () => {
    await waitFor('the Slack notifications of the main run', async () => arrivals.filter((arrival) => arrival.path === '/team').length >= 7);
    const texts = arrivals.filter((arrival) => arrival.path === '/team').map((arrival) => {
      expect(arrival.signature).toBeUndefined();
      return (JSON.parse(arrival.body) as { text: string }).text;
    });
    const checksum = (await readRunEvents(harness.store.pool, mainRun)).find((event) => event.type === 'run.created')!;
    const planChecksum = checksum.type === 'run.created' ? checksum.payload.checksum : '';
    expect(texts[0]).toContain('Migration 008 is ready for deployment to Staging.');
    expect(texts[0]).toContain(`Plan checksum: ${planChecksum}`);
    expect(texts.find((text) => text.startsWith('Migration 008 deployed successfully'))).toMatch(
      /^Migration 008 deployed successfully to Staging by engineer@example\.com at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\./,
    );
    expect(texts.find((text) => text.startsWith('Migration 008 was rolled back'))).toMatch(/^Migration 008 was rolled back on Staging by engineer@example\.com at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\./);
    expect(texts).toContain(`Plan ${PLAN} on Staging is being executed by engineer@example.com. ${ORIGIN}/runs/${mainRun}`);
    expect(texts.some((text) => text.includes('has a watch regression: check active-org-is-a-membership'))).toBe(true);
    expect(texts.join('\n')).not.toContain('to be filled');
  });
  it('shows engineers each channel (its host, never its secret or path) and its deliveries, and sends an audited test', async () => {
    const runtime = { store: harness.store, notificationChannels: deps.channels, env: readEnv({} as NodeJS.ProcessEnv) };
    const engineer: SignedInUser = { accountId: 'engineer', email: ENGINEER.email, name: 'Engineer', role: 'engineer', via: 'session' };
    const form = new FormData();
    form.set('intent', 'send-test');
    form.set('channel', 'ops');
    const sent = await performNotificationsIntent(runtime, { user: engineer, ip: '127.0.0.1', form });
    expect(sent).toMatchObject({ ok: true });
    const testArrival = await waitFor('the test notification', async () =>
      arrivals.find((arrival) => arrival.path === '/ops' && (JSON.parse(arrival.body) as { kind: string }).kind === 'test'),
    );
    expect(verifyWebhookSignature(testArrival.body, testArrival.signature, OPS_SECRET)).toMatchObject({ ok: true });
    expect(JSON.parse(testArrival.body)).toMatchObject({ kind: 'test', channel: 'ops', actor: ENGINEER.email, delivery_id: testArrival.delivery });
    const { rows: audit } = await harness.store.pool.query("select actor, action, subject, outcome, detail from audit_log where action = 'notification.test'");
    expect(audit).toEqual([{ actor: ENGINEER.email, action: 'notification.test', subject: 'ops', outcome: 'ok', detail: { deliveryId: testArrival.delivery } }]);

    const unknown = new FormData();
    unknown.set('intent', 'send-test');
    unknown.set('channel', 'nowhere');
    expect(await performNotificationsIntent(runtime, { user: engineer, ip: '127.0.0.1', form: unknown })).toMatchObject({ ok: false, status: 404, error: expect.stringContaining('declares no channel "nowhere"') });

    await waitFor('the test delivery recorded', async () => (await readDeliveries(harness.store.pool, { channel: 'ops' })).some((row) => row.kind === 'test' && row.status === 'delivered'));
    const page = await loadNotificationsPage(runtime);
    const ops = page.channels.find((channel) => channel.name === 'ops')!;
    expect(ops).toMatchObject({ format: 'json', host: expect.stringMatching(/^127\.0\.0\.1:\d+$/), signed: true, targets: ['staging', 'other'], problem: null });
    expect(ops.deliveries[0]).toMatchObject({ kind: 'test', status: 'delivered', responseCode: 200, attempts: 1 });
    expect(ops.deliveries.find((row) => row.kind === 'applied')).toMatchObject({ status: 'delivered', attempts: 2, planId: PLAN, target: 'staging' });
    expect(JSON.stringify(page)).not.toContain(OPS_SECRET);
    expect(JSON.stringify(page)).not.toContain('/ops');
  });

  it('keeps retrying a receiver that always answers 500, at growing delays, holding that run’s later notifications behind it, while the run ended as if nothing happened', async () => {
    await waitFor('four attempts at the failing receiver', async () => arrivals.filter((arrival) => arrival.path === '/down').length >= 4);
    const down = arrivals.filter((arrival) => arrival.path === '/down');
    // Only the run's first notification is tried: the later ones wait behind it, in seq order.
    expect(new Set(down.map((arrival) => arrival.delivery)).size).toBe(1);
    expect((JSON.parse(down[0]!.body) as RunNotificationBody).kind).toBe('signoff.ready');
    expect(verifyWebhookSignature(down[0]!.body, down[0]!.signature, DOWN_SECRET)).toMatchObject({ ok: true });
    // Each retry waits at least the back-off's delay, which doubles: base, 2 × base, 4 × base.
    for (let index = 1; index < 4; index++) expect(down[index]!.at - down[index - 1]!.at).toBeGreaterThanOrEqual(RETRY.baseMs * 2 ** (index - 1) * 0.95);
    const rows = await readDeliveries(harness.store.pool, { channel: 'down', runId: mainRun, limit: 50 });
    const head = rows.find((row) => row.id === down[0]!.delivery)!;
    expect(head).toMatchObject({ status: 'pending', responseCode: 500 });
    expect(head.attempts).toBeGreaterThanOrEqual(4);
    expect(head.lastError).toContain('500');
    expect(rows.filter((row) => row.id !== head.id).every((row) => row.status === 'pending' && row.attempts === 0)).toBe(true);
    expect(rows).toHaveLength(7);

    // Given up once it is older than the give-up age: failed, and the next one of the run is tried.
    await stopWorker();
    await waitFor('the failing delivery given up', async () => (await deliverOne(deps, { retry: { ...RETRY, giveUpAfterMs: 1 } })) !== false && (await readDeliveries(harness.store.pool, { channel: 'down', runId: mainRun })).some((row) => row.id === head.id && row.status === 'failed'));
  });


  it('two instances on one store post each notification once', async () => {
    const instances = [openStore(harness.storeDb.url, { max: 4 }), openStore(harness.storeDb.url, { max: 4 })];
    const queued = new Set<string>();
    for (let index = 0; index < 24; index++) queued.add((await enqueueTestDelivery(harness.store.pool, { channel: 'ops', requestedBy: `batch-${index}@example.com` })).id);
    const stops = instances.map((store) => startNotificationWorker({ ...deps, store }, () => {}, { ...RETRY, pollMs: 100, concurrency: 3 }));
    try {
      await waitFor('every queued test delivered', async () => {
        const rows = await readDeliveries(harness.store.pool, { channel: 'ops', limit: 200 });
        return rows.filter((row) => queued.has(row.id)).every((row) => row.status === 'delivered');
      });
    } finally {
      for (const stop of stops) await stop();
      for (const store of instances) await store.close();
    }
    const posts = arrivals.filter((arrival) => arrival.path === '/ops' && queued.has(arrival.delivery)).map((arrival) => arrival.delivery);
    expect(posts.sort()).toEqual([...queued].sort());
  });
});
