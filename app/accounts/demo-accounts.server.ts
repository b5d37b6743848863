/**
 * Embedded (demo) mode only: one account per role (tpm@runsheet.local, …) so the dashboard can be
 * tried at once. Their passwords are generated once and kept in <dataDir>/demo-accounts.json
 * (mode 0600), so they stay the same across restarts; the web server prints them at every start.
 * With DATABASE_URL set, none of this runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Store } from '../runtime/store.server';
import { createAccount, findAccountForSignIn, setAccountPassword } from './accounts.server';
import { generatePassword, verifyPassword } from './password.server';
import { ROLES, isRole, type Role } from './permissions';
import { isRunsheetError } from '../runtime/errors';

export interface DemoAccount {
  email: string;
  role: Role;
  password: string;
  /** On file only: the hash the account had when last checked (skips re-verifying). */
  passwordHash?: string;
}

const DEMO_ACTOR = { name: 'system:demo-accounts' };

function demoFile(dataDir: string): string {
  return path.join(dataDir, 'demo-accounts.json');
}

function readDemoFile(file: string): DemoAccount[] | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as DemoAccount[];
    const complete = ROLES.every((role) => parsed.some((account) => account.role === role && account.email && account.password));
    return complete && parsed.every((account) => isRole(account.role)) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The demo credentials, generated on first use; a process starting at the same moment reads the winner's file. */
function demoCredentials(dataDir: string): DemoAccount[] {
  const file = demoFile(dataDir);
  const existing = readDemoFile(file);
  if (existing) return existing;
  const fresh: DemoAccount[] = ROLES.map((role) => ({ email: `${role}@runsheet.local`, role, password: generatePassword() }));
  fs.mkdirSync(dataDir, { recursive: true });
  try {
    fs.writeFileSync(file, JSON.stringify(fresh, null, 2), { mode: 0o600, flag: 'wx' });
    return fresh;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const written = readDemoFile(file);
    if (written) return written;
    // An unreadable or incomplete file: replace it (its accounts get the new passwords below).
    fs.writeFileSync(file, JSON.stringify(fresh, null, 2), { mode: 0o600 });
    return fresh;
  }
}

/**
 * Makes sure every demo account exists and signs in with the password on file. An account an
 * admin disabled or gave another role stays as the admin left it; only its password is restored.
 * The file also records each account's password hash, so a start where nothing changed costs no
 * scrypt at all (each costs ~128 MiB and a few hundred ms; they run one at a time).
 */
export async function ensureDemoAccounts(store: Store, dataDir: string): Promise<DemoAccount[]> {
  const file = demoFile(dataDir);
  const credentials = demoCredentials(dataDir);
  let changed = false;
  const result: DemoAccount[] = [];
  const current: DemoAccount[] = [];
  for (const demo of credentials) {
    let row = await findAccountForSignIn(store.db, { email: demo.email });
    if (!row) {
      try {
        await createAccount(store.db, { email: demo.email, name: `Demo ${demo.role}`, role: demo.role, password: demo.password, actor: DEMO_ACTOR });
      } catch (error) {
        if (!isRunsheetError(error, 'conflict')) throw error;
      }
      row = await findAccountForSignIn(store.db, { email: demo.email });
    } else if (row.passwordHash !== demo.passwordHash && !(row.passwordHash && (await verifyPassword(demo.password, row.passwordHash)))) {
      await setAccountPassword(store.db, { email: demo.email, password: demo.password, actor: DEMO_ACTOR });
      row = await findAccountForSignIn(store.db, { email: demo.email });
    }
    if (row?.passwordHash && row.passwordHash !== demo.passwordHash) changed = true;
    result.push({ ...demo, passwordHash: row?.passwordHash ?? undefined });
    // Print the role the account has now, which an admin may have changed.
    current.push({ email: demo.email, role: row?.role ?? demo.role, password: demo.password });
  }
  if (changed) fs.writeFileSync(file, JSON.stringify(result, null, 2), { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return current;
}
