/**
 * The people of the seed runbook walking plan 008 through Runsheet on the sandbox: the TPM ticks
 * the prerequisites, runs the pre-checks and signs off; the engineer sees go, executes, watches
 * the live view reach applied, reads the backfill gauge (checked against the seed's own Step 4
 * query on the sandbox database) and rolls back. A viewer and a TPM never get an enabled Execute
 * or Roll back, and their forged posts are refused with 403. The tests run in order: each one
 * continues from where the previous left the sandbox.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import pg from 'pg';
import { E2E_DATA_DIR } from '../../playwright.config';
import { signIn } from './support';

test.describe.configure({ mode: 'serial' });

const PLAN_ID = '008-add-active-org-tracking';
const CHECKLIST = `/plans/${PLAN_ID}?target=sandbox`;

/** The seed's Step 4, verbatim, on the e2e server's sandbox database. */
async function seedStep4(): Promise<{ total: number; withActiveOrg: number; percentage: string }> {
  const { port, password } = JSON.parse(fs.readFileSync(path.join(E2E_DATA_DIR, 'postgres.json'), 'utf8')) as { port: number; password: string };
  const client = new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/sandbox` });
  await client.connect();
  try {
    const { rows } = await client.query<{ total_users: string; users_with_active_org: string; backfill_percentage: string }>(`
      SELECT
        COUNT(*) as total_users,
        COUNT(active_org_id) as users_with_active_org,
        ROUND(100.0 * COUNT(active_org_id) / COUNT(*), 2) as backfill_percentage
      FROM platform.users;
    `);
    const row = rows[0]!;
    return { total: Number(row.total_users), withActiveOrg: Number(row.users_with_active_org), percentage: row.backfill_percentage };
  } finally {
    await client.end();
  }
}

/** A form post as the signed-in page would send it (same Origin, the session cookie), bypassing the UI. */
async function forgePost(page: Page, url: string, form: Record<string, string>) {
  const origin = new URL(page.url()).origin;
  return page.request.post(url, { form, headers: { Origin: origin }, maxRedirects: 0 });
}

async function currentRunId(page: Page): Promise<string> {
  const href = await page.getByRole('region', { name: 'Execution log' }).getByRole('link', { name: /^[0-9a-f]{8}$/ }).first().getAttribute('href');
  const id = href?.split('/').pop();
  if (!id) throw new Error('no run link on the checklist');
  return id;
}

async function expectNoEnabledExecuteOrRollback(page: Page) {
  await expect(page.getByRole('button', { name: 'Execute', exact: true })).toBeDisabled();
  await expect(page.getByRole('button', { name: 'Roll back…', exact: true })).toBeDisabled();
}

test('the TPM ticks the prerequisites, runs the pre-checks and signs off', async ({ page }) => {
  await signIn(page, 'tpm');
  await page.goto(CHECKLIST);
  await expect(page.getByRole('heading', { level: 1, name: /Migration 008/ })).toBeVisible();

  const prerequisites = page.getByRole('region', { name: 'Prerequisites' });
  const ticks = prerequisites.getByRole('button', { name: /^Tick: / });
  const count = await ticks.count();
  expect(count).toBe(6);
  for (let index = 0; index < count; index++) {
    await ticks.nth(index).click();
    await expect(ticks.nth(index)).toHaveAttribute('aria-pressed', 'true');
    // Recorded in the run log with who: wait for the server before the next tick.
    await expect(prerequisites.getByText(/^Ticked by tpm@/)).toHaveCount(index + 1);
  }

  await page.getByRole('button', { name: 'Run pre-checks' }).click();
  const prechecks = page.getByRole('region', { name: 'Pre-checks' });
  await expect(prechecks.locator('[data-status="pass"]')).toHaveCount(6);
  await expect(prechecks.locator('[data-status="fail"], [data-status="error"]')).toHaveCount(0);
  await expect(prechecks.getByText(/Results of run [0-9a-f]{8}/)).toBeVisible();

  // A check's SQL is not in the page: its disclosure fetches it when opened, and says so when that fails.
  const disclosures = prechecks.locator('details[data-sql-on-demand]');
  await disclosures.first().locator('summary').click();
  await expect(disclosures.first().locator('pre')).toContainText(/select/i);
  await expect(disclosures.first().getByRole('button', { name: /^Copy SQL of / })).toBeVisible();
  await page.route('**/sql.json?*', (route) => route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'the store is not answering' }) }));
  await disclosures.nth(1).locator('summary').click();
  await expect(disclosures.nth(1).getByRole('alert')).toContainText('Could not load the SQL');
  await expect(disclosures.nth(1).getByRole('alert')).toContainText('the store is not answering');
  await page.unroute('**/sql.json?*');
  await disclosures.nth(1).getByRole('button', { name: 'Try again' }).click();
  await expect(disclosures.nth(1).locator('pre')).toContainText(/select/i);

  // The sandbox has no four-eyes rule, so the sign-off is optional there; it is recorded all the same.
  const goNoGo = page.getByRole('region', { name: 'Go / no-go' });
  await goNoGo.getByRole('button', { name: 'Sign off' }).click();
  await expect(goNoGo.getByText(/tpm@runsheet\.local \(tpm\) at/)).toBeVisible();
  await expect(goNoGo.locator('[data-status="gate_closed"]', { hasText: 'GO' }).first()).toBeVisible();
  await expect(goNoGo.locator('[data-status="gate_open"]')).toHaveCount(0);

  await expectNoEnabledExecuteOrRollback(page);
  const runId = await currentRunId(page);
  expect((await forgePost(page, CHECKLIST, { intent: 'execute' })).status()).toBe(403);
  expect((await forgePost(page, CHECKLIST, { intent: 'rollback', runId })).status()).toBe(403);
  expect((await forgePost(page, CHECKLIST, { intent: 'rehearse' })).status()).toBe(403);
});

test('a viewer reads the checklist but cannot tick, execute or roll back', async ({ page }) => {
  await signIn(page, 'viewer');
  await page.goto(CHECKLIST);
  await expect(page.getByRole('region', { name: 'Prerequisites' }).getByRole('button', { name: /^Tick: / }).first()).toBeDisabled();
  await expectNoEnabledExecuteOrRollback(page);
  await expect(page.getByRole('button', { name: 'Sign off' })).toHaveCount(0);
  const runId = await currentRunId(page);
  expect((await forgePost(page, CHECKLIST, { intent: 'execute' })).status()).toBe(403);
  expect((await forgePost(page, CHECKLIST, { intent: 'rollback', runId })).status()).toBe(403);
  expect((await forgePost(page, CHECKLIST, { intent: 'tick', itemId: 'backup-taken', ticked: 'false' })).status()).toBe(403);
  expect((await forgePost(page, `/runs/${runId}`, { intent: 'cancel' })).status()).toBe(403);
});

test('the engineer sees go, executes, watches it applied, reads the backfill and rolls back', async ({ page }) => {
  test.setTimeout(180_000);
  await signIn(page, 'engineer');
  await page.goto(CHECKLIST);
  await expect(page.getByRole('navigation', { name: 'Phases' }).getByRole('link', { name: /Execute.*waiting on an engineer to execute/ })).toBeVisible();
  const execute = page.getByRole('button', { name: 'Execute', exact: true });
  await expect(execute).toBeEnabled();
  await execute.click();

  // The live view: phases and statements arrive over the stream until the run is applied.
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  const state = page.getByRole('status', { name: 'Run state' });
  await expect(state).toHaveText(/Applied/, { timeout: 120_000 });
  await expect(page.getByRole('listitem', { name: 'Phase Apply' })).toBeVisible();
  await expect(page.getByRole('table', { name: /Statements of Add active_org_id/ })).toBeVisible();
  await expect(page.getByRole('listitem', { name: 'Phase Verification' }).getByText('Done')).toBeVisible();
  await expect(page.getByRole('region', { name: 'Final state' })).toBeVisible();

  // Back on the checklist: the gauge shows what the seed's Step 4 query says.
  await page.getByRole('link', { name: 'Back to the checklist' }).click();
  const expected = await seedStep4();
  const gauge = page.getByRole('meter', { name: 'Backfill of platform.users.active_org_id' });
  await expect(gauge).toHaveAttribute('aria-valuetext', `${expected.percentage}%, ${expected.withActiveOrg} of ${expected.total} rows set`);
  await expect(page.getByRole('region', { name: 'Verification' }).getByText(`${expected.percentage}%`, { exact: true })).toBeVisible();
  await expect(page.getByRole('region', { name: 'State' }).locator('[data-status="applied"]').first()).toBeVisible();
  await expect(page.getByRole('region', { name: 'Team communication' }).getByText(/deployed successfully to Sandbox by engineer@runsheet\.local/)).toBeVisible();

  const rollback = page.getByRole('button', { name: 'Roll back…', exact: true });
  await expect(rollback).toBeEnabled();
  await rollback.click();
  // Never one click: the dialog lists what the rollback runs and removes.
  const dialog = page.getByRole('dialog', { name: /Roll back run [0-9a-f]{8} on sandbox\?/ });
  await expect(dialog.getByRole('region', { name: 'Objects the rollback removes' })).toContainText('column platform.users.active_org_id');
  await expect(dialog.getByRole('region', { name: 'Rollback statements' })).toContainText('DROP');
  await dialog.getByRole('button', { name: 'Roll back now' }).click();
  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  await expect(page.getByRole('status', { name: 'Run state' })).toHaveText(/Rolled back/, { timeout: 120_000 });
  await expect(page.getByRole('listitem', { name: 'Phase Rollback verification' }).getByText('Done')).toBeVisible();

  await page.getByRole('link', { name: 'Back to the checklist' }).click();
  await expect(page.getByRole('region', { name: 'State' }).locator('[data-status="rolled_back"]').first()).toBeVisible();
  const afterRollback = page.getByRole('region', { name: 'Rollback procedure' });
  await expect(afterRollback.locator('[data-status="pass"]')).toHaveCount(4);
});

test('a TPM never gets an enabled Execute or Roll back, even after the engineer applied', async ({ page }) => {
  await signIn(page, 'tpm');
  await page.goto(CHECKLIST);
  await expectNoEnabledExecuteOrRollback(page);
});

test('a failing migration opens its failure on the live view with the right line', async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page, 'engineer');
  const response = await page.goto('/plans/e2e-failing-step?target=sandbox');
  expect(response?.status(), 'the e2e server serves the fixture plans (RUNSHEET_PLANS_DIR)').toBe(200);

  const tick = page.getByRole('region', { name: 'Prerequisites' }).getByRole('button', { name: /^Tick: / });
  await tick.click();
  await expect(page.getByText(/^Ticked by engineer@/)).toBeVisible();
  await page.getByRole('button', { name: 'Run pre-checks' }).click();
  await expect(page.getByRole('region', { name: 'Pre-checks' }).locator('[data-status="pass"]')).toHaveCount(1);
  await page.getByRole('button', { name: 'Execute', exact: true }).click();

  await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);
  await expect(page.getByRole('status', { name: 'Run state' })).toHaveText(/Failed/, { timeout: 60_000 });
  const failure = page.getByRole('region', { name: 'Failure' });
  await expect(failure).toBeVisible();
  await expect(failure.getByRole('definition').filter({ hasText: /^11$/ })).toBeVisible();
  await expect(failure).toContainText('42P01');
  await expect(failure).toContainText('table_that_does_not_exist');
  await expect(failure.getByRole('button', { name: 'Copy the failing statement' })).toBeVisible();
});
