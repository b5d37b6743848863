/**
 * The web server's notification delivery worker (docs/decisions/033), with the retry settings of
 * the environment and links to the dashboard's own origin. Not started when runsheet.config.ts
 * declares no channel.
 */
import { startNotificationWorker } from '../engine/notifications.server';
import type { Runtime } from './runtime.server';

export function startNotificationDelivery(runtime: Runtime, report: (line: string) => void): () => Promise<void> {
  if (runtime.notificationChannels.list().length === 0) return async () => {};
  return startNotificationWorker(
    { store: runtime.store, targets: runtime.targets, channels: runtime.notificationChannels, origin: runtime.env.RUNSHEET_ORIGIN ?? `http://localhost:${runtime.env.PORT}` },
    report,
    { baseMs: runtime.env.RUNSHEET_NOTIFY_RETRY_BASE, giveUpAfterMs: runtime.env.RUNSHEET_NOTIFY_GIVE_UP_AFTER },
  );
}
