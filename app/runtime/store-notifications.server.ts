/**
 * PostgreSQL LISTEN/NOTIFY on Runsheet's store: how several app instances (and the command line)
 * tell each other that something changed, without polling. One listening connection per store
 * pool (per process), shared by every subscriber; notifications are hints ("run X has new
 * events"), never the data itself, so a lost one costs a delay, not an event: whoever listens
 * reads the store after every hint, and falls back to reading on a timer while the connection is
 * lost (subscribers are told the mode, and told again when it comes back). Decision 032.
 *
 * Announcing is a statement of its own, after the change committed, and its failure is only
 * logged: a full notification queue or a broken listener can never fail a run or an event.
 */
import pg from 'pg';

/** New events in a run's log; the payload is `run id:newest seq` (runEventsAnnouncement in run-log.server.ts). */
export const RUN_EVENTS_CHANNEL = 'runsheet_run_events';
/** New rows in the notifications outbox (docs/decisions/033): delivery workers look for due rows; the payload is empty. */
export const NOTIFICATIONS_CHANNEL = 'runsheet_notifications';
/** Someone started or stopped watching a run; the payload is the run's id. */
export const RUN_WATCHERS_CHANNEL = 'runsheet_run_watchers';

export type ListenerMode = 'live' | 'lost';

type PayloadHandler = (payload: string) => void;
type ModeHandler = (mode: ListenerMode) => void;

/** Delay before each reconnection attempt of a lost listening connection. */
const RECONNECT_MS = 1_000;
/** The listening connection's name in pg_stat_activity (tests find it there to kill it). */
export const LISTENER_APPLICATION_NAME = 'runsheet:listen';

class StoreListener {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly channels = new Map<string, Set<PayloadHandler>>();
  private readonly modeHandlers = new Set<ModeHandler>();
  mode: ListenerMode = 'lost';

  constructor(private readonly config: pg.PoolConfig) {}

  subscribe(channel: string, onPayload: PayloadHandler): () => void {
    const handlers = this.channels.get(channel) ?? new Set<PayloadHandler>();
    const fresh = handlers.size === 0;
    handlers.add(onPayload);
    this.channels.set(channel, handlers);
    if (!this.client && !this.connecting) void this.connect();
    else if (fresh && this.client) void this.client.query(`listen ${pg.escapeIdentifier(channel)}`).catch(() => this.lose());
    return () => {
      handlers.delete(onPayload);
    };
  }

  onMode(handler: ModeHandler): () => void {
    this.modeHandlers.add(handler);
    return () => this.modeHandlers.delete(handler);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private connect(): Promise<void> {
    this.connecting = (async () => {
      const client = new pg.Client({ ...this.config, application_name: LISTENER_APPLICATION_NAME });
      client.on('error', () => this.lose(client));
      client.on('end', () => this.lose(client));
      client.on('notification', (message) => {
        for (const handler of this.channels.get(message.channel) ?? []) {
          try {
            handler(message.payload ?? '');
          } catch (error) {
            console.error(`runsheet: a ${message.channel} subscriber failed: ${String(error)}`);
          }
        }
      });
      try {
        await client.connect();
        for (const channel of this.channels.keys()) await client.query(`listen ${pg.escapeIdentifier(channel)}`);
      } catch {
        await client.end().catch(() => {});
        this.connecting = undefined;
        this.scheduleReconnect();
        return;
      }
      this.connecting = undefined;
      if (this.stopped) {
        await client.end().catch(() => {});
        return;
      }
      this.client = client;
      this.setMode('live');
    })();
    return this.connecting;
  }

  private lose(client?: pg.Client): void {
    if (client && client !== this.client) return;
    const lost = this.client;
    this.client = undefined;
    void lost?.end().catch(() => {});
    if (this.stopped) return;
    this.setMode('lost');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.client && !this.connecting && !this.stopped) void this.connect();
    }, RECONNECT_MS);
    this.reconnectTimer.unref();
  }

  private setMode(mode: ListenerMode): void {
    if (this.mode === mode) return;
    this.mode = mode;
    for (const handler of [...this.modeHandlers]) handler(mode);
  }
}

const listeners = new WeakMap<pg.Pool, StoreListener>();

/** The listening connection of this store pool (opened on first subscription, closed with stopStoreListener). */
export function storeListenerOf(pool: pg.Pool): StoreListener {
  let listener = listeners.get(pool);
  if (!listener) {
    listener = new StoreListener((pool as unknown as { options: pg.PoolConfig }).options);
    listeners.set(pool, listener);
  }
  return listener;
}

export type { StoreListener };

/** Closes the pool's listening connection, if it has one (the store's close does this). */
export async function stopStoreListener(pool: pg.Pool): Promise<void> {
  const listener = listeners.get(pool);
  listeners.delete(pool);
  await listener?.stop();
}

/**
 * Tells every listening instance that `payload` changed on `channel`. Its own statement, run after
 * the change committed; a failure (a full queue, a lost connection) is logged and swallowed: the
 * listeners' timed reads cover it.
 */
export async function announceStoreChange(executor: pg.Pool | pg.ClientBase, channel: string, payload: string): Promise<void> {
  try {
    await executor.query('select pg_notify($1, $2)', [channel, payload]);
  } catch (error) {
    console.warn(`runsheet: could not announce ${channel} ${payload} (listeners will read it on their next timed pass): ${(error as Error).message}`);
  }
}
