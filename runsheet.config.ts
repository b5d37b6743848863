import { defineRunsheetConfig } from './app/runtime/target-config';

// Rules per target. Where a target is reached (its URL) comes from TARGET_<NAME>_URL, never from here;
// where a notification channel posts (and its secret) from NOTIFY_<NAME>_URL and NOTIFY_<NAME>_SECRET.
// A channel without them is a start-up warning: its notifications wait in the outbox (docs/decisions/033).
export default defineRunsheetConfig({
  channels: {
    ops: { format: 'json' },
    team: { format: 'slack' },
  },
  targets: {
    sandbox: { label: 'Sandbox', sandbox: true, notify: ['ops', 'team'] },
    staging: { label: 'Staging', require_signoff: true, notify: ['ops', 'team'] },
    production: {
      label: 'Production',
      require_signoff: true,
      notify: ['ops', 'team'],
      require_applied_on: ['staging'],
      confirm_target_name: true,
      require_lint_clean: true,
    },
  },
});
