import { data, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from '@remix-run/node';
import { Form, isRouteErrorResponse, useActionData, useLoaderData, useNavigation, useRouteError } from '@remix-run/react';
import { DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS } from '../accounts/api-token-format';
import { requireStateChange, requireUser, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { NewTokenSecret, TokensTable } from '../components/api-tokens';
import { loadOwnTokens, parseTokenIntent, performTokenIntent, type TokenIntentResult } from '../web/tokens-page.server';
import { ActionResultBanner } from '../components/action-result-banner';

export const meta: MetaFunction = () => [{ title: 'API tokens · Runsheet' }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requireUser(request, context);
  return { user: pageViewerOf(user), tokens: await loadOwnTokens(context.runtime.store.db, user) };
}

/** Anyone signed in creates and revokes their own tokens; service accounts' are on the admin's accounts page. */
export async function action({ request, context }: ActionFunctionArgs) {
  const user = await requireStateChange(request, context, 'signed-in');
  const parsed = parseTokenIntent(await request.formData());
  if ('error' in parsed) return data<TokenIntentResult>({ ok: false, error: parsed.error, status: 400 }, { status: 400 });
  if (parsed.intent.intent !== 'create-token' && parsed.intent.intent !== 'revoke-token') {
    return data<TokenIntentResult>({ ok: false, error: 'Service accounts and their tokens are managed on the Accounts page (admins).', status: 403 }, { status: 403 });
  }
  const result = await performTokenIntent(context.runtime.store.db, { user, ip: context.clientAddress, intent: parsed.intent });
  return data(result, { status: result.ok ? 200 : result.status });
}

const input = 'mt-1 block w-full rounded border border-slate-300 px-2 py-1 text-sm focus:border-blue-600';
const label = 'block text-xs font-medium text-slate-700';

export default function ApiTokensPage() {
  const { user, tokens } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const busy = useNavigation().state === 'submitting';
  return (
    <>
      <AppHeader user={user} />
      <main className="mx-auto max-w-7xl space-y-6 px-4 py-5">
        <div>
          <h1 className="text-lg font-semibold">API tokens</h1>
          <p className="text-xs text-ink-muted">
            A token lets a script or the command line (<code>RUNSHEET_URL</code> + <code>RUNSHEET_TOKEN</code>) act as you, with your role,
            through the API under <code>/api/v1</code>. Every action it takes is recorded as coming through the API with the token's id.
            Its secret is shown once; revoke a token you no longer use.
          </p>
        </div>
        {result ? (
          <ActionResultBanner result={result}>
            {result.ok && result.secret ? <NewTokenSecret secret={result.secret} /> : null}
          </ActionResultBanner>
        ) : null}
        <section aria-labelledby="create-token-heading" className="rounded border border-slate-200 bg-white p-4">
          <h2 id="create-token-heading" className="text-sm font-semibold">
            Create a token
          </h2>
          <Form method="post" className="mt-3 grid grid-cols-1 gap-3 sm:grid-cols-4 sm:items-end">
            <div className="sm:col-span-2">
              <label htmlFor="token-name" className={label}>
                What it is for
              </label>
              <input id="token-name" name="name" type="text" required maxLength={100} autoComplete="off" className={input} />
            </div>
            <div>
              <label htmlFor="token-days" className={label}>
                Days until it expires (1 to {MAX_TOKEN_DAYS})
              </label>
              <input id="token-days" name="days" type="number" min={1} max={MAX_TOKEN_DAYS} defaultValue={DEFAULT_TOKEN_DAYS} className={input} />
            </div>
            <button
              type="submit"
              name="intent"
              value="create-token"
              disabled={busy}
              className="rounded bg-slate-900 px-3 py-1.5 text-sm font-medium text-white hover:bg-slate-700 disabled:opacity-60"
            >
              Create token
            </button>
          </Form>
        </section>
        <section aria-labelledby="tokens-heading" className="overflow-x-auto rounded border border-slate-200 bg-white">
          <h2 id="tokens-heading" className="px-4 pt-3 text-sm font-semibold">
            Your tokens
          </h2>
          <TokensTable tokens={tokens} showAccount={false} busy={busy} caption="Your API tokens" />
        </section>
      </main>
    </>
  );
}

export function ErrorBoundary() {
  const error = useRouteError();
  const message = isRouteErrorResponse(error) ? `${error.status}: ${typeof error.data === 'string' ? error.data : error.statusText}` : 'Something went wrong.';
  return (
    <main className="mx-auto max-w-2xl p-8">
      <h1 className="text-lg font-semibold">API tokens</h1>
      <p role="alert" className="mt-2 whitespace-pre-wrap text-ink-muted">
        {message}
      </p>
    </main>
  );
}
