import type { LoaderFunctionArgs } from '@remix-run/node';
import { requirePermission } from '../auth/require.server';

// The ceiling `npm run bench` measures the pages against: a guarded Remix loader (routing, the
// session guard) that returns a constant, with no page data and no render. Readers only, as pages.
export async function loader({ request, context }: LoaderFunctionArgs) {
  await requirePermission(request, context, 'view');
  return Response.json({ ok: true }, { headers: { 'Cache-Control': 'no-store' } });
}
