import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit } from '../audit/audit-log.server';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { createAccount, findAccount, listAccounts, setAccountDisabled, setAccountPassword, setAccountRole } from './accounts.server';
import { ensureDemoAccounts } from './demo-accounts.server';
import { verifyPassword } from './password.server';

describe('accounts (real store)', () => {
  let database: TestDatabase;
  let store: Store;
  const cli = { name: 'cli:tester' };

  beforeAll(async () => {
    database = await createTestDatabase('accounts');
    store = openStore(database.url);
    await migrateStore(store);
  });

  afterAll(async () => {
    await store?.close();
    await database?.drop();
  });

  it('creates an account with a lower-cased e-mail, refuses a duplicate, and audits', async () => {
    const account = await createAccount(store.db, { email: ' Alice@Example.COM ', name: 'Alice', role: 'tpm', password: 'alice password 1', actor: cli });
    expect(account).toMatchObject({ email: 'alice@example.com', role: 'tpm', disabled: false, hasPassword: true });
    expect(account).not.toHaveProperty('passwordHash');
    await expect(createAccount(store.db, { email: 'alice@example.com', role: 'viewer', actor: cli })).rejects.toMatchObject({ kind: 'conflict' });
    await expect(createAccount(store.db, { email: 'not-an-email', role: 'viewer', actor: cli })).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(createAccount(store.db, { email: 'short@example.com', role: 'viewer', password: 'short', actor: cli })).rejects.toMatchObject({ kind: 'invalid_input' });
    const [entry] = await listAudit(store.db, { about: 'alice@example.com' });
    expect(entry).toMatchObject({ actor: 'cli:tester', action: 'account.create', subject: 'alice@example.com', outcome: 'ok' });
  });

  it('changes roles and disables, auditing who changed whom; an admin cannot change their own account', async () => {
    const admin = await createAccount(store.db, { email: 'root@example.com', role: 'admin', actor: cli });
    const actor = { name: admin.email, role: admin.role, accountId: admin.id, ip: '10.0.0.1' };
    await setAccountRole(store.db, { email: 'alice@example.com', role: 'engineer', actor });
    expect((await findAccount(store.db, { email: 'alice@example.com' }))?.role).toBe('engineer');
    await expect(setAccountRole(store.db, { email: 'root@example.com', role: 'engineer', actor })).rejects.toMatchObject({ kind: 'permission' });
    await expect(setAccountDisabled(store.db, { email: 'root@example.com', disabled: true, actor })).rejects.toMatchObject({ kind: 'permission' });
    await expect(setAccountRole(store.db, { email: 'ghost@example.com', role: 'tpm', actor })).rejects.toMatchObject({ kind: 'not_found' });
    await setAccountDisabled(store.db, { email: 'alice@example.com', disabled: true, actor });
    const audit = await listAudit(store.db, { about: 'alice@example.com' });
    expect(audit.slice(0, 2).map((entry) => [entry.actor, entry.action, entry.detail, entry.ip])).toEqual([
      ['root@example.com', 'account.disable', { sessionsEnded: 0 }, '10.0.0.1'],
      ['root@example.com', 'account.set-role', { from: 'tpm', to: 'engineer' }, '10.0.0.1'],
    ]);
    expect(audit[0]!.at).toBeInstanceOf(Date);
  });

  it('sets a new password', async () => {
    await setAccountPassword(store.db, { email: 'alice@example.com', password: 'a brand new password', actor: cli });
    const { rows } = await store.pool.query("select password_hash from accounts where email = 'alice@example.com'");
    expect(await verifyPassword('a brand new password', rows[0].password_hash)).toBe(true);
  });

  it('keeps the audit log append-only in PostgreSQL itself', async () => {
    await expect(store.pool.query("update audit_log set actor = 'someone else'")).rejects.toThrow(/append-only: UPDATE/);
    await expect(store.pool.query('delete from audit_log')).rejects.toThrow(/append-only: DELETE/);
    await expect(store.pool.query('truncate audit_log')).rejects.toThrow(/append-only: TRUNCATE/);
    await expect(store.pool.query("insert into accounts (email, role) values ('Upper@Example.com', 'viewer')")).rejects.toThrow(/accounts_email_lower/);
    await expect(store.pool.query("insert into accounts (email, role) values ('x@example.com', 'root')")).rejects.toThrow(/accounts_role_known/);
  });

  it('creates the four demo accounts once, keeps their passwords across starts in a 0600 file, and restores a changed one', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-demo-'));
    const first = await ensureDemoAccounts(store, dataDir);
    expect(first.map((demo) => [demo.email, demo.role])).toEqual([
      ['viewer@runsheet.local', 'viewer'],
      ['tpm@runsheet.local', 'tpm'],
      ['engineer@runsheet.local', 'engineer'],
      ['admin@runsheet.local', 'admin'],
    ]);
    const file = path.join(dataDir, 'demo-accounts.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const second = await ensureDemoAccounts(store, dataDir);
    expect(second).toEqual(first);
    await setAccountPassword(store.db, { email: 'tpm@runsheet.local', password: 'changed by someone', actor: cli });
    await setAccountRole(store.db, { email: 'viewer@runsheet.local', role: 'tpm', actor: cli });
    const third = await ensureDemoAccounts(store, dataDir);
    expect(third.find((demo) => demo.email === 'viewer@runsheet.local')?.role).toBe('tpm');
    const { rows } = await store.pool.query("select password_hash from accounts where email = 'tpm@runsheet.local'");
    expect(await verifyPassword(first[1]!.password, rows[0].password_hash)).toBe(true);
    expect((await listAccounts(store.db)).filter((account) => account.email.endsWith('@runsheet.local'))).toHaveLength(4);
  });
});
