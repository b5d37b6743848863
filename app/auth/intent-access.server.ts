/**
 * The guard of an action whose form intents need different permissions (the plan page: a TPM
 * may tick but not execute). What each intent needs is read from ROUTE_ACCESS, the same table the
 * route-matrix test checks, so the guard and the table cannot disagree.
 *
 * The form is parsed once, here, and handed to the action: the guard and the action must judge
 * the same intent. Who is asking is settled first, from the Origin and the session cookie, before
 * a byte of the body is read (an anonymous 200 MiB post is refused unread); then the form is read
 * (within the route's body limit, server/remix-handler.ts) and its intent judged. A body with no
 * intent, several intents, or one the table does not list is refused and nothing runs.
 */
import type { AppLoadContext } from '@remix-run/node';
import { ROUTE_ACCESS, isPermission } from '../accounts/permissions';
import { requireRole, requireStateChange, type SignedInUser } from './require.server';

export async function requireIntentPermission(
  request: Request,
  context: AppLoadContext,
  routeId: string,
): Promise<{ user: SignedInUser; intent: string; form: FormData }> {
  const user = await requireStateChange(request, context, 'signed-in');
  const form = await request.formData().catch(() => undefined);
  const intents = form?.getAll('intent') ?? [];
  const intent = intents.length === 1 && typeof intents[0] === 'string' ? intents[0] : undefined;
  const needed = intent === undefined ? undefined : ROUTE_ACCESS[routeId]?.actions?.[intent];
  if (!form || !intent || !isPermission(needed)) {
    // Someone who may not even read this page hears that first (403, audited), not what is wrong with the form.
    await requireRole(request, context, user, 'view', intent ?? null);
    const problem = !form
      ? 'the request body is not a form'
      : intents.length === 0
        ? 'the form names no intent'
        : intents.length > 1
          ? 'the form names more than one intent'
          : `"${String(intents[0])}" is not an action of this page`;
    throw Response.json({ ok: false, error: `Refused: ${problem}.` }, { status: 400 });
  }
  await requireRole(request, context, user, needed, intent);
  return { user, intent, form };
}
