import type { ActionFunctionArgs, LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { Form, Link, useLoaderData, useNavigation } from '@remix-run/react';
import { z } from 'zod';
import { can } from '../auth/permissions';
import { requirePermission } from '../auth/require.server';
import { runPlanChecks } from '../checks/plan-checks.server';
import { AppHeader } from '../components/app-header';
import { CheckResultsTable } from '../components/check-results-table';
import { SchemaFactsPanel, TargetFactsPanel } from '../components/facts-panels';
import { StatusBadge } from '../components/status-badge';
import { loadPlan } from '../plans/load-plans.server';
import { readPlanOnTarget } from '../plans/plan-on-target.server';
import { refreshPlanFacts } from '../plans/plan-overview.server';
import { CHECK_PHASES, checksOfPhase, type CheckPhase } from '../plans/plan-schema';
import { findTarget, listTargets } from '../targets/targets.server';

export const meta: MetaFunction<typeof loader> = ({ data }) => [{ title: `${data?.plan.ok ? data.plan.title : 'Plan'} · Runsheet` }];

const PHASE_TITLES: Record<CheckPhase, string> = {
  pre: 'Pre-checks',
  snapshot: 'Snapshot',
  verify: 'Verification',
  post: 'Post-execution validation',
  rollback: 'Rollback verification',
};

async function requirePlanAndTarget(plansDir: string, planId: string | undefined, targetName: string | null) {
  const loaded = planId ? await loadPlan(plansDir, planId) : undefined;
  if (!loaded) throw new Response(`No plan "${planId}". The plans list shows every plan.`, { status: 404 });
  const targets = listTargets();
  const target = targetName ? findTarget(targetName) : targets[0];
  if (!target) throw new Response(`Unknown target "${targetName}". Targets come from TARGET_<NAME>_URL.`, { status: 404 });
  return { loaded, target, targets };
}

export async function loader({ request, params, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'view');
  const { loaded, target, targets } = await requirePlanAndTarget(context.runtime.plansDir, params.planId, new URL(request.url).searchParams.get('target'));
  const targetList = targets.map((candidate) => ({ name: candidate.name, label: candidate.label }));
  if (!loaded.ok) return { valid: false as const, user, plan: { ok: false as const, id: loaded.id, errors: loaded.errors }, target: target.name, targets: targetList };
  const view = await readPlanOnTarget(context.runtime, loaded, target);
  const phases = CHECK_PHASES.map((phase) => ({
    phase,
    title: PHASE_TITLES[phase],
    checks: checksOfPhase(loaded.plan, phase).map((check) => ({ id: check.id, title: check.title, kind: check.kind, expect: check.expect })),
  }));
  return {
    valid: true as const,
    user,
    plan: { ok: true as const, id: loaded.id, title: loaded.plan.title, summary: loaded.plan.summary, checksum: loaded.checksum, lint: loaded.lint, files: loaded.files.map(({ path, sha256 }) => ({ path, sha256 })) },
    target: target.name,
    targetLabel: target.label,
    targetDisplayUrl: target.displayUrl,
    targets: targetList,
    phases,
    view,
  };
}

const IntentSchema = z.discriminatedUnion('intent', [
  z.object({ intent: z.literal('run-checks'), phase: z.enum(CHECK_PHASES) }),
  z.object({ intent: z.literal('refresh-facts') }),
]);

export async function action({ request, params, context }: ActionFunctionArgs) {
  const user = await requirePermission(request, context, 'run-checks');
  const { loaded, target } = await requirePlanAndTarget(context.runtime.plansDir, params.planId, new URL(request.url).searchParams.get('target'));
  if (!loaded.ok) throw new Response('This plan is not valid; fix the errors shown on its page first.', { status: 400 });
  const parsed = IntentSchema.safeParse(Object.fromEntries(await request.formData()));
  if (!parsed.success) return Response.json({ error: 'Unknown form intent.' }, { status: 400 });
  if (parsed.data.intent === 'refresh-facts') {
    await refreshPlanFacts(context.runtime, loaded, target);
    return { ok: true };
  }
  const outcome = await runPlanChecks(context.runtime, { planId: loaded.id, targetName: target.name, phase: parsed.data.phase, ranBy: user.email, ranByRole: user.role });
  // Checks can change what the schema facts say (after a hand-applied migration): re-read them too.
  await refreshPlanFacts(context.runtime, loaded, target).catch(() => {});
  return { ok: true, failed: outcome.results.filter((result) => !result.passed && !result.skipped).length };
}

export default function PlanPage() {
  const data = useLoaderData<typeof loader>();
  const navigation = useNavigation();
  const busyIntent = navigation.state !== 'idle' ? navigation.formData?.get('intent') : undefined;
  const busyPhase = navigation.state !== 'idle' ? navigation.formData?.get('phase') : undefined;
  const mayRun = can(data.user, 'run-checks');
  return (
    <>
      <AppHeader user={data.user} />
      <main className="mx-auto max-w-7xl px-4 py-6">
        <nav aria-label="Breadcrumb" className="text-xs text-ink-muted">
          <Link to="/" className="hover:underline">Plans</Link> / <span className="font-mono">{data.plan.id}</span>
        </nav>
        {!data.valid ? (
          <section className="mt-3 rounded border border-red-300 bg-red-50 p-4">
            <h1 className="text-lg font-semibold">Plan {data.plan.id} is not valid</h1>
            <ul className="mt-2 list-disc pl-5 text-sm text-red-900">
              {data.plan.errors.map((error, index) => (
                <li key={index}>
                  <span className="font-mono">{error.file}</span>
                  {error.path ? <span className="font-mono"> {error.path}</span> : null}: {error.message}
                </li>
              ))}
            </ul>
          </section>
        ) : (
          <>
            <div className="mt-2 flex flex-wrap items-start gap-3">
              <div className="min-w-0 flex-1">
                <h1 className="text-xl font-semibold">{data.plan.title}</h1>
                <p className="mt-1 font-mono text-xs text-ink-muted" title="sha256 over the plan's manifest">
                  checksum {data.plan.checksum}
                </p>
              </div>
              <div className="flex items-center gap-2">
                <StatusBadge status={data.view.state.state} />
                <span className="text-xs text-ink-muted">{data.view.ledgerError ?? data.view.state.reason}</span>
              </div>
            </div>
            <nav aria-label="Targets" className="mt-3 flex gap-1">
              {data.targets.map((target) => (
                <Link
                  key={target.name}
                  to={`?target=${target.name}`}
                  aria-current={target.name === data.target ? 'page' : undefined}
                  className={`rounded border px-2 py-1 text-xs ${target.name === data.target ? 'border-slate-800 bg-slate-800 text-white' : 'border-slate-300 bg-white hover:bg-slate-100'}`}
                >
                  {target.label}
                </Link>
              ))}
            </nav>

            <div className="mt-4 grid gap-4 lg:grid-cols-2">
              <TargetFactsPanel label={data.targetLabel} displayUrl={data.targetDisplayUrl} facts={data.view.targetFacts} />
              <SchemaFactsPanel facts={data.view.schemaFacts}>
                {mayRun ? (
                  <Form method="post" replace>
                    <button name="intent" value="refresh-facts" className="rounded border border-slate-300 bg-white px-2 py-1 text-xs hover:bg-slate-100" disabled={busyIntent === 'refresh-facts'}>
                      {busyIntent === 'refresh-facts' ? 'Reading…' : 'Refresh facts'}
                    </button>
                  </Form>
                ) : null}
              </SchemaFactsPanel>
            </div>

            {data.plan.lint.length > 0 ? (
              <section className="mt-4 rounded border border-amber-300 bg-amber-50 p-3" aria-labelledby="lint-title">
                <h2 id="lint-title" className="font-semibold">Lint findings (squawk)</h2>
                <ul className="mt-1 space-y-1 text-xs">
                  {data.plan.lint.map((finding, index) => (
                    <li key={index}>
                      <span className="font-mono">{finding.file}:{finding.line}</span> <span className="font-semibold">{finding.rule}</span> ({finding.level}): {finding.message}
                    </li>
                  ))}
                </ul>
              </section>
            ) : null}

            {data.phases.map((phase) => (
              <section key={phase.phase} className="mt-6" aria-labelledby={`phase-${phase.phase}`}>
                <div className="flex items-center gap-3">
                  <h2 id={`phase-${phase.phase}`} className="text-base font-semibold">{phase.title}</h2>
                  {mayRun && phase.checks.length > 0 ? (
                    <Form method="post" replace>
                      <input type="hidden" name="phase" value={phase.phase} />
                      <button
                        name="intent"
                        value="run-checks"
                        className="rounded bg-slate-800 px-2 py-1 text-xs font-medium text-white hover:bg-slate-700 disabled:opacity-60"
                        disabled={busyIntent === 'run-checks' && busyPhase === phase.phase}
                      >
                        {busyIntent === 'run-checks' && busyPhase === phase.phase ? 'Running…' : `Run ${phase.title.toLowerCase()}`}
                      </button>
                    </Form>
                  ) : null}
                </div>
                <CheckResultsTable checks={phase.checks} results={data.view.results} checksum={data.plan.checksum} />
              </section>
            ))}
          </>
        )}
      </main>
    </>
  );
}

export { RouteErrorBoundary as ErrorBoundary } from '../components/route-error-boundary';
