/**
 * The guards every loader and action calls first. They throw a Response:
 * - no session: a redirect to /login?redirectTo=… (pages, Remix data requests), or 401 JSON when
 *   the client asks for JSON and not HTML (scripts, the API);
 * - wrong role: 403 with a plain message;
 * - a state-changing request from another origin: 403 (app/auth/origin.server.ts).
 * Every refused state-changing request is written to the audit log.
 *
 * `can()` in ./permissions is the non-throwing twin that only hides buttons.
 */
import { redirect, type AppLoadContext } from '@remix-run/node';
import { recordAudit } from '../audit/audit-log.server';
import { FOREIGN_ORIGIN_MESSAGE, allowedOrigins, originFactsOf, originVerdict } from './origin.server';
import { ROLE_LABELS, roleCan, type Permission, type Role } from '../accounts/permissions';
import { proxyAccount, proxyEmail } from './proxy.server';
import { readSession } from './session.server';

export interface SignedInUser {
  accountId: string;
  email: string;
  name: string;
  role: Role;
  /** How this request was authenticated: a password session, the single-sign-on proxy, or an API token (the JSON API only). */
  via: 'session' | 'proxy' | 'token';
  /** The session's id hash (password sessions): what a long-lived answer (an event stream) re-checks. */
  sessionIdHash?: string;
  /** The API token's id, when `via` is 'token' (events record it). */
  tokenId?: string;
  /** A service account (reached only through its API tokens) or a person. */
  accountKind?: 'person' | 'service';
}

/** Who a page is for, as the page may show it: never the session's id hash or a token id (a kept page is shared by the account's sessions). */
export type PageViewer = Pick<SignedInUser, 'accountId' | 'email' | 'name' | 'role' | 'via'>;

export function pageViewerOf(user: SignedInUser): PageViewer {
  return { accountId: user.accountId, email: user.email, name: user.name, role: user.role, via: user.via };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The signed-in account of a request, or null. Never throws for a missing or stale session. */
export async function optionalUser(request: Request, context: AppLoadContext): Promise<SignedInUser | null> {
  const { runtime, clientAddress } = context;
  const email = proxyEmail(request, runtime.env, clientAddress);
  if (email) {
    const account = await proxyAccount(runtime, { email, ip: clientAddress });
    // The proxy vouched for a disabled account: signed out, whatever cookie the request carries.
    return account ? { ...account, via: 'proxy' } : null;
  }
  const session = await readSession(runtime, request);
  if (!session) return null;
  return { accountId: session.accountId, email: session.email, name: session.name, role: session.role, via: 'session', sessionIdHash: session.sessionIdHash };
}

export async function requireUser(request: Request, context: AppLoadContext): Promise<SignedInUser> {
  const user = await optionalUser(request, context);
  if (user) return user;
  throw signedOutResponse(request);
}

/**
 * A signed-in account whose role has `action`. Called from an action (any method but GET/HEAD),
 * it is requireStateChange: the Origin check and the refusal audit are never left out.
 */
export async function requirePermission(request: Request, context: AppLoadContext, action: Permission): Promise<SignedInUser> {
  if (!SAFE_METHODS.has(request.method.toUpperCase())) return requireStateChange(request, context, action);
  const user = await requireUser(request, context);
  if (!roleCan(user.role, action)) throw forbiddenResponse(user.role, action);
  return user;
}

/**
 * For every action: the request comes from the app's own origin, from a signed-in account whose
 * role has `action` ('signed-in': any account, e.g. signing out). Each refusal is audited.
 */
export async function requireStateChange(
  request: Request,
  context: AppLoadContext,
  action: Permission | 'signed-in',
): Promise<SignedInUser> {
  await requireSameOrigin(request, context);
  const user = await optionalUser(request, context);
  if (!user) {
    await auditRefusal(request, context, null, 'not signed in', action);
    throw signedOutResponse(request);
  }
  if (action !== 'signed-in') await requireRole(request, context, user, action);
  return user;
}

/**
 * A signed-in account's role has `action`, or a 403 whose refusal is audited. `intent`: the form's
 * intent when the caller has read the form already (otherwise the audit reads it from a copy).
 */
export async function requireRole(request: Request, context: AppLoadContext, user: SignedInUser, action: Permission, intent?: string | null): Promise<void> {
  if (roleCan(user.role, action)) return;
  await auditRefusal(request, context, user, `role ${user.role} lacks ${action}`, action, intent);
  throw forbiddenResponse(user.role, action);
}

/** The Origin check alone, for the public actions (signing in): a login form posted from elsewhere is refused. */
export async function requireSameOrigin(request: Request, context: AppLoadContext): Promise<void> {
  const verdict = originVerdict(originFactsOf(request), allowedOrigins(context.runtime.env));
  if (verdict.ok) return;
  await auditRefusal(request, context, null, `foreign origin: ${verdict.reason}`, null);
  throw new Response(FOREIGN_ORIGIN_MESSAGE, { status: 403, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
}

/** Where to come back after signing in: the page asked for, without Remix's own parameters. */
export function returnPath(request: Request): string {
  const url = new URL(request.url);
  url.searchParams.delete('index');
  url.searchParams.delete('_data');
  const search = url.searchParams.toString();
  return `${url.pathname}${search ? `?${search}` : ''}`;
}

const REDIRECT_BASE = 'http://runsheet.invalid';

/** A path's normal form as a browser resolves it on this site, or undefined when it leaves the site. */
function normalisedPath(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value, REDIRECT_BASE);
  } catch {
    return undefined;
  }
  return url.origin === REDIRECT_BASE ? `${url.pathname}${url.search}${url.hash}` : undefined;
}

/**
 * A safe redirect target from user input: a path on this site, never another host. The input is
 * normalised first (dot segments, "%2e%2e" among them, resolved as a browser resolves them) and the
 * result is what is checked: "/..//evil.example" normalises to "//evil.example", which a browser
 * reads as another host. Control characters (browsers drop tabs and newlines) and backslashes
 * (browsers read "\" as "/") are refused outright. Anything else falls back.
 */
export function safeRedirectPath(value: unknown, fallback = '/'): string {
  if (typeof value !== 'string' || !value.startsWith('/')) return fallback;
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return fallback;
  const normalised = normalisedPath(value);
  if (normalised === undefined || !normalised.startsWith('/') || normalised.startsWith('//') || normalised.includes('\\')) return fallback;
  // Its own normal form, so that nothing downstream can normalise it into another host.
  return normalisedPath(normalised) === normalised ? normalised : fallback;
}

function wantsJson(request: Request): boolean {
  const accept = request.headers.get('accept') ?? '';
  return (accept.includes('application/json') && !accept.includes('text/html')) || new URL(request.url).pathname.startsWith('/api/');
}

function signedOutResponse(request: Request): Response {
  if (wantsJson(request)) {
    return new Response(JSON.stringify({ error: 'Sign in first.' }), {
      status: 401,
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' },
    });
  }
  // Always with redirectTo (even "/"): a refusal is told apart from a sign-out's plain redirect to /login.
  return redirect(`/login?${new URLSearchParams({ redirectTo: returnPath(request) })}`);
}

function forbiddenResponse(role: Role, action: Permission): Response {
  return new Response(`Forbidden: your role (${ROLE_LABELS[role]}) may not ${action}.`, {
    status: 403,
    headers: { 'Content-Type': 'text/plain; charset=utf-8' },
  });
}

async function auditRefusal(
  request: Request,
  context: AppLoadContext,
  user: SignedInUser | null,
  reason: string,
  needed: Permission | 'signed-in' | null,
  intent?: string | null,
): Promise<void> {
  const url = new URL(request.url);
  // Nobody signed in, or from another origin: the body is never read for them, not even for the audit.
  const shownIntent = intent !== undefined ? intent : user ? await intentOf(request) : null;
  await recordAudit(context.runtime.store.db, {
    actor: user?.email ?? 'anonymous',
    actorRole: user?.role ?? null,
    action: 'request.refused',
    subject: `${request.method.toUpperCase()} ${url.pathname}`,
    outcome: 'refused',
    reason,
    ip: context.clientAddress,
    detail: { intent: shownIntent, needed },
  });
}

/** The form's intent, for the audit row; the action reads the body itself afterwards, so read a clone (within the body limit). */
async function intentOf(request: Request): Promise<string | null> {
  const type = request.headers.get('content-type') ?? '';
  if (!type.includes('application/x-www-form-urlencoded') && !type.includes('multipart/form-data')) return null;
  try {
    const value = (await request.clone().formData()).get('intent');
    return typeof value === 'string' ? value.slice(0, 100) : null;
  } catch {
    return null;
  }
}
