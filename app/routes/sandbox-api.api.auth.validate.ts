import type { LoaderFunctionArgs } from '@remix-run/node';
import { requireSandboxApiPool } from '../web/sandbox-api.server';
import { validateApiSession } from '../sandbox/platform-api.server';

// Public route authenticated by bearer token (PRODUCT.md: the sandbox stand-in API uses no cookies).
export async function loader({ request, context }: LoaderFunctionArgs) {
  const pool = requireSandboxApiPool(context);
  const reply = await validateApiSession(pool, request.headers.get('authorization'));
  return Response.json(reply.body, { status: reply.status });
}
