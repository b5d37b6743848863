import { data, redirect, type ActionFunctionArgs, type HeadersFunction, type LoaderFunctionArgs, type MetaFunction } from '@remix-run/node';
import { Form, useActionData, useLoaderData, useNavigation } from '@remix-run/react';
import { z } from 'zod';
import { homePathFor } from '../accounts/permissions';
import { optionalUser, requireSameOrigin, safeRedirectPath } from '../auth/require.server';
import { signInWithPassword } from '../auth/sign-in.server';

export const meta: MetaFunction = () => [{ title: 'Sign in · Runsheet' }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const redirectTo = safeRedirectPath(new URL(request.url).searchParams.get('redirectTo'), '');
  const user = await optionalUser(request, context);
  if (user) throw redirect(redirectTo || homePathFor(user.role));
  return { redirectTo };
}

const LoginFormSchema = z.object({
  intent: z.literal('login'),
  email: z.string().trim().min(1, 'Enter your e-mail.').max(254),
  password: z.string().min(1, 'Enter your password.').max(1024),
  redirectTo: z.string().max(2048).optional(),
});

export async function action({ request, context }: ActionFunctionArgs) {
  // Public, but a sign-in form posted from another site (login CSRF) is refused all the same.
  await requireSameOrigin(request, context);
  const form = Object.fromEntries(await request.formData());
  const email = typeof form.email === 'string' ? form.email.slice(0, 254) : '';
  const parsed = LoginFormSchema.safeParse(form);
  if (!parsed.success) {
    return data({ error: parsed.error.issues[0]?.message ?? 'Enter your e-mail and password.', email }, { status: 400 });
  }
  const result = await signInWithPassword(context.runtime, request, {
    email: parsed.data.email,
    password: parsed.data.password,
    ip: context.clientAddress,
  });
  if (!result.ok) {
    const headers: HeadersInit = result.retryAfterSeconds ? { 'Retry-After': String(result.retryAfterSeconds) } : {};
    return data({ error: result.message, email }, { status: result.status, headers });
  }
  const to = safeRedirectPath(parsed.data.redirectTo, '') || homePathFor(result.account.role);
  throw redirect(to, { headers: { 'Set-Cookie': result.setCookie } });
}

/** A document response takes the action's headers only through this export (single fetch). */
export const headers: HeadersFunction = ({ actionHeaders }) => {
  const retryAfter = actionHeaders.get('Retry-After');
  return retryAfter ? { 'Retry-After': retryAfter } : new Headers();
};

export default function LoginPage() {
  const { redirectTo } = useLoaderData<typeof loader>();
  const actionData = useActionData<typeof action>();
  const navigation = useNavigation();
  const busy = navigation.state !== 'idle' && navigation.formAction === '/login';
  return (
    <main className="flex min-h-screen items-center justify-center bg-slate-100 px-4">
      <div className="w-full max-w-sm rounded-md border border-slate-200 bg-white p-6 shadow-sm">
        <h1 className="text-lg font-semibold">Sign in to Runsheet</h1>
        <p className="mt-1 text-xs text-ink-muted">Migration runbooks as auditable checklists.</p>
        <Form method="post" className="mt-5 space-y-4" noValidate>
          <input type="hidden" name="redirectTo" value={redirectTo} />
          <div>
            <label htmlFor="login-email" className="block text-xs font-medium text-slate-700">
              E-mail
            </label>
            <input
              id="login-email"
              name="email"
              type="email"
              autoComplete="username"
              required
              autoFocus
              defaultValue={actionData?.email}
              aria-invalid={actionData?.error ? true : undefined}
              aria-describedby={actionData?.error ? 'login-error' : undefined}
              className="mt-1 block w-full rounded border border-slate-300 px-2 py-1.5 text-sm focus:border-blue-600"
            />
          </div>
          <div>
            <label htmlFor="login-password" className="block text-xs font-medium text-slate-700">
              Password
            </label>
            <input
              id="login-password"
              name="password"
              type="password"
              autoComplete="current-password"
              required
              aria-invalid={actionData?.error ? true : undefined}
              aria-describedby={actionData?.error ? 'login-error' : undefined}
              className="mt-1 block w-full rounded border border-slate-300 px-2 py-1.5 text-sm focus:border-blue-600"
            />
          </div>
          {actionData?.error ? (
            <p id="login-error" role="alert" className="rounded border border-red-200 bg-red-50 px-2 py-1.5 text-xs text-red-800">
              {actionData.error}
            </p>
          ) : null}
          <button
            type="submit"
            name="intent"
            value="login"
            disabled={busy}
            className="w-full rounded bg-slate-900 px-3 py-1.5 text-sm font-medium text-white hover:bg-slate-700 disabled:opacity-60"
          >
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </Form>
      </div>
    </main>
  );
}
