/**
 * Which run events notify, and as what (docs/decisions/033): one table from a run-event type (and,
 * for a state change, its new state) to a notification kind. Nothing else decides what is
 * announced: the run log inserts an outbox row for each event this maps, in the event's own
 * transaction. Pure: the run log, the delivery worker and the docs read it.
 */
import type { RunEventInput } from '../runs/run-events';

export const NOTIFICATION_KINDS = [
  'signoff.ready',
  'signoff.given',
  'execute.started',
  'phase.failed',
  'applied',
  'rolled_back',
  'cancelled',
  'watch.regression',
  'watch.ended',
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];
/** What a delivery row may carry: a run's notification, or a test send from the notifications page. */
export type DeliveryKind = NotificationKind | 'test';

/** What each kind says happened, in a few words (the Slack line and the page use it). */
export const NOTIFICATION_KIND_WORDS: Record<DeliveryKind, string> = {
  'signoff.ready': 'is ready for sign-off',
  'signoff.given': 'was signed off',
  'execute.started': 'is being executed',
  'phase.failed': 'had a phase fail',
  applied: 'was applied and verified',
  rolled_back: 'was rolled back',
  cancelled: 'was cancelled',
  'watch.regression': 'has a watch regression',
  'watch.ended': 'finished its watch',
  test: 'test notification',
};

type EventBody = Pick<RunEventInput, 'type' | 'payload'>;

/** Events that notify by their type alone. */
const BY_TYPE: Partial<Record<RunEventInput['type'], NotificationKind>> = {
  'signoff.ready': 'signoff.ready',
  signoff: 'signoff.given',
  'execute.started': 'execute.started',
  'watch.alarm': 'watch.regression',
};

/** State changes that notify, by the state entered. */
const BY_STATE: Partial<Record<string, NotificationKind>> = {
  // A failed phase ends the drive in one of these (a cancel ends it cancelled, announced as such).
  failed: 'phase.failed',
  rollback_failed: 'phase.failed',
  applied: 'applied',
  rolled_back: 'rolled_back',
  cancelled: 'cancelled',
};

/** The notification an event announces, or undefined when it announces none. */
export function notificationKindOf(event: EventBody): NotificationKind | undefined {
  const byType = BY_TYPE[event.type];
  if (byType) return byType;
  const payload = (event.payload ?? {}) as Record<string, unknown>;
  switch (event.type) {
    case 'state.changed':
      return BY_STATE[String(payload.to)];
    // A watch ended by a rollback is announced by the rollback itself.
    case 'watch.ended':
      return payload.reason === 'rolled_back' ? undefined : 'watch.ended';
    default:
      return undefined;
  }
}
