import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit } from '../audit/audit-log.server';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { createAccount, createServiceAccount, setAccountDisabled, setAccountPassword, setAccountRole } from './accounts.server';
import { parseApiToken } from './api-token-format';
import { authenticateApiToken, createApiToken, listApiTokens, revokeApiToken, tokenStatus } from './api-tokens.server';

describe('API tokens and service accounts (real store)', () => {
  let database: TestDatabase;
  let store: Store;
  const cli = { name: 'cli:tester' };

  beforeAll(async () => {
    database = await createTestDatabase('api_tokens');
    store = openStore(database.url);
    await migrateStore(store);
  });

  afterAll(async () => {
    await store?.close();
    await database?.drop();
  });

  const asActor = (account: { email: string; role: 'viewer' | 'tpm' | 'engineer' | 'admin'; id: string }) => ({ name: account.email, role: account.role, accountId: account.id, ip: '10.0.0.9' });

  it('a person creates their own token: shown once as rs_<id>_<secret>, stored as a hash, 90 days by default, audited', async () => {
    const tpm = await createAccount(store.db, { email: 'tpm@tokens.test', role: 'tpm', actor: cli });
    const { token, info } = await createApiToken(store.db, { account: tpm.email, name: 'laptop', actor: asActor(tpm) });
    const parsed = parseApiToken(token)!;
    expect(parsed.id).toBe(info.id);
    expect(Buffer.from(parsed.secret, 'base64url')).toHaveLength(32);
    expect(info).not.toHaveProperty('secretHash');
    const { rows } = await store.pool.query('select secret_hash, expires_at - created_at as life from api_tokens where id = $1', [info.id]);
    expect(rows[0].secret_hash).toBe(createHash('sha256').update(parsed.secret).digest('hex'));
    expect(JSON.stringify(rows)).not.toContain(parsed.secret);
    expect(rows[0].life).toMatchObject({ days: 90 });
    const [entry] = await listAudit(store.db, { about: tpm.email });
    expect(entry).toMatchObject({ actor: tpm.email, action: 'token.create', outcome: 'ok', ip: '10.0.0.9', detail: { tokenId: info.id, name: 'laptop' } });
    expect(JSON.stringify(await listAudit(store.db, {}))).not.toContain(parsed.secret);
  });

  it('expiry is 1 to 365 days; nobody mints a personal token for someone else', async () => {
    const engineer = await createAccount(store.db, { email: 'eng@tokens.test', role: 'engineer', actor: cli });
    const admin = await createAccount(store.db, { email: 'admin@tokens.test', role: 'admin', actor: cli });
    await expect(createApiToken(store.db, { account: engineer.email, name: 'x', expiresInDays: 366, actor: asActor(engineer) })).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(createApiToken(store.db, { account: engineer.email, name: 'x', expiresInDays: 0, actor: asActor(engineer) })).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(createApiToken(store.db, { account: engineer.email, name: '  ', actor: asActor(engineer) })).rejects.toMatchObject({ kind: 'invalid_input' });
    const { info } = await createApiToken(store.db, { account: engineer.email, name: 'year', expiresInDays: 365, actor: asActor(engineer) });
    expect(Math.round((info.expiresAt.getTime() - info.createdAt.getTime()) / 86_400_000)).toBe(365);
    await expect(createApiToken(store.db, { account: engineer.email, name: 'x', actor: asActor(admin) })).rejects.toMatchObject({ kind: 'permission' });
    await expect(createApiToken(store.db, { account: engineer.email, name: 'x', actor: cli })).rejects.toMatchObject({ kind: 'permission' });
  });

  it('a token authenticates as its account, records its use, and audits the first use from each address', async () => {
    const viewer = await createAccount(store.db, { email: 'viewer@tokens.test', role: 'viewer', actor: cli });
    const { token, info } = await createApiToken(store.db, { account: viewer.email, name: 'ci', actor: asActor(viewer) });
    const first = await authenticateApiToken(store.db, { token, ip: '192.0.2.1' });
    expect(first).toEqual({ ok: true, caller: expect.objectContaining({ tokenId: info.id, email: viewer.email, role: 'viewer', kind: 'person' }) });
    await authenticateApiToken(store.db, { token, ip: '192.0.2.1' });
    await authenticateApiToken(store.db, { token, ip: '192.0.2.2' });
    const uses = (await listAudit(store.db, { about: viewer.email })).filter((entry) => entry.action === 'token.new-address');
    expect(uses.map((entry) => entry.ip).sort()).toEqual(['192.0.2.1', '192.0.2.2']);
    const [listed] = await listApiTokens(store.db, { accountId: viewer.id });
    expect(listed).toMatchObject({ id: info.id, lastUsedIp: '192.0.2.2' });
    expect(listed!.lastUsedAt).toBeInstanceOf(Date);
    // A role change applies at the next request.
    await setAccountRole(store.db, { email: viewer.email, role: 'tpm', actor: cli });
    expect(await authenticateApiToken(store.db, { token, ip: '192.0.2.2' })).toMatchObject({ ok: true, caller: { role: 'tpm' } });
  });

  it('refuses a wrong secret, a revoked token, an expired token and a disabled account', async () => {
    const person = await createAccount(store.db, { email: 'person@tokens.test', role: 'engineer', actor: cli });
    const other = await createAccount(store.db, { email: 'other@tokens.test', role: 'engineer', actor: cli });
    const admin = await createAccount(store.db, { email: 'admin2@tokens.test', role: 'admin', actor: cli });
    const { token, info } = await createApiToken(store.db, { account: person.email, name: 'a', actor: asActor(person) });
    const parsed = parseApiToken(token)!;
    expect(await authenticateApiToken(store.db, { token: `rs_${parsed.id}_${'A'.repeat(43)}`, ip: '1.1.1.1' })).toMatchObject({ ok: false, reason: 'the token is not a valid Runsheet API token' });
    expect(await authenticateApiToken(store.db, { token: 'garbage', ip: '1.1.1.1' })).toMatchObject({ ok: false });

    await expect(revokeApiToken(store.db, { tokenId: info.id, actor: asActor(other) })).rejects.toMatchObject({ kind: 'permission' });
    expect(await revokeApiToken(store.db, { tokenId: info.id, actor: asActor(person) })).toMatchObject({ revoked: true });
    expect(await revokeApiToken(store.db, { tokenId: info.id, actor: asActor(admin) })).toMatchObject({ revoked: false });
    expect(await authenticateApiToken(store.db, { token, ip: '1.1.1.1' })).toMatchObject({ ok: false, reason: `token ${info.id} was revoked` });
    const [revoked] = await listApiTokens(store.db, { accountId: person.id });
    expect(tokenStatus(revoked!)).toBe('revoked');
    expect((await listAudit(store.db, { about: person.email }))[0]).toMatchObject({ action: 'token.revoke', actor: person.email, detail: { tokenId: info.id } });

    const second = await createApiToken(store.db, { account: person.email, name: 'b', actor: asActor(person) });
    await store.pool.query("update api_tokens set created_at = now() - interval '2 days', expires_at = now() - interval '1 second' where id = $1", [second.info.id]);
    expect(await authenticateApiToken(store.db, { token: second.token, ip: '1.1.1.1' })).toMatchObject({ ok: false, reason: expect.stringMatching(/expired/) });

    const third = await createApiToken(store.db, { account: person.email, name: 'c', actor: asActor(person) });
    expect(await revokeApiToken(store.db, { tokenId: third.info.id, actor: asActor(admin) })).toMatchObject({ revoked: true });
    const fourth = await createApiToken(store.db, { account: person.email, name: 'd', actor: asActor(person) });
    await setAccountDisabled(store.db, { email: person.email, disabled: true, actor: cli });
    expect(await authenticateApiToken(store.db, { token: fourth.token, ip: '1.1.1.1' })).toMatchObject({ ok: false, reason: expect.stringMatching(/disabled/) });
  });

  it('service accounts: made by an admin, one non-admin role, no password; only admins give them tokens', async () => {
    const admin = await createAccount(store.db, { email: 'admin3@tokens.test', role: 'admin', actor: cli });
    const engineer = await createAccount(store.db, { email: 'eng3@tokens.test', role: 'engineer', actor: cli });
    const service = await createServiceAccount(store.db, { name: 'ci-staging', role: 'engineer', actor: asActor(admin) });
    expect(service).toMatchObject({ email: 'ci-staging@service.invalid', role: 'engineer', hasPassword: false });
    await expect(createServiceAccount(store.db, { name: 'ci-root', role: 'admin', actor: asActor(admin) })).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(createServiceAccount(store.db, { name: 'Not A Name!', role: 'viewer', actor: asActor(admin) })).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(createServiceAccount(store.db, { name: 'ci-staging', role: 'viewer', actor: asActor(admin) })).rejects.toMatchObject({ kind: 'conflict' });
    await expect(createAccount(store.db, { email: 'sneaky@service.invalid', role: 'viewer', actor: cli })).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(setAccountPassword(store.db, { email: service.email, password: 'a long enough password', actor: cli })).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(setAccountRole(store.db, { email: service.email, role: 'admin', actor: asActor(admin) })).rejects.toMatchObject({ kind: 'invalid_input' });
    // The store says so too, whoever writes.
    await expect(store.pool.query("update accounts set role = 'admin' where email = 'ci-staging@service.invalid'")).rejects.toThrow(/accounts_service_no_password_no_admin/);

    await expect(createApiToken(store.db, { account: service.email, name: 'gha', actor: asActor(engineer) })).rejects.toMatchObject({ kind: 'permission' });
    const { token } = await createApiToken(store.db, { account: service.email, name: 'gha', actor: asActor(admin) });
    expect(await authenticateApiToken(store.db, { token, ip: '1.1.1.1' })).toMatchObject({ ok: true, caller: { kind: 'service', role: 'engineer', email: service.email } });
    const all = await listApiTokens(store.db);
    expect(all.some((entry) => entry.accountEmail === service.email && entry.accountKind === 'service')).toBe(true);
    expect((await listAudit(store.db, { about: service.email })).map((entry) => entry.action)).toEqual(expect.arrayContaining(['service-account.create', 'token.create']));
  });
});
