/**
 * axe-core on every page, signed in as the role that sees the most of it: no serious or critical
 * violation. The run pages scan a real run: an engineer rehearses plan 008 on the sandbox through
 * the checklist (a rehearsal rolls everything back, so the sandbox stays "not applied" for the
 * other browser tests).
 */
import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';
import { signIn, type DemoRole } from './support';

const PLAN = '008-add-active-org-tracking';

async function expectNoSeriousViolations(page: Page, label: string): Promise<void> {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  const serious = results.violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
  const summary = serious.map(
    (violation) =>
      `${violation.impact} ${violation.id}: ${violation.help}\n${violation.nodes
        .slice(0, 5)
        .map((node) => `    ${node.target.join(' ')} — ${node.failureSummary?.split('\n').join(' ')}`)
        .join('\n')}`
  );
  expect(summary, `${label}: serious or critical axe violations`).toEqual([]);
}

async function scan(page: Page, role: DemoRole | null, url: string, ready: (page: Page) => Promise<void>, label = url): Promise<void> {
  if (role) await signIn(page, role);
  await page.goto(url);
  await ready(page);
  await expectNoSeriousViolations(page, label);
}

test('login page', async ({ page }) => {
  await scan(page, null, '/login', (p) => expect(p.getByRole('heading', { name: 'Sign in to Runsheet' })).toBeVisible());
});

test('plans list', async ({ page }) => {
  await scan(page, 'engineer', '/', (p) => expect(p.getByRole('heading', { level: 1, name: 'Plans' })).toBeVisible());
});

test('plan checklist', async ({ page }) => {
  await scan(page, 'engineer', `/plans/${PLAN}?target=sandbox`, (p) => expect(p.getByRole('heading', { level: 1, name: /Migration 008/ })).toBeVisible(), 'plan checklist');
});

test('history', async ({ page }) => {
  await scan(page, 'viewer', '/runs', (p) => expect(p.getByRole('heading', { level: 1, name: 'History' })).toBeVisible());
});

test('admin accounts', async ({ page }) => {
  await scan(page, 'admin', '/admin/accounts', (p) => expect(p.getByRole('heading', { level: 1 })).toBeVisible());
});

test('API tokens', async ({ page }) => {
  await scan(page, 'tpm', '/account/tokens', (p) => expect(p.getByRole('heading', { level: 1, name: 'API tokens' })).toBeVisible());
});

test('notifications', async ({ page }) => {
  await scan(page, 'engineer', '/notifications', (p) => expect(p.getByRole('heading', { level: 1, name: 'Notifications' })).toBeVisible());
});

test.describe('the pages of a run', () => {
  let runId: string;

  // A real run through the engine: the engineer rehearses from the checklist, which opens the live view.
  test.beforeAll(async ({ browser }, testInfo) => {
    const context = await browser.newContext({ baseURL: testInfo.project.use.baseURL, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await signIn(page, 'engineer');
    await page.goto(`/plans/${PLAN}?target=sandbox`);
    await page.getByRole('button', { name: 'Rehearse', exact: true }).click();
    await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    runId = new URL(page.url()).pathname.split('/').pop()!;
    await expect(page.getByRole('status', { name: 'Run state' })).toContainText(/Rehearsed|Rehearsal failed/, { timeout: 60_000 });
    await context.close();
  });

  test('run live view', async ({ page }) => {
    await scan(page, 'engineer', `/runs/${runId}`, (p) => expect(p.getByRole('status', { name: 'Run state' })).toBeVisible(), 'run live view');
  });

  test('post-run report, and with an event opened', async ({ page }) => {
    await scan(page, 'viewer', `/runs/${runId}/report`, (p) => expect(p.getByRole('heading', { level: 1, name: /Rehearsal report/ })).toBeVisible(), 'report');
    await page.getByRole('region', { name: /Run events, \d+ in all/ }).getByRole('button').first().click();
    await expect(page.getByRole('region', { name: 'Event 1', exact: true })).toBeVisible();
    await expectNoSeriousViolations(page, 'report with an event opened');
  });
});
