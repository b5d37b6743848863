/**
 * API tokens in the browser: a TPM creates a personal token (shown once), it works against the
 * JSON API as the TPM, and once revoked it gets 401; an admin adds a service account and its
 * token and sees every token's metadata, never a secret.
 */
import { expect, test, type Page } from '@playwright/test';
import { demoAccount, signIn } from './support';

async function createdToken(page: Page): Promise<string> {
  const token = (await page.getByLabel('New API token').textContent())!.trim();
  expect(token).toMatch(/^rs_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  return token;
}

test('a TPM creates a personal token, uses it against the API, and revokes it', async ({ page, request }) => {
  await signIn(page, 'tpm');
  await page.getByRole('link', { name: 'API tokens' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'API tokens' })).toBeVisible();
  await page.getByLabel('What it is for').fill('e2e laptop');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByRole('status')).toContainText('Token "e2e laptop" created');
  const token = await createdToken(page);
  const tokenId = token.slice(3, 19);

  const table = page.getByRole('table', { name: 'Your API tokens' });
  const row = table.getByRole('row', { name: /e2e laptop/ });
  await expect(row).toContainText(tokenId);
  await expect(row).toContainText('active');

  const me = await request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  expect(me.status()).toBe(200);
  expect(await me.json()).toMatchObject({ account: { email: demoAccount('tpm').email, role: 'tpm', kind: 'person' }, token: { id: tokenId } });
  // The page's own session cookie does not open the API.
  const cookies = (await page.context().cookies()).map((cookie) => `${cookie.name}=${cookie.value}`).join('; ');
  expect((await request.get('/api/v1/me', { headers: { Cookie: cookies } })).status()).toBe(401);

  // Reloading never shows the secret again.
  await page.reload();
  await expect(page.getByLabel('New API token')).toHaveCount(0);
  await expect(page.locator('body')).not.toContainText(token.slice(20));

  await page.getByRole('table', { name: 'Your API tokens' }).getByRole('row', { name: /e2e laptop/ }).getByRole('button', { name: /Revoke/ }).click();
  await expect(page.getByRole('status')).toContainText(`(${tokenId}) of ${demoAccount('tpm').email} is revoked`);
  await expect(page.getByRole('table', { name: 'Your API tokens' }).getByRole('row', { name: /e2e laptop/ })).toContainText('revoked');
  expect((await request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } })).status()).toBe(401);
});

test("an admin adds a service account and its token, and sees every token's metadata but no secret", async ({ page, request }) => {
  await signIn(page, 'admin');
  await page.goto('/admin/accounts');
  await page.getByLabel('Name (e.g. ci-staging)').fill('e2e-pipeline');
  await page.getByLabel('Role of the service account').selectOption('engineer');
  await page.getByRole('button', { name: 'Add service account' }).click();
  await expect(page.getByRole('status')).toContainText('Service account e2e-pipeline@service.invalid (engineer) created');

  await page.getByLabel('Service account', { exact: true }).selectOption('e2e-pipeline@service.invalid');
  await page.getByLabel('Token for').fill('e2e deploys');
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = await createdToken(page);
  const me = await request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  expect(await me.json()).toMatchObject({ account: { email: 'e2e-pipeline@service.invalid', role: 'engineer', kind: 'service' } });

  await page.reload();
  const all = page.getByRole('table', { name: 'API tokens of every account' });
  await expect(all.getByRole('row', { name: /e2e deploys/ })).toContainText('e2e-pipeline@service.invalid');
  await expect(all.getByRole('row', { name: /e2e deploys/ })).toContainText(/from /);
  await expect(page.locator('body')).not.toContainText(token.slice(20));
  // The service account is listed as such, without a password to reset.
  const accountRow = page.getByRole('row', { name: /e2e-pipeline@service\.invalid/ }).first();
  await expect(accountRow).toContainText('service account (API tokens only)');
  await expect(accountRow.getByRole('button', { name: /New password/ })).toHaveCount(0);
});
