/**
 * The screenshots in docs/screenshots/, taken at 1280×800 from a real walk through plan 008 on
 * the sandbox: the plans list; the checklist before apply (prerequisites ticked, pre-checks run,
 * signed off); a run waiting for a lock another session holds on platform.users, then its failure
 * when ALTER TABLE hits its lock_timeout, and that failed run's report; a live run (the same lock, released after a few seconds so the apply goes on);
 * the checklist after apply; the post-run report; the history. Then, after the first walk: a
 * rollback and a re-apply, with the Restore form of what the rollback kept; plan 008 given a
 * watch window (in the server's own copy of plans/), applied, a regression injected by SQL and
 * undone, until the window closes: the watch strip; and the notifications page, whose
 * channels post to stand-in receivers started here (the team channel's first post answered 503,
 * so one delivery shows its retry).
 *
 * Everything is done through the UI by role and label, as a TPM (ticks, pre-checks, sign-off) and
 * an engineer (execute). The lock is the only thing done beside the UI, on the sandbox database.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { expect, test, type Browser, type Page } from '@playwright/test';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { SCREENSHOTS_DATA_DIR, SCREENSHOTS_NOTIFY_SECRET, SCREENSHOTS_PLANS_DIR, SCREENSHOTS_RECEIVER_PORT } from '../../playwright.screenshots.config';
import { verifyWebhookSignature } from '../../app/notifications/webhook-signature';

const PLAN = '008-add-active-org-tracking';
const CHECKLIST = `/plans/${PLAN}?target=sandbox`;
const OUT = path.resolve('docs', 'screenshots');

type Role = 'tpm' | 'engineer' | 'viewer';

function account(role: Role): { email: string; password: string } {
  const accounts = JSON.parse(fs.readFileSync(path.join(SCREENSHOTS_DATA_DIR, 'demo-accounts.json'), 'utf8')) as { role: string; email: string; password: string }[];
  const found = accounts.find((candidate) => candidate.role === role);
  if (!found) throw new Error(`no demo ${role} in ${SCREENSHOTS_DATA_DIR}/demo-accounts.json`);
  return found;
}

async function signedIn(browser: Browser, role: Role): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const { email, password } = account(role);
  await page.goto('/login');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('button', { name: /sign out/i })).toBeVisible();
  return page;
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.evaluate(() => document.fonts.ready);
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: false });
}

/** A connection to the embedded sandbox database, beside the UI. */
async function sandboxClient(applicationName: string): Promise<pg.Client> {
  const record = JSON.parse(fs.readFileSync(path.join(SCREENSHOTS_DATA_DIR, 'postgres.json'), 'utf8')) as { port: number; password: string };
  const client = new pg.Client({
    connectionString: `postgres://postgres:${encodeURIComponent(record.password)}@127.0.0.1:${record.port}/sandbox`,
    application_name: applicationName,
  });
  await client.connect();
  return client;
}

/** A session on the sandbox database holding ACCESS SHARE on platform.users: ALTER TABLE waits behind it. */
async function holdUsersLock(): Promise<{ release(): Promise<void> }> {
  const client = await sandboxClient('screenshots-lock-holder');
  await client.query('begin');
  await client.query('lock table platform.users in access share mode');
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      await client.query('rollback').catch(() => {});
      await client.end();
    },
  };
}

/** The TPM's part: tick every prerequisite, run the pre-checks, sign off (after a finished run: a new attempt first). */
async function prepareRun(tpm: Page): Promise<void> {
  await tpm.goto(CHECKLIST);
  await expect(tpm.getByRole('heading', { level: 1, name: /Migration 008/ })).toBeVisible();
  const newAttempt = tpm.getByRole('button', { name: 'Start a new attempt' });
  if (await newAttempt.isVisible()) {
    await newAttempt.click();
    await expect(newAttempt).toBeHidden();
    await tpm.waitForLoadState('networkidle');
  }
  const ticks = tpm.getByRole('button', { name: /^Tick: / });
  const count = await ticks.count();
  expect(count, 'the checklist shows a "Tick: …" button per prerequisite').toBeGreaterThan(0);
  for (let index = 0; index < count; index++) {
    const tick = ticks.nth(index);
    if ((await tick.getAttribute('aria-pressed')) !== 'true') {
      await tick.click();
      await expect(tick).toHaveAttribute('aria-pressed', 'true');
      await tpm.waitForLoadState('networkidle');
    }
  }
  await tpm.getByRole('button', { name: 'Run pre-checks' }).click();
  await expect(tpm.getByRole('button', { name: 'Run pre-checks' })).toBeEnabled({ timeout: 60_000 });
  await tpm.waitForLoadState('networkidle');
  const signOff = tpm.getByRole('button', { name: 'Sign off', exact: true });
  if (await signOff.isEnabled()) {
    await signOff.click();
    await tpm.waitForLoadState('networkidle');
  }
}

/** The engineer's part: Execute, which opens the run's live view. Returns the run id. */
async function execute(engineer: Page): Promise<string> {
  await engineer.goto(CHECKLIST);
  const button = engineer.getByRole('button', { name: 'Execute', exact: true });
  await expect(button, 'Execute is enabled once every gate is closed').toBeEnabled({ timeout: 30_000 });
  await button.click();
  await engineer.waitForURL(/\/runs\/[0-9a-f-]{36}$/, { timeout: 30_000 });
  return new URL(engineer.url()).pathname.split('/').pop()!;
}

const runState = (page: Page) => page.getByRole('status', { name: 'Run state' });

/** The stand-in receivers of the ops (signed JSON) and team (Slack) channels: what they were sent. */
const received: { path: string; body: string; verified: boolean }[] = [];
let receiver: http.Server;
test.beforeAll(async () => {
  let teamAnswered = false;
  receiver = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      const verified = request.url !== '/ops' || verifyWebhookSignature(body, request.headers['x-runsheet-signature'] as string | undefined, SCREENSHOTS_NOTIFY_SECRET).ok;
      received.push({ path: request.url ?? '', body, verified });
      const unavailableOnce = request.url === '/team' && !teamAnswered;
      teamAnswered = true;
      response.writeHead(unavailableOnce ? 503 : 200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(SCREENSHOTS_RECEIVER_PORT, '127.0.0.1', resolve));
});
test.afterAll(async () => {
  await new Promise((resolve) => receiver?.close(resolve));
});

/** The engineer rolls the plan's current run back from the checklist, through the confirmation dialog. */
async function rollBack(engineer: Page): Promise<void> {
  await engineer.goto(CHECKLIST);
  await engineer.getByRole('button', { name: 'Roll back…', exact: true }).click();
  await engineer.getByRole('dialog', { name: /Roll back run [0-9a-f]{8} on sandbox\?/ }).getByRole('button', { name: 'Roll back now' }).click();
  await engineer.waitForURL(/\/runs\/[0-9a-f-]{36}$/, { timeout: 30_000 });
  await expect(runState(engineer)).toContainText('Rolled back', { timeout: 120_000 });
}

/** Plan 008 in the server's plans folder, given a short watch window (a new checksum: the next run is a new attempt). */
function giveWatchWindow(): void {
  const file = path.join(SCREENSHOTS_PLANS_DIR, PLAN, 'plan.yaml');
  const document = parseDocument(fs.readFileSync(file, 'utf8'));
  document.set('watch', { for: '45s', every: '2s', checks: ['column-added', 'index-valid-partial', 'backfill-complete', 'active-org-is-a-membership'] });
  fs.writeFileSync(file, document.toString());
}

/** Reloads the checklist until the watch strip's label matches (the page does not refresh itself while a run only watches). */
async function untilStrip(page: Page, label: RegExp): Promise<void> {
  const strip = page.getByRole('img', { name: /^Watch strip: / });
  await expect(async () => {
    await page.reload();
    await expect(strip).toHaveAttribute('aria-label', label, { timeout: 1_000 });
  }).toPass({ timeout: 120_000, intervals: [1_000] });
}

/** Scrolls `region` to the middle of the viewport for a screenshot of it in its page. */
async function centre(page: Page, selector: string): Promise<void> {
  await page.locator(selector).evaluate((element) => element.scrollIntoView({ block: 'center' }));
}

test('screenshots of the plans list, checklist, failure, live run, checklist after apply, report and history', async ({ browser }, testInfo) => {
  fs.mkdirSync(OUT, { recursive: true });
  const tpm = await signedIn(browser, 'tpm');
  const engineer = await signedIn(browser, 'engineer');

  await engineer.goto('/');
  await expect(engineer.getByRole('row', { name: /Migration 008/ })).toBeVisible();
  await shoot(engineer, 'plans-list');

  // Checklist before apply: prerequisites ticked, pre-checks passed, signed off.
  await prepareRun(tpm);
  await tpm.evaluate(() => window.scrollTo(0, 0));
  await shoot(tpm, 'checklist-before-apply');

  // A failure: ALTER TABLE waits for the lock another session holds, and gives up at lock_timeout.
  // While it waits, the live view says for what and who holds it.
  const blocker = await holdUsersLock();
  let failedRun: string;
  try {
    failedRun = await execute(engineer);
    await expect(engineer.getByRole('alert', { name: 'Lock waits' })).toContainText('waiting for a lock held by pid', { timeout: 30_000 });
    await shoot(engineer, 'lock-wait');
    await expect(runState(engineer)).toContainText('Failed', { timeout: 60_000 });
  } finally {
    await blocker.release();
  }
  await engineer.waitForLoadState('networkidle').catch(() => {});
  await shoot(engineer, 'failure');
  await engineer.goto(`/runs/${failedRun}/report`);
  await expect(engineer.getByRole('region', { name: 'Failure summary' })).toBeVisible();
  await shoot(engineer, 'failed-report');

  // A live run: the same lock, released after 3.5 s (before the 5 s lock_timeout), so the apply
  // waits in view for a moment and then goes on.
  await prepareRun(tpm);
  const second = await holdUsersLock();
  const clickedAt = Date.now();
  const releasing = new Promise<void>((resolve) => setTimeout(() => void second.release().then(resolve), 3_500));
  let appliedRun: string;
  try {
    appliedRun = await execute(engineer);
    await expect(runState(engineer)).toContainText(/Applying|Applied/);
    await engineer.waitForTimeout(Math.max(0, 2_800 - (Date.now() - clickedAt)));
    await shoot(engineer, 'live-run');
    await releasing;
    await expect(runState(engineer)).toContainText('Applied', { timeout: 120_000 });
  } finally {
    await second.release();
  }
  expect(appliedRun).not.toBe(failedRun);

  await engineer.goto(CHECKLIST);
  await expect(engineer.getByRole('heading', { level: 1, name: /Migration 008/ })).toBeVisible();
  await shoot(engineer, 'checklist-after-apply');

  const viewer = await signedIn(browser, 'viewer');
  await viewer.goto(`/runs/${appliedRun}/report`);
  await expect(viewer.getByRole('heading', { level: 1, name: /Run report/ })).toBeVisible();
  await expect(viewer.locator('[data-signature]')).toBeVisible();
  await shoot(viewer, 'report');
  // The whole report, for a reviewer (test output only, not docs).
  await viewer.screenshot({ path: testInfo.outputPath('report-full.png'), fullPage: true });

  await viewer.goto('/runs');
  await expect(viewer.getByRole('heading', { level: 1, name: 'History' })).toBeVisible();
  await shoot(viewer, 'history');
});

test('screenshots of the Restore form after a rollback and a re-apply, and of the watch strip', async ({ browser }) => {
  const tpm = await signedIn(browser, 'tpm');
  const engineer = await signedIn(browser, 'engineer');

  // Plan 008 is applied (the walk above): rolled back, the rollback keeps every user's active_org_id.
  await rollBack(engineer);
  await prepareRun(tpm);
  await execute(engineer);
  await expect(runState(engineer)).toContainText('Applied', { timeout: 120_000 });
  await engineer.goto(CHECKLIST);
  const restore = engineer.getByRole('form', { name: 'Restore what the rollback kept' });
  await expect(restore).toContainText(/Run [0-9a-f]{8}'s rollback kept "runsheet_backup"\."r_[0-9a-f]{32}_users_active_org_id"/);
  await restore.getByLabel(/Type the target's name/).fill('sandbox');
  await expect(restore.getByRole('button', { name: 'Restore…' })).toBeEnabled();
  await centre(engineer, '#watch');
  await shoot(engineer, 'restore');
  await restore.getByRole('button', { name: 'Restore…' }).click();
  await expect(engineer.getByText(/^Restored \d+ value\(s\) from run [0-9a-f]{8}; 0 row\(s\) skipped\.$/)).toBeVisible({ timeout: 60_000 });

  // The same plan with a watch window: applied, it watches; a regression injected by SQL, undone two rounds later.
  await rollBack(engineer);
  giveWatchWindow();
  await prepareRun(tpm);
  await execute(engineer);
  await expect(runState(engineer)).toContainText('Watching', { timeout: 120_000 });
  await engineer.goto(CHECKLIST);
  await untilStrip(engineer, /^Watch strip: Watching: 1 round\(s\) kept, 0 alarm\(s\)$/);
  const sandbox = await sandboxClient('screenshots-regression');
  try {
    await engineer.waitForTimeout(6_000);
    const { rows } = await sandbox.query<{ id: string; active_org_id: string }>('select id, active_org_id from platform.users where active_org_id is not null order by id limit 1');
    const user = rows[0]!;
    await sandbox.query(
      `update platform.users as u
          set active_org_id = (select o.id from platform.organizations as o
                                where not exists (select 1 from platform.organization_members as m where m.user_id = u.id and m.organization_id = o.id)
                                order by o.id limit 1)
        where u.id = $1`,
      [user.id],
    );
    await untilStrip(engineer, /^Watch strip: Watching: 2 round\(s\) kept, 1 alarm\(s\)$/);
    await engineer.waitForTimeout(6_000);
    await sandbox.query('update platform.users set active_org_id = $2 where id = $1', [user.id, user.active_org_id]);
    await untilStrip(engineer, /^Watch strip: Watching: 3 round\(s\) kept, 1 alarm\(s\)$/);
  } finally {
    await sandbox.end();
  }
  await untilStrip(engineer, /^Watch strip: Ended \(window closed\), 1 alarm\(s\), \d+ round\(s\)$/);
  await expect(engineer.getByRole('list', { name: 'Watch alarms' })).toContainText('active-org-is-a-membership');
  await centre(engineer, '#watch');
  await shoot(engineer, 'watch-strip');
});

test('screenshot of the notifications page', async ({ browser }) => {
  const engineer = await signedIn(browser, 'engineer');
  await engineer.getByRole('link', { name: 'Notifications' }).click();
  await expect(engineer.getByRole('heading', { level: 1, name: 'Notifications' })).toBeVisible();
  await engineer.getByRole('button', { name: 'Send test to ops' }).click();
  await expect(engineer.getByRole('status')).toContainText('Test notification');
  await expect(async () => {
    await engineer.reload();
    const ops = engineer.getByRole('region', { name: /^ops/ });
    await expect(ops.getByRole('row', { name: /test by/ }).first()).toContainText('delivered');
    await expect(engineer.getByRole('region', { name: /^team/ }).getByRole('cell', { name: 'pending' })).toHaveCount(0);
  }).toPass({ timeout: 60_000 });
  expect(received.some((post) => post.path === '/ops' && JSON.parse(post.body).kind === 'applied')).toBe(true);
  expect(received.every((post) => post.verified)).toBe(true);
  expect(received.some((post) => post.path === '/team' && (JSON.parse(post.body) as { text: string }).text.startsWith('Migration 008 deployed successfully to Sandbox'))).toBe(true);
  await shoot(engineer, 'notifications');
});
