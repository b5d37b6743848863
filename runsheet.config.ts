import { defineRunsheetConfig } from './app/runtime/target-config';

// Rules per target. Where a target is reached (its URL) comes from TARGET_<NAME>_URL, never from here.
export default defineRunsheetConfig({
  targets: {
    sandbox: { label: 'Sandbox', sandbox: true },
    staging: { label: 'Staging', require_signoff: true },
    production: {
      label: 'Production',
      require_signoff: true,
      require_applied_on: ['staging'],
      confirm_target_name: true,
      require_lint_clean: true,
    },
  },
});
