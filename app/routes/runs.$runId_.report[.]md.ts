import type { LoaderFunctionArgs } from '@remix-run/node';
import { requirePermission } from '../auth/require.server';
import { runReportMarkdown } from '../runs/run-report';
import { readRunReport } from '../web/report-page.server';

// The report as Markdown, in the shape of the runbook's "Execution Log" section.
export async function loader({ request, params, context }: LoaderFunctionArgs) {
  await requirePermission(request, context, 'view');
  const data = await readRunReport(context.runtime, { runId: params.runId ?? '' });
  if (!data) return new Response(`No run "${params.runId}".`, { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
  return new Response(runReportMarkdown(data.header, data.report, data.signature), {
    headers: {
      'Content-Type': 'text/markdown; charset=utf-8',
      'Content-Disposition': `attachment; filename="runsheet-run-${data.header.runId}-report.md"`,
      'Cache-Control': 'no-store',
    },
  });
}
