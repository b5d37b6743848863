/**
 * One real embedded PostgreSQL for the whole Vitest run, under .data/test (never the dashboard's
 * .data). Test files make their own databases on it (tests/support/databases.ts).
 */
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../app/runtime/embedded-postgres.server';

let handle: EmbeddedPostgresHandle | undefined;

export async function setup(project: TestProject): Promise<void> {
  const dataDir = path.resolve(process.env.RUNSHEET_TEST_DATA_DIR ?? '.data/test');
  handle = await ensureEmbeddedPostgres(dataDir, (line) => console.log(line));
  project.provide('adminUrl', handle.adminUrl);
}

export async function teardown(): Promise<void> {
  await handle?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
  }
}
