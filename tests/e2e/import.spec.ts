/**
 * Importing a runbook in the browser: an engineer uploads a Markdown runbook on the plans page,
 * sees it as the plan's checklist beside its import report, downloads it as a zip and saves it;
 * the saved plan is under review. A viewer and a TPM cannot import.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { signIn } from './support';

const RUNBOOK = path.resolve(import.meta.dirname, '../fixtures/runbooks/012-invoice-currency.md');
const PLAN = '012-add-a-currency-to-platform-invoices';

test('an engineer uploads a runbook, sees the imported checklist and its import report, and saves it under review', async ({ page }) => {
  await signIn(page, 'engineer');
  await page.getByLabel('Import a Markdown runbook').setInputFiles(RUNBOOK);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page).toHaveURL(/\/import$/);
  await expect(page.getByRole('heading', { level: 2, name: `Imported as ${PLAN}` })).toBeVisible();

  const plan = page.getByRole('region', { name: 'The imported plan' });
  await expect(plan.getByRole('heading', { name: /Migration 012 Execution Plan — Add a currency to platform\.invoices/ })).toBeVisible();
  await expect(plan.locator('[data-status="under_review"]')).toHaveText(/Plan under review/);
  for (const section of ['Prerequisites', 'Pre-checks', 'Execution steps', 'Verification', 'Post-execution validation', 'Rollback procedure', 'Success criteria', 'Team communication']) {
    await expect(plan.getByRole('heading', { level: 3, name: section, exact: true })).toBeVisible();
  }
  await expect(plan.getByText('Billing agreed on ISO 4217 currency codes')).toBeVisible();
  await expect(plan.getByText('Step 1 · Add the column and its constraint')).toBeVisible();
  await expect(plan.getByText('Step 2 · Build the index')).toBeVisible();
  await expect(plan.getByText('No currency column yet')).toBeVisible();

  const report = page.getByRole('complementary', { name: 'Import report (IMPORT.md)' });
  await expect(report).toContainText('3 to decide, 1 guessed, 3 not carried over.');
  await expect(report.getByText(/^Line 75$/)).toBeVisible();
  await expect(report).toContainText('It looks pg_indexes up by tablename and indexname without schemaname');

  const downloading = page.waitForEvent('download');
  await page.getByRole('button', { name: `Download ${PLAN}.zip` }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe(`${PLAN}.zip`);
  const zip = fs.readFileSync((await download.path())!);
  expect(zip.subarray(0, 2).toString()).toBe('PK');
  expect(zip.includes(Buffer.from(`${PLAN}/IMPORT.md`))).toBe(true);

  await page.getByRole('button', { name: 'Save to the plans folder' }).click();
  await expect(page).toHaveURL(new RegExp(`/plans/${PLAN}$`));
  await expect(page.getByRole('heading', { level: 1, name: /Migration 012 Execution Plan/ }).locator('[data-status="under_review"]')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Rehearse' })).toBeDisabled();
  await expect(page.getByText(/Disabled: .*review: pending/)).toBeVisible();

  // Importing it again: the preview says the id exists, and saving is disabled.
  await page.goto('/import');
  await page.getByLabel('Runbook (.md)').setInputFiles(RUNBOOK);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(page.getByText(`A plan "${PLAN}" exists already`)).toBeVisible();
  await expect(page.getByRole('button', { name: 'Save to the plans folder' })).toBeDisabled();
});

for (const role of ['viewer', 'tpm'] as const) {
  test(`a ${role} cannot import a runbook`, async ({ page, baseURL }) => {
    await signIn(page, role);
    await expect(page.getByRole('heading', { level: 1, name: 'Plans' })).toBeVisible();
    await expect(page.getByLabel('Import a Markdown runbook')).toHaveCount(0);
    const opened = await page.goto('/import');
    expect(opened?.status()).toBe(403);
    const posted = await page.request.post('/import', {
      headers: { Origin: baseURL! },
      multipart: { intent: 'preview', runbook: { name: 'runbook.md', mimeType: 'text/markdown', buffer: fs.readFileSync(RUNBOOK) } },
    });
    expect(posted.status()).toBe(403);
    expect(await posted.text()).toMatch(/may not import-plan/);
  });
}
