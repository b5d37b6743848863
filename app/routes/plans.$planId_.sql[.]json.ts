import type { LoaderFunctionArgs } from '@remix-run/node';
import { z } from 'zod';
import { requirePermission } from '../auth/require.server';
import { readCheckSql } from '../web/plan-page.server';

// The SQL one check result of the plan ran: the plan page's SQL disclosures fetch it when opened.
export async function loader({ request, params, context }: LoaderFunctionArgs) {
  await requirePermission(request, context, 'view');
  const query = SqlQuerySchema.safeParse(Object.fromEntries(new URL(request.url).searchParams));
  if (!query.success) {
    return Response.json({ error: `Bad request: ${query.error.issues.map((issue) => `${issue.path.join('.') || 'query'}: ${issue.message}`).join('; ')}. Ask for ?result=<a check result id from the plan page>.` }, { status: 400 });
  }
  const found = await readCheckSql(context.runtime, { planId: params.planId ?? '', resultId: query.data.result });
  if (!found) return Response.json({ error: `No check result ${query.data.result} with SQL for plan "${params.planId}". Reload the plan page: it names the results it shows.` }, { status: 404 });
  return Response.json(found, { headers: { 'Cache-Control': 'private, max-age=3600' } });
}

const SqlQuerySchema = z.object({ result: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER) });
