/**
 * Who is watching a run right now, the same on every app instance: each open live-view stream
 * registers its viewer here; the instance keeps one row per run and person in the store
 * (run_watchers), written when someone starts or stops watching and refreshed for all of them by
 * one batched heartbeat every HEARTBEAT_MS. A row not refreshed for EXPIRES_AFTER (its instance
 * died) no longer counts. Every change is announced (store-notifications.server.ts), and each
 * instance re-reads the audience of the runs its viewers follow, so a viewer on one instance sees
 * those on the others within a moment, and within a heartbeat when an announcement is lost.
 * Presence is a courtesy ("who else is looking at this migration"), not a record: never audited.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { announceStoreChange, RUN_WATCHERS_CHANNEL, storeListenerOf } from '../runtime/store-notifications.server';

export interface Watcher {
  email: string;
  role: string;
}

type Listener = (watchers: Watcher[]) => void;

export const HEARTBEAT_MS = 10_000;
/** Three missed heartbeats. */
const EXPIRES_AFTER = '30 seconds';

interface Connection extends Watcher {
  id: number;
}

interface WatchedRun {
  connections: Map<number, Connection>;
  listeners: Set<Listener>;
  /** The audience last read from the store (what listeners were last told). */
  known: string;
}

/** Same order and shape on every instance: earliest first, one entry per person. */
const READ_SQL = `
  select run_id::text as "runId", email, min(role) as role
    from run_watchers
   where run_id = any($1::uuid[]) and seen_at > now() - interval '${EXPIRES_AFTER}'
   group by run_id, email
   order by run_id, min(since), email`;

class RunAudience {
  private readonly runs = new Map<string, WatchedRun>();
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;
  private stopListening: (() => void) | undefined;
  /** This instance (its store pool), as its rows in run_watchers name it. */
  private readonly instanceId = randomUUID();

  constructor(private readonly pool: pg.Pool) {}

  watch(runId: string, watcher: Watcher, onChange: Listener): () => void {
    this.start();
    let run = this.runs.get(runId);
    if (!run) {
      run = { connections: new Map(), listeners: new Set(), known: '' };
      this.runs.set(runId, run);
    }
    const id = this.nextId++;
    const firstOfPerson = ![...run.connections.values()].some((connection) => connection.email === watcher.email);
    run.connections.set(id, { ...watcher, id });
    run.listeners.add(onChange);
    void (firstOfPerson ? this.join(runId, watcher) : this.refresh([runId], onChange));

    let done = false;
    return () => {
      if (done) return;
      done = true;
      const watched = this.runs.get(runId);
      if (!watched) return;
      watched.connections.delete(id);
      watched.listeners.delete(onChange);
      const lastOfPerson = ![...watched.connections.values()].some((connection) => connection.email === watcher.email);
      if (watched.connections.size === 0) this.runs.delete(runId);
      if (this.runs.size === 0) this.idle();
      if (lastOfPerson) void this.leave(runId, watcher.email);
    };
  }

  private start(): void {
    if (this.timer) return;
    this.stopListening = storeListenerOf(this.pool).subscribe(RUN_WATCHERS_CHANNEL, (runId) => {
      if (this.runs.has(runId)) void this.refresh([runId]);
    });
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.timer.unref();
  }

  private idle(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopListening?.();
  }

  private async join(runId: string, watcher: Watcher): Promise<void> {
    await this.write(
      `insert into run_watchers (instance_id, run_id, email, role) values ($1, $2, $3, $4)
       on conflict (instance_id, run_id, email) do update set role = excluded.role, seen_at = now()`,
      [this.instanceId, runId, watcher.email, watcher.role],
    );
    await announceStoreChange(this.pool, RUN_WATCHERS_CHANNEL, runId);
    await this.refresh([runId]);
  }

  private async leave(runId: string, email: string): Promise<void> {
    await this.write('delete from run_watchers where instance_id = $1 and run_id = $2 and email = $3', [this.instanceId, runId, email]);
    await announceStoreChange(this.pool, RUN_WATCHERS_CHANNEL, runId);
  }

  /** One statement for every run and person this instance shows: refresh ours, drop the expired, read the audiences. */
  private async heartbeat(): Promise<void> {
    const runIds: string[] = [];
    const emails: string[] = [];
    const roles: string[] = [];
    for (const [runId, run] of this.runs) {
      const people = new Map<string, string>();
      for (const connection of run.connections.values()) people.set(connection.email, connection.role);
      for (const [email, role] of people) {
        runIds.push(runId);
        emails.push(email);
        roles.push(role);
      }
    }
    if (runIds.length === 0) return;
    try {
      const { rows } = await this.pool.query<{ runId: string; email: string; role: string }>(
        `with beat as (
           insert into run_watchers (instance_id, run_id, email, role)
           select $1, run_id, email, role from unnest($2::uuid[], $3::text[], $4::text[]) as mine(run_id, email, role)
           on conflict (instance_id, run_id, email) do update set seen_at = now()
         ), expired as (
           delete from run_watchers where seen_at <= now() - interval '${EXPIRES_AFTER}'
         )
         ${READ_SQL.replace('$1::uuid[]', '$5::uuid[]')}`,
        [this.instanceId, runIds, emails, roles, [...this.runs.keys()]],
      );
      this.tell(rows, [...this.runs.keys()]);
    } catch (error) {
      console.warn(`runsheet: presence heartbeat failed (retried in ${HEARTBEAT_MS / 1000} s): ${(error as Error).message}`);
    }
  }

  /** Reads the audience of some runs and tells their listeners what changed (`force`: one listener is told whatever it is). */
  private async refresh(runIds: string[], force?: Listener): Promise<void> {
    try {
      const { rows } = await this.pool.query<{ runId: string; email: string; role: string }>(READ_SQL, [runIds]);
      this.tell(rows, runIds, force);
    } catch (error) {
      console.warn(`runsheet: could not read who is watching: ${(error as Error).message}`);
    }
  }

  private tell(rows: { runId: string; email: string; role: string }[], runIds: string[], force?: Listener): void {
    for (const runId of runIds) {
      const run = this.runs.get(runId);
      if (!run) continue;
      const watchers = rows.filter((row) => row.runId === runId).map(({ email, role }) => ({ email, role }));
      const known = watchers.map((watcher) => `${watcher.email}/${watcher.role}`).join(',');
      const changed = known !== run.known;
      run.known = known;
      for (const listener of run.listeners) {
        if (!changed && listener !== force) continue;
        try {
          listener(watchers);
        } catch {
          // One broken stream must not keep the others from hearing about the change.
        }
      }
    }
  }

  private async write(text: string, values: unknown[]): Promise<void> {
    try {
      await this.pool.query(text, values);
    } catch (error) {
      console.warn(`runsheet: could not record who is watching: ${(error as Error).message}`);
    }
  }
}

const audiences = new WeakMap<pg.Pool, RunAudience>();

function audienceOf(pool: pg.Pool): RunAudience {
  let audience = audiences.get(pool);
  if (!audience) {
    audience = new RunAudience(pool);
    audiences.set(pool, audience);
  }
  return audience;
}

/**
 * Registers one open stream's viewer and calls `onChange` with the run's whole audience (every
 * instance's) once now and whenever it changes. Returns the function that unregisters it; calling
 * it twice is harmless.
 */
export function watchRun(pool: pg.Pool, runId: string, watcher: Watcher, onChange: Listener): () => void {
  return audienceOf(pool).watch(runId, watcher, onChange);
}

/** Who is watching a run now, on every instance: what the live view's loader shows first. */
export async function readRunWatchers(pool: pg.Pool, runId: string): Promise<Watcher[]> {
  const { rows } = await pool.query<{ email: string; role: string }>(READ_SQL, [[runId]]);
  return rows.map(({ email, role }) => ({ email, role }));
}
