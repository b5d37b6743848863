/**
 * The JSON API's contract (/api/v1): every endpoint, what it is for, the zod schemas that
 * validate its request (a body, a query), and the status it answers with. The server validates
 * with these schemas (app/web/api-v1.server.ts), the remote command line builds its requests from
 * them, and docs/openapi.json is generated from them (`npm run docs`). What each endpoint needs is
 * API_ACCESS in app/accounts/permissions.ts, the same table of permissions as the web app.
 *
 * Pure (zod only): the command line and the tests import it without the server.
 */
import { z } from 'zod';
import { API_ACCESS, type ApiRouteKey } from '../accounts/permissions';
import { CHECK_PHASES } from '../plans/plan-schema';

export const API_VERSION = 'v1';
export const API_BASE = `/api/${API_VERSION}`;

const TargetName = z.string().trim().min(1, 'name the target (e.g. "sandbox")').max(200).describe('A target name, as in TARGET_<NAME>_URL (e.g. "sandbox").');
const Confirm = z.string().trim().max(200).optional().describe("The target's name, typed again, when the target asks for it (rules.confirm_target_name).");
const Reason = z.string().trim().max(2_000).optional().describe('Why (recorded in the run log).');

export const PlanQuerySchema = z.strictObject({ target: TargetName.optional() }).describe('With a target: the plan as it stands there (ledger state, drift).');
export const PlanChecksBodySchema = z.strictObject({ target: TargetName, phase: z.enum(CHECK_PHASES).default('pre') });
export const OpenRunBodySchema = z.strictObject({
  target: TargetName,
  newAttempt: z.boolean().default(false).describe('Open a new run after an interrupted or failed one (the plan page\'s "New attempt").'),
});
export const RehearseBodySchema = z.strictObject({ target: TargetName });
export const RunsQuerySchema = z.strictObject({
  plan: z.string().max(200).optional(),
  target: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});
export const TickBodySchema = z.strictObject({ itemId: z.string().min(1).max(200).describe("The prerequisite's id in plan.yaml."), ticked: z.boolean().default(true) });
export const CriterionBodySchema = z.strictObject({ number: z.number().int().min(1).describe('The success criterion\'s number, as on the plan page (1, 2, …).'), ticked: z.boolean().default(true) });
export const RunChecksBodySchema = z.strictObject({ phase: z.enum(CHECK_PHASES).default('pre') });
export const EmptyBodySchema = z.strictObject({});
export const NoteBodySchema = z.strictObject({ text: z.string().trim().min(1, 'write the note').max(10_000) });
export const WaiverBodySchema = z.strictObject({
  file: z.string().min(1).max(500),
  line: z.number().int().min(0),
  rule: z.string().min(1).max(200),
  reason: z.string().trim().min(10, 'say why this finding is safe on this target (at least 10 characters)').max(2_000),
});
export const ExecuteBodySchema = z.strictObject({ confirm: Confirm });
export const RollbackBodySchema = z.strictObject({ confirm: Confirm });
export const CancelBodySchema = z.strictObject({ reason: Reason });
export const EventsQuerySchema = z.strictObject({ after: z.coerce.number().int().min(0).optional().describe('Resume after this event seq (the Last-Event-ID header does the same).') });

/** The answer of every refusal and error, with the HTTP status of the error table. */
export const ApiErrorSchema = z.object({
  error: z.object({
    kind: z.string().describe('The error kind (app/runtime/errors.ts): not_found, invalid_input, unauthenticated, permission, state, gate, …'),
    message: z.string(),
    gates: z.array(z.object({ id: z.string(), label: z.string(), passed: z.boolean(), detail: z.string() })).optional().describe('The open gates, when a gate refused.'),
  }),
});

/** What a long action (execute, rehearse, rollback) answers: 202, and where to follow it. */
export const StartedSchema = z.object({ runId: z.string(), state: z.string(), url: z.string(), events: z.string() });

export interface ApiEndpoint {
  summary: string;
  /** The JSON body's schema (POST). */
  body?: z.ZodType;
  /** The query string's schema (GET). */
  query?: z.ZodType;
  /** The status of a success: 202 for the long actions (follow the events stream). */
  status: 200 | 201 | 202;
  /** The answer is a server-sent event stream, not JSON. */
  stream?: boolean;
  /** An example request body (docs/api.md's curl example). */
  example?: Record<string, unknown>;
}

export const API_ENDPOINTS: Readonly<Record<ApiRouteKey, ApiEndpoint>> = {
  'GET /me': { summary: 'The account and token of this request.', status: 200 },
  'GET /plans': { summary: 'Every plan: valid or its errors, its checksum, lint count and state on each target.', status: 200 },
  'GET /plans/{planId}': { summary: 'One plan: its validation errors, or its steps, checks, checksum and lint findings.', query: PlanQuerySchema, status: 200 },
  'POST /plans/{planId}/check': { example: { target: 'sandbox', phase: 'pre' },  summary: "Run the plan's checks of one phase against a target (outside any run); returns the results.", body: PlanChecksBodySchema, status: 200 },
  'POST /plans/{planId}/runs': { example: { target: 'staging' },  summary: "The plan's working run on a target: the open one, or a new one (201).", body: OpenRunBodySchema, status: 200 },
  'POST /plans/{planId}/rehearse': { example: { target: 'sandbox' },  summary: 'Rehearse the plan on a target (in one transaction, always rolled back). Answers 202; follow the events.', body: RehearseBodySchema, status: 202 },
  'GET /runs': { summary: 'Runs, newest first.', query: RunsQuerySchema, status: 200 },
  'GET /runs/{runId}': { summary: 'One run: its state, ticks, sign-offs, check results, outcome and gates.', status: 200 },
  'POST /runs/{runId}/ticks': { example: { itemId: 'backup-taken', ticked: true },  summary: 'Tick (or untick) a prerequisite.', body: TickBodySchema, status: 200 },
  'POST /runs/{runId}/criteria': { example: { number: 1, ticked: true },  summary: 'Tick (or untick) a success criterion judged by hand.', body: CriterionBodySchema, status: 200 },
  'POST /runs/{runId}/checks': { example: { phase: 'pre' },  summary: "Run the plan's checks of one phase inside the run (pre-checks count for its gate); returns the results.", body: RunChecksBodySchema, status: 200 },
  'POST /runs/{runId}/sign-off': { example: {},  summary: 'Sign off the run (four-eyes: the executor must be another account).', body: EmptyBodySchema, status: 200 },
  'POST /runs/{runId}/notes': { example: { text: 'Paused for the 14:00 deploy freeze.' },  summary: 'Add a note to the run log.', body: NoteBodySchema, status: 200 },
  'POST /runs/{runId}/waivers': { example: { file: '008_add_active_org_tracking.sql', line: 12, rule: 'require-timeout-settings', reason: 'statement_timeout is set by the plan for this step' },  summary: 'Waive one lint finding for this run, with a reason.', body: WaiverBodySchema, status: 200 },
  'POST /runs/{runId}/execute': { example: {},  summary: 'Execute the run (every gate judged again). Answers 202 once the drive started; follow the events.', body: ExecuteBodySchema, status: 202 },
  'GET /runs/{runId}/rollback': { summary: 'What a rollback of the run would run and remove.', status: 200 },
  'POST /runs/{runId}/rollback': { example: { confirm: 'production' },  summary: 'Roll the run back. Answers 202 once the drive started; follow the events.', body: RollbackBodySchema, status: 202 },
  'POST /runs/{runId}/cancel': { example: { reason: 'blocking the checkout service' },  summary: 'Cancel an applying, rolling back or rehearsing run.', body: CancelBodySchema, status: 200 },
  'POST /runs/{runId}/pause': { example: { reason: 'peak traffic' },  summary: "Pause the run's batched backfill before its next batch.", body: CancelBodySchema, status: 200 },
  'POST /runs/{runId}/resume': { example: {},  summary: "Resume the run's paused backfill.", body: EmptyBodySchema, status: 200 },
  'GET /runs/{runId}/events': {
    summary: "The run's events as server-sent events (`id:` is the seq; reconnect with Last-Event-ID), then `end` once the run is final: the live view's stream.",
    query: EventsQuerySchema,
    status: 200,
    stream: true,
  },
  'GET /runs/{runId}/log': { summary: "The run's latest signed log (a DSSE envelope).", status: 200 },
};

export type ApiMethod = 'GET' | 'POST';

export interface ApiRoute {
  key: ApiRouteKey;
  method: ApiMethod;
  /** e.g. "/runs/{runId}/execute" (under API_BASE). */
  path: string;
}

export const API_ROUTES: readonly ApiRoute[] = (Object.keys(API_ACCESS) as ApiRouteKey[]).map((key) => {
  const [method, path] = key.split(' ') as [ApiMethod, string];
  return { key, method, path };
});

/** The endpoint a request names (path under API_BASE), with its parameters; undefined for an unknown path or method. */
export function matchApiRoute(method: string, path: string): { route: ApiRoute; params: Record<string, string> } | undefined {
  const segments = path.split('/').filter(Boolean);
  for (const route of API_ROUTES) {
    if (route.method !== method.toUpperCase()) continue;
    const pattern = route.path.split('/').filter(Boolean);
    if (pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const matches = pattern.every((part, index) => {
      const segment = segments[index]!;
      if (part.startsWith('{')) {
        params[part.slice(1, -1)] = decodeURIComponent(segment);
        return true;
      }
      return part === segment;
    });
    if (matches) return { route, params };
  }
  return undefined;
}

/** A path of the API with its parameters filled in (the command line, docs, tests). */
export function apiPath(key: ApiRouteKey, params: Record<string, string> = {}): string {
  const path = key.split(' ')[1]!.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? `{${name}}`));
  return `${API_BASE}${path}`;
}
