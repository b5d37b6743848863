/**
 * Targets: the named PostgreSQL databases a plan runs against (target-registry.server.ts builds
 * them once), and how Runsheet connects to one.
 */
import pg from 'pg';
import type { TargetRules } from '../runtime/target-config';
import { quietPoolErrors } from '../runtime/quiet-pool.server';

export interface Target {
  name: string;
  label: string;
  url: string;
  /** The URL with its password masked, for pages and logs. */
  displayUrl: string;
  rules: TargetRules;
  apiUrl?: string;
  apiToken?: string;
  /** Why the API has no address although it should have one (embedded sandbox, no running server): its http checks fail with this. */
  apiProblem?: string;
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
  return quietPoolErrors(new pg.Pool(targetPoolConfig(url, options)));
}
