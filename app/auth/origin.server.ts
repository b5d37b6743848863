/**
 * The Origin check for state-changing requests (a defence for cookie sessions, PRODUCT.md).
 *
 * The app's own origin is configured, never derived from the request: RUNSHEET_ORIGIN, or when it
 * is unset the loopback origins of PORT (http://localhost:PORT, 127.0.0.1, [::1]). Behind a proxy the
 * configured origin is the truth; a Host-derived origin would follow whatever name the browser
 * used (DNS rebinding) and lose the scheme a TLS-terminating proxy strips.
 *
 * A non-GET request passes when its Origin is one of those; without Origin, when Sec-Fetch-Site
 * says same-origin; without either, when the Referer's origin is one of those. Anything else,
 * including no header at all and `Origin: null`, is refused with 403 and audited. Exempt: the
 * sandbox stand-in API (bearer tokens, no cookies), and a request to Runsheet's JSON API that
 * carries a bearer token (the API reads no cookie, so a forged cross-site request has nothing to
 * ride on); a JSON API request without one is judged like any other.
 *
 * Two places run it: the HTTP server, before Remix (whose own host check would otherwise answer a
 * foreign Origin with an unlogged 500), and requireStateChange, inside every action.
 */
import type { AppLoadContext } from '@remix-run/node';
import { recordAudit } from '../audit/audit-log.server';
import type { RunsheetEnv } from '../runtime/env.server';
import type { Runtime } from '../boot/runtime.server';
import { API_PREFIX, SANDBOX_API_PREFIX } from '../accounts/permissions';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function allowedOrigins(env: Pick<RunsheetEnv, 'RUNSHEET_ORIGIN' | 'PORT'>): string[] {
  if (env.RUNSHEET_ORIGIN) return [new URL(env.RUNSHEET_ORIGIN).origin];
  return [`http://localhost:${env.PORT}`, `http://127.0.0.1:${env.PORT}`, `http://[::1]:${env.PORT}`];
}

export interface OriginFacts {
  method: string;
  pathname: string;
  origin: string | null;
  secFetchSite: string | null;
  referer: string | null;
  /** The Authorization header's scheme is Bearer. */
  bearer: boolean;
}

const isBearer = (authorization: string | null): boolean => /^Bearer\s+\S/i.test(authorization ?? '');

export type OriginVerdict = { ok: true } | { ok: false; reason: string };

/** Pure: whether a request's headers show it comes from the app's own pages. */
export function originVerdict(facts: OriginFacts, allowed: readonly string[]): OriginVerdict {
  if (SAFE_METHODS.has(facts.method.toUpperCase())) return { ok: true };
  if (facts.pathname.startsWith(SANDBOX_API_PREFIX)) return { ok: true };
  if (facts.pathname.startsWith(API_PREFIX) && facts.bearer) return { ok: true };
  if (facts.origin !== null) {
    return allowed.includes(facts.origin) ? { ok: true } : { ok: false, reason: `Origin ${facts.origin} is not this app's origin` };
  }
  if (facts.secFetchSite !== null) {
    return facts.secFetchSite === 'same-origin' ? { ok: true } : { ok: false, reason: `Sec-Fetch-Site is ${facts.secFetchSite}` };
  }
  if (facts.referer) {
    let refererOrigin: string;
    try {
      refererOrigin = new URL(facts.referer).origin;
    } catch {
      return { ok: false, reason: 'the Referer is not a URL' };
    }
    return allowed.includes(refererOrigin) ? { ok: true } : { ok: false, reason: `Referer ${refererOrigin} is not this app's origin` };
  }
  return { ok: false, reason: 'no Origin, Sec-Fetch-Site or Referer header' };
}

export function originFactsOf(request: Request): OriginFacts {
  return {
    method: request.method,
    pathname: new URL(request.url).pathname,
    origin: request.headers.get('origin'),
    secFetchSite: request.headers.get('sec-fetch-site'),
    referer: request.headers.get('referer'),
    bearer: isBearer(request.headers.get('authorization')),
  };
}

export const FOREIGN_ORIGIN_MESSAGE = 'Refused: this form was not sent from a Runsheet page (cross-origin request).';

function refusalResponse(): Response {
  return new Response(FOREIGN_ORIGIN_MESSAGE, { status: 403, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
}

async function auditForeignOrigin(runtime: Runtime, facts: OriginFacts, reason: string, ip: string): Promise<void> {
  await recordAudit(runtime.store.db, {
    actor: 'anonymous',
    action: 'request.refused',
    subject: `${facts.method.toUpperCase()} ${facts.pathname}`,
    outcome: 'refused',
    reason: `foreign origin: ${reason}`,
    ip,
  });
}

/** A 403 Response (audited) for a state-changing request from another origin; null when it may proceed. */
export async function refuseCrossOrigin(request: Request, context: AppLoadContext): Promise<Response | null> {
  const facts = originFactsOf(request);
  const verdict = originVerdict(facts, allowedOrigins(context.runtime.env));
  if (verdict.ok) return null;
  await auditForeignOrigin(context.runtime, facts, verdict.reason, context.clientAddress);
  return refusalResponse();
}

/** The smallest shape of an Express (or Node http) request and response this guard reads and writes. */
interface NodeRequestLike {
  method?: string;
  url?: string;
  headers: Record<string, string | string[] | undefined>;
  socket: { remoteAddress?: string };
}
interface NodeResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
}

const single = (value: string | string[] | undefined): string | null => (Array.isArray(value) ? (value[0] ?? null) : (value ?? null));

/**
 * Express middleware: refuses (403, audited) a state-changing request from another origin before
 * it reaches Remix. `app.use(crossOriginGuard(runtime))` just before the Remix handler.
 */
export function crossOriginGuard(runtime: Runtime) {
  const allowed = allowedOrigins(runtime.env);
  return (request: NodeRequestLike, response: NodeResponseLike, next: (error?: unknown) => void): void => {
    const facts: OriginFacts = {
      method: request.method ?? 'GET',
      pathname: new URL(request.url ?? '/', 'http://placeholder').pathname,
      origin: single(request.headers.origin),
      secFetchSite: single(request.headers['sec-fetch-site']),
      referer: single(request.headers.referer),
      bearer: isBearer(single(request.headers.authorization)),
    };
    const verdict = originVerdict(facts, allowed);
    if (verdict.ok) return next();
    auditForeignOrigin(runtime, facts, verdict.reason, request.socket.remoteAddress ?? '').then(
      () => {
        response.statusCode = 403;
        response.setHeader('Content-Type', 'text/plain; charset=utf-8');
        response.end(FOREIGN_ORIGIN_MESSAGE);
      },
      next,
    );
  };
}
