/**
 * The guard of an action whose form intents need different permissions (the plan page: a TPM
 * may tick but not execute). What each intent needs is read from ROUTE_ACCESS, the same table the
 * route-matrix test checks, so the guard and the table cannot disagree.
 */
import type { AppLoadContext } from '@remix-run/node';
import { ROUTE_ACCESS, isPermission, type Permission } from './permissions';
import { requirePermission, type SignedInUser } from './require.server';

/**
 * Reads the form's `intent` (from a copy of the body: the action reads the body itself later)
 * and calls requirePermission with what ROUTE_ACCESS says that intent needs. An intent the table
 * does not list needs `view`: the action then answers 400 for it.
 */
export async function requireIntentPermission(request: Request, context: AppLoadContext, routeId: string): Promise<{ user: SignedInUser; intent: string | null }> {
  const intent = await intentOf(request);
  const needed = intent === null ? undefined : ROUTE_ACCESS[routeId]?.actions?.[intent];
  const permission: Permission = isPermission(needed) ? needed : 'view';
  const user = await requirePermission(request, context, permission);
  return { user, intent };
}

async function intentOf(request: Request): Promise<string | null> {
  const type = request.headers.get('content-type') ?? '';
  if (!type.includes('application/x-www-form-urlencoded') && !type.includes('multipart/form-data')) return null;
  try {
    const value = (await request.clone().formData()).get('intent');
    return typeof value === 'string' ? value : null;
  } catch {
    return null;
  }
}
