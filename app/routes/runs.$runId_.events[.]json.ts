import type { LoaderFunctionArgs } from '@remix-run/node';
import { z } from 'zod';
import { requirePermission } from '../auth/require.server';
import { MAX_EVENTS_PAGE, readRunEventsPage, runExists } from '../models/runs.server';
import { assertRunId } from '../runs/run-log.server';

// One page of a run's log after a cursor: the report's event list loads these as it scrolls.
export async function loader({ request, params, context }: LoaderFunctionArgs) {
  await requirePermission(request, context, 'view');
  const db = context.runtime.store.db;
  const runId = params.runId ?? '';
  if (!(await runExists(db, { runId }))) return notFound(`No run "${runId}".`);
  const query = PageQuerySchema.safeParse(Object.fromEntries(new URL(request.url).searchParams));
  if (!query.success) {
    return Response.json({ error: `Bad page: ${query.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}` }, { status: 400 });
  }
  const page = await readRunEventsPage(db, { runId, afterSeq: query.data.afterSeq, limit: query.data.limit });
  return Response.json({ runId: assertRunId(runId), ...page }, { headers: { 'Cache-Control': 'no-store' } });
}

const PageQuerySchema = z.object({
  afterSeq: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_EVENTS_PAGE).default(200),
});

function notFound(message: string): Response {
  return Response.json({ error: message }, { status: 404 });
}
