/**
 * The notification channels of this process, built once at start-up from runsheet.config.ts
 * (`channels`, and each target's `notify`) and the environment (NOTIFY_<NAME>_URL,
 * NOTIFY_<NAME>_SECRET). A channel without its URL (or a JSON channel without its secret) is not
 * an error: the rest starts, a warning says what to set, and its deliveries wait in the outbox
 * until an instance that has it delivers them, or they are given up (docs/decisions/033).
 */
import type { NotificationFormat, RunsheetConfig } from '../runtime/target-config';

export interface NotificationChannel {
  name: string;
  format: NotificationFormat;
  /** The targets whose runs it is told of. */
  targets: string[];
  url?: string;
  secret?: string;
  /** Why this process does not deliver it (what to set); undefined when it does. */
  problem?: string;
}

export interface NotificationChannels {
  list(): NotificationChannel[];
  find(name: string): NotificationChannel | undefined;
  /** The channels this process delivers (URL, and for JSON the secret, set). */
  deliverable(): NotificationChannel[];
  /** What start-up says about the configuration: each missing setting, each NOTIFY_ variable no channel uses. */
  warnings: string[];
}

const envName = (channel: string, what: 'URL' | 'SECRET') => `NOTIFY_${channel.toUpperCase()}_${what}`;

export function buildNotificationChannels(config: Pick<RunsheetConfig, 'targets' | 'channels'>, fromEnv: ReadonlyMap<string, { url?: string; secret?: string }>): NotificationChannels {
  const warnings: string[] = [];
  const channels = Object.entries(config.channels ?? {}).map(([name, rules]): NotificationChannel => {
    const targets = Object.entries(config.targets)
      .filter(([, target]) => target.notify.includes(name))
      .map(([target]) => target);
    const env = fromEnv.get(name) ?? {};
    const missing = [...(env.url ? [] : [envName(name, 'URL')]), ...(rules.format === 'json' && !env.secret ? [envName(name, 'SECRET')] : [])];
    let url = env.url;
    let problem: string | undefined;
    if (url) {
      try {
        const parsed = new URL(url);
        if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') problem = `${envName(name, 'URL')} is not an http(s) address`;
      } catch {
        problem = `${envName(name, 'URL')} is not a URL`;
        url = undefined;
      }
    }
    if (missing.length > 0) problem = `set ${missing.join(' and ')}${rules.format === 'json' && missing.length === 1 && env.url ? ' (JSON deliveries are always signed)' : ''}`;
    if (problem) {
      const namedBy = targets.length > 0 ? `named by target${targets.length > 1 ? 's' : ''} ${targets.join(', ')}` : 'named by no target';
      warnings.push(`Notification channel "${name}" (${rules.format}, ${namedBy}) is not delivered by this process: ${problem}. Its notifications wait in the outbox until it is.`);
    }
    return { name, format: rules.format, targets, ...(url ? { url } : {}), ...(env.secret ? { secret: env.secret } : {}), ...(problem ? { problem } : {}) };
  });
  const declared = new Set(channels.map((channel) => channel.name));
  for (const name of fromEnv.keys()) {
    if (!declared.has(name)) warnings.push(`${envName(name, 'URL')} or ${envName(name, 'SECRET')} is set, but runsheet.config.ts declares no channel "${name}": add channels: { ${name}: { format: 'json' } } and name it in a target's notify.`);
  }
  const byName = new Map(channels.map((channel) => [channel.name, channel]));
  return {
    list: () => [...channels],
    find: (name) => byName.get(name),
    deliverable: () => channels.filter((channel) => !channel.problem),
    warnings,
  };
}

/** Where a channel points, for people: the host only, never the path (a Slack URL's path is its secret). */
export function channelHost(channel: Pick<NotificationChannel, 'url'>): string | undefined {
  if (!channel.url) return undefined;
  try {
    return new URL(channel.url).host;
  } catch {
    return undefined;
  }
}
