/**
 * The targets of this process, built once at start-up from the environment (TARGET_<NAME>_URL,
 * parsed by env.server) and the committed rules (runsheet.config.ts), then passed to whoever needs
 * them. Nothing reads the environment for a target after this, and nothing writes to it: embedded
 * mode hands its own sandbox in as a default instead.
 */
import type pg from 'pg';
import { RunsheetError } from '../runtime/errors';
import { DEFAULT_TARGET_RULES, type RunsheetConfig, type TargetRules } from '../runtime/target-config';
import { maskPassword, openTargetPool, type Target } from './targets.server';

export interface TargetAddress {
  url: string;
  apiUrl?: string;
  apiToken?: string;
  /** Why the target's API has no address although its http checks need one (they then fail with this, never guess). */
  apiProblem?: string;
}

export interface TargetRegistry {
  /** Every target, sandbox first and production last (the order a change travels). */
  list(): Target[];
  find(name: string): Target | undefined;
  /** The target, or the one "unknown target" error. */
  get(name: string): Target;
  /** A small shared pool per target (checks, facts, cancel; never the apply), opened on first use. */
  pool(name: string): pg.Pool;
  /** Closes every pool opened so far. */
  close(): Promise<void>;
}

export function unknownTargetError(name: string, known: readonly string[]): RunsheetError {
  return new RunsheetError(
    'not_found',
    `Unknown target "${name}": set TARGET_${name.toUpperCase()}_URL${known.length > 0 ? ` (the targets here: ${known.join(', ')})` : ''}.`,
  );
}

export interface TargetRegistryInput {
  /** From the environment, by target name. */
  addresses: ReadonlyMap<string, TargetAddress>;
  /** Addresses used where the environment names none (embedded mode's sandbox); the environment wins. */
  defaults?: ReadonlyMap<string, TargetAddress>;
  config: Pick<RunsheetConfig, 'targets'>;
  /** Explicit rules per target, over the config's (tests). */
  rules?: ReadonlyMap<string, TargetRules>;
  poolSize?: number;
}

export function createTargetRegistry(input: TargetRegistryInput): TargetRegistry {
  const merged = new Map<string, TargetAddress>();
  for (const [name, address] of input.defaults ?? []) merged.set(name, address);
  for (const [name, address] of input.addresses) {
    const fallback = merged.get(name);
    const apiUrl = address.apiUrl ?? fallback?.apiUrl;
    merged.set(name, { url: address.url, apiUrl, apiToken: address.apiToken ?? fallback?.apiToken, ...(apiUrl === undefined && fallback?.apiProblem ? { apiProblem: fallback.apiProblem } : {}) });
  }
  const targets = [...merged.entries()]
    .map(([name, address]): Target => {
      const rules = input.rules?.get(name) ?? input.config.targets[name] ?? DEFAULT_TARGET_RULES;
      return { name, label: rules.label ?? name, url: address.url, displayUrl: maskPassword(address.url), rules, apiUrl: address.apiUrl, apiToken: address.apiToken, ...(address.apiProblem ? { apiProblem: address.apiProblem } : {}) };
    })
    .sort((a, b) => travelOrder(a) - travelOrder(b) || a.name.localeCompare(b.name));
  const byName = new Map(targets.map((target) => [target.name, target]));
  const pools = new Map<string, pg.Pool>();

  const get = (name: string): Target => {
    const target = byName.get(name);
    if (!target) throw unknownTargetError(name, [...byName.keys()]);
    return target;
  };
  return {
    list: () => [...targets],
    find: (name) => byName.get(name),
    get,
    pool: (name) => {
      let pool = pools.get(name);
      if (!pool) {
        pool = openTargetPool(get(name).url, { max: input.poolSize ?? 4, applicationName: 'runsheet' });
        pools.set(name, pool);
      }
      return pool;
    },
    close: async () => {
      const open = [...pools.values()];
      pools.clear();
      await Promise.all(open.map((pool) => pool.end().catch(() => {})));
    },
  };
}

/** Sandbox first, production last. */
function travelOrder(target: Target): number {
  if (target.rules.sandbox) return 0;
  if (target.rules.require_applied_on.length > 0 || target.rules.require_watched_on.length > 0) return 2;
  return 1;
}
