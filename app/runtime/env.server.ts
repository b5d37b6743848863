/**
 * The process environment, parsed once. Everything Runsheet reads from the environment is listed
 * here; nothing else reads process.env for configuration.
 */
import path from 'node:path';
import { z } from 'zod';
import { fromRoot } from './paths.server';
import { RunsheetError } from './errors';
import { DurationSchema } from './duration';

/** How often a watch runner looks at its watches and refreshes its heartbeat (docs/decisions/030). */
export const WATCH_POLL_MS = 2_000;
/** A watch runner whose heartbeat is older than this has stopped: another process takes its watches over. */
export const WATCH_STALE_AFTER_MS = 30_000;

/** A size in bytes from "1MiB", "512 KiB" or bytes (parseByteSize); with `off`, "off" is 0. A wrong value says what to write. */
function ByteSizeSchema(fallback: string, whatToWrite: string, options: { off?: boolean } = {}) {
  return z
    .string()
    .default(fallback)
    .transform((value, context) => {
      if (options.off && value.trim().toLowerCase() === 'off') return 0;
      const bytes = parseByteSize(value);
      if (bytes === undefined) {
        context.addIssue({ code: 'custom', message: `"${value}" is not a size: ${whatToWrite}` });
        return z.NEVER;
      }
      return bytes;
    });
}

const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('production'),
  PORT: z.coerce.number().int().min(1).max(65535).default(3000),
  /** Runsheet's own store, as the app's role (docs/decisions/025). Unset: an embedded PostgreSQL under RUNSHEET_DATA_DIR. */
  DATABASE_URL: z.string().url().optional(),
  /** The store as its owner role: runs the migrations and grants the app role what it needs. Required with DATABASE_URL. */
  DATABASE_OWNER_URL: z.string().url().optional(),
  /** "1": let the app connect as a superuser or as the tables' owner (a test or a throwaway set-up; the run log is then not protected). */
  RUNSHEET_ALLOW_SUPERUSER: z.enum(['0', '1']).default('0'),
  /** Where the plans live (default: the checkout's plans/ folder). */
  RUNSHEET_PLANS_DIR: z.string().optional(),
  /** Where embedded mode keeps its PostgreSQL, secrets and keys. */
  RUNSHEET_DATA_DIR: z.string().default('.data'),
  SESSION_SECRET: z.string().min(32, 'SESSION_SECRET must be at least 32 characters').optional(),
  /** An Ed25519 private key, PKCS#8 PEM (see docs/decisions). */
  SIGNING_KEY: z.string().optional(),
  /** Comma-separated addresses of a trusted single-sign-on proxy; unset: proxy sign-in is off. */
  TRUSTED_PROXY_ADDRESSES: z.string().optional(),
  TRUSTED_PROXY_EMAIL_HEADER: z.string().default('x-forwarded-email'),
  /** The app's own origin, for the Origin check (default: http://localhost:PORT). */
  RUNSHEET_ORIGIN: z.string().url().optional(),
  /** Where each signed checkpoint is also POSTed (an anchor outside the store; optional, never blocks a run). */
  RUNSHEET_ANCHOR_URL: z.string().url().optional(),
  /** The largest request body a route reads, e.g. 1MiB, 512KiB or bytes (routes that take uploads set their own). */
  RUNSHEET_BODY_LIMIT: ByteSizeSchema('1MiB', 'write bytes (1048576) or a number with KiB, MiB or GiB (1MiB), at least 1KiB'),
  /** Notifications: the first retry's delay after a failed delivery (doubling after each, at most an hour); default 10s. */
  RUNSHEET_NOTIFY_RETRY_BASE: DurationSchema.default(10_000),
  /** Notifications: a delivery still failing this long after its event is given up (status failed); default 24h. */
  RUNSHEET_NOTIFY_GIVE_UP_AFTER: DurationSchema.default(24 * 3_600_000),
  /** How often the server's watch runner looks at its watches and sends its heartbeat, e.g. "2s". */
  RUNSHEET_WATCH_POLL: DurationSchema.default(WATCH_POLL_MS),
  /** How long a watch runner's heartbeat may be silent before another process takes its watches over, e.g. "30s". */
  RUNSHEET_WATCH_STALE_AFTER: DurationSchema.default(WATCH_STALE_AFTER_MS),
  /** Memory for rendered plan and report pages kept while nothing they show changed (docs/decisions/035), e.g. "64MiB"; "off" keeps none. */
  RUNSHEET_PAGE_CACHE: ByteSizeSchema('64MiB', 'write "off" or a number with KiB, MiB or GiB (64MiB)', { off: true }),
  /** How far the ages ("read 12 s ago") on a kept page may lag the clock before it is rendered again, e.g. "2s" (docs/decisions/035). */
  RUNSHEET_PAGE_AGE_STEP: DurationSchema.default(2_000),
  /** Strict-Transport-Security for deployments behind TLS, e.g. "max-age=31536000; includeSubDomains"; unset: not sent. */
  RUNSHEET_HSTS: z
    .string()
    .regex(/^max-age=\d+(\s*;\s*includeSubDomains)?(\s*;\s*preload)?$/i, 'must be "max-age=<seconds>", optionally followed by "; includeSubDomains" and "; preload"')
    .optional(),
});

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** "1MiB", "512 KiB", "1048576": bytes, or undefined when it is no size (or under 1 KiB, which no form fits in). */
export function parseByteSize(value: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) && bytes >= 1024 ? bytes : undefined;
}

export type RunsheetEnv = z.infer<typeof EnvSchema> & { dataDir: string; plansDir: string; embedded: boolean };

export function readEnv(source: NodeJS.ProcessEnv = process.env): RunsheetEnv {
  const parsed = EnvSchema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new RunsheetError('configuration', `The environment is not valid:\n${lines.join('\n')}`);
  }
  const env = parsed.data;
  if (env.RUNSHEET_WATCH_POLL < 100) throw new RunsheetError('configuration', `The environment is not valid:\n  RUNSHEET_WATCH_POLL: ${env.RUNSHEET_WATCH_POLL} ms is too often: write at least "100ms" (default "2s").`);
  if (env.RUNSHEET_WATCH_STALE_AFTER < 3 * env.RUNSHEET_WATCH_POLL) {
    throw new RunsheetError(
      'configuration',
      `The environment is not valid:\n  RUNSHEET_WATCH_STALE_AFTER: ${env.RUNSHEET_WATCH_STALE_AFTER} ms must be at least three times RUNSHEET_WATCH_POLL (${env.RUNSHEET_WATCH_POLL} ms), or a live runner is taken over between two heartbeats.`,
    );
  }
  return {
    ...env,
    dataDir: path.resolve(env.RUNSHEET_DATA_DIR),
    plansDir: env.RUNSHEET_PLANS_DIR ? path.resolve(env.RUNSHEET_PLANS_DIR) : fromRoot('plans'),
    embedded: !env.DATABASE_URL,
  };
}

/** Target names come from TARGET_<NAME>_URL; the name is NAME lower-cased. */
export function targetUrlsFromEnv(source: NodeJS.ProcessEnv = process.env): Map<string, { url: string; apiUrl?: string; apiToken?: string }> {
  const targets = new Map<string, { url: string; apiUrl?: string; apiToken?: string }>();
  for (const [key, value] of Object.entries(source)) {
    const match = /^TARGET_([A-Z0-9_]+?)_URL$/.exec(key);
    if (!match || !value || match[1]!.endsWith('_API')) continue;
    const upper = match[1]!;
    targets.set(upper.toLowerCase(), {
      url: value,
      apiUrl: source[`TARGET_${upper}_API_URL`] || undefined,
      apiToken: source[`TARGET_${upper}_API_TOKEN`] || undefined,
    });
  }
  return targets;
}

/** A notification channel's address and secret from NOTIFY_<NAME>_URL and NOTIFY_<NAME>_SECRET; the name is NAME lower-cased. */
export function notifyChannelsFromEnv(source: NodeJS.ProcessEnv = process.env): Map<string, { url?: string; secret?: string }> {
  const channels = new Map<string, { url?: string; secret?: string }>();
  for (const [key, value] of Object.entries(source)) {
    const match = /^NOTIFY_([A-Z0-9_]+?)_(URL|SECRET)$/.exec(key);
    if (!match || !value) continue;
    const name = match[1]!.toLowerCase();
    const entry = channels.get(name) ?? {};
    if (match[2] === 'URL') entry.url = value;
    else entry.secret = value;
    channels.set(name, entry);
  }
  return channels;
}
