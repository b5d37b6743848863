/** `npx runsheet users …` through the command registry, on a real store. */
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../cli/commands/index';
import type { CliIo } from '../../cli/command';
import { EXIT } from '../../cli/exit-codes';
import { runCommand } from '../../cli/main';
import { listAudit } from '../../app/audit/audit-log.server';
import { findAccount } from '../../app/accounts/accounts.server';
import { verifyPassword } from '../../app/accounts/password.server';
import type { Runtime } from '../../app/boot/runtime.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { makeSecrets, openRuntime, serverEnv, sessionCookieFor } from './auth-harness';
import { readSession } from '../../app/auth/session.server';
import { checkThrottle, recordFailedSignIn } from '../../app/auth/throttle.server';
import { createAccount } from '../../app/accounts/accounts.server';

describe('runsheet users', () => {
  let database: TestDatabase;
  let runtime: Runtime;

  beforeAll(async () => {
    database = await createTestDatabase('cli_users');
    runtime = await openRuntime(serverEnv(database.url, makeSecrets(), 3000));
  });

  afterAll(async () => {
    await runtime?.stop();
    await database?.drop();
  });

  async function cli(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const io: CliIo = { out: (text) => void (out += `${text}\n`), err: (text) => void (err += `${text}\n`), readStdin: async () => stdin };
    const command = commands
      .filter((candidate) => candidate.name.split(' ').every((word, index) => argv[index] === word))
      .sort((a, b) => b.name.length - a.name.length)[0];
    if (!command) throw new Error(`no command for ${argv.join(' ')}`);
    const code = await runCommand(command, argv.slice(command.name.split(' ').length), { io, runtime });
    return { code, out, err };
  }

  it('adds an account with the password from stdin, audited as cli:<os user>', async () => {
    const result = await cli(['users', 'add', 'Dana@Example.com', '--role', 'tpm', '--name', 'Dana'], 'dana password 123\n');
    expect(result).toMatchObject({ code: EXIT.ok });
    expect(result.out).not.toContain('dana password 123');
    const row = await runtime.store.pool.query("select name, role, password_hash from accounts where email = 'dana@example.com'");
    expect(row.rows[0]).toMatchObject({ name: 'Dana', role: 'tpm' });
    expect(await verifyPassword('dana password 123', row.rows[0].password_hash)).toBe(true);
    const [entry] = await listAudit(runtime.store.db, { about: 'dana@example.com' });
    expect(entry).toMatchObject({ actor: `cli:${os.userInfo().username}`, action: 'account.create' });
  });

  it('generates and prints a password once when stdin is empty', async () => {
    const result = await cli(['users', 'add', 'eve@example.com', '--role', 'viewer']);
    expect(result.code).toBe(EXIT.ok);
    const printed = /Password \(shown once\): (\S+)/.exec(result.out)?.[1];
    expect(printed).toMatch(/^[a-zA-Z2-9]{20}$/);
    const row = await runtime.store.pool.query("select password_hash from accounts where email = 'eve@example.com'");
    expect(await verifyPassword(printed!, row.rows[0].password_hash)).toBe(true);
  });

  it('answers bad usage and bad input with exit code 2', async () => {
    expect((await cli(['users', 'add', 'x@example.com', '--role', 'root'])).code).toBe(EXIT.usage);
    expect((await cli(['users', 'add', 'x@example.com'])).code).toBe(EXIT.usage);
    expect((await cli(['users', 'add', 'dana@example.com', '--role', 'tpm'])).code).toBe(EXIT.usage);
    expect((await cli(['users', 'set-role', 'ghost@example.com', 'tpm'])).code).toBe(EXIT.usage);
    expect((await cli(['users', 'disable'])).code).toBe(EXIT.usage);
  });

  it('lists, sets roles, disables (ending sessions) and enables', async () => {
    expect((await cli(['users', 'set-role', 'dana@example.com', 'engineer'])).code).toBe(EXIT.ok);
    expect((await findAccount(runtime.store.db, { email: 'dana@example.com' }))?.role).toBe('engineer');
    const cookie = await sessionCookieFor(runtime, 'dana@example.com', 'engineer');
    const request = () => new Request('http://localhost/', { headers: { Cookie: cookie } });
    expect(await readSession(runtime, request())).toMatchObject({ email: 'dana@example.com', role: 'engineer' });
    expect((await cli(['users', 'disable', 'dana@example.com'])).code).toBe(EXIT.ok);
    expect(await readSession(runtime, request())).toBeUndefined();
    const list = await cli(['users', 'list']);
    expect(list.out).toMatch(/dana@example\.com\s+engineer\s+disabled/);
    expect((await cli(['users', 'enable', 'dana@example.com'])).code).toBe(EXIT.ok);
    const json = JSON.parse((await cli(['users', 'list', '--json'])).out) as { email: string; disabled: boolean }[];
    expect(json.find((account) => account.email === 'dana@example.com')?.disabled).toBe(false);
  });
  it('unlocks an account locked out by failed sign-ins from another address, audited as cli:<os user> (issue 11, reproduction 6)', async () => {
    await createAccount(runtime.store.db, { email: 'locked@example.com', role: 'engineer', password: 'locked password 123', actor: { name: 'test' } });
    for (let failure = 0; failure < 10; failure++) await recordFailedSignIn(runtime.store.db, { email: 'locked@example.com', ip: '203.0.113.9' });
    expect(await checkThrottle(runtime.store.db, { email: 'locked@example.com', ip: '203.0.113.9' })).toMatchObject({ allowed: false, locked: true });
    const result = await cli(['users', 'unlock', 'Locked@Example.com']);
    expect(result).toMatchObject({ code: EXIT.ok, err: '' });
    expect(result.out).toContain('locked@example.com may sign in again');
    // The address's own slow-down (ten failures across accounts) is not the account's to lift: wait it out.
    await runtime.store.pool.query("update login_attempts set last_failure_at = now() - interval '61 seconds' where scope = 'address'");
    expect(await checkThrottle(runtime.store.db, { email: 'locked@example.com', ip: '203.0.113.9' })).toEqual({ allowed: true });
    const [entry] = await listAudit(runtime.store.db, { about: 'locked@example.com' });
    expect(entry).toMatchObject({ actor: `cli:${os.userInfo().username}`, action: 'account.unlock', outcome: 'ok' });
    expect((await cli(['users', 'unlock', 'nobody@example.com'])).code).toBe(EXIT.usage);
    expect((await cli(['users', 'unlock'])).code).toBe(EXIT.usage);
  });

  it('prints account names with their control characters escaped, never raw (issue 11, reproduction 10)', async () => {
    const name = '\u001b[2J\u001b[31mMallory\u0007\rroot@example.com  admin\u009b1m\nforged@example.com  admin     active    never';
    await createAccount(runtime.store.db, { email: 'mallory@example.com', role: 'viewer', name, actor: { name: 'test' } });
    const list = await cli(['users', 'list']);
    expect(list.code).toBe(EXIT.ok);
    // No control character reaches the terminal except the line ends the table itself writes.
    expect(list.out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(list.out).toContain('\\x1b[2J\\x1b[31mMallory\\x07\\rroot@example.com  admin\\u009b1m\\nforged@example.com');
    const lines = list.out.trimEnd().split('\n');
    // The JSON stays JSON, and says the name as it is.
    const accounts = JSON.parse((await cli(['users', 'list', '--json'])).out) as { email: string; name: string }[];
    expect(accounts.find((account) => account.email === 'mallory@example.com')?.name).toBe(name.trim());
    expect(lines).toHaveLength(1 + accounts.length);
    expect(lines.filter((line) => line.startsWith('forged@'))).toEqual([]);
  });
});
