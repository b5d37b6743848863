/**
 * Every documentation file generated from code, by its path in the repository: `npm run docs`
 * writes them, and tests/integration/generated-docs.test.ts fails when a committed one differs.
 */
import { renderPlanFormatDoc, renderPlanJsonSchema } from '../app/plans/plan-format-doc';
import { renderRunEventsDoc, renderRunEventsJsonSchema } from '../app/runs/run-events-doc';
import { renderApiDoc, renderOpenApi } from '../app/api/api-docs';

export function generatedDocs(): Record<string, string> {
  return {
    'docs/run-log-events.md': renderRunEventsDoc(),
    'docs/run-log-events.schema.json': renderRunEventsJsonSchema(),
    'docs/plan-format.md': renderPlanFormatDoc(),
    'docs/plan.schema.json': renderPlanJsonSchema(),
    'docs/api.md': renderApiDoc(),
    'docs/openapi.json': renderOpenApi(),
  };
}
