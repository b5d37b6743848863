import { describe, expect, it } from 'vitest';
import { API_ACCESS } from '../accounts/permissions';
import { API_ENDPOINTS, API_ROUTES, apiPath, matchApiRoute } from './api-contract';
import { renderApiDoc, renderOpenApi } from './api-docs';

describe('the API contract', () => {
  it('matches a request to its endpoint and parameters, and nothing else', () => {
    expect(matchApiRoute('POST', '/runs/abc/execute')).toMatchObject({ route: { key: 'POST /runs/{runId}/execute' }, params: { runId: 'abc' } });
    expect(matchApiRoute('get', '/plans/008-x')).toMatchObject({ route: { key: 'GET /plans/{planId}' }, params: { planId: '008-x' } });
    expect(matchApiRoute('GET', '/runs/abc/execute')).toBeUndefined();
    expect(matchApiRoute('DELETE', '/runs')).toBeUndefined();
    expect(matchApiRoute('GET', '/runs/abc/execute/more')).toBeUndefined();
    expect(apiPath('GET /runs/{runId}/events', { runId: 'r 1' })).toBe('/api/v1/runs/r%201/events');
  });

  it('every endpoint of API_ACCESS is in the contract, the OpenAPI document and docs/api.md (with a curl example)', () => {
    const openapi = JSON.parse(renderOpenApi()) as { paths: Record<string, Record<string, { 'x-runsheet-permission': string; requestBody?: unknown }>> };
    const doc = renderApiDoc();
    expect(API_ROUTES.map((route) => route.key).sort()).toEqual(Object.keys(API_ACCESS).sort());
    for (const route of API_ROUTES) {
      const operation = openapi.paths[`/api/v1${route.path}`]?.[route.method.toLowerCase()];
      expect(operation, route.key).toBeDefined();
      expect(operation!['x-runsheet-permission']).toBe(API_ACCESS[route.key]);
      expect(operation!.requestBody !== undefined).toBe(API_ENDPOINTS[route.key].body !== undefined);
      expect(doc).toContain(`### ${route.method} /api/v1${route.path}`);
      // Each example body is valid for its own schema: the docs never show a request the server refuses.
      const { body, example } = API_ENDPOINTS[route.key];
      if (body) expect(body.safeParse(example ?? {}).success, route.key).toBe(true);
    }
    expect(doc.match(/```sh\ncurl /g)).toHaveLength(API_ROUTES.length);
  });

  it("the OpenAPI document follows the zod schemas that validate the requests", () => {
    const openapi = JSON.parse(renderOpenApi()) as { paths: Record<string, Record<string, { requestBody: { content: { 'application/json': { schema: { properties: Record<string, unknown>; additionalProperties?: boolean } } } } }>> };
    const tick = openapi.paths['/api/v1/runs/{runId}/ticks']!.post!.requestBody.content['application/json'].schema;
    expect(Object.keys(tick.properties)).toEqual(['itemId', 'ticked']);
    expect(tick.additionalProperties).toBe(false);
  });
});
