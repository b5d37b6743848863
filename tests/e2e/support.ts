/** Shared by the browser tests: the demo accounts the e2e server created, and signing in as them. */
import fs from 'node:fs';
import path from 'node:path';
import { expect, type Page } from '@playwright/test';
import { E2E_DATA_DIR } from '../../playwright.config';

export type DemoRole = 'tpm' | 'engineer' | 'viewer' | 'admin';

export function demoAccount(role: DemoRole): { email: string; password: string } {
  const accounts = JSON.parse(fs.readFileSync(path.join(E2E_DATA_DIR, 'demo-accounts.json'), 'utf8')) as { role: string; email: string; password: string }[];
  const account = accounts.find((candidate) => candidate.role === role);
  if (!account) throw new Error(`No demo account for ${role} in ${E2E_DATA_DIR}/demo-accounts.json`);
  return account;
}

export async function signIn(page: Page, role: DemoRole): Promise<void> {
  const { email, password } = demoAccount(role);
  await page.goto('/login');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('button', { name: /sign out/i })).toBeVisible();
}
