/**
 * Targets: the named PostgreSQL databases a plan runs against. Their URLs come from the
 * environment (TARGET_<NAME>_URL), their rules from runsheet.config.ts.
 */
import pg from 'pg';
import runsheetConfig from '../../runsheet.config';
import { targetUrlsFromEnv } from '../runtime/env.server';
import { DEFAULT_TARGET_RULES, type TargetRules } from './target-config';

export interface Target {
  name: string;
  label: string;
  url: string;
  /** The URL with its password masked, for pages and logs. */
  displayUrl: string;
  rules: TargetRules;
  apiUrl?: string;
  apiToken?: string;
}

export function listTargets(source: NodeJS.ProcessEnv = process.env): Target[] {
  const urls = targetUrlsFromEnv(source);
  return [...urls.entries()]
    .map(([name, { url, apiUrl, apiToken }]) => {
      const rules = runsheetConfig.targets[name] ?? DEFAULT_TARGET_RULES;
      return { name, label: rules.label ?? name, url, displayUrl: maskPassword(url), rules, apiUrl, apiToken };
    })
    .sort((a, b) => targetOrder(a) - targetOrder(b) || a.name.localeCompare(b.name));
}

export function findTarget(name: string, source: NodeJS.ProcessEnv = process.env): Target | undefined {
  return listTargets(source).find((target) => target.name === name);
}

/** Sandbox first, production last: the order a change travels. */
function targetOrder(target: Target): number {
  if (target.rules.sandbox) return 0;
  if (target.rules.require_applied_on.length > 0) return 2;
  return 1;
}

export function maskPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '*****';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/**
 * Pool options for a target URL with libpq's meaning of sslmode: node-postgres alone reads
 * `sslmode=require` as full verification, which Railway- and Supabase-style URLs do not expect.
 */
export function targetPoolConfig(url: string, options: { max?: number; applicationName?: string } = {}): pg.PoolConfig {
  const parsed = new URL(url);
  if (parsed.searchParams.has('sslmode') && !parsed.searchParams.has('uselibpqcompat')) {
    parsed.searchParams.set('uselibpqcompat', 'true');
  }
  return {
    connectionString: parsed.toString(),
    max: options.max ?? 4,
    application_name: options.applicationName ?? 'runsheet',
    connectionTimeoutMillis: 5_000,
  };
}

export function openTargetPool(url: string, options: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool(targetPoolConfig(url, options));
  pool.on('error', () => {});
  return pool;
}
