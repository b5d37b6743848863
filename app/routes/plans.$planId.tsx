import { data, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from '@remix-run/node';
import { Form, Link, useActionData, useLoaderData, useNavigation } from '@remix-run/react';
import type { ReactNode } from 'react';
import { z } from 'zod';
import { requireIntentPermission } from '../auth/intent-access.server';
import { requirePermission, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { useRevalidateWhile } from '../web/use-revalidate-while';
import { DANGER_BUTTON, SECONDARY_BUTTON } from '../components/button-classes';
import { RollbackDialog } from '../components/rollback-dialog';
import { WatchStripView } from '../components/watch-strip';
import { CheckResultsTable } from '../components/check-results-table';
import { SchemaFactsPanel, TargetFactsPanel } from '../components/facts-panels';
import { formatDuration, formatUtc } from '../runtime/format';
import { GateList } from '../components/gate-list';
import { PhaseStepper } from '../components/phase-stepper';
import { PlanErrorList } from '../components/plan-error-list';
import { RehearsalChip, StatusBadge } from '../components/status-badge';
import { TeamMessage } from '../components/team-message';
import { TickToggle } from '../components/tick-toggle';
import { loadChecklist, performChecklistIntent, resolveChecklistTarget, type ChecklistView, type RunSummary } from '../web/plan-page.server';
import { resetSandboxForPlan } from '../web/sandbox-reset.server';
import { markPageIncomplete } from '../web/page-cache.server';
import { loadPlan } from '../plans/load-plans.server';
import { CHECK_PHASES } from '../plans/plan-schema';
import type { Runtime } from '../boot/runtime.server';

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: `${data?.valid ? `${data.view.plan.title} on ${data.view.target.label}` : 'Plan'} · Runsheet` },
];

async function requirePlanAndTarget(runtime: Runtime, planId: string | undefined, request: Request) {
  const loaded = planId ? await loadPlan(runtime.plansDir, planId) : undefined;
  if (!loaded) throw new Response(`No plan "${planId}". The plans list shows every plan.`, { status: 404 });
  const targetName = new URL(request.url).searchParams.get('target');
  const { target, targets } = resolveChecklistTarget(runtime, targetName);
  if (!target) throw new Response(`Unknown target "${targetName}". Targets come from TARGET_<NAME>_URL.`, { status: 404 });
  return { loaded, target, targets };
}

export async function loader({ request, params, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'view');
  const { loaded, target, targets } = await requirePlanAndTarget(context.runtime, params.planId, request);
  if (!loaded.ok) {
    return { valid: false as const, user: pageViewerOf(user), planId: loaded.id, errors: loaded.errors };
  }
  const view = await loadChecklist(context.runtime, { plan: loaded, target, targets, user });
  if (view.readFailed) markPageIncomplete(context);
  return { valid: true as const, user: pageViewerOf(user), view };
}

const Ticked = z.enum(['true', 'false']).transform((value) => value === 'true');
const RunId = z.string().regex(/^[0-9a-f-]{36}$/i, 'a run id is a uuid');

const IntentSchema = z.discriminatedUnion('intent', [
  z.object({ intent: z.literal('tick'), itemId: z.string().min(1).max(200), ticked: Ticked }),
  z.object({ intent: z.literal('tick-criterion'), index: z.coerce.number().int().min(0).max(10_000), ticked: Ticked }),
  z.object({ intent: z.literal('run-checks'), phase: z.enum(CHECK_PHASES) }),
  z.object({ intent: z.literal('refresh-facts') }),
  z.object({ intent: z.literal('sign-off') }),
  z.object({ intent: z.literal('add-note'), text: z.string().trim().min(1, 'Write the note first.').max(10_000) }),
  z.object({
    intent: z.literal('waive-lint'),
    file: z.string().min(1).max(500),
    line: z.coerce.number().int().min(0).max(1_000_000),
    rule: z.string().min(1).max(200),
    reason: z.string().trim().min(10, 'Say why this finding is safe on this target (at least 10 characters).').max(2_000),
  }),
  z.object({
    intent: z.literal('execute'),
    typedTargetName: z
      .string()
      .trim()
      .max(200)
      .optional()
      .transform((value) => value || undefined),
  }),
  z.object({ intent: z.literal('rehearse') }),
  z.object({
    intent: z.literal('rollback'),
    runId: RunId,
    typedTargetName: z
      .string()
      .trim()
      .max(200)
      .optional()
      .transform((value) => value || undefined),
  }),
  z.object({ intent: z.literal('new-attempt') }),
  z.object({ intent: z.literal('cancel'), runId: RunId }),
  z.object({ intent: z.literal('reset-sandbox') }),
  z.object({ intent: z.literal('end-watch'), runId: RunId, note: z.string().trim().min(1, 'Say why the watch ends early.').max(2_000) }),
  z.object({
    intent: z.literal('extend-watch'),
    runId: RunId,
    by: z.string().trim().min(1).max(20),
    note: z
      .string()
      .trim()
      .max(2_000)
      .optional()
      .transform((value) => value || undefined),
  }),
  z.object({
    intent: z.literal('restore'),
    runId: RunId,
    typedTargetName: z
      .string()
      .trim()
      .max(200)
      .optional()
      .transform((value) => value || undefined),
  }),
]);

interface ActionResult {
  ok: boolean;
  intent?: string;
  message?: string;
  error?: string;
  openGates?: { id: string; label: string; passed: boolean; detail: string; atExecute?: boolean }[];
}

export async function action({ request, params, context }: ActionFunctionArgs) {
  const { user, form } = await requireIntentPermission(request, context, 'routes/plans.$planId');
  const { loaded, target } = await requirePlanAndTarget(context.runtime, params.planId, request);
  if (!loaded.ok) return data<ActionResult>({ ok: false, error: 'This plan is not valid; fix the errors shown on its page first.' }, { status: 400 });
  const parsed = IntentSchema.safeParse(Object.fromEntries(form));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return data<ActionResult>({ ok: false, error: issue ? `${issue.path.join('.') || 'form'}: ${issue.message}` : 'Unknown form intent.' }, { status: 400 });
  }
  const intent = parsed.data.intent;
  const runtime = context.runtime;
  const outcome =
    parsed.data.intent === 'reset-sandbox'
      ? await resetSandboxForPlan({ ...runtime, dataDir: runtime.env.dataDir }, { plan: loaded, target, user, ip: context.clientAddress })
      : await performChecklistIntent(runtime, { plan: loaded, target, user, intent: parsed.data });
  if (outcome.kind === 'started') throw redirect(`/runs/${outcome.runId}`);
  if (outcome.kind === 'refused') {
    return data<ActionResult>({ ok: false, intent, error: outcome.error, openGates: outcome.openGates?.map(({ id, label, passed, detail, atExecute }) => ({ id, label, passed, detail, atExecute })) }, { status: outcome.status });
  }
  return data<ActionResult>({ ok: true, intent, message: outcome.message });
}

export default function PlanChecklistPage() {
  const data = useLoaderData<typeof loader>();
  return (
    <>
      <AppHeader user={data.user} />
      <main className="mx-auto max-w-7xl px-3 py-4 sm:px-4 sm:py-6">
        <nav aria-label="Breadcrumb" className="text-xs text-ink-muted">
          <Link to="/" className="hover:underline">
            Plans
          </Link>{' '}
          / <span className="font-mono">{data.valid ? data.view.plan.id : data.planId}</span>
        </nav>
        {data.valid ? (
          <Checklist view={data.view as ChecklistView} />
        ) : (
          <section className="mt-3 rounded border border-red-300 bg-red-50 p-4" aria-labelledby="invalid-title">
            <h1 id="invalid-title" className="text-lg font-semibold">
              Plan {data.planId} is not valid
            </h1>
            <PlanErrorList errors={data.errors} className="mt-2 text-sm" />
          </section>
        )}
      </main>
    </>
  );
}

const PREPARING = ['draft', 'ready'];

/** Where a check result's SQL is fetched when its disclosure opens (routes/plans.$planId_.sql[.]json). */
const sqlHref = (planId: string) => (resultId: number) => `/plans/${encodeURIComponent(planId)}/sql.json?result=${resultId}`;
const ACTIVE = ['applying', 'rolling_back', 'rehearsing'];

function Checklist({ view }: { view: ChecklistView }) {
  const actionData = useActionData<ActionResult>();
  const navigation = useNavigation();
  const busy = (intent: string, extra?: [string, string]) =>
    navigation.state !== 'idle' && navigation.formData?.get('intent') === intent && (!extra || navigation.formData?.get(extra[0]) === extra[1]);
  const { run, may } = view;
  const preparing = run !== null && PREPARING.includes(run.state);
  const active = run !== null && ACTIVE.includes(run.state);
  useRevalidateWhile(active || view.otherActive !== null || view.planState.rereading, 3_000);
  const canPrepare = run === null || preparing;

  return (
    <>
      <div className="mt-2 flex flex-wrap items-start gap-x-4 gap-y-2">
        <div className="min-w-0 flex-1">
          <h1 className="flex flex-wrap items-center gap-2 text-xl font-semibold leading-tight">
            {view.plan.title}
            {view.plan.underReview ? <StatusBadge status="under_review" title="review: pending in plan.yaml: resolve its IMPORT.md, then remove the key; until then execute and rehearse are refused" /> : null}
          </h1>
          <p className="mt-1 break-all font-mono text-[11px] text-ink-muted" title="sha256 over the plan's manifest">
            checksum {view.plan.checksum}
          </p>
        </div>
        <nav aria-label="Targets" className="flex flex-wrap gap-1">
          {view.targets.map((target) => (
            <Link
              key={target.name}
              to={`?target=${target.name}`}
              aria-current={target.name === view.target.name ? 'page' : undefined}
              className={`rounded border px-2 py-1 text-xs ${target.name === view.target.name ? 'border-slate-800 bg-slate-800 text-white' : 'border-slate-300 bg-white hover:bg-slate-100'}`}
            >
              {target.label}
            </Link>
          ))}
        </nav>
      </div>

      <StateBanner view={view} />
      <PhaseStepper steps={view.stepper} />

      {actionData ? <ActionFeedback result={actionData} /> : null}

      {/* Header of the runbook: where it runs, and what squawk says about its SQL. */}
      <Section id="target" title="Target" subtitle={`Where this plan runs now: ${view.target.label}`} actions={may.resetSandbox ? <ResetSandboxButton view={view} busy={busy('reset-sandbox')} /> : null}>
        <div className="grid gap-3 lg:grid-cols-2">
          <TargetFactsPanel label={view.target.label} displayUrl={view.target.displayUrl} facts={view.targetFacts} />
          <section className="rounded border border-slate-200 bg-white p-3" aria-label="Lint findings">
            <h3 className="font-semibold">Lint findings (squawk)</h3>
            {view.plan.lint.length === 0 ? (
              <p className="mt-2 text-xs">
                <StatusBadge status="pass" label="No findings" />
              </p>
            ) : (
              <ul className="mt-2 space-y-1.5 text-xs">
                {view.plan.lint.map((finding, index) => (
                  <li key={index} className="flex flex-wrap items-start gap-1.5">
                    <StatusBadge status={finding.level === 'error' ? 'fail' : 'stale'} label={finding.level === 'error' ? 'Error' : 'Warning'} />
                    <span className="min-w-0 flex-1">
                      <span className="font-mono">
                        {finding.file.split('/').pop()}:{finding.line}
                      </span>{' '}
                      <span className="font-semibold">{finding.rule}</span>: {finding.message}
                      {finding.waiver ? (
                        <span className="mt-0.5 block text-[11px] text-ink-muted">
                          Waived for this run by {finding.waiver.by} at {formatUtc(finding.waiver.at)}: {finding.waiver.reason}
                        </span>
                      ) : finding.gateCounts && may.waiveLint && canPrepare ? (
                        <WaiveFindingForm finding={finding} busy={busy('waive-lint', ['line', String(finding.line)])} />
                      ) : finding.gateCounts ? (
                        <span className="mt-0.5 block text-[11px] text-ink-muted">Keeps the lint-clean gate closed until an engineer waives it for the run.</span>
                      ) : null}
                    </span>
                  </li>
                ))}
              </ul>
            )}
            <RulesList rules={view.target.rules} />
          </section>
        </div>
      </Section>

      <Section id="prerequisites" title="Prerequisites" subtitle="Pre-execution checklist: ticked by a person, recorded in the run log with who and when">
        {view.prerequisites.length === 0 ? <p className="text-xs text-ink-muted">This plan lists no prerequisites.</p> : null}
        <ul className="divide-y divide-slate-100 rounded border border-slate-200 bg-white empty:hidden">
          {view.prerequisites.map((item) => (
            <li key={item.id} className="flex items-start gap-2 px-2 py-2 text-xs">
              <TickToggle
                intent="tick"
                fields={{ itemId: item.id }}
                ticked={item.tick?.ticked ?? false}
                label={item.text}
                allowed={may.tick && canPrepare}
                disabledReason={!may.tick ? 'Your role may not tick' : `Run ${run?.id.slice(0, 8)} is ${run?.state}: ticks belong before executing`}
              />
              <div className="min-w-0 flex-1">
                <div className="flex flex-wrap items-center gap-1.5">
                  <span className="font-medium text-ink">{item.text}</span>
                  {!item.required ? <StatusBadge status="optional" /> : null}
                </div>
                {item.details.length > 0 ? (
                  <ul className="mt-0.5 list-disc pl-4 text-ink-muted">
                    {item.details.map((detail) => (
                      <li key={detail}>{detail}</li>
                    ))}
                  </ul>
                ) : null}
                <div className="mt-0.5 text-[11px] text-ink-muted">
                  {item.tick ? `${item.tick.ticked ? 'Ticked' : 'Unticked'} by ${item.tick.by}${item.tick.role ? ` (${item.tick.role})` : ''} at ${formatUtc(item.tick.at)}` : 'Not ticked'}
                </div>
              </div>
              {item.check ? (
                <a href={`#check-${item.check.id}`} className="shrink-0 text-right" title={item.check.title}>
                  <span className="block text-[10px] uppercase tracking-wide text-ink-muted">Backed by</span>
                  <StatusBadge status={item.check.status} label={`${item.check.id}`} />
                </a>
              ) : null}
            </li>
          ))}
        </ul>
      </Section>

      <Section
        id="prechecks"
        title="Pre-checks"
        subtitle="Database state verification, run read-only against the target inside the current run"
        actions={
          may.runChecks && canPrepare ? (
            <RunChecksButton phase="pre" label="Run pre-checks" busy={busy('run-checks', ['phase', 'pre'])} />
          ) : null
        }
      >
        <ResultsSource section={view.sections.pre} run={run} />
        <CheckResultsTable checks={view.sections.pre.checks} results={view.sections.pre.results} checksum={view.plan.checksum}  sqlHref={sqlHref(view.plan.id)} />
      </Section>

      <GoNoGo view={view} actionData={actionData} busy={busy} />

      <Section
        id="execution-steps"
        title="Execution steps"
        subtitle={`${view.sections.snapshot.checks.length > 0 ? 'The snapshot, then ' : ''}${view.plan.apply.length} apply step${view.plan.apply.length === 1 ? '' : 's'}, run by the engine when an engineer executes`}
      >
        {view.sections.snapshot.checks.length > 0 ? (
          <>
            <h3 className="mt-1 text-sm font-semibold">Snapshot</h3>
            <CheckResultsTable checks={view.sections.snapshot.checks} results={view.sections.snapshot.results} checksum={view.plan.checksum}  sqlHref={sqlHref(view.plan.id)} />
          </>
        ) : null}
        <h3 className="mt-3 text-sm font-semibold">Apply</h3>
        <ul className="mt-1 divide-y divide-slate-100 rounded border border-slate-200 bg-white text-xs">
          {view.plan.apply.map((step, position) => (
            <li key={step.id} className="flex flex-wrap items-center gap-2 px-2 py-1.5">
              <span className="font-medium">
                Step {position + 1} · {step.title}
              </span>
              <span className="font-mono text-ink-muted">{step.file}</span>
              <span className="text-ink-muted">
                {step.how} · lock_timeout {formatDuration(step.lockTimeoutMs)} · statement_timeout {formatDuration(step.statementTimeoutMs)}
              </span>
            </li>
          ))}
        </ul>
        {run && !PREPARING.includes(run.state) ? (
          <p className="mt-2 flex flex-wrap items-center gap-2 text-xs">
            <StatusBadge status={run.state} /> Run {run.id.slice(0, 8)} {run.executedBy ? `by ${run.executedBy}` : ''}
            <Link to={`/runs/${run.id}`} className="font-medium text-blue-700 underline">
              Open the live view
            </Link>
            {active && may.cancel ? <CancelButton runId={run.id} busy={busy('cancel')} /> : null}
          </p>
        ) : null}
      </Section>

      <Section
        id="verification"
        title="Verification"
        subtitle="The plan's verification checks, and the live state of the objects it names, read from the target"
        actions={may.runChecks && !active ? <RunChecksButton phase="verify" label="Run verification" busy={busy('run-checks', ['phase', 'verify'])} /> : null}
      >
        <SchemaFactsPanel facts={view.schemaFacts} title="Live schema facts">
          {may.runChecks ? (
            <Form method="post" replace preventScrollReset>
              <button name="intent" value="refresh-facts" className={SECONDARY_BUTTON} disabled={busy('refresh-facts')}>
                {busy('refresh-facts') ? 'Reading…' : 'Refresh facts'}
              </button>
            </Form>
          ) : null}
        </SchemaFactsPanel>
        <ResultsSource section={view.sections.verify} run={run} />
        <CheckResultsTable checks={view.sections.verify.checks} results={view.sections.verify.results} checksum={view.plan.checksum}  sqlHref={sqlHref(view.plan.id)} />
      </Section>

      <Section
        id="post-execution"
        title="Post-execution validation"
        subtitle="API tests and data-quality checks"
        actions={may.runChecks && !active ? <RunChecksButton phase="post" label="Run post-execution checks" busy={busy('run-checks', ['phase', 'post'])} /> : null}
      >
        <h3 className="mt-1 text-sm font-semibold">API testing</h3>
        <CheckResultsTable checks={view.sections.post.checks.filter((check) => check.kind === 'http')} results={view.sections.post.results} checksum={view.plan.checksum}  sqlHref={sqlHref(view.plan.id)} />
        <h3 className="mt-3 text-sm font-semibold">Data quality</h3>
        <CheckResultsTable checks={view.sections.post.checks.filter((check) => check.kind !== 'http')} results={view.sections.post.results} checksum={view.plan.checksum}  sqlHref={sqlHref(view.plan.id)} />
      </Section>

      <RollbackSection view={view} busy={busy} />
      {view.watch || view.restore ? <AfterTheRunSection view={view} busy={busy} /> : null}

      <Section id="success-criteria" title="Success criteria" subtitle="Ticked from check results where checks back them, by hand otherwise (recorded in the run log)">
        <ul className="divide-y divide-slate-100 rounded border border-slate-200 bg-white">
          {view.successCriteria.map((criterion) => (
            <li key={criterion.index} className="flex flex-wrap items-start gap-2 px-2 py-2 text-xs">
              {criterion.checks.length === 0 ? (
                <TickToggle
                  intent="tick-criterion"
                  fields={{ index: String(criterion.index) }}
                  ticked={criterion.status === 'ticked'}
                  label={criterion.text}
                  allowed={may.tick && (run !== null || view.previousRun !== null)}
                  disabledReason={!may.tick ? 'Your role may not tick' : 'No run yet'}
                />
              ) : (
                <span className="w-5 shrink-0" aria-hidden="true" />
              )}
              <div className="min-w-0 flex-1">
                <div className="flex flex-wrap items-center gap-1.5">
                  <StatusBadge status={criterion.status} />
                  <span className="font-medium">{criterion.text}</span>
                </div>
                {criterion.checks.length > 0 ? (
                  <div className="mt-1 flex flex-wrap gap-1">
                    {criterion.checks.map((check) => (
                      <a key={check.id} href={`#check-${check.id}`}>
                        <StatusBadge status={check.status} label={check.id} />
                      </a>
                    ))}
                  </div>
                ) : criterion.manual ? (
                  <div className="mt-0.5 text-[11px] text-ink-muted">
                    {criterion.manual.ticked ? 'Ticked' : 'Unticked'} by {criterion.manual.by} at {formatUtc(criterion.manual.at)}
                  </div>
                ) : (
                  <div className="mt-0.5 text-[11px] text-ink-muted">Ticked by hand</div>
                )}
              </div>
            </li>
          ))}
        </ul>
      </Section>

      {view.plan.risk ? (
        <Section id="risk" title="Risk assessment">
          <div className="rounded border border-slate-200 bg-white p-3 text-xs">
            <p className="flex items-center gap-2">
              Risk level <StatusBadge status={view.plan.risk.level === 'low' ? 'pass' : view.plan.risk.level === 'medium' ? 'stale' : 'fail'} label={view.plan.risk.level.toUpperCase()} />
            </p>
            <div className="mt-2 grid gap-3 md:grid-cols-2">
              <div>
                <h3 className="font-semibold">Rationale</h3>
                <ul className="mt-1 list-disc space-y-1 pl-4">
                  {view.plan.risk.rationale.map((line) => (
                    <li key={line}>{line}</li>
                  ))}
                </ul>
              </div>
              <div>
                <h3 className="font-semibold">Mitigation</h3>
                <ul className="mt-1 list-disc space-y-1 pl-4">
                  {view.plan.risk.mitigation.map((line) => (
                    <li key={line}>{line}</li>
                  ))}
                </ul>
              </div>
            </div>
          </div>
        </Section>
      ) : null}

      <Section id="team-messages" title="Team communication" subtitle="Filled from the run's facts; copy and paste into the team channel">
        <div className="grid gap-3 lg:grid-cols-2">
          {view.teamMessages.pre ? <TeamMessage title="Pre-execution message" {...view.teamMessages.pre} /> : null}
          {view.teamMessages.post ? <TeamMessage title="Post-execution message" {...view.teamMessages.post} /> : null}
          {view.teamMessages.rollback ? <TeamMessage title="Rollback message" {...view.teamMessages.rollback} /> : null}
          {!view.teamMessages.post && !view.teamMessages.rollback ? (
            <p className="text-xs text-ink-muted">The post-execution message is offered once a run has applied and verified; a rollback message once it is rolled back.</p>
          ) : null}
        </div>
      </Section>

      {view.plan.notes.length > 0 ? (
        <Section id="notes" title="Notes">
          <dl className="space-y-2 rounded border border-slate-200 bg-white p-3 text-xs">
            {view.plan.notes.map((note) => (
              <div key={note.title}>
                <dt className="font-semibold">{note.title}</dt>
                <dd className="mt-0.5 text-ink-muted">{note.body}</dd>
              </div>
            ))}
          </dl>
        </Section>
      ) : null}

      <ExecutionLog view={view} busy={busy} />
    </>
  );
}

const PRIMARY_BUTTON =
  'inline-flex items-center justify-center rounded bg-slate-800 px-3 py-1.5 text-xs font-semibold text-white hover:bg-slate-700 disabled:cursor-not-allowed disabled:bg-slate-300 disabled:text-slate-600';

function Section({ id, title, subtitle, actions, children }: { id: string; title: string; subtitle?: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section id={id} className="mt-6 scroll-mt-4" aria-labelledby={`${id}-title`}>
      <div className="flex flex-wrap items-end gap-x-3 gap-y-1 border-b border-slate-200 pb-1">
        <div className="min-w-0 flex-1">
          <h2 id={`${id}-title`} className="text-base font-semibold">
            {title}
          </h2>
          {subtitle ? <p className="text-xs text-ink-muted">{subtitle}</p> : null}
        </div>
        {actions}
      </div>
      <div className="mt-2">{children}</div>
    </section>
  );
}

function RunChecksButton({ phase, label, busy }: { phase: string; label: string; busy: boolean }) {
  return (
    <Form method="post" replace preventScrollReset>
      <input type="hidden" name="phase" value={phase} />
      <button name="intent" value="run-checks" className={PRIMARY_BUTTON} disabled={busy}>
        {busy ? 'Running…' : label}
      </button>
    </Form>
  );
}

/** Engineers, on a sandbox target: regenerate it, then apply the plan's sandbox.sql (the plan's starting state). */
function ResetSandboxButton({ view, busy }: { view: ChecklistView; busy: boolean }) {
  const what = `Regenerates ${view.target.label} (${view.sandboxResetUsers.toLocaleString('en-US')} users)${view.plan.sandboxFixture ? ', then runs this plan\'s sandbox.sql' : ''}; recorded in the audit log.`;
  return (
    <Form method="post" replace preventScrollReset className="flex flex-wrap items-center gap-2">
      <span className="max-w-xs text-[11px] text-ink-muted">{what}</span>
      <button name="intent" value="reset-sandbox" className={SECONDARY_BUTTON} disabled={busy}>
        {busy ? 'Resetting…' : view.plan.sandboxFixture ? 'Reset the sandbox with this plan\'s fixture' : 'Reset the sandbox'}
      </button>
    </Form>
  );
}

function CancelButton({ runId, busy }: { runId: string; busy: boolean }) {
  return (
    <Form method="post" replace preventScrollReset>
      <input type="hidden" name="runId" value={runId} />
      <button name="intent" value="cancel" className={DANGER_BUTTON} disabled={busy}>
        {busy ? 'Cancelling…' : 'Cancel run'}
      </button>
    </Form>
  );
}

function ResultsSource({ section, run }: { section: ChecklistView['sections']['pre']; run: RunSummary | null }) {
  if (section.checks.length === 0) return null;
  return (
    <p className="text-[11px] text-ink-muted">
      {section.source === 'run' && run ? `Results of run ${run.id.slice(0, 8)}.` : 'No current run: the newest results on this target, from any run or none.'}
    </p>
  );
}

/** An engineer waives one finding for the working run, with a reason (recorded in the run log; opens the lint-clean gate of this run only). */
function WaiveFindingForm({ finding, busy }: { finding: ChecklistView['plan']['lint'][number]; busy: boolean }) {
  const reasonId = `waive-${finding.rule}-${finding.line}`;
  return (
    <Form method="post" className="mt-1 flex flex-wrap items-center gap-1.5">
      <input type="hidden" name="intent" value="waive-lint" />
      <input type="hidden" name="file" value={finding.file} />
      <input type="hidden" name="line" value={finding.line} />
      <input type="hidden" name="rule" value={finding.rule} />
      <label htmlFor={reasonId} className="sr-only">
        Why {finding.rule} at line {finding.line} is safe on this target
      </label>
      <input
        id={reasonId}
        name="reason"
        required
        minLength={10}
        maxLength={2000}
        placeholder="Why it is safe here (recorded in the run log)"
        className="min-w-0 flex-1 rounded border border-slate-300 px-1.5 py-0.5 text-[11px]"
      />
      <button type="submit" disabled={busy} className="rounded border border-slate-300 bg-white px-2 py-0.5 text-[11px] hover:bg-slate-100 disabled:opacity-50">
        {busy ? 'Waiving…' : 'Waive for this run'}
      </button>
    </Form>
  );
}

function RulesList({ rules }: { rules: ChecklistView['target']['rules'] }) {
  const items = [
    rules.require_signoff ? 'four-eyes sign-off' : null,
    rules.confirm_target_name ? 'type the target name to execute' : null,
    rules.require_applied_on.length > 0 ? `applied on ${rules.require_applied_on.join(', ')} first` : null,
    rules.require_watched_on.length > 0 ? `a clean watch on ${rules.require_watched_on.join(', ')} first` : null,
    rules.require_lint_clean ? 'no squawk errors' : null,
  ].filter(Boolean);
  return (
    <p className="mt-3 border-t border-slate-100 pt-2 text-xs text-ink-muted">
      Target rules: {items.length > 0 ? items.join(' · ') : rules.sandbox ? 'sandbox (no extra gates)' : 'none'}
    </p>
  );
}

function RunLink({ run, prefix }: { run: RunSummary; prefix: string }) {
  return (
    <span className="flex flex-wrap items-center gap-1.5">
      <span className="text-ink-muted">{prefix}</span>
      <StatusBadge status={run.state} rehearsal={run.kind === 'rehearsal'} />
      <Link to={`/runs/${run.id}`} className="font-mono text-blue-700 underline">
        {run.id.slice(0, 8)}
      </Link>
      {run.failure ? (
        <span className="text-red-800">
          line {run.failure.line}
          {run.failure.sqlstate ? `, SQLSTATE ${run.failure.sqlstate}` : ''}
        </span>
      ) : null}
    </span>
  );
}

/** The plan's state on the target (from its ledger) and the current run's state, never confused. */
function StateBanner({ view }: { view: ChecklistView }) {
  const { planState, run } = view;
  const ledger = planState.ledger;
  return (
    <section aria-label="State" className="mt-3 grid gap-2 rounded border border-slate-200 bg-white p-3 text-xs md:grid-cols-2">
      <div>
        <h2 className="text-[11px] font-semibold uppercase tracking-wide text-ink-muted">Plan on {view.target.label} (target ledger)</h2>
        <div className="mt-1 flex flex-wrap items-center gap-2">
          <StatusBadge status={planState.state} />
          <span className={planState.state === 'drift' ? 'text-amber-900' : undefined}>
            {planState.state === 'applied' && ledger?.runId
              ? `by run ${ledger.runId.slice(0, 8)} (${ledger.by ?? '?'}, ${formatUtc(ledger.at)}) at checksum ${ledger.checksum?.slice(0, 12) ?? '?'}`
              : planState.state === 'rolled_back' && ledger?.runId
                ? `by run ${ledger.runId.slice(0, 8)} (${ledger.by ?? '?'}, ${formatUtc(ledger.at)})`
                : planState.reason}
          </span>
        </div>
        {planState.rereading ? (
          <p role="status" className="mt-1 text-ink-muted">
            Re-reading the schema facts: they are older than the latest change on this target, so nothing is judged from them until they are read again.
          </p>
        ) : null}
        {planState.ledgerError ? <p className="mt-1 text-red-800">The ledger could not be read: {planState.ledgerError}</p> : null}
      </div>
      <div>
        <h2 className="text-[11px] font-semibold uppercase tracking-wide text-ink-muted">Current run</h2>
        <div className="mt-1 space-y-1">
          {run ? (
            <RunLink run={run} prefix="" />
          ) : (
            <p className="text-ink-muted">No run open: the first tick or pre-check run opens one.</p>
          )}
          {!run && view.previousRun ? <RunLink run={view.previousRun} prefix="Last run:" /> : null}
          {view.newAttempt ? (
            <div aria-label="New attempt" className="rounded border border-amber-300 bg-amber-50 p-2 text-amber-950">
              <p>{view.newAttempt.why}</p>
              {view.may.tick ? (
                <Form method="post" replace preventScrollReset className="mt-1">
                  <button name="intent" value="new-attempt" className={SECONDARY_BUTTON}>
                    Start a new attempt
                  </button>
                </Form>
              ) : null}
            </div>
          ) : null}
          {view.staleDraft ? (
            <p className="text-amber-900">Run {view.staleDraft.id.slice(0, 8)} was opened under an older checksum of the plan: the next tick opens a new run.</p>
          ) : null}
          {view.rehearsal ? <RunLink run={view.rehearsal} prefix="Last rehearsal:" /> : null}
          {view.otherActive ? (
            <p className="text-amber-900">
              Plan {view.otherActive.planId} is {view.otherActive.state.replace(/_/g, ' ')} on this target (run{' '}
              <Link to={`/runs/${view.otherActive.id}`} className="underline">
                {view.otherActive.id.slice(0, 8)}
              </Link>
              ).
            </p>
          ) : null}
        </div>
      </div>
    </section>
  );
}

function ActionFeedback({ result }: { result: ActionResult }) {
  if (result.ok) {
    return (
      <p role="status" className="mt-3 rounded border border-emerald-300 bg-emerald-50 px-3 py-2 text-xs text-emerald-900">
        {result.message}
      </p>
    );
  }
  return (
    <div role="alert" className="mt-3 rounded border border-red-300 bg-red-50 px-3 py-2 text-xs text-red-900">
      <p className="font-semibold">{result.error}</p>
      {result.openGates && result.openGates.length > 0 ? (
        <ul className="mt-1 list-disc pl-4">
          {result.openGates.map((gate) => (
            <li key={gate.id}>
              {gate.label}: {gate.detail}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function GoNoGo({ view, actionData, busy }: { view: ChecklistView; actionData?: ActionResult; busy: (intent: string) => boolean }) {
  const { run, may, gates, target } = view;
  const preparing = run !== null && PREPARING.includes(run.state);
  const open = (gates ?? []).filter((gate) => !gate.passed && !gate.atExecute);
  const go = preparing && gates !== null && open.length === 0;
  const fourEyes = target.rules.require_signoff;
  const executeDisabled = !may.execute || !go || busy('execute');
  const blockedId = 'execute-blocked';
  return (
    <Section id="go-no-go" title="Go / no-go" subtitle="Every gate is judged again when executing; a refused execute changes nothing">
      <div className="flex flex-wrap items-center gap-2">
        {preparing ? (
          <p
            className={`flex w-full flex-wrap items-center gap-2 rounded border px-3 py-2 text-sm ${go ? 'border-emerald-300 bg-emerald-50 text-emerald-900' : 'border-red-300 bg-red-50 text-red-900'}`}
          >
            {go ? <StatusBadge status="gate_closed" label="GO" /> : <StatusBadge status="gate_open" label={`NO-GO · ${open.length} gate${open.length === 1 ? '' : 's'} open`} />}
            <span>
              {go
                ? may.execute
                  ? 'Every gate is closed: you may execute.'
                  : 'Every gate is closed: waiting on an engineer to execute.'
                : `Waiting on: ${[...new Set(open.map((gate) => gate.waitsOn))].join('; ')}.`}
            </span>
          </p>
        ) : run ? (
          <span className="text-xs text-ink-muted">Run {run.id.slice(0, 8)} is {run.state.replace(/_/g, ' ')}: the gates were judged when it executed.</span>
        ) : (
          <span className="text-xs text-ink-muted">No run yet: gates are judged on a run, opened by the first tick or pre-check run.</span>
        )}
      </div>
      {gates ? (
        <div className="mt-2">
          <GateList gates={gates} />
        </div>
      ) : null}

      <div className="mt-3 grid gap-3 lg:grid-cols-3">
        <div className="rounded border border-slate-200 bg-white p-3 text-xs">
          <h3 className="text-sm font-semibold">Sign-off</h3>
          <p className="mt-1 text-ink-muted">
            {fourEyes ? 'Four-eyes on this target: a TPM or engineer other than the executor signs off.' : 'Optional on this target (no four-eyes rule); recorded when given.'}
          </p>
          {view.signoffs.length > 0 ? (
            <ul className="mt-1 space-y-0.5">
              {view.signoffs.map((signoff) => (
                <li key={`${signoff.by}-${signoff.at}`} className="flex flex-wrap items-center gap-1">
                  <StatusBadge status="signed_off" /> {signoff.by}
                  {signoff.role ? ` (${signoff.role})` : ''} at {formatUtc(signoff.at)}
                </li>
              ))}
            </ul>
          ) : (
            <p className="mt-1">Nobody has signed off this run.</p>
          )}
          {may.signOff ? (
            <Form method="post" replace preventScrollReset className="mt-2">
              <button name="intent" value="sign-off" className={SECONDARY_BUTTON} disabled={!preparing || busy('sign-off')}>
                {busy('sign-off') ? 'Signing off…' : 'Sign off'}
              </button>
            </Form>
          ) : null}
        </div>

        <div className="rounded border border-slate-200 bg-white p-3 text-xs">
          <h3 className="text-sm font-semibold">Execute on {target.label}</h3>
          <Form method="post" className="mt-1 space-y-2">
            {target.rules.confirm_target_name ? (
              <label className="block">
                <span className="block">
                  Type the target's name, <span className="font-mono font-semibold">{target.name}</span>, to confirm
                </span>
                <input
                  name="typedTargetName"
                  autoComplete="off"
                  spellCheck={false}
                  className="mt-1 w-full rounded border border-slate-300 px-2 py-1 font-mono"
                  disabled={!may.execute || !preparing}
                />
              </label>
            ) : null}
            <button name="intent" value="execute" className={DANGER_BUTTON} disabled={executeDisabled} aria-describedby={executeDisabled ? blockedId : undefined}>
              {busy('execute') ? 'Starting…' : 'Execute'}
            </button>
            <div id={blockedId} className="text-[11px]">
              {!may.execute ? (
                <p className="text-ink-muted">Only an engineer may execute.</p>
              ) : !preparing ? (
                <p className="text-ink-muted">{run ? `Run ${run.id.slice(0, 8)} is ${run.state.replace(/_/g, ' ')}.` : 'No run to execute yet.'}</p>
              ) : open.length > 0 ? (
                <div className="text-red-900">
                  <p>Disabled: {open.length} gate{open.length === 1 ? '' : 's'} open</p>
                  <ul className="list-disc pl-4">
                    {open.map((gate) => (
                      <li key={gate.id}>{gate.label}</li>
                    ))}
                  </ul>
                </div>
              ) : (
                <p className="text-emerald-800">Go: every gate is closed.</p>
              )}
            </div>
          </Form>
          {actionData && !actionData.ok && actionData.intent === 'execute' && actionData.openGates ? (
            <div role="alert" className="mt-2 rounded border border-red-300 bg-red-50 p-2 text-red-900">
              <p className="font-semibold">Refused: the open gates</p>
              <ul className="list-disc pl-4">
                {actionData.openGates.map((gate) => (
                  <li key={gate.id}>
                    {gate.label}: {gate.detail}
                  </li>
                ))}
              </ul>
            </div>
          ) : null}
        </div>

        <div className="rounded border border-dashed border-violet-400 bg-violet-50/40 p-3 text-xs">
          <h3 className="flex items-center gap-2 text-sm font-semibold">
            Rehearse <RehearsalChip />
          </h3>
          <p className="mt-1 text-ink-muted">
            Runs apply, verification, data quality, rollback and its verification in one transaction that is always rolled back. It holds the migration's locks while it runs.
          </p>
          <Form method="post" className="mt-2">
            <button
              name="intent"
              value="rehearse"
              className={SECONDARY_BUTTON}
              disabled={!may.rehearse || !view.plan.rehearsal.allowed || busy('rehearse')}
              aria-describedby={view.plan.rehearsal.allowed ? undefined : 'rehearse-refused'}
            >
              {busy('rehearse') ? 'Starting…' : 'Rehearse'}
            </button>
            {!view.plan.rehearsal.allowed ? (
              <p id="rehearse-refused" className="mt-1 text-[11px] text-red-900">
                Disabled: {view.plan.rehearsal.reason}.
              </p>
            ) : !may.rehearse ? (
              <p className="mt-1 text-[11px] text-ink-muted">Only an engineer may rehearse.</p>
            ) : null}
          </Form>
          {view.rehearsal ? (
            <div className="mt-2">
              <RunLink run={view.rehearsal} prefix="Last:" />
            </div>
          ) : null}
        </div>
      </div>
    </Section>
  );
}

function AfterTheRunSection({ view, busy }: { view: ChecklistView; busy: (intent: string) => boolean }) {
  const { watch, restore, may } = view;
  return (
    <Section id="watch" title="After the run" subtitle="The watch window's rounds over time, and what a rollback kept">
      {watch ? (
        <div className="rounded border border-slate-200 bg-white p-3">
          <WatchStripView strip={watch.strip} nowIso={watch.nowIso} />
          {watch.running && may.endWatch ? (
            <div className="mt-2 flex flex-wrap items-end gap-3 text-xs">
              <Form method="post" className="flex items-end gap-2">
                <input type="hidden" name="intent" value="end-watch" />
                <input type="hidden" name="runId" value={watch.runId} />
                <label className="block">
                  <span className="block">Why end it now</span>
                  <input name="note" required maxLength={2000} className="mt-0.5 w-64 rounded border border-slate-300 px-2 py-1" />
                </label>
                <button type="submit" className={SECONDARY_BUTTON} disabled={busy('end-watch')}>
                  End the watch early
                </button>
              </Form>
              <Form method="post" className="flex items-end gap-2">
                <input type="hidden" name="intent" value="extend-watch" />
                <input type="hidden" name="runId" value={watch.runId} />
                <label className="block">
                  <span className="block">Extend by</span>
                  <input name="by" required defaultValue="12h" className="mt-0.5 w-20 rounded border border-slate-300 px-2 py-1 font-mono" />
                </label>
                <label className="block">
                  <span className="block">Note (optional)</span>
                  <input name="note" maxLength={2000} className="mt-0.5 w-48 rounded border border-slate-300 px-2 py-1" />
                </label>
                <button type="submit" className={SECONDARY_BUTTON} disabled={busy('extend-watch')}>
                  Extend
                </button>
              </Form>
            </div>
          ) : null}
        </div>
      ) : null}
      {restore ? (
        <Form method="post" className="mt-3 rounded border border-slate-200 bg-white p-3 text-xs" aria-label="Restore what the rollback kept">
          <p>
            Run <span className="font-mono">{restore.fromRunId.slice(0, 8)}</span>'s rollback kept {restore.backups.map((table) => <span key={table} className="mr-1 font-mono">{table}</span>)}. A restore puts those values back into this run's
            objects by primary key, skipping (and listing) rows that are gone or that a constraint refuses now.
          </p>
          <input type="hidden" name="intent" value="restore" />
          <input type="hidden" name="runId" value={restore.runId} />
          <div className="mt-2 flex flex-wrap items-end gap-2">
            <label className="block">
              <span className="block">
                Type the target's name, <span className="font-mono font-semibold">{view.target.name}</span>, to confirm
              </span>
              <input name="typedTargetName" required autoComplete="off" spellCheck={false} disabled={!may.restore} className="mt-0.5 w-48 rounded border border-slate-300 px-2 py-1 font-mono" />
            </label>
            <button type="submit" className={DANGER_BUTTON} disabled={!may.restore || busy('restore')} aria-describedby={may.restore ? undefined : 'restore-why'}>
              Restore…
            </button>
            {may.restore ? null : (
              <span id="restore-why" className="text-[11px] text-ink-muted">
                Only an engineer may restore.
              </span>
            )}
          </div>
        </Form>
      ) : null}
    </Section>
  );
}

function RollbackSection({ view, busy }: { view: ChecklistView; busy: (intent: string) => boolean }) {
  const { run, may, rollback } = view;
  return (
    <Section
      id="rollback"
      title="Rollback procedure"
      subtitle={`${view.plan.rollbackSteps.length} rollback step${view.plan.rollbackSteps.length === 1 ? '' : 's'}, then the rollback verification`}
      actions={may.runChecks && !(run && ACTIVE.includes(run.state)) ? <RunChecksButton phase="rollback" label="Run rollback verification" busy={busy('run-checks')} /> : null}
    >
      <ul className="divide-y divide-slate-100 rounded border border-slate-200 bg-white text-xs">
        {view.plan.rollbackSteps.map((step, position) => (
          <li key={step.id} className="flex flex-wrap items-center gap-2 px-2 py-1.5">
            <span className="font-medium">
              Step {position + 1} · {step.title}
            </span>
            <span className="font-mono text-ink-muted">{step.file}</span>
          </li>
        ))}
      </ul>
      <div className="mt-2 flex flex-wrap items-center gap-2">
        {rollback ? (
          <RollbackDialog preview={rollback} allowed={may.rollback && rollback.gate.passed} busy={busy('rollback')} disabledReason={may.rollback ? undefined : 'Only an engineer may roll back.'} />
        ) : (
          <>
            <button type="button" className={DANGER_BUTTON} disabled aria-describedby="rollback-why">
              Roll back…
            </button>
            <span id="rollback-why" className="text-[11px] text-ink-muted">
              {!may.rollback ? 'Only an engineer may roll back.' : run ? `Nothing to roll back: run ${run.id.slice(0, 8)} is ${run.state.replace(/_/g, ' ')}.` : 'Nothing to roll back: no run has applied.'}
            </span>
          </>
        )}
      </div>
      <h3 className="mt-3 text-sm font-semibold">Rollback verification</h3>
      <CheckResultsTable checks={view.sections.rollback.checks} results={view.sections.rollback.results} checksum={view.plan.checksum}  sqlHref={sqlHref(view.plan.id)} />
    </Section>
  );
}

function ExecutionLog({ view, busy }: { view: ChecklistView; busy: (intent: string) => boolean }) {
  const run = view.run ?? view.previousRun;
  const started = run?.startedAt ? Date.parse(run.startedAt) : undefined;
  const finished = run?.finishedAt ? Date.parse(run.finishedAt) : undefined;
  return (
    <Section id="execution-log" title="Execution log" subtitle="Filled by Runsheet from the run log">
      <div className="grid gap-3 lg:grid-cols-2">
        <dl className="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 rounded border border-slate-200 bg-white p-3 text-xs">
          <dt className="text-ink-muted">Run</dt>
          <dd>{run ? <RunLink run={run} prefix="" /> : 'none yet'}</dd>
          <dt className="text-ink-muted">Executor</dt>
          <dd>{run?.executedBy ?? '—'}</dd>
          <dt className="text-ink-muted">Execution time</dt>
          <dd>
            {formatUtc(run?.startedAt)} – {formatUtc(run?.finishedAt)}
          </dd>
          <dt className="text-ink-muted">Duration</dt>
          <dd>{started !== undefined && finished !== undefined ? formatDuration(finished - started) : '—'}</dd>
          <dt className="text-ink-muted">Signed off by</dt>
          <dd>{run?.signedOffBy ?? '—'}</dd>
        </dl>
        <div className="rounded border border-slate-200 bg-white p-3 text-xs">
          <h3 className="text-sm font-semibold">Runs of this plan on {view.target.label}</h3>
          {view.recentRuns.length === 0 ? (
            <p className="mt-1 text-ink-muted">None yet.</p>
          ) : (
            <ul className="mt-1 space-y-1">
              {view.recentRuns.map((candidate) => (
                <li key={candidate.id} className={candidate.kind === 'rehearsal' ? 'rounded border border-dashed border-violet-400 px-1 py-0.5' : ''}>
                  <RunLink run={candidate} prefix={formatUtc(candidate.createdAt)} />
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>

      <h3 className="mt-4 text-sm font-semibold" id="issues-title">
        Issues encountered
      </h3>
      {view.issues.length === 0 ? (
        <p className="mt-1 text-xs text-ink-muted">No notes in the run log.</p>
      ) : (
        <ol aria-labelledby="issues-title" className="mt-1 space-y-1 text-xs">
          {view.issues.map((note) => (
            <li key={note.seq} className="rounded border border-slate-200 bg-white p-2">
              <div className="text-[11px] text-ink-muted">
                {note.actor}
                {note.role ? ` (${note.role})` : ''} · {formatUtc(note.at)}
              </div>
              <p className="mt-0.5 whitespace-pre-wrap">{note.text}</p>
            </li>
          ))}
        </ol>
      )}
      {view.may.addNote ? (
        <Form key={view.issues.length} method="post" replace preventScrollReset className="mt-2 max-w-2xl">
          <label className="block text-xs">
            <span className="font-medium">Add a note or issue</span>
            <textarea name="text" rows={3} required maxLength={10_000} className="mt-1 block w-full rounded border border-slate-300 p-2 text-xs" />
          </label>
          <button name="intent" value="add-note" className={`${SECONDARY_BUTTON} mt-1`} disabled={busy('add-note')}>
            {busy('add-note') ? 'Adding…' : 'Add note'}
          </button>
        </Form>
      ) : null}
    </Section>
  );
}

export { RouteErrorBoundary as ErrorBoundary } from '../components/route-error-boundary';
