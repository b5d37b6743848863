/**
 * How much of a request body a route may read. Every route reads at most RUNSHEET_BODY_LIMIT
 * (default 1 MiB), counted while the body streams in, before anything parses it; a route that
 * takes an upload sets its own limit here. The HTTP server (server/remix-handler.ts) enforces it.
 */
import { MAX_RUNBOOK_BYTES } from '../plans/import-report';

/** An imported runbook and the form fields around it. */
export const IMPORT_REQUEST_BYTES = MAX_RUNBOOK_BYTES + 64 * 1024;

export interface BodyLimit {
  bytes: number;
  /**
   * The route refuses a larger declared body itself, with its own page, and reads nothing first
   * (the import page tells the person how large a runbook may be). Otherwise the server answers
   * 413 for a declared Content-Length over the limit before the route runs. Either way, a body
   * that streams past the limit is cut off with 413.
   */
  routeRefusesDeclaredSize: boolean;
}

const ROUTE_BODY_LIMITS: Readonly<Record<string, BodyLimit>> = {
  '/import': { bytes: IMPORT_REQUEST_BYTES, routeRefusesDeclaredSize: true },
  '/import.zip': { bytes: IMPORT_REQUEST_BYTES, routeRefusesDeclaredSize: true },
};

/** The limit of the route a path reaches (a single-fetch ".data" request reaches the route of its path). */
export function bodyLimitFor(pathname: string, defaultBytes: number): BodyLimit {
  const routePath = pathname === '/_root.data' ? '/' : pathname.replace(/\.data$/, '').replace(/(.)\/+$/, '$1');
  return ROUTE_BODY_LIMITS[routePath] ?? { bytes: defaultBytes, routeRefusesDeclaredSize: false };
}
