/**
 * Per-target rules, committed in runsheet.config.ts. Connection strings never live here: they come
 * from TARGET_<NAME>_URL so secrets stay out of the repository.
 */
import { z } from 'zod';
import { DurationSchema } from './duration';

export const TargetRulesSchema = z
  .object({
    label: z.string().optional(),
    /** The seeded sandbox: generated data, a stand-in of the platform API. */
    sandbox: z.boolean().default(false),
    /** Four-eyes: a person other than the executor must sign off. */
    require_signoff: z.boolean().default(false),
    /** The same checksum must be applied and verified on these targets first (production requires staging). */
    require_applied_on: z.array(z.string()).default([]),
    /** The same checksum must have closed a clean watch window on these targets first (docs/decisions/030). */
    require_watched_on: z.array(z.string()).default([]),
    /** The engineer types the target's name before executing. */
    confirm_target_name: z.boolean().default(false),
    /** A plan with squawk errors is refused unless each finding is waived. */
    require_lint_clean: z.boolean().default(false),
    /** Rollback backups older than this are listed for cleanup ("720h"; default 30 days); Runsheet never deletes one. */
    backup_cleanup_after: DurationSchema.optional(),
    /** lock_timeout of every check on this target whose plan and check do not set one ("5s"; default 5 s). */
    check_lock_timeout: DurationSchema.optional(),
    /** Notification channels (declared under `channels`) told of this target's runs: ready for sign-off, applied, rolled back… (docs/decisions/033). */
    notify: z.array(z.string()).default([]),
  })
  .strict();

/** How a channel's deliveries are worded: Runsheet's signed JSON event, or Slack incoming-webhook text. */
export const NOTIFICATION_FORMATS = ['json', 'slack'] as const;
export type NotificationFormat = (typeof NOTIFICATION_FORMATS)[number];

/** A notification channel; where it points and its secret come from NOTIFY_<NAME>_URL and NOTIFY_<NAME>_SECRET, never from here. */
export const ChannelSchema = z.object({ format: z.enum(NOTIFICATION_FORMATS).default('json') }).strict();
export type ChannelRules = z.infer<typeof ChannelSchema>;

export const RunsheetConfigSchema = z
  .object({
    targets: z.record(z.string().regex(/^[a-z0-9_]+$/, 'target names are lower-case'), TargetRulesSchema),
    channels: z.record(z.string().regex(/^[a-z0-9_]+$/, 'channel names are lower-case letters, digits and _ (NOTIFY_<NAME>_URL names them upper-cased)'), ChannelSchema).default({}),
  })
  .strict()
  .superRefine((config, context) => {
    for (const [target, rules] of Object.entries(config.targets)) {
      for (const [index, channel] of rules.notify.entries()) {
        if (channel in config.channels) continue;
        const declared = Object.keys(config.channels);
        context.addIssue({
          code: 'custom',
          path: ['targets', target, 'notify', index],
          message: `target ${target} notifies channel "${channel}", which runsheet.config.ts does not declare: add channels: { ${channel}: { format: 'json' } }${declared.length > 0 ? ` (declared: ${declared.join(', ')})` : ''}`,
        });
      }
    }
  });

export type TargetRules = z.infer<typeof TargetRulesSchema>;
export type RunsheetConfig = z.infer<typeof RunsheetConfigSchema>;

export function defineRunsheetConfig(config: z.input<typeof RunsheetConfigSchema>): RunsheetConfig {
  return RunsheetConfigSchema.parse(config);
}

export const DEFAULT_TARGET_RULES: TargetRules = TargetRulesSchema.parse({});
