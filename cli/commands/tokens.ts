/**
 * `runsheet service-accounts …` and `runsheet tokens …`: pipelines' identities and their API
 * tokens, from the machine that holds the store (docs/decisions/028, 029). A person creates their
 * own tokens on the accounts page (nobody mints a token to act as someone else); this command line
 * manages service accounts' tokens and revokes any token. Audited as "cli:<os user>".
 */
import { createServiceAccount, listAccounts } from '../../app/accounts/accounts.server';
import { DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, serviceAccountEmail } from '../../app/accounts/api-token-format';
import { createApiToken, listApiTokens, revokeApiToken, tokenStatus } from '../../app/accounts/api-tokens.server';
import type { CliCommand } from '../command';
import { EXIT, usageError } from '../exit-codes';
import { cliActor, needRuntime, parse, parseRole } from './users';

const iso = (date: Date | null) => (date ? date.toISOString().replace('T', ' ').slice(0, 19) : '—');

const SERVICE_ADD_USAGE = 'service-accounts add NAME --role viewer|tpm|engineer [--description TEXT]';
const serviceAccountsAdd: CliCommand = {
  name: 'service-accounts add',
  summary: "Add a service account (a pipeline's identity: one role, no password, API tokens only)",
  usage: SERVICE_ADD_USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { role: { type: 'string' }, description: { type: 'string' } }, 1, SERVICE_ADD_USAGE);
    const account = await createServiceAccount(needRuntime(runtime).store.db, {
      name: positionals[0]!,
      role: parseRole(values.role as string | undefined),
      description: values.description as string | undefined,
      actor: cliActor(),
    });
    io.out(`Added service account ${account.email} (${account.role}). Give it a token: npx runsheet tokens create ${positionals[0]} --name NAME`);
    return EXIT.ok;
  },
};

const serviceAccountsList: CliCommand = {
  name: 'service-accounts list',
  summary: 'List service accounts',
  usage: 'service-accounts list',
  needsRuntime: true,
  async run(args, { io, runtime }) {
    parse(args, {}, 0, 'service-accounts list');
    const services = (await listAccounts(needRuntime(runtime).store.db)).filter((account) => account.kind === 'service');
    if (services.length === 0) io.out('No service accounts.');
    for (const account of services) io.out(`${account.email}  ${account.role.padEnd(8)}  ${account.disabled ? 'disabled' : 'active'}  ${account.name}`);
    return EXIT.ok;
  },
};

const CREATE_USAGE = `tokens create SERVICE-ACCOUNT --name NAME [--days 1-${MAX_TOKEN_DAYS}, default ${DEFAULT_TOKEN_DAYS}]`;
const tokensCreate: CliCommand = {
  name: 'tokens create',
  summary: "Create an API token for a service account; the token is printed once (a person creates theirs on the accounts page)",
  usage: CREATE_USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { name: { type: 'string' }, days: { type: 'string' } }, 1, CREATE_USAGE);
    if (typeof values.name !== 'string' || values.name.trim() === '') throw usageError(`--name is required (what the token is for).\nUsage: npx runsheet ${CREATE_USAGE}`);
    const daysText = values.days as string | undefined;
    if (daysText !== undefined && !/^\d+$/.test(daysText)) throw usageError(`--days is a number of days (1 to ${MAX_TOKEN_DAYS}), not "${daysText}".`);
    const name = positionals[0]!;
    const { token, info } = await createApiToken(needRuntime(runtime).store.db, {
      account: name.includes('@') ? name : serviceAccountEmail(name),
      name: values.name,
      expiresInDays: daysText === undefined ? undefined : Number(daysText),
      actor: cliActor(),
    });
    io.out(`Token ${info.id} for ${info.accountEmail}, expires ${iso(info.expiresAt)} UTC.`);
    io.out(`Token (shown once; store it as a secret, e.g. RUNSHEET_TOKEN): ${token}`);
    return EXIT.ok;
  },
};

const tokensList: CliCommand = {
  name: 'tokens list',
  summary: "List every API token's metadata (never a secret): account, name, status, expiry, last use",
  usage: 'tokens list [--json]',
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { values } = parse(args, { json: { type: 'boolean' } }, 0, 'tokens list [--json]');
    const tokens = await listApiTokens(needRuntime(runtime).store.db);
    if (values.json) {
      io.out(JSON.stringify(tokens.map((token) => ({ ...token, status: tokenStatus(token) })), null, 2));
      return EXIT.ok;
    }
    if (tokens.length === 0) io.out('No API tokens.');
    for (const token of tokens) {
      io.out(`${token.id}  ${tokenStatus(token).padEnd(7)}  ${token.accountEmail}  "${token.name}"  expires ${iso(token.expiresAt)}  last used ${iso(token.lastUsedAt)}${token.lastUsedIp ? ` from ${token.lastUsedIp}` : ''}`);
    }
    return EXIT.ok;
  },
};

const tokensRevoke: CliCommand = {
  name: 'tokens revoke',
  summary: 'Revoke an API token at once (its next request is refused)',
  usage: 'tokens revoke TOKEN-ID',
  needsRuntime: true,
  async run(args, { io, runtime }) {
    const { positionals } = parse(args, {}, 1, 'tokens revoke TOKEN-ID');
    const { info, revoked } = await revokeApiToken(needRuntime(runtime).store.db, { tokenId: positionals[0]!, actor: cliActor() });
    io.out(revoked ? `Revoked token ${info.id} of ${info.accountEmail}.` : `Token ${info.id} was already revoked.`);
    return EXIT.ok;
  },
};

export const tokenCommands: CliCommand[] = [serviceAccountsAdd, serviceAccountsList, tokensCreate, tokensList, tokensRevoke];
