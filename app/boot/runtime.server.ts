/**
 * The composition root: what a Runsheet process needs before it serves a request or runs a
 * command: the store (migrated), the targets (built once), the secrets. The web server and the
 * command line both start here, and hand what it returns to the engine and the domain.
 */
import { randomBytes, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import runsheetConfig from '../../runsheet.config';
import { notifyChannelsFromEnv, readEnv, targetUrlsFromEnv, type RunsheetEnv } from '../runtime/env.server';
import { buildNotificationChannels, type NotificationChannels } from '../notifications/channels.server';
import { databaseUrl, ensureEmbeddedPostgres, type EmbeddedPostgresHandle } from '../runtime/embedded-postgres.server';
import { applyStoreGrants, migrateStore, openStore, storeRoleOf, type Store } from '../runtime/store.server';
import { RunsheetError } from '../runtime/errors';
import { ensureEmbeddedStoreRoles } from '../runtime/store-roles.server';
import { generateSandbox } from '../sandbox/generate-sandbox.server';
import { readSandboxApiToken, writeSandboxApiTokens } from '../sandbox/sandbox-api-tokens.server';
import { ensureDemoAccounts, type DemoAccount } from '../accounts/demo-accounts.server';
import { createTargetRegistry, type TargetAddress, type TargetRegistry } from '../targets/target-registry.server';
import { ADVISORY_LOCKS } from '../runtime/advisory-locks';
import { SANDBOX_API_PATH, sandboxApiFromServerRecord } from './server-record.server';

export interface Runtime {
  env: RunsheetEnv;
  store: Store;
  plansDir: string;
  /** Set in embedded mode: the superuser URL of the embedded server. */
  embeddedAdminUrl?: string;
  sessionSecret: string;
  signingKeyPem: string;
  /** Embedded (demo) mode: the demo accounts and their passwords, for the web server to print. */
  demoAccounts?: DemoAccount[];
  /** The targets, built once from the environment and runsheet.config.ts. */
  targets: TargetRegistry;
  /** RUNSHEET_ANCHOR_URL, when set. */
  anchorWebhookUrl?: string;
  /** The notification channels (runsheet.config.ts and NOTIFY_<NAME>_URL / _SECRET; docs/decisions/033). */
  notificationChannels: NotificationChannels;
  stop(): Promise<void>;
}

export interface StartRuntimeOptions {
  log?: (line: string) => void;
  /** Users in a newly created sandbox (npm run sandbox:reset regenerates it at any size). */
  sandboxUsers?: number;
  source?: NodeJS.ProcessEnv;
  /**
   * This process is the web server: it serves the sandbox's API stand-in itself (on PORT), and in
   * embedded mode owns its PostgreSQL (taking over one left by a dead server). Any other process
   * connects to the running PostgreSQL and finds the stand-in through the server's record
   * (server-record.server.ts).
   */
  webServer?: boolean;
}

const STORE_DATABASE = 'runsheet';
const SANDBOX_DATABASE = 'sandbox';

export async function startRuntime(options: StartRuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? (() => {});
  const source = options.source ?? process.env;
  const env = readEnv(source);
  let embedded: EmbeddedPostgresHandle | undefined;
  let storeUrl: string;
  let ownerUrl: string | undefined;
  let sessionSecret: string;
  let signingKeyPem: string;
  let ownSandbox = false;
  const defaults = new Map<string, TargetAddress>();

  if (env.embedded) {
    embedded = await ensureEmbeddedPostgres(env.dataDir, log, { role: options.webServer ? 'server' : 'shared' });
    await ensureDatabases(embedded.adminUrl, [STORE_DATABASE, SANDBOX_DATABASE]);
    // The store as two roles: the owner migrates, the app may only append to the run log.
    const roles = await ensureEmbeddedStoreRoles(embedded.adminUrl, env.dataDir, STORE_DATABASE);
    storeUrl = roles.appUrl;
    ownerUrl = roles.ownerUrl;
    // The sandbox target is the embedded server's own database unless the environment names one;
    // its stand-in of the platform API is served by the web app itself.
    ownSandbox = !source.TARGET_SANDBOX_URL;
    defaults.set('sandbox', { url: databaseUrl(embedded.adminUrl, SANDBOX_DATABASE) });
    const secrets = embeddedSecrets(env.dataDir);
    sessionSecret = env.SESSION_SECRET ?? secrets.sessionSecret;
    signingKeyPem = env.SIGNING_KEY ?? secrets.signingKeyPem;
  } else {
    const missing = (['SESSION_SECRET', 'SIGNING_KEY'] as const).filter((name) => !env[name]);
    if (missing.length > 0) {
      throw new RunsheetError('configuration', 
        `DATABASE_URL is set, so Runsheet runs for real and will not invent secrets: set ${missing.join(' and ')}. ` +
          `SESSION_SECRET: 32+ random characters (openssl rand -base64 48). ` +
          `SIGNING_KEY: an Ed25519 private key in PKCS#8 PEM (openssl genpkey -algorithm ed25519).`,
      );
    }
    storeUrl = env.DATABASE_URL!;
    ownerUrl = env.DATABASE_OWNER_URL;
    sessionSecret = env.SESSION_SECRET!;
    signingKeyPem = env.SIGNING_KEY!;
  }

  const store = openStore(storeUrl);
  try {
    await prepareStore(store, ownerUrl, env);
  } catch (error) {
    await store.close();
    await embedded?.stop();
    if (error instanceof RunsheetError) throw error;
    throw new RunsheetError('configuration', `Could not apply Runsheet's store migrations to ${env.embedded ? 'the embedded store' : 'DATABASE_OWNER_URL'}: ${String(error)}`);
  }
  // Whoever owns the embedded server, its demo accounts exist; with DATABASE_URL there are none.
  const demoAccounts = env.embedded ? await ensureDemoAccounts(store, env.dataDir) : undefined;

  const sandbox = defaults.get('sandbox');
  if (embedded && ownSandbox && sandbox) {
    await seedSandboxIfEmpty(sandbox.url, env.dataDir, options.sandboxUsers ?? 10_000, log);
    // The stand-in serves the embedded sandbox only: a sandbox the environment names gets no address or token from here.
    if (source.TARGET_SANDBOX_API_URL) sandbox.apiUrl = source.TARGET_SANDBOX_API_URL;
    else if (options.webServer) sandbox.apiUrl = `http://localhost:${env.PORT}${SANDBOX_API_PATH}`;
    else {
      const address = await sandboxApiFromServerRecord(env.dataDir, signingKeyPem);
      if (address.ok) sandbox.apiUrl = address.apiUrl;
      else sandbox.apiProblem = address.problem;
    }
    sandbox.apiToken = source.TARGET_SANDBOX_API_TOKEN || readSandboxApiToken(env.dataDir);
  }
  const targets = createTargetRegistry({ addresses: targetUrlsFromEnv(source), defaults, config: runsheetConfig });
  // A channel without its address is a warning, never a failed start: its notifications wait in the outbox.
  // Only the web server delivers, so only it says so (the command line's output stays its own).
  const notificationChannels = buildNotificationChannels(runsheetConfig, notifyChannelsFromEnv(source));
  if (options.webServer) for (const warning of notificationChannels.warnings) log(warning);

  return {
    env,
    store,
    plansDir: env.plansDir,
    embeddedAdminUrl: embedded?.adminUrl,
    sessionSecret,
    signingKeyPem,
    ...(env.RUNSHEET_ANCHOR_URL ? { anchorWebhookUrl: env.RUNSHEET_ANCHOR_URL } : {}),
    demoAccounts,
    targets,
    notificationChannels,
    stop: async () => {
      await targets.close();
      await store.close().catch(() => {});
      await embedded?.stop();
    },
  };
}

/**
 * Migrations as the owner, then the app role's grants (db/store-grants.ts). The app role must be
 * neither a superuser nor the tables' owner (either could switch the log's protections off),
 * unless RUNSHEET_ALLOW_SUPERUSER=1, which also lets one such role migrate when no owner is given.
 */
async function prepareStore(store: Store, ownerUrl: string | undefined, env: RunsheetEnv): Promise<void> {
  const allowed = env.RUNSHEET_ALLOW_SUPERUSER === '1';
  const app = await storeRoleOf(store.pool);
  if (!ownerUrl) {
    if (!allowed || !app.superuser) {
      throw new RunsheetError(
        'configuration',
        'DATABASE_URL is set without DATABASE_OWNER_URL: Runsheet migrates its store as an owner role and connects as an app role that may only append to the run log ' +
          '(README, "Configuration"). Set DATABASE_OWNER_URL to the owner; or, for a throwaway set-up with one superuser, RUNSHEET_ALLOW_SUPERUSER=1.',
      );
    }
    await migrateStore(store);
    return;
  }
  const owner = openStore(ownerUrl, { max: 1 });
  try {
    const ownerRole = await storeRoleOf(owner.pool);
    if (ownerRole.name === app.name && !allowed) {
      throw new RunsheetError('configuration', `DATABASE_URL and DATABASE_OWNER_URL are the same role (${app.name}): the app role must be another one, without ownership of the tables.`);
    }
    await migrateStore(owner);
    if (ownerRole.name !== app.name) await applyStoreGrants(owner.pool, app.name);
  } finally {
    await owner.close();
  }
  const after = await storeRoleOf(store.pool);
  if ((after.superuser || after.ownsTables) && !allowed) {
    throw new RunsheetError(
      'configuration',
      `DATABASE_URL connects as ${after.name}, a ${after.superuser ? 'superuser' : "role that owns the store's tables"}: it could delete or rewrite the run log. ` +
        'Connect as a role with only the app\'s grants (README, "Configuration"), or set RUNSHEET_ALLOW_SUPERUSER=1 for a throwaway set-up.',
    );
  }
}

async function ensureDatabases(adminUrl: string, names: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    for (const name of names) {
      const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
      if (rowCount) continue;
      // Identifiers cannot be bound; these names are constants of this module, quoted anyway.
      await client.query(`create database ${pg.escapeIdentifier(name)}`).catch((error: { code?: string }) => {
        if (error.code !== '42P04') throw error; // created by a concurrent start
      });
    }
  } finally {
    await client.end();
  }
}

async function seedSandboxIfEmpty(url: string, dataDir: string, users: number, log: (line: string) => void): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Two processes starting at once must not both generate: serialise on an advisory lock.
    await client.query('select pg_advisory_lock($1)', [ADVISORY_LOCKS.sandboxSeed]);
    const { rows } = await client.query("select to_regclass('platform.users') is not null as present");
    if (rows[0]?.present) return;
    log(`Seeding the sandbox target with ${users.toLocaleString('en-US')} users…`);
    const result = await generateSandbox(client, { users });
    writeSandboxApiTokens(dataDir, result.apiTokens);
    log(`Sandbox ready: ${result.users} users, ${result.organizations} organizations, ${result.memberships} memberships in ${(result.durationMs / 1000).toFixed(1)} s.`);
  } finally {
    await client.end();
  }
}

interface EmbeddedSecrets {
  sessionSecret: string;
  signingKeyPem: string;
}

/** Embedded (demo) mode generates its secrets once and keeps them under the data folder. */
function embeddedSecrets(dataDir: string): EmbeddedSecrets {
  const file = path.join(dataDir, 'secrets.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as EmbeddedSecrets;
  } catch {
    const { privateKey } = generateKeyPairSync('ed25519');
    const secrets: EmbeddedSecrets = {
      sessionSecret: randomBytes(48).toString('base64url'),
      signingKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    };
    try {
      fs.writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600, flag: 'wx' });
      return secrets;
    } catch (error) {
      // Another process started at the same moment and wrote first: use its secrets.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return JSON.parse(fs.readFileSync(file, 'utf8')) as EmbeddedSecrets;
    }
  }
}
