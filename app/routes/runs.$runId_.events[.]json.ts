import type { LoaderFunctionArgs } from '@remix-run/node';
import { z } from 'zod';
import { requirePermission } from '../auth/require.server';
import { loadRunEventsPage, MAX_EVENTS_PAGE } from '../web/history-page.server';

// One page of a run's log after a cursor: the report's event list loads these as it scrolls.
export async function loader({ request, params, context }: LoaderFunctionArgs) {
  await requirePermission(request, context, 'view');
  const query = PageQuerySchema.safeParse(Object.fromEntries(new URL(request.url).searchParams));
  if (!query.success) {
    return Response.json({ error: `Bad page: ${query.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}` }, { status: 400 });
  }
  const page = await loadRunEventsPage(context.runtime, { runId: params.runId ?? '', afterSeq: query.data.afterSeq, limit: query.data.limit });
  if (!page) return Response.json({ error: `No run "${params.runId}".` }, { status: 404 });
  return Response.json(page, { headers: { 'Cache-Control': 'no-store' } });
}

const PageQuerySchema = z.object({
  afterSeq: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_EVENTS_PAGE).default(200),
});
