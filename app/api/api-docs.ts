/**
 * docs/openapi.json and docs/api.md, generated from the API's contract (its zod request schemas,
 * its endpoints, and API_ACCESS): `npm run docs` writes them, and
 * tests/integration/generated-docs.test.ts fails when a committed one is stale.
 */
import { z } from 'zod';
import { API_ACCESS, type ApiRouteKey } from '../accounts/permissions';
import { API_BASE, API_ENDPOINTS, API_ROUTES, ApiErrorSchema, StartedSchema } from './api-contract';

type JsonSchema = Record<string, unknown>;

const toSchema = (schema: z.ZodType, io: 'input' | 'output' = 'input'): JsonSchema => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io }) as JsonSchema;
  return rest;
};

const ERROR_RESPONSES: Record<string, string> = {
  '400': 'Bad input (invalid_input): the body or query does not match the schema.',
  '401': 'No API token, or an unknown, revoked or expired one (unauthenticated). Cookies are never read.',
  '403': "The token's account lacks the permission (permission), or a rule refused the actor.",
  '404': 'No such plan, run or endpoint (not_found).',
  '409': 'The run is not in a state for this, a gate is open (gate, with the open gates), or another run holds the target (busy).',
};

function pathParams(path: string): JsonSchema[] {
  return [...path.matchAll(/\{(\w+)\}/g)].map((match) => ({ name: match[1], in: 'path', required: true, schema: { type: 'string' } }));
}

function queryParams(schema: z.ZodType | undefined): JsonSchema[] {
  if (!schema) return [];
  const json = toSchema(schema);
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required as string[] | undefined) ?? []);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return { name, in: 'query', required: required.has(name), schema: rest, ...(description ? { description } : {}) };
  });
}

const operationId = (key: ApiRouteKey) =>
  key
    .toLowerCase()
    .replace(/[{}]/g, '')
    .split(/[^a-z0-9]+/)
    .filter(Boolean)
    .map((word, index) => (index === 0 ? word : word[0]!.toUpperCase() + word.slice(1)))
    .join('');

export function renderOpenApi(): string {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of API_ROUTES) {
    const endpoint = API_ENDPOINTS[route.key];
    const success = endpoint.stream
      ? { description: 'Server-sent events: `run-event` (id: the seq), `watchers`, and `end` once the run is final.', content: { 'text/event-stream': { schema: { type: 'string' } } } }
      : endpoint.status === 202
        ? { description: 'Started: follow the events stream.', content: { 'application/json': { schema: toSchema(StartedSchema, 'output') } } }
        : { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } };
    const operation: Record<string, unknown> = {
      operationId: operationId(route.key),
      summary: endpoint.summary,
      'x-runsheet-permission': API_ACCESS[route.key],
      parameters: [...pathParams(route.path), ...queryParams(endpoint.query)],
      ...(endpoint.body ? { requestBody: { required: true, content: { 'application/json': { schema: toSchema(endpoint.body) } } } } : {}),
      responses: {
        [String(endpoint.status)]: success,
        ...(route.path.includes('{planId}') && route.method === 'POST' && route.path.endsWith('/runs') ? { '201': { description: 'A new run was opened.', content: { 'application/json': { schema: { type: 'object' } } } } } : {}),
        ...Object.fromEntries(Object.entries(ERROR_RESPONSES).map(([status, description]) => [status, { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }])),
      },
    };
    (paths[`${API_BASE}${route.path}`] ??= {})[route.method.toLowerCase()] = operation;
  }
  const document = {
    openapi: '3.1.0',
    info: {
      title: 'Runsheet API',
      version: '1',
      description: 'Bearer API tokens only (`Authorization: Bearer rs_<id>_<secret>`); every endpoint needs the permission in x-runsheet-permission, from the same table as the dashboard. Generated from app/api/api-contract.ts by `npm run docs`.',
    },
    security: [{ apiToken: [] }],
    components: {
      securitySchemes: { apiToken: { type: 'http', scheme: 'bearer', bearerFormat: 'rs_<id>_<secret>' } },
      schemas: { Error: toSchema(ApiErrorSchema, 'output') },
    },
    paths,
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

function curlOf(key: ApiRouteKey): string {
  const endpoint = API_ENDPOINTS[key];
  const [method, path] = key.split(' ') as [string, string];
  const url = `"$RUNSHEET_URL${API_BASE}${path.replace('{planId}', '008-add-active-org-tracking').replace('{runId}', '$RUN_ID')}${key === 'GET /runs' ? '?plan=008-add-active-org-tracking&target=staging' : ''}"`;
  const lines = [`curl ${method === 'POST' ? '-X POST ' : ''}${endpoint.stream ? '-N ' : ''}${url} \\`, `  -H "Authorization: Bearer $RUNSHEET_TOKEN"`];
  if (endpoint.stream) lines[lines.length - 1] += ' \\\n  -H "Last-Event-ID: 0"';
  if (method === 'POST') {
    lines[lines.length - 1] += ' \\';
    lines.push('  -H "Content-Type: application/json" \\', `  -d '${JSON.stringify(endpoint.example ?? {})}'`);
  }
  return lines.join('\n');
}

export function renderApiDoc(): string {
  const out = [
    '# Runsheet API (v1)',
    '',
    '<!-- Generated from app/api/api-contract.ts by `npm run docs`: do not edit by hand. -->',
    '',
    'A JSON API under `/api/v1` for pipelines and scripts. The machine-readable description is',
    '[openapi.json](openapi.json) (OpenAPI 3.1, generated from the same zod schemas that validate the requests).',
    '',
    '## Authentication',
    '',
    '- Every request carries `Authorization: Bearer rs_<id>_<secret>`: a personal token (accounts page, **API tokens**)',
    '  or a service account\'s (`npx runsheet service-accounts add NAME --role engineer`, then',
    '  `npx runsheet tokens create NAME --name "ci staging"`). Tokens last 90 days unless created for 1 to 365.',
    '- Cookies are never read: a browser session gets 401. The Origin check does not apply to bearer requests.',
    "- A token acts as its account, with the account's role at each request; what each endpoint needs is the",
    '  permission shown below, from the same table as the dashboard. Events a request writes record',
    '  `via: { "channel": "api", "tokenId": "<id>" }`.',
    '- Four-eyes: the sign-off and the execute of one run come from two different accounts; a service account never',
    '  signs off a run it opened.',
    '',
    '## Answers',
    '',
    '- Success: JSON (200, 201 when a run was opened). Execute, rehearse and rollback answer **202** once the drive has',
    '  started, with `{ runId, state, url, events }`: follow `events` (server-sent events; reconnect with `Last-Event-ID`).',
    '- Errors: `{ "error": { "kind", "message", "gates"? } }` with the status of the error table: 400 invalid_input,',
    '  401 unauthenticated, 403 permission, 404 not_found (an unknown path too), 409 state, gate (with the open gates), busy, conflict;',
    '  503 unavailable.',
    '',
    '## Endpoints',
    '',
    '| Method and path | Needs | What |',
    '| --- | --- | --- |',
    ...API_ROUTES.map((route) => `| \`${route.method} ${API_BASE}${route.path}\` | ${API_ACCESS[route.key]} | ${API_ENDPOINTS[route.key].summary.replace(/\|/g, '\\|')} |`),
    '',
  ];
  for (const route of API_ROUTES) {
    const endpoint = API_ENDPOINTS[route.key];
    out.push(`### ${route.method} ${API_BASE}${route.path}`, '', `${endpoint.summary} Needs **${API_ACCESS[route.key]}**; answers ${endpoint.status}${endpoint.stream ? ' (text/event-stream)' : ''}.`, '');
    if (endpoint.body) {
      const properties = Object.keys(((toSchema(endpoint.body).properties ?? {}) as Record<string, unknown>));
      if (properties.length > 0) out.push(`Body fields: ${properties.map((name) => `\`${name}\``).join(', ')}.`, '');
    }
    if (endpoint.query) {
      const names = queryParams(endpoint.query).map((parameter) => `\`${String(parameter.name)}\``);
      if (names.length > 0) out.push(`Query: ${names.join(', ')}.`, '');
    }
    out.push('```sh', curlOf(route.key), '```', '');
  }
  return out.join('\n');
}
