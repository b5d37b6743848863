import { data, redirect, type ActionFunctionArgs } from '@remix-run/node';
import { z } from 'zod';
import { recordAudit } from '../audit/audit-log.server';
import { requireStateChange } from '../auth/require.server';
import { destroySession } from '../auth/session.server';

/** Signing out is a POST (a link could be followed by anyone's page); a GET just goes home. */
export async function loader() {
  return redirect('/');
}

// A POST with no form at all (curl -X POST, a script) means signing out too: only a form that names another intent is refused.
const LogoutFormSchema = z.object({ intent: z.literal('logout').default('logout') });

export async function action({ request, context }: ActionFunctionArgs) {
  const user = await requireStateChange(request, context, 'signed-in');
  const form = await request.formData().catch(() => new FormData());
  const parsed = LogoutFormSchema.safeParse(Object.fromEntries(form));
  if (!parsed.success) return data({ error: 'Unknown intent.' }, { status: 400 });
  const setCookie = await destroySession(context.runtime, request);
  await recordAudit(context.runtime.store.db, {
    actor: user.email,
    actorRole: user.role,
    action: 'sign-out',
    subject: user.email,
    outcome: 'ok',
    ip: context.clientAddress,
  });
  // 303: the browser follows with a GET, whatever the form's method.
  return redirect('/login', { status: 303, headers: { 'Set-Cookie': setCookie } });
}
