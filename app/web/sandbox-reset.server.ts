/**
 * The plan page's "Reset the sandbox" intent: the sandbox target regenerated at its default size,
 * then the plan's sandbox.sql when it has one (app/sandbox/reset-sandbox.server.ts, shared with
 * `runsheet sandbox reset --plan`). The permission guard has checked `reset-sandbox`; the domain
 * refuses a target that is not a sandbox and a target a run holds.
 */
import type { SignedInUser } from '../auth/require.server';
import type { ValidPlan } from '../plans/load-plans.server';
import { resetSandbox, type ResetSandboxDeps } from '../sandbox/reset-sandbox.server';
import type { Target } from '../targets/targets.server';
import { refusalOf, type IntentOutcome } from './http-answers.server';

/** What a reset from the page generates: the size `npm start` seeds. */
export const PAGE_SANDBOX_USERS = 10_000;
const PAGE_SANDBOX_SEED = 1;

export async function resetSandboxForPlan(deps: ResetSandboxDeps, input: { plan: ValidPlan; target: Target; user: SignedInUser; ip?: string }): Promise<IntentOutcome> {
  try {
    const reset = await resetSandbox(deps, {
      target: input.target.name,
      users: PAGE_SANDBOX_USERS,
      seed: PAGE_SANDBOX_SEED,
      ...(input.plan.sandboxFixture ? { planId: input.plan.id } : {}),
      actor: input.user.email,
      actorRole: input.user.role,
      ip: input.ip ?? null,
    });
    if (reset.fixtureFailure) {
      const failure = reset.fixtureFailure;
      return {
        kind: 'refused',
        status: 409,
        error: `The sandbox was regenerated, but ${failure.file} failed at line ${failure.line}${failure.sqlstate ? ` (SQLSTATE ${failure.sqlstate})` : ''}: ${failure.message}. Nothing of the fixture was kept.`,
      };
    }
    const generated = `${reset.generated.users.toLocaleString('en-US')} users`;
    return { kind: 'done', message: reset.fixture ? `Sandbox regenerated (${generated}) and ${reset.fixture.file} applied.` : `Sandbox regenerated (${generated}).` };
  } catch (error) {
    return refusalOf(error);
  }
}
