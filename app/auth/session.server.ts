/**
 * Sessions, stored in the store. The cookie holds only a random id signed with the session secret
 * (HMAC-SHA256); the store keeps the id's sha256. Every request looks the session up together with
 * its account, so signing out, disabling the account or changing its role takes effect on the
 * next request, in every process.
 *
 * Lifetime: 12 hours from sign-in at most (absolute), and 60 minutes without a request ends it
 * (idle; each request slides it, written at most once a minute).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createCookie, type Cookie } from '@remix-run/node';
import { and, eq, lt, or, sql } from 'drizzle-orm';
import { sessions } from '../../db/schema/index';
import type { Runtime } from '../boot/runtime.server';
import type { StoreDb } from '../runtime/store.server';
import { isRole, type Role } from '../accounts/permissions';

export const SESSION_COOKIE_NAME = 'runsheet_session';
export const SESSION_ABSOLUTE_SECONDS = 12 * 60 * 60;
export const SESSION_IDLE_SECONDS = 60 * 60;
/** last_seen_at is written at most this often: a page's polling does not write on every request. */
export const TOUCH_EVERY_SECONDS = 60;

export interface SessionAccount {
  sessionIdHash: string;
  accountId: string;
  email: string;
  name: string;
  role: Role;
}

const cookies = new WeakMap<Runtime, Cookie>();

/** httpOnly, SameSite=Lax, Secure everywhere but development (browsers accept Secure on http://localhost). */
export function sessionCookie(runtime: Runtime): Cookie {
  let cookie = cookies.get(runtime);
  if (!cookie) {
    cookie = createCookie(SESSION_COOKIE_NAME, {
      httpOnly: true,
      sameSite: 'lax',
      secure: runtime.env.NODE_ENV !== 'development',
      path: '/',
      maxAge: SESSION_ABSOLUTE_SECONDS,
      secrets: [runtime.sessionSecret],
    });
    cookies.set(runtime, cookie);
  }
  return cookie;
}

const hashId = (id: string) => createHash('sha256').update(id).digest('hex');

async function sessionIdFromRequest(runtime: Runtime, request: Request): Promise<string | undefined> {
  const header = request.headers.get('cookie');
  if (!header) return undefined;
  // A bad signature, an old secret or a tampered value all read as "no session".
  const value: unknown = await sessionCookie(runtime).parse(header);
  return typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
}

/**
 * Starts a session for an account: always a new id (no session fixation), and the session the
 * request came with, if any, ends. Returns the Set-Cookie header value.
 */
export async function createSession(
  runtime: Runtime,
  request: Request,
  input: { accountId: string; ip: string | null; userAgent: string | null },
): Promise<string> {
  const db = runtime.store.db;
  const previous = await sessionIdFromRequest(runtime, request);
  const id = randomBytes(32).toString('base64url');
  await db.transaction(async (tx) => {
    if (previous) await tx.delete(sessions).where(eq(sessions.idHash, hashId(previous)));
    // Expired sessions of anyone go now: the table stays as small as the live sessions.
    await tx
      .delete(sessions)
      .where(or(lt(sessions.expiresAt, sql`now()`), lt(sessions.lastSeenAt, sql`now() - make_interval(secs => ${SESSION_IDLE_SECONDS})`)));
    await tx.insert(sessions).values({
      idHash: hashId(id),
      accountId: input.accountId,
      expiresAt: sql`now() + make_interval(secs => ${SESSION_ABSOLUTE_SECONDS})`,
      ip: input.ip,
      userAgent: input.userAgent?.slice(0, 400) ?? null,
    });
  });
  return sessionCookie(runtime).serialize(id);
}

/** The live session of a request and its (enabled) account, or undefined. Slides the idle timeout. */
export async function readSession(runtime: Runtime, request: Request): Promise<SessionAccount | undefined> {
  const id = await sessionIdFromRequest(runtime, request);
  if (!id) return undefined;
  const idHash = hashId(id);
  const result = await runtime.store.db.execute<{ account_id: string; email: string; name: string; role: string }>(sql`
    with hit as (
      select s.id_hash, s.last_seen_at, a.id as account_id, a.email, a.name, a.role
      from sessions s join accounts a on a.id = s.account_id
      where s.id_hash = ${idHash}
        and s.expires_at > now()
        and s.last_seen_at > now() - make_interval(secs => ${SESSION_IDLE_SECONDS})
        and not a.disabled
    ), touched as (
      update sessions set last_seen_at = now()
      where id_hash in (select id_hash from hit where last_seen_at < now() - make_interval(secs => ${TOUCH_EVERY_SECONDS}))
    )
    select account_id, email, name, role from hit`);
  const row = result.rows[0];
  if (!row || !isRole(row.role)) return undefined;
  return { sessionIdHash: idHash, accountId: row.account_id, email: row.email, name: row.name, role: row.role };
}

/** Ends the request's session (if any) and returns a Set-Cookie header value that clears the cookie. */
export async function destroySession(runtime: Runtime, request: Request): Promise<string> {
  const id = await sessionIdFromRequest(runtime, request);
  if (id) await runtime.store.db.delete(sessions).where(eq(sessions.idHash, hashId(id)));
  return sessionCookie(runtime).serialize('', { maxAge: 0, expires: new Date(0) });
}

export async function endSessionsOf(db: StoreDb, input: { accountId: string }): Promise<number> {
  const ended = await db.delete(sessions).where(and(eq(sessions.accountId, input.accountId))).returning({ id: sessions.idHash });
  return ended.length;
}
