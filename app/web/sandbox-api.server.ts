import type { AppLoadContext } from '@remix-run/node';
import type pg from 'pg';

/** The stand-in API exists only for a target marked `sandbox` in runsheet.config.ts. */
export function requireSandboxApiPool(context: AppLoadContext): pg.Pool {
  const sandbox = context.runtime.targets.find('sandbox');
  if (!sandbox?.rules.sandbox) {
    throw Response.json({ error: 'the sandbox stand-in API is served only when a sandbox target is configured' }, { status: 404 });
  }
  return context.runtime.targets.pool('sandbox');
}
