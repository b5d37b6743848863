/**
 * Issue "When a migration goes wrong at 2 am", reproductions 1 and 3 in the browser: another
 * session holds platform.users (BEGIN; LOCK TABLE … ACCESS EXCLUSIVE; then sleeps, as in psql).
 * The engineer executes; the live view says what the run waits for and who holds it; Cancel run
 * ends it, cancelled, while that session still holds its lock.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import pg from 'pg';
import { E2E_DATA_DIR } from '../../playwright.config';
import { signIn } from './support';

const CHECKLIST = '/plans/e2e-lock-wait?target=sandbox';

async function sandboxClient(applicationName: string): Promise<pg.Client> {
  const { port, password } = JSON.parse(fs.readFileSync(path.join(E2E_DATA_DIR, 'postgres.json'), 'utf8')) as { port: number; password: string };
  const client = new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/sandbox`, application_name: applicationName });
  await client.connect();
  return client;
}

test('the live view shows the lock a run waits for and who holds it, and Cancel run ends it while the lock is held', async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page, 'engineer');
  await page.goto(CHECKLIST);
  await page.getByRole('region', { name: 'Prerequisites' }).getByRole('button', { name: /^Tick: / }).click();
  await expect(page.getByText(/^Ticked by engineer@/)).toBeVisible();

  const holder = await sandboxClient('psql');
  const probe = await sandboxClient('e2e-probe');
  const holderPid = Number((await holder.query('select pg_backend_pid() as pid')).rows[0].pid);
  const holds = async () =>
    (await probe.query(`select exists (select 1 from pg_locks where pid = $1 and granted and mode = 'AccessExclusiveLock' and relation = 'platform.users'::regclass) as held`, [holderPid])).rows[0]
      .held as boolean;
  await holder.query('begin');
  await holder.query('lock table platform.users in access exclusive mode');
  const sleeping = holder.query('select pg_sleep(60)').catch(() => undefined);
  try {
    await page.getByRole('button', { name: 'Execute', exact: true }).click();
    await expect(page).toHaveURL(/\/runs\/[0-9a-f-]{36}$/);

    const waits = page.getByRole('alert', { name: 'Lock waits' });
    await expect(waits).toContainText(`waiting for a lock held by pid ${holderPid} (application psql`, { timeout: 30_000 });
    await expect(waits).toContainText('lock_timeout (1 min 0 s) fires in');
    const heldBy = waits.getByRole('table', { name: 'Held by' });
    await expect(heldBy).toContainText('AccessExclusiveLock on platform.users');
    await expect(heldBy).toContainText('select pg_sleep(60)');
    expect(await holds()).toBe(true);

    await page.getByRole('button', { name: 'Cancel run' }).click();
    await expect(page.getByRole('status', { name: 'Run state' })).toHaveText(/Cancelled/, { timeout: 30_000 });
    expect(await holds(), 'the run ended while the other session still held its lock').toBe(true);
    await expect(page.getByRole('region', { name: 'Final state' })).toContainText('Cancelled by engineer@');
    await expect(page.getByRole('listitem', { name: 'Phase Apply' })).toHaveCount(0);
  } finally {
    await probe.query('select pg_cancel_backend($1)', [holderPid]);
    await sleeping;
    await holder.query('rollback').catch(() => undefined);
    await holder.end();
    await probe.end();
  }
});
