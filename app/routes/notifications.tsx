import { data, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from '@remix-run/node';
import { Form, isRouteErrorResponse, useActionData, useLoaderData, useNavigation, useRouteError } from '@remix-run/react';
import { requireIntentPermission } from '../auth/intent-access.server';
import { requirePermission, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { formatSpan, formatUtc } from '../runtime/format';
import { loadNotificationsPage, performNotificationsIntent, type ChannelView } from '../web/notifications-page.server';
import { ActionResultBanner } from '../components/action-result-banner';

export const meta: MetaFunction = () => [{ title: 'Notifications · Runsheet' }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'notifications');
  return { user: pageViewerOf(user), page: await loadNotificationsPage(context.runtime) };
}

/** "Send test": a test notification queued for one channel (ROUTE_ACCESS: engineers), audited. */
export async function action({ request, context }: ActionFunctionArgs) {
  const { user, form } = await requireIntentPermission(request, context, 'routes/notifications');
  const result = await performNotificationsIntent(context.runtime, { user, ip: context.clientAddress, form });
  return data(result, { status: result.ok ? 200 : result.status });
}

const STATUS_CLASS: Record<string, string> = {
  delivered: 'bg-emerald-50 text-emerald-900 ring-emerald-300',
  pending: 'bg-amber-50 text-amber-900 ring-amber-300',
  failed: 'bg-red-50 text-red-800 ring-red-300',
};

export default function NotificationsPage() {
  const { user, page } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const busy = useNavigation().state === 'submitting';
  return (
    <>
      <AppHeader user={user} />
      <main className="mx-auto max-w-7xl space-y-6 px-4 py-5">
        <div>
          <h1 className="text-lg font-semibold">Notifications</h1>
          <p className="text-xs text-ink-muted">
            Each channel of <code>runsheet.config.ts</code> and what Runsheet posted to it: ready for sign-off, signed off, executing, a failed phase,
            applied, rolled back, cancelled, a watch regression, the watch ended. A failed delivery is retried with back-off (first after{' '}
            {formatSpan(page.retry.baseMs)}, doubling) for up to {formatSpan(page.retry.giveUpAfterMs)}; later notifications of the same run wait behind it.
            Addresses and secrets come from <code>NOTIFY_&lt;NAME&gt;_URL</code> and <code>NOTIFY_&lt;NAME&gt;_SECRET</code>.
          </p>
        </div>
        {result ? (
          <ActionResultBanner result={result} />
        ) : null}
        {page.channels.length === 0 ? (
          <p className="rounded border border-slate-200 bg-white p-4 text-sm">
            No channel is declared. Add <code>{"channels: { ops: { format: 'json' } }"}</code> to <code>runsheet.config.ts</code>, name it in a target's{' '}
            <code>{"notify: ['ops']"}</code>, and set <code>NOTIFY_OPS_URL</code> and <code>NOTIFY_OPS_SECRET</code>.
          </p>
        ) : null}
        {page.channels.map((channel) => (
          <ChannelSection key={channel.name} channel={channel} busy={busy} />
        ))}
      </main>
    </>
  );
}

function ChannelSection({ channel, busy }: { channel: ChannelView; busy: boolean }) {
  const headingId = `channel-${channel.name}`;
  return (
    <section aria-labelledby={headingId} className="rounded border border-slate-200 bg-white">
      <div className="flex flex-wrap items-start gap-3 px-4 pt-3">
        <div>
          <h2 id={headingId} className="text-sm font-semibold">
            {channel.name} <span className="font-normal text-ink-muted">({channel.format === 'json' ? 'signed JSON' : 'Slack text'})</span>
          </h2>
          <dl className="mt-1 grid grid-cols-[auto_1fr] gap-x-3 text-xs">
            <dt className="text-ink-muted">Posts to</dt>
            <dd>{channel.host ?? 'not configured here'}</dd>
            <dt className="text-ink-muted">Targets</dt>
            <dd>{channel.targets.length > 0 ? channel.targets.join(', ') : 'none names it'}</dd>
            <dt className="text-ink-muted">Deliveries</dt>
            <dd>
              {channel.counts.delivered} delivered, {channel.counts.pending} pending, {channel.counts.failed} given up
            </dd>
          </dl>
          {channel.problem ? (
            <p role="note" className="mt-1 text-xs text-amber-900">
              This server does not deliver it: {channel.problem}.
            </p>
          ) : null}
        </div>
        <Form method="post" className="ml-auto">
          <input type="hidden" name="channel" value={channel.name} />
          <button
            type="submit"
            name="intent"
            value="send-test"
            disabled={busy}
            className="rounded bg-slate-900 px-3 py-1.5 text-sm font-medium text-white hover:bg-slate-700 disabled:opacity-60"
          >
            Send test to {channel.name}
          </button>
        </Form>
      </div>
      <div className="mt-3 overflow-x-auto">
        <table className="w-full text-left text-xs">
          <caption className="sr-only">Newest deliveries to {channel.name}</caption>
          <thead className="border-b border-slate-200 bg-slate-50 text-ink-muted">
            <tr>
              <th scope="col" className="px-4 py-1.5 font-medium">Queued</th>
              <th scope="col" className="px-2 py-1.5 font-medium">What</th>
              <th scope="col" className="px-2 py-1.5 font-medium">Run</th>
              <th scope="col" className="px-2 py-1.5 font-medium">Status</th>
              <th scope="col" className="px-2 py-1.5 font-medium">Response</th>
              <th scope="col" className="px-2 py-1.5 font-medium">Attempts</th>
              <th scope="col" className="px-2 py-1.5 font-medium">Next retry</th>
              <th scope="col" className="px-2 py-1.5 font-medium">Delivery id</th>
            </tr>
          </thead>
          <tbody>
            {channel.deliveries.length === 0 ? (
              <tr>
                <td colSpan={8} className="px-4 py-2 text-ink-muted">
                  Nothing posted yet.
                </td>
              </tr>
            ) : null}
            {channel.deliveries.map((delivery) => (
              <tr key={delivery.id} className="border-b border-slate-100 align-top">
                <td className="whitespace-nowrap px-4 py-1.5">{formatUtc(delivery.createdAt)}</td>
                <td className="px-2 py-1.5">{delivery.kind === 'test' ? `test by ${delivery.requestedBy ?? 'someone'}` : delivery.what}</td>
                <td className="px-2 py-1.5">
                  {delivery.runId ? (
                    <a className="text-blue-700 underline" href={`/runs/${delivery.runId}`}>
                      {delivery.planId} on {delivery.target} #{delivery.seq}
                    </a>
                  ) : (
                    '—'
                  )}
                </td>
                <td className="px-2 py-1.5">
                  <span className={`rounded px-1.5 py-0.5 font-semibold ring-1 ring-inset ${STATUS_CLASS[delivery.status] ?? ''}`}>{delivery.status === 'failed' ? 'given up' : delivery.status}</span>
                  {delivery.lastError ? <span className="mt-0.5 block max-w-xs text-[11px] text-red-800 [overflow-wrap:anywhere]">{delivery.lastError}</span> : null}
                </td>
                <td className="px-2 py-1.5">{delivery.responseCode ?? '—'}</td>
                <td className="px-2 py-1.5">{delivery.attempts}</td>
                <td className="whitespace-nowrap px-2 py-1.5">{delivery.status === 'pending' ? formatUtc(delivery.nextAttemptAt) : '—'}</td>
                <td className="px-2 py-1.5 font-mono text-[11px]">{delivery.id}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function ErrorBoundary() {
  const error = useRouteError();
  const message = isRouteErrorResponse(error) ? `${error.status}: ${typeof error.data === 'string' ? error.data : error.statusText}` : 'Something went wrong.';
  return (
    <main className="mx-auto max-w-2xl p-8">
      <h1 className="text-lg font-semibold">Notifications</h1>
      <p role="alert" className="mt-2 whitespace-pre-wrap text-ink-muted">
        {message}
      </p>
    </main>
  );
}
