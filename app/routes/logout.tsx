import { data, redirect, type ActionFunctionArgs } from '@remix-run/node';
import { z } from 'zod';
import { recordAudit } from '../audit/audit-log.server';
import { requireStateChange } from '../auth/require.server';
import { destroySession } from '../auth/session.server';

/** Signing out is a POST (a link could be followed by anyone's page); a GET just goes home. */
export async function loader() {
  return redirect('/');
}

const LogoutFormSchema = z.object({ intent: z.literal('logout') });

export async function action({ request, context }: ActionFunctionArgs) {
  const user = await requireStateChange(request, context, 'signed-in');
  const parsed = LogoutFormSchema.safeParse(Object.fromEntries(await request.formData()));
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
  return redirect('/login', { headers: { 'Set-Cookie': setCookie } });
}
