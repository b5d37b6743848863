import { describe, expect, it } from 'vitest';
import { SCRYPT_PARAMS, generatePassword, hashPassword, needsRehash, passwordProblem, verifyPassword } from './password.server';

describe('password hashing (scrypt)', () => {
  it('stores the KDF, its parameters and a per-password salt in the hash', async () => {
    const [a, b] = await Promise.all([hashPassword('correct horse battery'), hashPassword('correct horse battery')]);
    expect(a).toMatch(new RegExp(`^scrypt\\$${SCRYPT_PARAMS.N}\\$8\\$1\\$[A-Za-z0-9_-]{22}\\$[A-Za-z0-9_-]{43}$`));
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('correct horse batterY', a)).toBe(false);
  });

  it('verifies with the parameters written in the hash, and asks to rehash weaker ones', async () => {
    const weak = await hashPassword('old password here', { N: 2 ** 14, r: 8, p: 1 });
    expect(await verifyPassword('old password here', weak)).toBe(true);
    expect(needsRehash(weak)).toBe(true);
    expect(needsRehash(await hashPassword('new password here'))).toBe(false);
  });

  it('refuses malformed or hostile hashes without running scrypt on them', async () => {
    expect(await verifyPassword('x', 'plaintext')).toBe(false);
    expect(await verifyPassword('x', 'scrypt$3$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).toBe(false);
    expect(await verifyPassword('x', `scrypt$${2 ** 30}$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`)).toBe(false);
  });

  it('generates strong passwords and refuses short ones', () => {
    const password = generatePassword();
    expect(password).toMatch(/^[a-zA-Z2-9]{20}$/);
    expect(generatePassword()).not.toBe(password);
    expect(passwordProblem('short')).toMatch(/at least 12/);
    expect(passwordProblem('long enough password')).toBeUndefined();
  });
});
