/**
 * The plan page and the report page as rendered, kept per process and sent again while nothing
 * they show can have changed (docs/decisions/035). Everyone opens the same migration at once; each
 * view used to read ~15 rows and render ~120 KB of markup that the view before had just rendered.
 *
 * A kept page is found by its key, and the key holds every input of the page:
 * - the request: route, host, path and query; the viewer (account, role, email, name, how signed in);
 * - the store's MVCC snapshot (app/runtime/database-snapshot.server.ts): equal snapshots see the
 *   same committed rows, so any write anywhere in the store (a tick, an event, a check result,
 *   facts, a session ended) — by this process, another instance or psql — makes a new key;
 * - the snapshot of each target the page reads live: its own (the ledger, anchors) and those its
 *   gates read (require_applied_on, require_watched_on);
 * - the plan's checksum (its files on disk) and its sandbox fixture for the plan page;
 * - the clock, in steps of RUNSHEET_PAGE_AGE_STEP (2 s): ages ("read 12 s ago") and the watch strip's "now".
 * The viewer is authorized (the route's own permission) before anything is looked up, on every
 * request. A key that cannot be built (a target that does not answer, an invalid plan, an unknown
 * run) means no caching: Remix renders as it always does. Only whole 200 HTML answers without a
 * cookie are kept, and not one whose loader could not read all it shows (markPageIncomplete); the
 * CSP nonce is cut out when kept and the request's own nonce put in when sent.
 */
import type { AppLoadContext } from '@remix-run/node';
import type { Runtime } from '../boot/runtime.server';
import { requirePermission, type SignedInUser } from '../auth/require.server';
import { loadPlan } from '../plans/load-plans.server';
import { readRunTargetName } from '../runs/run-store.server';
import { readDatabaseSnapshot } from '../runtime/database-snapshot.server';
import { withTimeout } from '../runtime/with-timeout';
import { resolveChecklistTarget } from './plan-page.server';

/** How long the key waits for a target's snapshot: a trivial read; slower, and the page renders as without a cache. */
const TARGET_SNAPSHOT_TIMEOUT_MS = 500;
/** After a target's snapshot failed or was slow, its pages are rendered without a key for this long (no 500 ms wait per view). */
const TARGET_TROUBLE_MS = 10_000;
/** How long a request waits for another request's render of the same page before it renders its own. */
const RENDER_WAIT_MS = 10_000;
/** Headers that belong to one answer's transfer, not to the page. */
const UNKEPT_HEADERS = new Set(['content-length', 'transfer-encoding', 'date', 'connection']);
/** A page larger than this is never kept (a pathological plan should not evict every other page). */
const LARGEST_KEPT_BYTES = 2 * 1024 * 1024;

interface PageInputs {
  /** Inputs of the page outside the store and the targets (the plan's checksum). */
  parts: string[];
  /** The targets whose snapshots the key holds: those the page reads live. */
  targets: string[];
}

interface CachedRoute {
  /** The Remix route id, for the key and the docs. */
  route: string;
  pattern: RegExp;
  inputsOf(runtime: Runtime, match: RegExpMatchArray, url: URL): Promise<PageInputs | undefined>;
}

/** A run's target is written when the run opens and never changed: kept per process. */
const runTargets = new Map<string, string>();
const RUN_TARGETS_KEPT = 4_096;

const CACHED_ROUTES: CachedRoute[] = [
  {
    route: 'routes/plans.$planId',
    pattern: /^\/plans\/([^/.]+)$/,
    async inputsOf(runtime, match, url) {
      const loaded = await loadPlan(runtime.plansDir, decodeURIComponent(match[1]!));
      if (!loaded?.ok) return undefined;
      const { target } = resolveChecklistTarget(runtime, url.searchParams.get('target'));
      if (!target) return undefined;
      // The gates read the ledgers of the targets that must see the plan first.
      const read = [target.name, ...target.rules.require_applied_on, ...target.rules.require_watched_on].filter((name) => runtime.targets.find(name));
      // sandbox.sql is outside the checksum (it never runs on a real target) but the page offers it.
      return { parts: [loaded.checksum, loaded.sandboxFixture?.sha256 ?? 'no sandbox fixture'], targets: [...new Set(read)] };
    },
  },
  {
    route: 'routes/runs.$runId_.report',
    pattern: /^\/runs\/([0-9a-fA-F-]{36})\/report$/,
    async inputsOf(runtime, match) {
      const runId = match[1]!.toLowerCase();
      let target = runTargets.get(runId);
      if (target === undefined) {
        target = await readRunTargetName(runtime.store.db, { runId });
        if (target === undefined) return undefined;
        if (runTargets.size >= RUN_TARGETS_KEPT) runTargets.delete(runTargets.keys().next().value!);
        runTargets.set(runId, target);
      }
      return { parts: [], targets: runtime.targets.find(target) ? [target] : [] };
    },
  },
];

export interface KeptAnswer {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

export type PageCacheLookup =
  /** A kept page, with this request's nonce. */
  | { kind: 'hit'; answer: KeptAnswer }
  /** Not kept yet: `keep` takes Remix's answer, keeps it when it may, and gives back the answer to send. */
  | { kind: 'miss'; keep(answer: Response): Promise<Response>; /** The render failed: the requests waiting on it render their own. */ abandon(): void };

interface Entry {
  status: number;
  headers: [string, string][];
  /** The page cut at each occurrence of the nonce it was rendered with. */
  pieces: Buffer[];
  bytes: number;
}

export interface PageCache {
  /** undefined: not a page this cache keeps, or no key could be built (Remix answers as always). */
  lookup(request: Request, context: AppLoadContext): Promise<PageCacheLookup | undefined>;
}

export function createPageCache(runtime: Runtime, options: { maxBytes: number; ageStepMs: number }): PageCache {
  const entries = new Map<string, Entry>();
  /** Renders in flight, by key: a request for the same page waits for that render instead of starting its own. */
  const rendering = new Map<string, Promise<Entry | undefined>>();
  let bytesKept = 0;

  const keep = (key: string, entry: Entry) => {
    if (entry.bytes > Math.min(LARGEST_KEPT_BYTES, options.maxBytes)) return;
    bytesKept -= entries.get(key)?.bytes ?? 0;
    entries.delete(key);
    entries.set(key, entry);
    bytesKept += entry.bytes;
    // Oldest first: Map keeps insertion order, and a hit re-inserts its entry.
    for (const [oldKey, old] of entries) {
      if (bytesKept <= options.maxBytes) break;
      entries.delete(oldKey);
      bytesKept -= old.bytes;
    }
  };

  return {
    async lookup(request, context) {
      if (options.maxBytes <= 0 || request.method !== 'GET' || !context.cspNonce) return undefined;
      const url = new URL(request.url);
      const found = CACHED_ROUTES.map((route) => ({ route, match: url.pathname.match(route.pattern) })).find(({ match }) => match);
      if (!found?.match) return undefined;

      let user: SignedInUser;
      try {
        user = await requirePermission(request, context, 'view');
      } catch {
        return undefined; // Refused: the route's own loader answers (the redirect, the 403), as without a cache.
      }
      const key = await keyOf(runtime, found.route, found.match, url, user, Math.floor(Date.now() / Math.max(1, options.ageStepMs)));
      if (!key) return undefined;

      const hit = (entry: Entry): PageCacheLookup => {
        return { kind: 'hit', answer: { status: entry.status, headers: entry.headers, body: withNonce(entry.pieces, context.cspNonce) } };
      };
      const entry = entries.get(key);
      if (entry) {
        // Most recently used last: eviction takes the oldest first.
        entries.delete(key);
        entries.set(key, entry);
        return hit(entry);
      }
      const inFlight = rendering.get(key);
      if (inFlight) {
        const rendered = await inFlight;
        // Not kept (an error page, too large): this request renders its own.
        return rendered ? hit(rendered) : undefined;
      }
      // Everyone opens the page at once: the first request renders it, the others wait for that render.
      let settle!: (entry: Entry | undefined) => void;
      const promise = new Promise<Entry | undefined>((resolve) => (settle = resolve));
      rendering.set(key, promise);
      const done = (entry: Entry | undefined) => {
        settle(entry);
        if (rendering.get(key) === promise) rendering.delete(key);
      };
      const timer = setTimeout(() => done(undefined), RENDER_WAIT_MS);
      timer.unref();
      return {
        kind: 'miss',
        async keep(answer) {
          clearTimeout(timer);
          const type = answer.headers.get('Content-Type') ?? '';
          if (answer.status !== 200 || !type.startsWith('text/html') || answer.headers.has('Set-Cookie') || !answer.body || incompletePages.has(context)) {
            done(undefined);
            return answer;
          }
          let html: string;
          try {
            html = await answer.text();
          } catch (error) {
            done(undefined);
            throw error;
          }
          const pieces = html.split(context.cspNonce).map((piece) => Buffer.from(piece));
          const entry: Entry = { status: answer.status, headers: [...answer.headers.entries()].filter(([name]) => !UNKEPT_HEADERS.has(name.toLowerCase())), pieces, bytes: pieces.reduce((sum, piece) => sum + piece.length, 0) };
          keep(key, entry);
          done(entry);
          return new Response(html, { status: answer.status, statusText: answer.statusText, headers: answer.headers });
        },
        abandon() {
          clearTimeout(timer);
          done(undefined);
        },
      };
    },
  };
}

/** Targets whose snapshot failed or was slow, until when their pages go without a key. */
const troubledTargets = new Map<string, number>();

async function keyOf(runtime: Runtime, route: CachedRoute, match: RegExpMatchArray, url: URL, user: SignedInUser, ageStep: number): Promise<string | undefined> {
  try {
    const inputs = await route.inputsOf(runtime, match, url);
    if (!inputs || inputs.targets.some((name) => (troubledTargets.get(name) ?? 0) > Date.now())) return undefined;
    const targetSnapshot = (name: string) =>
      withTimeout(readDatabaseSnapshot(runtime.targets.pool(name)), TARGET_SNAPSHOT_TIMEOUT_MS).catch((error: unknown) => {
        troubledTargets.set(name, Date.now() + TARGET_TROUBLE_MS);
        throw error;
      });
    const snapshots = await Promise.all([readDatabaseSnapshot(runtime.store.pool), ...inputs.targets.map(targetSnapshot)]);
    if (snapshots.some((snapshot) => snapshot === undefined)) return undefined; // A standby: its snapshot proves nothing.
    return JSON.stringify([
      route.route,
      url.host,
      url.pathname,
      url.search,
      [user.accountId, user.role, user.email, user.name, user.via],
      inputs.parts,
      inputs.targets,
      snapshots,
      ageStep,
    ]);
  } catch {
    // A target that does not answer, a store hiccup: the page renders as it always does (and says why).
    return undefined;
  }
}

/**
 * A loader that could not read all its page shows (a target's ledger or anchors) says so here: the
 * page is answered, never kept, so that the next view tries again.
 */
export function markPageIncomplete(context: AppLoadContext): void {
  incompletePages.add(context);
}

const incompletePages = new WeakSet<AppLoadContext>();

function withNonce(pieces: Buffer[], nonce: string): Buffer {
  if (pieces.length === 1) return pieces[0]!;
  const nonceBytes = Buffer.from(nonce);
  const parts: Buffer[] = [];
  pieces.forEach((piece, index) => {
    if (index > 0) parts.push(nonceBytes);
    parts.push(piece);
  });
  return Buffer.concat(parts);
}
