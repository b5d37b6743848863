/**
 * Secrets never reach the browser: the built client bundle (build/client) holds none of the
 * secrets configured when it was built (canaries the build helper puts in the build's
 * environment), nor the demo secrets under .data, nor the test server's database password.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { testAdminUrl } from '../support/databases';
import { ROOT, ensureFreshBuild, pemBody, readBuildCanary } from './auth-harness';

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(full) : [full];
  });
}

function knownSecrets(): { name: string; value: string }[] {
  const secrets: { name: string; value: string }[] = [];
  const add = (name: string, value: string | undefined) => {
    if (value && value.length >= 8) secrets.push({ name, value });
  };
  const canary = readBuildCanary();
  add('SESSION_SECRET (build environment)', canary?.SESSION_SECRET);
  add('SIGNING_KEY body (build environment)', canary && pemBody(canary.SIGNING_KEY));
  add('DATABASE_URL (build environment)', canary?.DATABASE_URL);
  add('database password (build environment)', canary && new URL(canary.DATABASE_URL).password);
  for (const file of [path.join(ROOT, '.data', 'secrets.json')]) {
    if (!fs.existsSync(file)) continue;
    const demo = JSON.parse(fs.readFileSync(file, 'utf8')) as { sessionSecret?: string; signingKeyPem?: string };
    add('demo session secret (.data/secrets.json)', demo.sessionSecret);
    add('demo signing key body (.data/secrets.json)', demo.signingKeyPem && pemBody(demo.signingKeyPem));
  }
  add('embedded PostgreSQL password', new URL(testAdminUrl()).password);
  add('SESSION_SECRET (environment)', process.env.SESSION_SECRET);
  add('SIGNING_KEY body (environment)', process.env.SIGNING_KEY && pemBody(process.env.SIGNING_KEY));
  add('DATABASE_URL (environment)', process.env.DATABASE_URL);
  return secrets;
}

describe('the client bundle', () => {
  it('contains no configured secret, no private key and no database URL with a password', async () => {
    await ensureFreshBuild({ requireCanary: true });
    const clientDir = path.join(ROOT, 'build', 'client');
    const files = filesUnder(clientDir);
    expect(files.some((file) => file.endsWith('.js'))).toBe(true);
    const secrets = knownSecrets();
    expect(secrets.map((secret) => secret.name)).toContain('SESSION_SECRET (build environment)');
    const leaks: string[] = [];
    for (const file of files) {
      const text = fs.readFileSync(file, 'latin1');
      const where = path.relative(ROOT, file);
      for (const secret of secrets) if (text.includes(secret.value)) leaks.push(`${where}: ${secret.name}`);
      if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) leaks.push(`${where}: a PEM private key`);
      if (/postgres(?:ql)?:\/\/[^:/\s'"`]+:[^@\s'"`*]+@/.test(text)) leaks.push(`${where}: a postgres URL with a password`);
    }
    expect(leaks).toEqual([]);
  });
});
