/**
 * `runsheet users …`: manage accounts from the command line. Each change is audited with the
 * actor "cli:<os user>" (whoever can run this already holds the store's credentials).
 */
import os from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createAccount, listAccounts, setAccountDisabled, setAccountRole, unlockSignIn, type Actor } from '../../app/accounts/accounts.server';
import { generatePassword } from '../../app/accounts/password.server';
import { ROLES, isRole, type Role } from '../../app/accounts/permissions';
import type { Runtime } from '../../app/boot/runtime.server';
import type { CliCommand, CliIo } from '../command';
import { CliError, EXIT, usageError } from '../exit-codes';
import { oneLine } from '../terminal-text';

export function cliActor(): Actor {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = process.env.USER ?? 'unknown';
  }
  return { name: `cli:${user}` };
}

export function needRuntime(runtime: Runtime | undefined): Runtime {
  if (!runtime) throw new CliError('runsheet users needs the store, which did not start.', EXIT.unavailable);
  return runtime;
}

export function parseRole(value: string | undefined): Role {
  if (!isRole(value)) throw usageError(`--role must be one of ${ROLES.join(', ')}${value ? ` (got "${value}")` : ''}.`);
  return value;
}

export function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, positionals: number, usage: string) {
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw usageError(`${error instanceof Error ? error.message : String(error)}\nUsage: npx runsheet ${usage}`);
  }
  if (parsed.positionals.length !== positionals) throw usageError(`Usage: npx runsheet ${usage}`);
  return parsed;
}

/** The first line of standard input, without its line ending; '' when nothing was piped. */
async function passwordFromStdin(io: CliIo): Promise<string> {
  const input = await io.readStdin();
  return input.split(/\r?\n/)[0] ?? '';
}

const ADD_USAGE = 'users add EMAIL --role viewer|tpm|engineer|admin [--name NAME]  (password on stdin, or generated)';

const usersAdd: CliCommand = {
  name: 'users add',
  summary: 'Add an account; the password is read from stdin, or generated and printed once',
  usage: ADD_USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { role: { type: 'string' }, name: { type: 'string' } }, 1, ADD_USAGE);
    const role = parseRole(values.role as string | undefined);
    const piped = await passwordFromStdin(io);
    const password = piped || generatePassword();
    const account = await createAccount(needRuntime(runtime).store.db, { email: positionals[0]!, name: values.name as string | undefined, role, password, actor: cliActor() });
    io.out(`Added ${account.email} (${account.role}).`);
    if (!piped) io.out(`Password (shown once): ${password}`);
    return EXIT.ok;
  },
};

const usersList: CliCommand = {
  name: 'users list',
  summary: 'List accounts: e-mail, role, status, last sign-in',
  usage: 'users list [--json]',
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { values } = parse(args, { json: { type: 'boolean' } }, 0, 'users list [--json]');
    const accounts = await listAccounts(needRuntime(runtime).store.db);
    if (values.json) {
      io.out(JSON.stringify(accounts.map(({ email, name, role, disabled, hasPassword, lastSignInAt }) => ({ email, name, role, disabled, hasPassword, lastSignInAt })), null, 2));
      return EXIT.ok;
    }
    if (accounts.length === 0) {
      io.out('No accounts.');
      return EXIT.ok;
    }
    const width = Math.max(5, ...accounts.map((account) => oneLine(account.email).length));
    io.out(`${'EMAIL'.padEnd(width)}  ROLE      STATUS    LAST SIGN-IN          NAME`);
    for (const account of accounts) {
      const last = account.lastSignInAt ? account.lastSignInAt.toISOString().replace('T', ' ').slice(0, 19) : 'never';
      // One line per account, whatever its name holds.
      io.out(`${oneLine(account.email).padEnd(width)}  ${account.role.padEnd(8)}  ${(account.disabled ? 'disabled' : 'active').padEnd(8)}  ${last.padEnd(20)}  ${oneLine(account.name)}`);
    }
    return EXIT.ok;
  },
};

const SET_ROLE_USAGE = 'users set-role EMAIL ROLE';

const usersSetRole: CliCommand = {
  name: 'users set-role',
  summary: "Change an account's role (takes effect on its next request)",
  usage: SET_ROLE_USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { positionals } = parse(args, {}, 2, SET_ROLE_USAGE);
    const role = parseRole(positionals[1]);
    const account = await setAccountRole(needRuntime(runtime).store.db, { email: positionals[0]!, role, actor: cliActor() });
    io.out(`${account.email} is now ${account.role}.`);
    return EXIT.ok;
  },
};

function toggle(disabled: boolean): CliCommand {
  const verb = disabled ? 'disable' : 'enable';
  const usage = `users ${verb} EMAIL`;
  return {
    name: `users ${verb}`,
    summary: disabled ? 'Disable an account and end its sessions at once' : 'Enable a disabled account',
    usage,
    needsRuntime: true,
    async run(args, { io, runtime }) {
      const { positionals } = parse(args, {}, 1, usage);
      const account = await setAccountDisabled(needRuntime(runtime).store.db, { email: positionals[0]!, disabled, actor: cliActor() });
      io.out(`${account.email} is ${disabled ? 'disabled; its sessions have ended' : 'enabled'}.`);
      return EXIT.ok;
    },
  };
}

const UNLOCK_USAGE = 'users unlock EMAIL';

const usersUnlock: CliCommand = {
  name: 'users unlock',
  summary: 'Lift the sign-in locks of an account (its failed passwords from every address are forgotten)',
  usage: UNLOCK_USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { positionals } = parse(args, {}, 1, UNLOCK_USAGE);
    const { account, cleared } = await unlockSignIn(needRuntime(runtime).store.db, { email: positionals[0]!, actor: cliActor() });
    io.out(
      cleared > 0
        ? `${account.email} may sign in again: failures from ${cleared} address${cleared === 1 ? '' : 'es'} forgotten.`
        : `${account.email} had no failed sign-ins to forget.`,
    );
    return EXIT.ok;
  },
};

export const usersCommands: CliCommand[] = [usersAdd, usersList, usersSetRole, toggle(true), toggle(false), usersUnlock];
