import type { LoaderFunctionArgs } from '@remix-run/node';
import { requirePermission } from '../auth/require.server';
import { resumeSeq, runIdOrNotFound, streamRunEvents } from '../web/run-page.server';

// The live view's server-sent events: the run log after the last seq the browser has, then
// whatever is appended, until the run reaches a final state. Each open stream counts as a watcher.
export async function loader({ request, params, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'view');
  const runId = runIdOrNotFound(params.runId);
  return streamRunEvents(context.runtime, { runId, afterSeq: resumeSeq(request), user, signal: request.signal });
}
