import type { ActionFunctionArgs, LoaderFunctionArgs } from '@remix-run/node';
import { answerApiRequest } from '../web/api-v1.server';

// The JSON API: every /api/v1 endpoint, bearer API tokens only. answerApiRequest authorizes each
// request by its endpoint's entry in API_ACCESS (app/accounts/permissions.ts) before anything else.
export async function loader({ request, context }: LoaderFunctionArgs) {
  return answerApiRequest(request, context);
}

export async function action({ request, context }: ActionFunctionArgs) {
  return answerApiRequest(request, context);
}
