/**
 * The JSON API (/api/v1): one handler for every endpoint of app/api/api-contract.ts. Each request
 * is matched to its endpoint (unknown: 404 in JSON), authenticated by its bearer API token with
 * the permission API_ACCESS names (app/auth/api-token-guard.server.ts), its body or query
 * validated by the contract's zod schema, then handed to the engine as the token's account with
 * `via: { channel: 'api', tokenId }`. Errors are `{ error: { kind, message, gates? } }` with the
 * status of the one error table (HTTP_STATUS_BY_KIND). Execute, rehearse and rollback answer 202
 * once the drive has started; the client follows GET /runs/{id}/events.
 */
import type { AppLoadContext } from '@remix-run/node';
import type { z } from 'zod';
import { API_ACCESS, type ApiRouteKey } from '../accounts/permissions';
import { API_BASE, API_ENDPOINTS, matchApiRoute, apiPath } from '../api/api-contract';
import type * as Contract from '../api/api-contract';
import { requireApiCaller } from '../auth/api-token-guard.server';
import type { SignedInUser } from '../auth/require.server';
import { requireValidPlan, runPlanChecks } from '../checks/plan-checks.server';
import type { Runtime } from '../boot/runtime.server';
import { pauseBackfill, resumeBackfill } from '../engine/backfill-control.server';
import { cancelRequestedMessage, cancelRun, executeRun, rehearseRun, rollbackRun } from '../engine/engine.server';
import { evaluateGates } from '../engine/gates.server';
import { previewRollback } from '../engine/rollback-preview.server';
import { addNote, getRun, openWorkingRun, readRunDetail, runRunChecks, signOff, tickCriterion, tickPrerequisite } from '../engine/runs.server';
import { waiveLintFinding } from '../engine/waive-lint.server';
import { loadPlan } from '../plans/load-plans.server';
import { listPlanOverviews, planOnTarget } from '../plans/plan-overview.server';
import { DRIVE_EVENTS, type DriveAction } from '../runs/run-events';
import type { LoggedRunEvent } from '../runs/run-log.server';
import type { RunRecord } from '../runs/run-store.server';
import { findRuns } from '../runs/run-store.server';
import { exportRunLog, noSignedLogYet } from '../runs/signing.server';
import { gateRefusal, isRunsheetError, RunsheetError } from '../runtime/errors';
import { isPreparingState, mayRollBackFrom } from '../../db/run-lifecycle';
import { actorOf } from './actor.server';
import { HTTP_STATUS_BY_KIND } from './http-answers.server';
import { resumeSeq, streamRunEvents } from './run-page.server';

const JSON_HEADERS = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' };

function json(body: unknown, status = 200): Response {
  return new Response(`${JSON.stringify(body)}\n`, { status, headers: JSON_HEADERS });
}

/** A RunsheetError as the API answers it; anything else is a bug: logged, and a 500 without details. */
export function apiErrorResponse(error: unknown): Response {
  if (isRunsheetError(error)) {
    return json({ error: { kind: error.kind, message: error.message, ...(error.gates ? { gates: error.gates } : {}) } }, HTTP_STATUS_BY_KIND[error.kind]);
  }
  if (error instanceof Response) return error;
  console.error(`[runsheet] API: ${(error as Error)?.stack ?? String(error)}`);
  return json({ error: { kind: 'internal', message: 'The server failed on this request; its log says why.' } }, 500);
}

/** Answers one request under /api/v1 (the route api.v1.$ hands every method here). */
export async function answerApiRequest(request: Request, context: AppLoadContext): Promise<Response> {
  try {
    const url = new URL(request.url);
    const path = url.pathname.slice(API_BASE.length) || '/';
    const matched = matchApiRoute(request.method, path);
    if (!matched) throw new RunsheetError('not_found', `No endpoint ${request.method.toUpperCase()} ${url.pathname}: docs/api.md lists them.`);
    const { route, params } = matched;
    const user = await requireApiCaller(request, context, API_ACCESS[route.key]);
    const endpoint = API_ENDPOINTS[route.key];
    const input = endpoint.body ? parseInput(endpoint.body, await readJsonBody(request), 'body') : endpoint.query ? parseInput(endpoint.query, Object.fromEntries(url.searchParams), 'query') : undefined;
    return await HANDLERS[route.key]({ runtime: context.runtime, user, params, input, request });
  } catch (error) {
    return apiErrorResponse(error);
  }
}

async function readJsonBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new RunsheetError('invalid_input', 'The request body is not JSON: send a JSON object (Content-Type: application/json).');
  }
}

function parseInput(schema: z.ZodType, value: unknown, where: 'body' | 'query'): unknown {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : where}: ${issue.message}`);
  throw new RunsheetError('invalid_input', `The request ${where} is not valid: ${problems.join('; ')}.`);
}

interface HandlerInput {
  runtime: Runtime;
  user: SignedInUser;
  params: Record<string, string>;
  input: unknown;
  request: Request;
}
type Handler = (call: HandlerInput) => Promise<Response>;

/** A run as the API shows it: without its frozen plan (GET /plans/{id} has the plan). */
function runJson(run: RunRecord) {
  const { frozenPlan: _frozen, ...rest } = run;
  return rest;
}

const runLinks = (runId: string) => ({ url: apiPath('GET /runs/{runId}', { runId }), events: apiPath('GET /runs/{runId}/events', { runId }) });

/** The run's working run id, or a 404 in words. */
async function runOf(runtime: Runtime, runId: string | undefined): Promise<RunRecord> {
  if (!runId || !/^[0-9a-f-]{36}$/i.test(runId)) throw new RunsheetError('not_found', `No run "${runId}": a run id is a uuid (GET ${API_BASE}/runs lists them).`);
  return getRun(runtime, runId);
}

/**
 * Starts a drive and answers once it has begun (its '.started' event) or was refused: a refusal
 * (a gate, the target busy, the lock held) comes back as the request's error, never hidden.
 */
function startDrive(action: DriveAction, run: RunRecord, start: (onEvent: (event: LoggedRunEvent) => void) => Promise<RunRecord>): Promise<Response> {
  return new Promise((resolve) => {
    let answered = false;
    const answer = (response: Response) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      resolve(response);
    };
    const started = (state: string) => json({ runId: run.id, state, ...runLinks(run.id) }, 202);
    // A drive that logs nothing for this long is still starting: the stream shows what follows.
    const timer = setTimeout(() => answer(started(run.state)), START_WAIT_MS);
    start((event) => {
      if (event.type === DRIVE_EVENTS[action].started) answer(started(action === 'execute' ? 'applying' : action === 'rehearse' ? 'rehearsing' : 'rolling_back'));
    }).then(
      (done) => answer(started(done.state)),
      (error: unknown) => {
        if (!isRunsheetError(error)) console.error(`[runsheet] ${action} of run ${run.id} stopped: ${(error as Error).message}`);
        answer(apiErrorResponse(error));
      },
    );
  });
}

const START_WAIT_MS = 10_000;

/** Judged before the drive so that a refusal lists every open gate at once (the engine judges them again). */
async function refuseOpenGates(runtime: Runtime, run: RunRecord, executor: string, typedTargetName?: string): Promise<void> {
  const open = (await evaluateGates(runtime, run, { executor, typedTargetName })).filter((gate) => !gate.passed);
  if (open.length > 0) throw gateRefusal(open);
}

const HANDLERS: Readonly<Record<ApiRouteKey, Handler>> = {
  'GET /me': async ({ user }) => json({ account: { email: user.email, name: user.name, role: user.role, kind: user.accountKind ?? 'person' }, token: { id: user.tokenId } }),

  'GET /plans': async ({ runtime }) => json({ plans: await listPlanOverviews(runtime) }),

  'GET /plans/{planId}': async ({ runtime, params, input }) => {
    const { target } = input as z.infer<typeof Contract.PlanQuerySchema>;
    const loaded = await loadPlan(runtime.plansDir, params.planId!);
    if (!loaded) throw new RunsheetError('not_found', `No plan "${params.planId}" (GET ${API_BASE}/plans lists them).`);
    if (!loaded.ok) return json({ id: loaded.id, valid: false, errors: loaded.errors });
    const onTarget = target ? await planOnTarget(runtime, loaded, runtime.targets.get(target)) : undefined;
    return json({
      id: loaded.id,
      valid: true,
      checksum: loaded.checksum,
      plan: loaded.plan,
      files: loaded.files.map((file) => ({ path: file.path, sha256: file.sha256 })),
      lint: loaded.lint,
      ...(onTarget ? { onTarget } : {}),
    });
  },

  'POST /plans/{planId}/check': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.PlanChecksBodySchema>;
    const outcome = await runPlanChecks(runtime, { planId: params.planId!, targetName: body.target, phase: body.phase, ranBy: user.email, ranByRole: user.role });
    const failed = outcome.results.filter((result) => !result.passed && !result.skipped);
    return json({ plan: outcome.plan.id, checksum: outcome.plan.checksum, target: outcome.target.name, phase: body.phase, passed: failed.length === 0, results: outcome.results });
  },

  'POST /plans/{planId}/runs': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.OpenRunBodySchema>;
    const { run, opened } = await openWorkingRun(runtime, { planId: params.planId!, target: body.target, kind: 'execute', actor: actorOf(user), newAttempt: body.newAttempt });
    return json({ opened, run: runJson(run), ...runLinks(run.id) }, opened ? 201 : 200);
  },

  'POST /plans/{planId}/rehearse': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.RehearseBodySchema>;
    const actor = actorOf(user);
    const { run } = await openWorkingRun(runtime, { planId: params.planId!, target: body.target, kind: 'rehearsal', actor });
    await refuseOpenGates(runtime, run, user.email);
    return startDrive('rehearse', run, (onEvent) => rehearseRun(runtime, { runId: run.id, actor, onEvent }));
  },

  'GET /runs': async ({ runtime, input }) => {
    const query = input as z.infer<typeof Contract.RunsQuerySchema>;
    const runs = await findRuns(runtime.store.pool, { planId: query.plan, target: query.target, limit: query.limit });
    return json({ runs: runs.map(runJson) });
  },

  'GET /runs/{runId}': async ({ runtime, user, params }) => {
    const run = await runOf(runtime, params.runId);
    const detail = await readRunDetail(runtime, run.id, { gates: true, executor: user.email });
    return json({
      run: runJson(detail.run),
      ticks: detail.ticks,
      criteriaTicks: detail.criteriaTicks,
      signoffs: detail.signoffs,
      checkResults: detail.checkResults,
      gates: detail.gates ?? null,
      lastSeq: detail.events.at(-1)?.seq ?? 0,
      ...runLinks(run.id),
    });
  },

  'POST /runs/{runId}/ticks': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.TickBodySchema>;
    const run = await runOf(runtime, params.runId);
    return json({ tick: await tickPrerequisite(runtime, { runId: run.id, itemId: body.itemId, ticked: body.ticked, actor: actorOf(user) }) });
  },

  'POST /runs/{runId}/criteria': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.CriterionBodySchema>;
    const run = await runOf(runtime, params.runId);
    return json({ event: await tickCriterion(runtime, { runId: run.id, index: body.number - 1, ticked: body.ticked, actor: actorOf(user) }) });
  },

  'POST /runs/{runId}/checks': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.RunChecksBodySchema>;
    const run = await runOf(runtime, params.runId);
    const results = await runRunChecks(runtime, { runId: run.id, phase: body.phase, actor: actorOf(user) });
    return json({ runId: run.id, phase: body.phase, passed: results.every((result) => result.passed || result.skipped), results });
  },

  'POST /runs/{runId}/sign-off': async ({ runtime, user, params }) => {
    const run = await runOf(runtime, params.runId);
    await signOff(runtime, { runId: run.id, actor: actorOf(user) });
    return json({ runId: run.id, signedOffBy: user.email });
  },

  'POST /runs/{runId}/notes': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.NoteBodySchema>;
    const run = await runOf(runtime, params.runId);
    return json({ event: await addNote(runtime, { runId: run.id, actor: actorOf(user), text: body.text }) });
  },

  'POST /runs/{runId}/waivers': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.WaiverBodySchema>;
    const run = await runOf(runtime, params.runId);
    const { waiver, event } = await waiveLintFinding(runtime, { runId: run.id, finding: { file: body.file, line: body.line, rule: body.rule }, reason: body.reason, actor: actorOf(user) });
    return json({ waiver, recorded: event !== undefined });
  },

  'POST /runs/{runId}/execute': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.ExecuteBodySchema>;
    const run = await runOf(runtime, params.runId);
    if (run.kind !== 'execute') throw new RunsheetError('state', `Run ${run.id} is a rehearsal: POST ${API_BASE}/plans/${run.planId}/rehearse rehearses.`);
    if (!isPreparingState(run.state)) throw new RunsheetError('state', `Run ${run.id} is ${run.state}: a new attempt is a new run (POST ${API_BASE}/plans/${run.planId}/runs with newAttempt).`);
    await refuseOpenGates(runtime, run, user.email, body.confirm);
    const actor = actorOf(user);
    return startDrive('execute', run, (onEvent) => executeRun(runtime, { runId: run.id, actor, typedTargetName: body.confirm, onEvent }));
  },

  'GET /runs/{runId}/rollback': async ({ runtime, params }) => json(await previewRollback(runtime, await runOf(runtime, params.runId))),

  'POST /runs/{runId}/rollback': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.RollbackBodySchema>;
    const run = await runOf(runtime, params.runId);
    if (!mayRollBackFrom(run.state)) throw new RunsheetError('state', `Run ${run.id} is ${run.state}: only an applied run, or one that committed part of its apply, is rolled back.`);
    const actor = actorOf(user);
    return startDrive('rollback', run, (onEvent) => rollbackRun(runtime, { runId: run.id, actor, typedTargetName: body.confirm, onEvent }));
  },

  'POST /runs/{runId}/cancel': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.CancelBodySchema>;
    const run = await runOf(runtime, params.runId);
    const result = await cancelRun(runtime, { runId: run.id, actor: actorOf(user), reason: body.reason });
    return json({ runId: run.id, message: cancelRequestedMessage(result), signalled: result.signalled });
  },

  'POST /runs/{runId}/pause': async ({ runtime, user, params, input }) => {
    const body = input as z.infer<typeof Contract.CancelBodySchema>;
    const run = await runOf(runtime, params.runId);
    const { requested } = await pauseBackfill(runtime, { runId: run.id, actor: actorOf(user), reason: body.reason });
    return json({ runId: run.id, requested });
  },

  'POST /runs/{runId}/resume': async ({ runtime, user, params }) => {
    const run = await runOf(runtime, params.runId);
    const { requested } = await resumeBackfill(runtime, { runId: run.id, actor: actorOf(user) });
    return json({ runId: run.id, requested });
  },

  'GET /runs/{runId}/events': async ({ runtime, user, params, request }) => {
    const run = await runOf(runtime, params.runId);
    return streamRunEvents(runtime, { runId: run.id, afterSeq: resumeSeq(request), user, signal: request.signal });
  },

  'GET /runs/{runId}/log': async ({ runtime, params }) => {
    const run = await runOf(runtime, params.runId);
    const envelope = await exportRunLog(runtime.store.pool, run.id);
    if (!envelope) throw new RunsheetError('not_found', noSignedLogYet(run.id));
    return json(envelope);
  },
};
