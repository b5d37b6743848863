import { expect, test } from '@playwright/test';
import { signIn } from './support';

test('a signed-out visitor is sent to the login page', async ({ page }) => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByRole('heading', { name: 'Sign in to Runsheet' })).toBeVisible();
});

test('the TPM sees plan 008 not applied on the sandbox and runs its pre-checks', async ({ page }) => {
  await signIn(page, 'tpm');
  await page.goto('/');
  const row = page.getByRole('row', { name: /Migration 008/ });
  await expect(row).toBeVisible();
  await expect(row.getByRole('link', { name: /008-add-active-org-tracking on Sandbox: not applied/ })).toBeVisible();

  await row.getByRole('link', { name: /Migration 008/ }).click();
  await expect(page.getByRole('heading', { level: 1, name: /Migration 008/ })).toBeVisible();
  await page.getByRole('button', { name: 'Run pre-checks' }).click();
  const prechecks = page.getByRole('region', { name: 'Pre-checks' });
  await expect(prechecks.locator('[data-status="pass"]').first()).toBeVisible();
  await expect(prechecks.locator('[data-status="fail"], [data-status="error"]')).toHaveCount(0);
});
