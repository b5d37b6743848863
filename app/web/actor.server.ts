import type { SignedInUser } from '../auth/require.server';
import type { EngineActor } from '../engine/engine-deps.server';

/** The signed-in person as the engine records them: every event they cause says it came through the dashboard, and how they signed in. */
export function actorOf(user: Pick<SignedInUser, 'email' | 'role' | 'via'>): EngineActor {
  return { email: user.email, role: user.role, via: { channel: 'web', auth: user.via } };
}
