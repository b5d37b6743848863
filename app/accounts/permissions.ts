/**
 * Who may do what: the one table of actions × roles, the table of routes (which access each
 * loader and each form intent needs), and the routes that need no account.
 *
 * Pure data and pure functions: components import it to hide buttons they may not use, server
 * guards (app/auth/require.server.ts) import it to refuse. Hiding is never the protection.
 * Decisions and reasons: docs/decisions/003-accounts-and-sessions.md.
 */

export const ROLES = ['viewer', 'tpm', 'engineer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  'view',
  'tick',
  'run-checks',
  'sign-off',
  'add-note',
  'end-watch',
  'rehearse',
  'execute',
  'cancel',
  'rollback',
  'restore',
  'import-plan',
  'reset-sandbox',
  'notifications',
  'manage-accounts',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

// Ending a watch early or extending it is the TPM's call on the runbook's monitoring (docs/decisions/030).
const TPM: readonly Permission[] = ['view', 'tick', 'run-checks', 'sign-off', 'add-note', 'end-watch'];

/**
 * Roles × actions. Admin manages accounts and nothing else (separation of duties): no `view`
 * either, so an admin account cannot read plans, runs or target facts; an admin who needs to read
 * a run uses a second, viewer account, and both accounts show in the audit log.
 */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  viewer: ['view'],
  tpm: TPM,
  // Importing a runbook writes a plan folder, and resetting a sandbox rewrites a target: an engineer's work.
  // Putting a rollback's backup back writes the target, as a rollback does (docs/decisions/031).
  // The notification channels' deliveries and test sends (docs/decisions/033): the engineers who run the changes.
  engineer: [...TPM, 'rehearse', 'execute', 'cancel', 'rollback', 'restore', 'import-plan', 'reset-sandbox', 'notifications'],
  admin: ['manage-accounts'],
};

export const ROLE_LABELS: Readonly<Record<Role, string>> = {
  viewer: 'Viewer',
  tpm: 'TPM',
  engineer: 'Engineer',
  admin: 'Admin',
};

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

export function isPermission(value: unknown): value is Permission {
  return typeof value === 'string' && (PERMISSIONS as readonly string[]).includes(value);
}

export function roleCan(role: Role, action: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(action);
}

/** Non-throwing: for hiding buttons. A missing user (signed out) may do nothing. */
export function can(user: { role: Role } | null | undefined, action: Permission): boolean {
  return user ? roleCan(user.role, action) : false;
}

/** Where a role lands after signing in when it asked for no page (admin has no plans list). */
export function homePathFor(role: Role): string {
  return roleCan(role, 'view') ? '/' : '/admin/accounts';
}

/**
 * What a loader or a form intent needs:
 * - a Permission: a signed-in account whose role has it;
 * - 'signed-in': any signed-in account (signing out);
 * - 'public': nobody (the login page, the public signing key);
 * - 'bearer-token': the sandbox stand-in API, which checks its own bearer tokens and reads no cookie;
 * - 'api-token': Runsheet's JSON API (/api/v1): a Runsheet API token, never a cookie; what each
 *   endpoint needs is API_ACCESS below.
 */
export type Access = Permission | 'signed-in' | 'public' | 'bearer-token' | 'api-token';

export interface RouteAccess {
  /** What the loader needs. Absent: the route has no loader. */
  loader?: Access;
  /**
   * Per form `intent`, what the action needs; the key ANY_INTENT ('*') for an action that takes
   * no form intent (the sandbox API's JSON bodies). Absent: the route has no action.
   */
  actions?: Readonly<Record<string, Access>>;
}

export const ANY_INTENT = '*';

/**
 * Every Remix route id (app/routes/…) and what it needs. tests/integration/route-matrix.test.ts
 * takes the routes from the built app's own manifest and fails for any route missing here, and
 * for any route that answers otherwise than this table says. Add a route here when you add it.
 */
export const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = {
  root: {},
  'routes/_index': { loader: 'view' },
  'routes/login': { loader: 'public', actions: { login: 'public' } },
  'routes/logout': { loader: 'public', actions: { logout: 'signed-in' } },
  'routes/admin.accounts': {
    loader: 'manage-accounts',
    actions: {
      create: 'manage-accounts',
      'set-role': 'manage-accounts',
      disable: 'manage-accounts',
      enable: 'manage-accounts',
      'reset-password': 'manage-accounts',
      // Lifts a sign-in lock (someone's failed passwords); audited as account.unlock.
      unlock: 'manage-accounts',
      'create-service-account': 'manage-accounts',
      'create-service-token': 'manage-accounts',
      'revoke-token': 'manage-accounts',
    },
  },
  // Anyone signed in manages their own API tokens (a service account never signs in).
  'routes/account.tokens': { loader: 'signed-in', actions: { 'create-token': 'signed-in', 'revoke-token': 'signed-in' } },
  'routes/plans.$planId': {
    loader: 'view',
    actions: {
      tick: 'tick',
      'tick-criterion': 'tick',
      'new-attempt': 'tick',
      'run-checks': 'run-checks',
      'refresh-facts': 'run-checks',
      'sign-off': 'sign-off',
      'add-note': 'add-note',
      // Waiving a squawk finding opens the lint-clean gate of one run: an engineer's call, as executing is.
      'waive-lint': 'execute',
      execute: 'execute',
      rehearse: 'rehearse',
      rollback: 'rollback',
      cancel: 'cancel',
      // Regenerates the sandbox target and runs the plan's sandbox.sql (only on a target marked sandbox: true).
      'reset-sandbox': 'reset-sandbox',
      // The watch window after a verified apply (docs/decisions/030): the TPM's call.
      'end-watch': 'end-watch',
      'extend-watch': 'end-watch',
      // Putting back what a rollback kept (docs/decisions/031): an engineer's, as rolling back is.
      restore: 'restore',
    },
  },
  // Each notification channel, its deliveries, and a test send (audited as notification.test).
  'routes/notifications': { loader: 'notifications', actions: { 'send-test': 'notifications' } },
  // Upload a Markdown runbook, see it as a plan with its import report, then save or download it.
  'routes/import': { loader: 'import-plan', actions: { preview: 'import-plan', save: 'import-plan' } },
  // The imported folder as a zip, where the plans folder cannot be written.
  'routes/import[.]zip': { actions: { download: 'import-plan' } },
  'routes/runs.$runId': { loader: 'view', actions: { cancel: 'cancel' } },
  'routes/runs.$runId.events': { loader: 'view' },
  // History and the post-run report (with its downloads and event pages): reading only.
  'routes/runs._index': { loader: 'view' },
  'routes/runs.$runId_.report': { loader: 'view' },
  'routes/runs.$runId_.report[.]md': { loader: 'view' },
  'routes/runs.$runId_.log[.]json': { loader: 'view' },
  'routes/runs.$runId_.events[.]json': { loader: 'view' },
  'routes/plans.$planId_.sql[.]json': { loader: 'view' },
  'routes/bench.bare': { loader: 'view' },
  'routes/signing-key[.]pem': { loader: 'public' },
  'routes/sandbox-api.api.auth.validate': { loader: 'bearer-token' },
  // The JSON API: one route hands every /api/v1 request to its endpoint; API_ACCESS says what each needs.
  'routes/api.v1.$': { loader: 'api-token', actions: { [ANY_INTENT]: 'api-token' } },
  'routes/sandbox-api.api.auth.set-active-org': { actions: { [ANY_INTENT]: 'bearer-token' } },
};

/**
 * Every endpoint of the JSON API (`METHOD path` under /api/v1) and what its token's account needs:
 * a permission of the same table as the web app, or 'signed-in' (any valid token). The endpoints
 * themselves (app/api/api-contract.ts) are typed by these keys, so neither can miss one, and
 * tests/integration/route-matrix.test.ts sends each of them with every role's token, none, and a
 * cookie session (refused: the API takes bearer tokens only).
 */
export const API_ACCESS = {
  'GET /me': 'signed-in',
  'GET /plans': 'view',
  'GET /plans/{planId}': 'view',
  'POST /plans/{planId}/check': 'run-checks',
  'POST /plans/{planId}/runs': 'tick',
  'POST /plans/{planId}/rehearse': 'rehearse',
  'GET /runs': 'view',
  'GET /runs/{runId}': 'view',
  'POST /runs/{runId}/ticks': 'tick',
  'POST /runs/{runId}/criteria': 'tick',
  'POST /runs/{runId}/checks': 'run-checks',
  'POST /runs/{runId}/sign-off': 'sign-off',
  'POST /runs/{runId}/notes': 'add-note',
  // Waiving a squawk finding opens a gate of one run: an engineer's call, as on the plan page.
  'POST /runs/{runId}/waivers': 'execute',
  'POST /runs/{runId}/execute': 'execute',
  'GET /runs/{runId}/rollback': 'view',
  'POST /runs/{runId}/rollback': 'rollback',
  'POST /runs/{runId}/cancel': 'cancel',
  // Pausing a backfill stops a drive between batches, as cancelling does.
  'POST /runs/{runId}/pause': 'cancel',
  'POST /runs/{runId}/resume': 'cancel',
  'GET /runs/{runId}/events': 'view',
  'GET /runs/{runId}/log': 'view',
} as const satisfies Record<string, Permission | 'signed-in'>;

export type ApiRouteKey = keyof typeof API_ACCESS;

/** Runsheet's JSON API lives under this prefix: bearer API tokens only, so no Origin check applies (there is no cookie to ride on). */
export const API_PREFIX = '/api/v1/';

/** The sandbox stand-in API lives under this prefix: bearer tokens, no cookies, no Origin check. */
export const SANDBOX_API_PREFIX = '/sandbox-api/';

/** Paths anyone may open without an account (PRODUCT.md "Who uses it"). */
export const PUBLIC_PATHS: readonly string[] = ['/login', '/signing-key.pem'];

export function isPublicPath(pathname: string): boolean {
  return PUBLIC_PATHS.includes(pathname) || pathname.startsWith(SANDBOX_API_PREFIX);
}

/** Whether an identity (undefined: signed out) passes an access rule. */
export function accessAllows(access: Access, role: Role | undefined): boolean {
  switch (access) {
    case 'public':
    case 'bearer-token':
    case 'api-token':
      return true;
    case 'signed-in':
      return role !== undefined;
    default:
      return role !== undefined && roleCan(role, access);
  }
}
