/**
 * One real embedded PostgreSQL for the whole Vitest run, in a fresh folder under .data/test-runs
 * (never the dashboard's .data), removed afterwards: two test runs never share or stop each
 * other's server. Test files make their own databases on it (tests/support/databases.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../app/runtime/embedded-postgres.server';
import { ensureFreshBuild } from '../integration/auth-harness';

let handle: EmbeddedPostgresHandle | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  // Build once, before any worker starts: a test that rebuilt build/ mid-run would pull it from
  // under the servers other tests run from it. The build carries canary secrets for the bundle test.
  await ensureFreshBuild({ requireCanary: true });
  const parent = path.resolve('.data', 'test-runs');
  fs.mkdirSync(parent, { recursive: true });
  dataDir = fs.mkdtempSync(path.join(parent, 'run-'));
  handle = await ensureEmbeddedPostgres(dataDir, (line) => console.log(line));
  project.provide('adminUrl', handle.adminUrl);
}

export async function teardown(): Promise<void> {
  await handle?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
  }
}
