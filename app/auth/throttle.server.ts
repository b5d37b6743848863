/**
 * Sign-in throttling, kept in the store (login_attempts) so it survives restarts and holds across
 * processes (several instances share it). Two counters per attempt: the pair of the e-mail typed
 * (known account or not: the answer never tells which) and the peer address, and the peer address
 * across every account. A lock is never per account alone: someone else's failures from another
 * address must not lock the owner out (docs/decisions/023). An admin (or `runsheet users unlock`)
 * clears an account's pairs.
 *
 * After `slowAfter` failures, each further attempt must wait 1 s, 2 s, 4 s … (at most 60 s) after the
 * last failure; one that comes sooner is refused without checking the password. At `lockAfter`
 * failures the counter is locked for 15 minutes. Failures older than 15 minutes are forgotten.
 * Every time comes from the database clock.
 */
import { and, eq, sql } from 'drizzle-orm';
import { loginAttempts } from '../../db/schema/index';
import type { StoreDb } from '../runtime/store.server';

export const THROTTLE_POLICY = {
  pair: { slowAfter: 3, lockAfter: 10 },
  // Shared addresses (an office NAT) get more room; a spray over many accounts still stops.
  address: { slowAfter: 10, lockAfter: 50 },
  baseDelaySeconds: 1,
  maxDelaySeconds: 60,
  lockSeconds: 15 * 60,
  windowSeconds: 15 * 60,
} as const;

type Scope = 'pair' | 'address';

export type ThrottleVerdict = { allowed: true } | { allowed: false; scope: Scope; locked: boolean; retryAfterSeconds: number };

type CounterRow = {
  scope: Scope;
  failures: number;
  /** Seconds until the lock ends (> 0 while locked). */
  locked_for: number;
  /** Seconds since the last failure. */
  since_last: number;
};

interface Counter {
  scope: Scope;
  key: string;
  /** The e-mail typed, for a pair; null for an address. */
  email: string | null;
}

function countersOf(input: { email: string; ip: string }): [pair: Counter, address: Counter] {
  const email = input.email.trim().toLowerCase();
  const address = input.ip || 'unknown';
  return [
    { scope: 'pair', key: JSON.stringify([email, address]), email },
    { scope: 'address', key: address, email: null },
  ];
}

export function delayAfter(failures: number, slowAfter: number): number {
  if (failures < slowAfter) return 0;
  return Math.min(THROTTLE_POLICY.baseDelaySeconds * 2 ** (failures - slowAfter), THROTTLE_POLICY.maxDelaySeconds);
}

/** Whether an attempt may check its password now. */
export async function checkThrottle(db: StoreDb, input: { email: string; ip: string }): Promise<ThrottleVerdict> {
  const [pair, address] = countersOf(input);
  const result = await db.execute<CounterRow>(sql`
    select scope, failures,
      greatest(0, extract(epoch from coalesce(locked_until, now()) - now()))::float8 as locked_for,
      extract(epoch from now() - last_failure_at)::float8 as since_last
    from login_attempts
    where ((scope = 'pair' and key = ${pair.key}) or (scope = 'address' and key = ${address.key}))
      and (last_failure_at > now() - make_interval(secs => ${THROTTLE_POLICY.windowSeconds}) or locked_until > now())`);
  let worst: ThrottleVerdict = { allowed: true };
  for (const row of result.rows) {
    const policy = THROTTLE_POLICY[row.scope];
    let wait = 0;
    let locked = false;
    if (row.locked_for > 0) {
      wait = row.locked_for;
      locked = true;
    } else {
      wait = delayAfter(row.failures, policy.slowAfter) - row.since_last;
    }
    if (wait > 0 && (worst.allowed || wait > worst.retryAfterSeconds)) {
      worst = { allowed: false, scope: row.scope, locked, retryAfterSeconds: Math.ceil(wait) };
    }
  }
  return worst;
}

/** Counts a failed attempt against both counters; locks a counter that reaches its limit. */
export async function recordFailedSignIn(db: StoreDb, input: { email: string; ip: string }): Promise<void> {
  for (const { scope, key, email } of countersOf(input)) {
    const { lockAfter } = THROTTLE_POLICY[scope];
    const window = sql`make_interval(secs => ${THROTTLE_POLICY.windowSeconds})`;
    await db.execute(sql`
      insert into login_attempts as t (scope, key, email, failures, first_failure_at, last_failure_at, locked_until)
      values (${scope}, ${key}, ${email}, 1, now(), now(), null)
      on conflict (scope, key) do update set
        failures = case when t.last_failure_at < now() - ${window} and coalesce(t.locked_until, now()) <= now() then 1 else t.failures + 1 end,
        first_failure_at = case when t.last_failure_at < now() - ${window} and coalesce(t.locked_until, now()) <= now() then now() else t.first_failure_at end,
        last_failure_at = now(),
        locked_until = case
          when t.last_failure_at < now() - ${window} and coalesce(t.locked_until, now()) <= now() then null
          when t.failures + 1 >= ${lockAfter} then now() + make_interval(secs => ${THROTTLE_POLICY.lockSeconds})
          else t.locked_until end`);
  }
}

/** A successful sign-in clears its pair's counter (not the address's: one good account must not reset a spray). */
export async function clearFailedSignIns(db: StoreDb, input: { email: string; ip: string }): Promise<void> {
  const [pair] = countersOf(input);
  await db.delete(loginAttempts).where(and(eq(loginAttempts.scope, 'pair'), eq(loginAttempts.key, pair.key)));
}
