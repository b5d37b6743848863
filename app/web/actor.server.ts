import type { SignedInUser } from '../auth/require.server';
import type { EngineActor } from '../engine/engine-deps.server';

/**
 * The signed-in account as the engine records it: every event it causes says how it came (the
 * dashboard and how it signed in, or the JSON API and which token).
 */
export function actorOf(user: Pick<SignedInUser, 'email' | 'role' | 'via' | 'tokenId' | 'accountKind'>): EngineActor {
  if (user.via === 'token') return { email: user.email, role: user.role, via: { channel: 'api', tokenId: user.tokenId ?? 'unknown' }, accountKind: user.accountKind ?? 'person' };
  return { email: user.email, role: user.role, via: { channel: 'web', auth: user.via } };
}
