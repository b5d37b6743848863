import type { LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { Form, Link, useLoaderData } from '@remix-run/react';
import { can } from '../accounts/permissions';
import { requirePermission, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { PlanErrorList } from '../components/plan-error-list';
import { StatusBadge } from '../components/status-badge';
import { listPlanOverviews } from '../plans/plan-overview.server';
import { formatAge } from '../runtime/format';
import { useRevalidateWhile } from '../web/use-revalidate-while';

export const meta: MetaFunction = () => [{ title: 'Plans · Runsheet' }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'view');
  const plans = await listPlanOverviews(context.runtime);
  const targets = context.runtime.targets.list().map((target) => ({ name: target.name, label: target.label }));
  return { user: pageViewerOf(user), plans, targets, mayImport: can(user, 'import-plan') };
}

export default function PlansIndex() {
  const { user, plans, targets, mayImport } = useLoaderData<typeof loader>();
  useRevalidateWhile(plans.some((plan) => plan.ok && plan.targets.some((cell) => cell.rereading)), 2_000);
  return (
    <>
      <AppHeader user={user} />
      <main className="mx-auto max-w-7xl px-4 py-6">
        <h1 className="text-xl font-semibold">Plans</h1>
        <p className="mt-1 text-ink-muted">Each migration runbook and its state on every target, read from the target's own ledger.</p>
        {mayImport ? <ImportRunbookForm /> : null}
        <div className="mt-4 overflow-x-auto rounded border border-slate-200 bg-white">
          <table className="w-full text-left">
            <caption className="sr-only">Plans and their state on each target</caption>
            <thead className="bg-slate-50 text-xs uppercase tracking-wide text-ink-muted">
              <tr>
                <th scope="col" className="px-3 py-2">Plan</th>
                <th scope="col" className="px-3 py-2">Checksum</th>
                {targets.map((target) => (
                  <th scope="col" key={target.name} className="px-3 py-2">
                    {target.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {plans.map((plan) =>
                plan.ok ? (
                  <tr key={plan.id}>
                    <td className="px-3 py-2">
                      <Link to={`/plans/${plan.id}`} className="font-medium text-blue-700 hover:underline">
                        {plan.title}
                      </Link>
                      {plan.underReview ? (
                        <span className="ml-2 align-middle">
                          <StatusBadge status="under_review" title="review: pending in plan.yaml: execute and rehearse are refused until it is removed" />
                        </span>
                      ) : null}
                      <div className="font-mono text-xs text-ink-muted">{plan.id}</div>
                      {plan.lintCount > 0 ? (
                        <div className="mt-1 text-xs text-amber-800">
                          {plan.lintCount} lint finding{plan.lintCount === 1 ? '' : 's'}
                          {plan.lintErrors > 0 ? ` (${plan.lintErrors} error${plan.lintErrors === 1 ? '' : 's'})` : ''}
                        </div>
                      ) : null}
                    </td>
                    <td className="px-3 py-2 font-mono text-xs" title={plan.checksum}>
                      {plan.checksum.slice(0, 12)}
                    </td>
                    {plan.targets.map((cell) => (
                      <td key={cell.target} className="px-3 py-2 align-top">
                        <Link to={`/plans/${plan.id}?target=${cell.target}`} className="inline-block" aria-label={`${plan.id} on ${cell.targetLabel}: ${cell.state.replace(/_/g, ' ')}`}>
                          <StatusBadge status={cell.state} title={cell.error ?? cell.reason} />
                        </Link>
                        <div className="mt-1 max-w-56 text-xs text-ink-muted">
                          {cell.error ?? cell.reason}
                          {cell.rereading ? ' · re-reading the facts…' : cell.factsAgeMs !== undefined ? ` · facts ${formatAge(cell.factsAgeMs)} old` : ''}
                        </div>
                      </td>
                    ))}
                  </tr>
                ) : (
                  <tr key={plan.id} className="bg-red-50/40">
                    <td className="px-3 py-2" colSpan={2 + targets.length}>
                      <div className="flex items-center gap-2">
                        <span className="font-mono font-medium">{plan.id}</span>
                        <StatusBadge status="invalid" label="Invalid plan" />
                      </div>
                      <PlanErrorList errors={plan.errors} className="mt-1 text-xs" />
                    </td>
                  </tr>
                ),
              )}
            </tbody>
          </table>
          {plans.length === 0 ? <p className="p-4 text-ink-muted">No plans under plans/.</p> : null}
        </div>
      </main>
    </>
  );
}

/** Engineers: a Markdown runbook to import; the import page shows it as a plan with its report before anything is saved. */
function ImportRunbookForm() {
  return (
    <Form method="post" action="/import" encType="multipart/form-data" className="mt-3 flex flex-wrap items-center gap-2 rounded border border-dashed border-slate-300 bg-white px-3 py-2 text-xs">
      <label htmlFor="runbook-file" className="font-medium">
        Import a Markdown runbook
      </label>
      <input id="runbook-file" name="runbook" type="file" accept=".md,.markdown,.txt,text/markdown,text/plain" required className="text-xs" />
      <span className="text-ink-muted">up to 1 MiB; you see the plan and its import report before saving</span>
      <button name="intent" value="preview" className="rounded bg-slate-800 px-2 py-1 font-semibold text-white hover:bg-slate-700">
        Import
      </button>
    </Form>
  );
}
