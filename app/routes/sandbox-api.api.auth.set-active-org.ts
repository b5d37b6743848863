import type { ActionFunctionArgs } from '@remix-run/node';
import { requireSandboxApiPool } from '../web/sandbox-api.server';
import { setActiveOrganization } from '../sandbox/platform-api.server';

// Public route authenticated by bearer token; no cookies, so the Origin check does not apply.
export async function action({ request, context }: ActionFunctionArgs) {
  if (request.method !== 'POST') return Response.json({ error: 'use POST' }, { status: 405 });
  const pool = requireSandboxApiPool(context);
  const body = await request.json().catch(() => undefined);
  const reply = await setActiveOrganization(pool, request.headers.get('authorization'), body);
  return Response.json(reply.body, { status: reply.status });
}
