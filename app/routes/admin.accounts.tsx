import { data, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from '@remix-run/node';
import { Form, isRouteErrorResponse, useActionData, useLoaderData, useNavigation, useRouteError } from '@remix-run/react';
import { z } from 'zod';
import { listAudit } from '../audit/audit-log.server';
import { EmailSchema, createAccount, listAccounts, listSignInLocks, setAccountDisabled, setAccountPassword, setAccountRole, unlockSignIn, type Actor } from '../accounts/accounts.server';
import { generatePassword } from '../accounts/password.server';
import { MIN_PASSWORD_LENGTH } from '../accounts/password-policy';
import { ROLES, ROLE_LABELS, ROLE_PERMISSIONS } from '../accounts/permissions';
import { requirePermission, requireStateChange, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { refusalOf } from '../web/http-answers.server';
import { NewTokenSecret, TokensTable } from '../components/api-tokens';
import { DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS } from '../accounts/api-token-format';
import { loadAllTokens, parseTokenIntent, performTokenIntent } from '../web/tokens-page.server';
import { ActionResultBanner } from '../components/action-result-banner';

export const meta: MetaFunction = () => [{ title: 'Accounts · Runsheet' }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'manage-accounts');
  const db = context.runtime.store.db;
  const [accounts, audit, locks, tokens] = await Promise.all([listAccounts(db), listAudit(db, { limit: 50 }), listSignInLocks(db), loadAllTokens(db)]);
  const lockOf = new Map(locks.map((lock) => [lock.email, lock]));
  return {
    user: pageViewerOf(user),
    tokens: tokens.tokens,
    serviceAccounts: tokens.serviceAccounts,
    accounts: accounts.map((account) => ({
      id: account.id,
      email: account.email,
      name: account.name,
      role: account.role,
      kind: account.kind,
      disabled: account.disabled,
      hasPassword: account.hasPassword,
      lastSignInAt: account.lastSignInAt?.toISOString() ?? null,
      signInLock: lockOf.has(account.email)
        ? { addresses: lockOf.get(account.email)!.addresses, until: lockOf.get(account.email)!.lockedUntil.toISOString() }
        : null,
    })),
    audit: audit.map((entry) => ({
      id: entry.id,
      at: entry.at.toISOString(),
      actor: entry.actor,
      actorRole: entry.actorRole,
      action: entry.action,
      subject: entry.subject,
      outcome: entry.outcome,
      reason: entry.reason,
      ip: entry.ip,
    })),
  };
}

const RoleSchema = z.enum(ROLES, { error: 'Choose a role.' });
const OptionalPassword = z
  .string()
  .max(1024)
  .optional()
  .transform((value) => (value ? value : undefined));

const AccountFormSchema = z.discriminatedUnion('intent', [
  z.object({
    intent: z.literal('create'),
    email: EmailSchema,
    name: z.string().trim().max(200).default(''),
    role: RoleSchema,
    password: OptionalPassword,
  }),
  z.object({ intent: z.literal('set-role'), email: EmailSchema, role: RoleSchema }),
  z.object({ intent: z.literal('disable'), email: EmailSchema }),
  z.object({ intent: z.literal('enable'), email: EmailSchema }),
  z.object({ intent: z.literal('reset-password'), email: EmailSchema, password: OptionalPassword }),
  z.object({ intent: z.literal('unlock'), email: EmailSchema }),
]);

type ActionResult =
  | { ok: true; message: string; generatedPassword?: { email: string; password: string }; secret?: { tokenId: string; token: string; account: string } }
  | { ok: false; error: string };

const TOKEN_INTENTS = new Set(['create-service-account', 'create-service-token', 'revoke-token']);

export async function action({ request, context }: ActionFunctionArgs) {
  const user = await requireStateChange(request, context, 'manage-accounts');
  const formData = await request.formData();
  if (TOKEN_INTENTS.has(String(formData.get('intent')))) {
    const token = parseTokenIntent(formData);
    if ('error' in token) return data<ActionResult>({ ok: false, error: token.error }, { status: 400 });
    const result = await performTokenIntent(context.runtime.store.db, { user, ip: context.clientAddress, intent: token.intent });
    return result.ok ? data<ActionResult>(result) : data<ActionResult>({ ok: false, error: result.error }, { status: result.status });
  }
  const parsed = AccountFormSchema.safeParse(Object.fromEntries(formData));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return data<ActionResult>({ ok: false, error: issue ? `${issue.path.join('.') || 'form'}: ${issue.message}` : 'Invalid form.' }, { status: 400 });
  }
  const db = context.runtime.store.db;
  const actor: Actor = { name: user.email, role: user.role, accountId: user.accountId, ip: context.clientAddress };
  const form = parsed.data;
  try {
    switch (form.intent) {
      case 'create': {
        const password = form.password ?? generatePassword();
        await createAccount(db, { email: form.email, name: form.name, role: form.role, password, actor });
        return data<ActionResult>({
          ok: true,
          message: `Created ${form.email} (${ROLE_LABELS[form.role]}).`,
          generatedPassword: form.password ? undefined : { email: form.email, password },
        });
      }
      case 'set-role':
        await setAccountRole(db, { email: form.email, role: form.role, actor });
        return data<ActionResult>({ ok: true, message: `${form.email} is now ${ROLE_LABELS[form.role]}.` });
      case 'disable':
        await setAccountDisabled(db, { email: form.email, disabled: true, actor });
        return data<ActionResult>({ ok: true, message: `Disabled ${form.email}; its sessions have ended.` });
      case 'enable':
        await setAccountDisabled(db, { email: form.email, disabled: false, actor });
        return data<ActionResult>({ ok: true, message: `Enabled ${form.email}.` });
      case 'unlock': {
        const { cleared } = await unlockSignIn(db, { email: form.email, actor });
        return data<ActionResult>({
          ok: true,
          message: cleared > 0 ? `Sign-in unlocked for ${form.email} (failures from ${cleared} address${cleared === 1 ? '' : 'es'} forgotten).` : `${form.email} had no failed sign-ins to forget.`,
        });
      }
      case 'reset-password': {
        const password = form.password ?? generatePassword();
        await setAccountPassword(db, { email: form.email, password, actor });
        return data<ActionResult>({
          ok: true,
          message: `New password set for ${form.email}; its sessions have ended.`,
          generatedPassword: form.password ? undefined : { email: form.email, password },
        });
      }
    }
  } catch (error) {
    const refusal = refusalOf(error);
    return data<ActionResult>({ ok: false, error: refusal.error }, { status: refusal.status });
  }
}

const input = 'mt-1 block w-full rounded border border-slate-300 px-2 py-1 text-sm focus:border-blue-600';
const label = 'block text-xs font-medium text-slate-700';
const smallButton = 'rounded border border-slate-300 bg-white px-2 py-0.5 text-xs hover:bg-slate-100 disabled:opacity-50';

export default function AccountsPage() {
  const { user, accounts, audit, tokens, serviceAccounts } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const navigation = useNavigation();
  const busy = navigation.state === 'submitting';
  return (
    <>
      <AppHeader user={user} />
      <main className="mx-auto max-w-7xl space-y-6 px-4 py-5">
        <div>
          <h1 className="text-lg font-semibold">Accounts</h1>
          <p className="text-xs text-ink-muted">
            Admins manage accounts and roles only: they cannot view plans, execute, roll back or sign off. Every change here is
            written to the audit log below.
          </p>
        </div>

        {result ? (
          <ActionResultBanner result={result}>
            {result.ok && result.generatedPassword ? (
              <p className="mt-1">
                Password for {result.generatedPassword.email} (shown once; hand it over privately):{' '}
                <code className="rounded bg-white px-1 font-mono text-xs ring-1 ring-emerald-200">{result.generatedPassword.password}</code>
              </p>
            ) : null}
            {result.ok && result.secret ? <NewTokenSecret secret={result.secret} /> : null}
          </ActionResultBanner>
        ) : null}

        <section aria-labelledby="create-heading" className="rounded border border-slate-200 bg-white p-4">
          <h2 id="create-heading" className="text-sm font-semibold">
            Add an account
          </h2>
          <Form method="post" className="mt-3 grid grid-cols-1 gap-3 sm:grid-cols-5 sm:items-end">
            <div>
              <label htmlFor="create-email" className={label}>
                E-mail
              </label>
              <input id="create-email" name="email" type="email" required autoComplete="off" className={input} />
            </div>
            <div>
              <label htmlFor="create-name" className={label}>
                Name
              </label>
              <input id="create-name" name="name" type="text" autoComplete="off" className={input} />
            </div>
            <div>
              <label htmlFor="create-role" className={label}>
                Role
              </label>
              <select id="create-role" name="role" defaultValue="viewer" className={input}>
                {ROLES.map((role) => (
                  <option key={role} value={role}>
                    {ROLE_LABELS[role]}
                  </option>
                ))}
              </select>
            </div>
            <div>
              <label htmlFor="create-password" className={label}>
                Password (blank: generate)
              </label>
              <input
                id="create-password"
                name="password"
                type="password"
                autoComplete="new-password"
                minLength={MIN_PASSWORD_LENGTH}
                className={input}
              />
            </div>
            <button
              type="submit"
              name="intent"
              value="create"
              disabled={busy}
              className="rounded bg-slate-900 px-3 py-1.5 text-sm font-medium text-white hover:bg-slate-700 disabled:opacity-60"
            >
              Add account
            </button>
          </Form>
        </section>

        <section aria-labelledby="accounts-heading" className="overflow-x-auto rounded border border-slate-200 bg-white">
          <h2 id="accounts-heading" className="px-4 pt-3 text-sm font-semibold">
            {accounts.length} account{accounts.length === 1 ? '' : 's'}
          </h2>
          <table className="mt-2 w-full text-left text-sm">
            <thead className="border-y border-slate-200 bg-slate-50 text-xs uppercase tracking-wide text-ink-muted">
              <tr>
                <th scope="col" className="px-4 py-1.5">E-mail</th>
                <th scope="col" className="px-2 py-1.5">Name</th>
                <th scope="col" className="px-2 py-1.5">Role</th>
                <th scope="col" className="px-2 py-1.5">Status</th>
                <th scope="col" className="px-2 py-1.5">Last sign-in</th>
                <th scope="col" className="px-2 py-1.5">Actions</th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {accounts.map((account) => {
                const self = account.id === user.accountId;
                return (
                  <tr key={account.id} className={account.disabled ? 'text-ink-faint' : undefined}>
                    <td className="px-4 py-1.5 font-mono text-xs">
                      {account.email}
                      {self ? <span className="ml-1 text-ink-muted">(you)</span> : null}
                    </td>
                    <td className="px-2 py-1.5">{account.name}</td>
                    <td className="px-2 py-1.5">
                      <Form method="post" className="flex items-center gap-1">
                        <input type="hidden" name="email" value={account.email} />
                        <label htmlFor={`role-${account.id}`} className="sr-only">
                          Role of {account.email}
                        </label>
                        <select
                          id={`role-${account.id}`}
                          name="role"
                          defaultValue={account.role}
                          disabled={self}
                          className="rounded border border-slate-300 px-1 py-0.5 text-xs"
                        >
                          {ROLES.map((role) => (
                            <option key={role} value={role}>
                              {ROLE_LABELS[role]}
                            </option>
                          ))}
                        </select>
                        <button type="submit" name="intent" value="set-role" disabled={self || busy} className={smallButton}>
                          Set role<span className="sr-only"> of {account.email}</span>
                        </button>
                      </Form>
                    </td>
                    <td className="px-2 py-1.5 text-xs">
                      {account.disabled ? 'Disabled' : 'Active'}
                      {account.kind === 'service' ? ' · service account (API tokens only)' : account.hasPassword ? '' : ' · single sign-on only'}
                      {account.signInLock ? (
                        <span className="block text-red-700">
                          Sign-in locked from {account.signInLock.addresses} address{account.signInLock.addresses === 1 ? '' : 'es'} until{' '}
                          {account.signInLock.until.replace('T', ' ').slice(0, 16)} UTC
                        </span>
                      ) : null}
                    </td>
                    <td className="px-2 py-1.5 text-xs text-ink-muted">
                      {account.lastSignInAt ? new Date(account.lastSignInAt).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : 'never'}
                    </td>
                    <td className="px-2 py-1.5">
                      <div className="flex flex-wrap gap-1">
                        <Form method="post">
                          <input type="hidden" name="email" value={account.email} />
                          <button
                            type="submit"
                            name="intent"
                            value={account.disabled ? 'enable' : 'disable'}
                            disabled={self || busy}
                            className={smallButton}
                          >
                            {account.disabled ? 'Enable' : 'Disable'}
                            <span className="sr-only"> {account.email}</span>
                          </button>
                        </Form>
                        {account.signInLock ? (
                          <Form method="post">
                            <input type="hidden" name="email" value={account.email} />
                            <button type="submit" name="intent" value="unlock" disabled={busy} className={smallButton}>
                              Unlock sign-in<span className="sr-only"> of {account.email}</span>
                            </button>
                          </Form>
                        ) : null}
                        {account.kind === 'service' ? null : (
                          <Form method="post">
                            <input type="hidden" name="email" value={account.email} />
                            <button type="submit" name="intent" value="reset-password" disabled={busy} className={smallButton}>
                              New password<span className="sr-only"> for {account.email}</span>
                            </button>
                          </Form>
                        )}
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>

        <section aria-labelledby="service-heading" className="rounded border border-slate-200 bg-white p-4">
          <h2 id="service-heading" className="text-sm font-semibold">
            Service accounts
          </h2>
          <p className="text-xs text-ink-muted">
            A pipeline's identity: one role (never admin), no password, no sign-in; it acts only through its API tokens, and never signs off a
            run it opened.
          </p>
          <Form method="post" className="mt-3 grid grid-cols-1 gap-3 sm:grid-cols-4 sm:items-end">
            <div>
              <label htmlFor="service-name" className={label}>
                Name (e.g. ci-staging)
              </label>
              <input id="service-name" name="serviceName" type="text" required pattern="[a-z0-9][a-z0-9-]{1,62}" autoComplete="off" className={input} />
            </div>
            <div>
              <label htmlFor="service-description" className={label}>
                Description
              </label>
              <input id="service-description" name="description" type="text" autoComplete="off" className={input} />
            </div>
            <div>
              <label htmlFor="service-role" className={label}>
                Role of the service account
              </label>
              <select id="service-role" name="role" defaultValue="viewer" className={input}>
                {ROLES.filter((role) => role !== 'admin').map((role) => (
                  <option key={role} value={role}>
                    {ROLE_LABELS[role]}
                  </option>
                ))}
              </select>
            </div>
            <button type="submit" name="intent" value="create-service-account" disabled={busy} className="rounded bg-slate-900 px-3 py-1.5 text-sm font-medium text-white hover:bg-slate-700 disabled:opacity-60">
              Add service account
            </button>
          </Form>
          {serviceAccounts.length > 0 ? (
            <Form method="post" className="mt-4 grid grid-cols-1 gap-3 border-t border-slate-100 pt-3 sm:grid-cols-4 sm:items-end">
              <div>
                <label htmlFor="service-token-account" className={label}>
                  Service account
                </label>
                <select id="service-token-account" name="serviceName" className={input}>
                  {serviceAccounts.map((account) => (
                    <option key={account.email} value={account.email}>
                      {account.email} ({account.role})
                    </option>
                  ))}
                </select>
              </div>
              <div>
                <label htmlFor="service-token-name" className={label}>
                  Token for
                </label>
                <input id="service-token-name" name="name" type="text" required maxLength={100} autoComplete="off" className={input} />
              </div>
              <div>
                <label htmlFor="service-token-days" className={label}>
                  Days until it expires (1 to {MAX_TOKEN_DAYS})
                </label>
                <input id="service-token-days" name="days" type="number" min={1} max={MAX_TOKEN_DAYS} defaultValue={DEFAULT_TOKEN_DAYS} className={input} />
              </div>
              <button type="submit" name="intent" value="create-service-token" disabled={busy} className="rounded bg-slate-900 px-3 py-1.5 text-sm font-medium text-white hover:bg-slate-700 disabled:opacity-60">
                Create token
              </button>
            </Form>
          ) : null}
        </section>

        <section aria-labelledby="all-tokens-heading" className="overflow-x-auto rounded border border-slate-200 bg-white">
          <h2 id="all-tokens-heading" className="px-4 pt-3 text-sm font-semibold">
            API tokens of every account
          </h2>
          <p className="px-4 text-xs text-ink-muted">Metadata only: a token's secret is shown once, to whoever created it.</p>
          <TokensTable tokens={tokens} showAccount busy={busy} caption="API tokens of every account" />
        </section>

        <section aria-labelledby="roles-heading" className="rounded border border-slate-200 bg-white p-4">
          <h2 id="roles-heading" className="text-sm font-semibold">
            What each role may do
          </h2>
          <dl className="mt-2 grid grid-cols-1 gap-x-6 gap-y-1 text-xs sm:grid-cols-2">
            {ROLES.map((role) => (
              <div key={role} className="flex gap-2">
                <dt className="w-20 shrink-0 font-medium">{ROLE_LABELS[role]}</dt>
                <dd className="text-ink-muted">{ROLE_PERMISSIONS[role].join(', ')}</dd>
              </div>
            ))}
          </dl>
        </section>

        <section aria-labelledby="audit-heading" className="overflow-x-auto rounded border border-slate-200 bg-white">
          <h2 id="audit-heading" className="px-4 pt-3 text-sm font-semibold">
            Audit log (latest 50)
          </h2>
          <table className="mt-2 w-full text-left text-xs">
            <thead className="border-y border-slate-200 bg-slate-50 uppercase tracking-wide text-ink-muted">
              <tr>
                <th scope="col" className="px-4 py-1.5">When (UTC)</th>
                <th scope="col" className="px-2 py-1.5">Who</th>
                <th scope="col" className="px-2 py-1.5">What</th>
                <th scope="col" className="px-2 py-1.5">Subject</th>
                <th scope="col" className="px-2 py-1.5">Outcome</th>
                <th scope="col" className="px-2 py-1.5">Why</th>
                <th scope="col" className="px-2 py-1.5">Address</th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100 font-mono">
              {audit.map((entry) => (
                <tr key={entry.id}>
                  <td className="whitespace-nowrap px-4 py-1">{entry.at.replace('T', ' ').slice(0, 19)}</td>
                  <td className="px-2 py-1">
                    {entry.actor}
                    {entry.actorRole ? <span className="text-ink-muted"> ({entry.actorRole})</span> : null}
                  </td>
                  <td className="px-2 py-1">{entry.action}</td>
                  <td className="px-2 py-1">{entry.subject}</td>
                  <td className={`px-2 py-1 ${entry.outcome === 'ok' ? 'text-emerald-700' : 'text-red-700'}`}>{entry.outcome}</td>
                  <td className="px-2 py-1">{entry.reason}</td>
                  <td className="px-2 py-1">{entry.ip}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </main>
    </>
  );
}

export function ErrorBoundary() {
  const error = useRouteError();
  const message = isRouteErrorResponse(error)
    ? `${error.status}: ${typeof error.data === 'string' ? error.data : error.statusText}`
    : 'Something went wrong.';
  return (
    <main className="mx-auto max-w-2xl p-8">
      <h1 className="text-lg font-semibold">Accounts</h1>
      <p role="alert" className="mt-2 whitespace-pre-wrap text-ink-muted">
        {message}
      </p>
    </main>
  );
}
