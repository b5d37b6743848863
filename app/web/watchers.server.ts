/**
 * Who is watching a run right now: every open live-view stream (SSE connection) registers its
 * viewer here, per run, in this server process. Presence is a courtesy ("who else is looking at
 * this migration"), not a record: it lives in memory, is lost on restart, and is never audited.
 */

export interface Watcher {
  email: string;
  role: string;
}

interface Connection extends Watcher {
  /** ms since epoch */
  since: number;
}

type Listener = (watchers: Watcher[]) => void;

const connections = new Map<string, Map<number, Connection>>();
const listeners = new Map<string, Set<Listener>>();
let nextConnectionId = 1;

/** One entry per person, however many tabs they have open; earliest first. */
export function watchersOf(runId: string): Watcher[] {
  const byEmail = new Map<string, Connection>();
  for (const connection of connections.get(runId)?.values() ?? []) {
    const known = byEmail.get(connection.email);
    if (!known || connection.since < known.since) byEmail.set(connection.email, connection);
  }
  return [...byEmail.values()].sort((a, b) => a.since - b.since).map(({ email, role }) => ({ email, role }));
}

/**
 * Registers one connection and calls `onChange` (for this connection too) whenever the set of
 * watchers of the run changes. Returns the function that unregisters it; calling it twice is harmless.
 */
export function watchRun(runId: string, watcher: Watcher, onChange: Listener): () => void {
  const id = nextConnectionId++;
  const runConnections = connections.get(runId) ?? new Map<number, Connection>();
  connections.set(runId, runConnections);
  const runListeners = listeners.get(runId) ?? new Set<Listener>();
  listeners.set(runId, runListeners);

  const before = key(watchersOf(runId));
  runConnections.set(id, { ...watcher, since: Date.now() });
  runListeners.add(onChange);
  if (key(watchersOf(runId)) !== before) notify(runId);
  else onChange(watchersOf(runId));

  let done = false;
  return () => {
    if (done) return;
    done = true;
    const previous = key(watchersOf(runId));
    runConnections.delete(id);
    runListeners.delete(onChange);
    if (runConnections.size === 0) connections.delete(runId);
    if (runListeners.size === 0) listeners.delete(runId);
    if (key(watchersOf(runId)) !== previous) notify(runId);
  };
}

function notify(runId: string): void {
  const current = watchersOf(runId);
  for (const listener of listeners.get(runId) ?? []) {
    try {
      listener(current);
    } catch {
      // One broken stream must not keep the others from hearing about the change.
    }
  }
}

const key = (watchers: Watcher[]) => watchers.map((watcher) => `${watcher.email}/${watcher.role}`).join(',');
