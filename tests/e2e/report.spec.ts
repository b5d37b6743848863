/**
 * The post-run report and the history, as the team (a viewer) uses them: find a run, open its
 * report, download the signed log and verify it with the command line (keys from the site, never
 * from the file), download the Markdown report; a 10,000-event log stays windowed.
 *
 * The runs are written straight into the e2e store (tests/e2e/run-fixtures.ts) on the `staging`
 * target, which the e2e server does not configure: they never become the open run of a checklist.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from '@playwright/test';
import type pg from 'pg';
import { E2E_DATA_DIR } from '../../playwright.config';
import { createFixtureRun, createLongRun, createUnsignedRun, e2eStore } from './run-fixtures';
import { demoAccount, signIn } from './support';

const run = promisify(execFile);
const TARGET = 'staging';

let pool: pg.Pool;
let applied: string;
let rehearsed: string;
let failed: string;
let long: string;
let unsigned: string;

test.beforeAll(async () => {
  const store = e2eStore(E2E_DATA_DIR);
  pool = store.pool;
  const people = { tpm: demoAccount('tpm').email, engineer: demoAccount('engineer').email, target: TARGET };
  applied = await createFixtureRun(pool, store.signingKeyPem, { ...people, outcome: 'applied' });
  rehearsed = await createFixtureRun(pool, store.signingKeyPem, { ...people, outcome: 'rehearsed', createdAtMs: Date.now() - 7_200_000 });
  failed = await createFixtureRun(pool, store.signingKeyPem, { ...people, outcome: 'failed', createdAtMs: Date.now() - 10_800_000 });
  // Its own target: one open run per plan and target, and a retried worker runs this again.
  unsigned = await createUnsignedRun(pool, { tpm: people.tpm, target: `${TARGET}-unsigned-${Date.now()}` });
  long = await createLongRun(pool, store.signingKeyPem, { count: 10_000, ...people });
});

test.afterAll(async () => {
  await pool?.end();
});

test('a viewer opens a report from the history, downloads the signed log and the command line verifies it', async ({ page, baseURL }) => {
  await signIn(page, 'viewer');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'History' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'History' })).toBeVisible();

  await page.getByRole('table').getByRole('link', { name: `Report of run ${applied.slice(0, 8)}` }).click();
  await expect(page).toHaveURL(new RegExp(`/runs/${applied}/report$`));
  await expect(page.getByRole('heading', { level: 1, name: /Run report: Migration 008/ })).toBeVisible();
  await expect(page.locator('[data-signature="valid"]')).toContainText('Signature valid');
  // Absolute times with their zone.
  await expect(page.getByText(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/).first()).toBeVisible();
  await expect(page.getByRole('img', { name: /Phases, planned against actual/ })).toBeVisible();
  for (const section of ['Timeline', 'Check results', 'Snapshot: before and after', 'Step output', 'Verification', 'Issues encountered', 'Event log']) {
    await expect(page.getByRole('heading', { level: 2, name: section, exact: true })).toBeVisible();
  }

  const downloading = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download signed log' }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe(`runsheet-run-${applied}.dsse.json`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-report-'));
  const file = path.join(dir, download.suggestedFilename());
  await download.saveAs(file);
  const envelope = JSON.parse(fs.readFileSync(file, 'utf8')) as { payloadType: string; signatures: unknown[] };
  expect(envelope.payloadType).toBe('application/vnd.in-toto+json');

  const verified = await run(process.execPath, ['bin/runsheet.js', 'log', 'verify', file, '--url', baseURL!], { env: { ...process.env, NO_COLOR: '1' } });
  expect(verified.stdout).toContain('is a valid signed log');

  // The Markdown report has the runbook's "Execution Log" shape.
  const markdownDownload = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download report (Markdown)' }).click();
  const markdownFile = path.join(dir, (await markdownDownload).suggestedFilename());
  await (await markdownDownload).saveAs(markdownFile);
  const markdown = fs.readFileSync(markdownFile, 'utf8');
  for (const heading of [
    '## Execution Log',
    '**Executor**: ',
    '**Execution Time**: ',
    '**Duration**: ',
    '### Execution Output',
    '### Issues Encountered',
    '### Post-Execution Verification',
    '**Status**: ✅ Applied',
  ]) {
    expect(markdown).toContain(heading);
  }
  expect(markdown).toMatch(/\*\*Execution Time\*\*: \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC - \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a run with nothing signed yet has no log to download: 404 with a clear message', async ({ page }) => {
  await signIn(page, 'viewer');
  const answer = await page.request.get(`/runs/${unsigned}/log.json`);
  expect(answer.status()).toBe(404);
  expect(await answer.text()).toContain('has no signed log yet');
  await page.goto(`/runs/${unsigned}/report`);
  await expect(page.locator('[data-signature="unsigned"]')).toContainText('Not signed yet');
  await expect(page.getByRole('link', { name: 'Download signed log' })).toHaveCount(0);
  expect((await page.request.get('/runs/00000000-0000-0000-0000-000000000000/report')).status()).toBe(404);
});

test('a 10,000-event run renders its report with a windowed event list, paged from the server', async ({ page }) => {
  await signIn(page, 'viewer');
  // The first HTML carries one page of events, never the whole log.
  const html = await (await page.request.get(`/runs/${long}/report`)).text();
  expect((html.match(/data-event-row=/g) ?? []).length).toBeLessThanOrEqual(200);

  const pages: string[] = [];
  page.on('request', (request) => {
    if (request.url().includes('/events.json')) pages.push(request.url());
  });
  await page.goto(`/runs/${long}/report`);
  const events = page.getByRole('region', { name: /Run events, 10000 in all/ });
  await expect(events).toBeVisible();
  await expect(page.getByText('10,000 events, hash-chained')).toBeVisible();
  expect(await page.locator('[data-event-row]').count()).toBeLessThanOrEqual(300);

  // Scroll to the middle: the rows there are fetched and drawn, and the DOM stays small.
  await events.evaluate((element) => {
    element.scrollTop = 5_000 * 32;
  });
  await expect(page.locator('[data-event-row="5001"]')).toContainText('systemprogress');
  await expect(page.locator('[data-event-row="5001"]')).toContainText('"done":4999000');
  expect(await page.locator('[data-event-row]').count()).toBeLessThanOrEqual(300);
  expect(pages.some((url) => /afterSeq=4[89]\d\d/.test(url) || /afterSeq=5000/.test(url))).toBe(true);

  // Jump to the last event.
  await page.getByLabel('Go to event').fill('10000');
  await page.getByRole('button', { name: 'Go', exact: true }).click();
  await expect(page.locator('[data-event-row="10000"]')).toContainText('phase.completed');
  await expect(page.getByRole('region', { name: 'Event 10000', exact: true })).toContainText('"phase": "apply"');
  expect(await page.locator('[data-event-row]').count()).toBeLessThanOrEqual(300);
});

test('the history filters by kind, state and person, sorts by duration, and pages on the server, all in the URL', async ({ page }) => {
  await signIn(page, 'viewer');
  await page.goto('/runs');
  await page.getByLabel('Kind').selectOption('rehearsal');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/[?&]kind=rehearsal/);
  const rows = page.locator('tbody tr');
  await expect(rows.first()).toBeVisible();
  for (const kind of await rows.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-kind')))) expect(kind).toBe('rehearsal');
  await expect(page.getByRole('table').getByRole('link', { name: `Report of run ${rehearsed.slice(0, 8)}` })).toBeVisible();

  // A shared link with the state in it reproduces the same page.
  await page.goto(`/runs?state=failed&person=${encodeURIComponent(demoAccount('engineer').email)}`);
  await expect(page.getByRole('table').getByRole('link', { name: `Report of run ${failed.slice(0, 8)}` })).toBeVisible();
  await expect(page.getByRole('table').getByRole('link', { name: `Report of run ${applied.slice(0, 8)}` })).toHaveCount(0);

  // Sorting by a column header is a link: it works without JavaScript and says its order.
  await page.goto('/runs');
  await page
    .getByRole('columnheader', { name: /Duration/ })
    .getByRole('link')
    .click();
  await expect(page).toHaveURL(/sort=duration/);
  await expect(page.getByRole('columnheader', { name: /Duration/ })).toHaveAttribute('aria-sort', 'descending');
  await expect(page.getByRole('row').nth(1)).toContainText(long.slice(0, 8));

  await page.goto('/runs?size=25&page=999');
  await expect(page.getByText('No runs on page 999.')).toBeVisible();
});
