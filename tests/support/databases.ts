/** Fresh databases on the test server, one per use, dropped afterwards. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { databaseUrl } from '../../app/runtime/embedded-postgres.server';

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export function testAdminUrl(): string {
  return inject('adminUrl');
}

/** A database on the run's shared test server, or on the server of `adminUrl` (a test's own). */
export async function createTestDatabase(prefix = 'test', adminUrl = testAdminUrl()): Promise<TestDatabase> {
  const name = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: databaseUrl(adminUrl, name),
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
