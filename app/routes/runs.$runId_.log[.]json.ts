import type { LoaderFunctionArgs } from '@remix-run/node';
import { requirePermission } from '../auth/require.server';
import { runExists } from '../runs/run-store.server';
import { assertRunId } from '../runs/run-log.server';
import { exportRunLog, noSignedLogYet } from '../runs/signing.server';

// The run's latest stored signed log (a DSSE envelope), as a download. Export never signs.
export async function loader({ request, params, context }: LoaderFunctionArgs) {
  await requirePermission(request, context, 'view');
  const { store } = context.runtime;
  if (!(await runExists(store.db, { runId: params.runId ?? '' }))) return plainText(`No run "${params.runId}".`, 404);
  // The id as the store prints it (it names the downloaded file).
  const runId = assertRunId(params.runId!);
  const envelope = await exportRunLog(store.pool, runId);
  if (!envelope) return plainText(`${noSignedLogYet(runId)} Nothing to download yet.`, 404);
  return new Response(`${JSON.stringify(envelope, null, 2)}\n`, {
    headers: {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Disposition': `attachment; filename="runsheet-run-${runId}.dsse.json"`,
      'Cache-Control': 'no-store',
    },
  });
}

function plainText(message: string, status: number): Response {
  return new Response(message, { status, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
}
