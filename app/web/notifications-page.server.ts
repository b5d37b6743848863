/**
 * The notifications page (engineers; docs/decisions/033): each channel of runsheet.config.ts, where
 * it points (the host only: a Slack URL's path is its secret, and the signing secret is never
 * shown), the targets that notify it, and its newest deliveries with their status, the
 * receiver's answer, attempts and next retry; and the "Send test" intent, audited.
 */
import { z } from 'zod';
import { recordAudit } from '../audit/audit-log.server';
import type { SignedInUser } from '../auth/require.server';
import type { Runtime } from '../boot/runtime.server';
import { channelHost } from '../notifications/channels.server';
import { NOTIFICATION_KIND_WORDS, type DeliveryKind } from '../notifications/notification-kinds';
import { countDeliveries, enqueueTestDelivery, readDeliveries, type ListedDelivery } from '../notifications/outbox.server';

/** Deliveries listed per channel. */
const DELIVERIES_SHOWN = 25;

export interface ChannelView {
  name: string;
  format: 'json' | 'slack';
  /** The URL's host; null when this process has no URL for it. */
  host: string | null;
  signed: boolean;
  targets: string[];
  /** What to set for this process to deliver it; null when it does. */
  problem: string | null;
  counts: { pending: number; delivered: number; failed: number };
  deliveries: (ListedDelivery & { what: string })[];
}

export interface NotificationsPage {
  channels: ChannelView[];
  retry: { baseMs: number; giveUpAfterMs: number };
}

export async function loadNotificationsPage(runtime: Pick<Runtime, 'store' | 'notificationChannels' | 'env'>): Promise<NotificationsPage> {
  // One snapshot: the counts and the rows agree while deliveries go on.
  const client = await runtime.store.pool.connect();
  try {
    await client.query('begin isolation level repeatable read read only');
    const counts = await countDeliveries(client);
    const channels: ChannelView[] = [];
    for (const channel of runtime.notificationChannels.list()) {
      const deliveries = await readDeliveries(client, { channel: channel.name, limit: DELIVERIES_SHOWN });
      channels.push({
        name: channel.name,
        format: channel.format,
        host: channelHost(channel) ?? null,
        signed: channel.format === 'json' && channel.secret !== undefined,
        targets: channel.targets,
        problem: channel.problem ?? null,
        counts: counts.get(channel.name) ?? { pending: 0, delivered: 0, failed: 0 },
        deliveries: deliveries.map((delivery) => ({ ...delivery, what: NOTIFICATION_KIND_WORDS[delivery.kind as DeliveryKind] ?? delivery.kind })),
      });
    }
    await client.query('commit');
    return { channels, retry: { baseMs: runtime.env.RUNSHEET_NOTIFY_RETRY_BASE, giveUpAfterMs: runtime.env.RUNSHEET_NOTIFY_GIVE_UP_AFTER } };
  } finally {
    await client.query('rollback').catch(() => {});
    client.release();
  }
}

const NotificationsIntentSchema = z.discriminatedUnion('intent', [z.object({ intent: z.literal('send-test'), channel: z.string().trim().min(1, 'Name the channel to test.') })]);

export type NotificationsIntentResult = { ok: true; message: string } | { ok: false; error: string; status: number };

/** "Send test": a test notification queued for the channel (delivered by any instance that has its address), audited. */
export async function performNotificationsIntent(
  runtime: Pick<Runtime, 'store' | 'notificationChannels'>,
  input: { user: SignedInUser; ip: string; form: FormData },
): Promise<NotificationsIntentResult> {
  const parsed = NotificationsIntentSchema.safeParse(Object.fromEntries(input.form));
  if (!parsed.success) return { ok: false, error: parsed.error.issues[0]?.message ?? 'Invalid form.', status: 400 };
  const channel = runtime.notificationChannels.find(parsed.data.channel);
  const audit = { actor: input.user.email, actorRole: input.user.role, action: 'notification.test', subject: parsed.data.channel, ip: input.ip };
  if (!channel) {
    const known = runtime.notificationChannels.list().map((candidate) => candidate.name);
    const reason = `runsheet.config.ts declares no channel "${parsed.data.channel}"${known.length > 0 ? ` (its channels: ${known.join(', ')})` : ''}`;
    await recordAudit(runtime.store.db, { ...audit, outcome: 'refused', reason });
    return { ok: false, error: `No test sent: ${reason}.`, status: 404 };
  }
  const delivery = await enqueueTestDelivery(runtime.store.pool, { channel: channel.name, requestedBy: input.user.email });
  await recordAudit(runtime.store.db, { ...audit, outcome: 'ok', detail: { deliveryId: delivery.id } });
  return {
    ok: true,
    message: channel.problem
      ? `Test notification ${delivery.id} queued for ${channel.name}, but this server does not deliver it: ${channel.problem}.`
      : `Test notification ${delivery.id} queued for ${channel.name} (${channelHost(channel)}): its status shows below.`,
  };
}
