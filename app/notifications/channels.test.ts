import { describe, expect, it } from 'vitest';
import { RunsheetConfigSchema } from '../runtime/target-config';
import { notifyChannelsFromEnv } from '../runtime/env.server';
import { buildNotificationChannels, channelHost } from './channels.server';

const config = (channels: Record<string, unknown>, notify: string[]) => RunsheetConfigSchema.parse({ targets: { staging: { notify }, sandbox: {} }, channels });

describe('notification channels', () => {
  it('refuses a target naming a channel the config does not declare, saying what to add', () => {
    const parsed = RunsheetConfigSchema.safeParse({ targets: { staging: { notify: ['ops'] } }, channels: { team: { format: 'slack' } } });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues[0]).toMatchObject({ path: ['targets', 'staging', 'notify', 0], message: expect.stringContaining('target staging notifies channel "ops", which runsheet.config.ts does not declare') });
  });

  it('reads NOTIFY_<NAME>_URL and _SECRET, and warns (never fails) for a channel without its address or a JSON channel without its secret', () => {
    const env = notifyChannelsFromEnv({ NOTIFY_OPS_URL: 'https://hooks.example.com/ops/abc', NOTIFY_TEAM_SECRET: 'x', NOTIFY_STRAY_URL: 'https://example.com', TARGET_X_URL: 'postgres://x' } as unknown as NodeJS.ProcessEnv);
    expect([...env.keys()].sort()).toEqual(['ops', 'stray', 'team']);
    const channels = buildNotificationChannels(config({ ops: { format: 'json' }, team: { format: 'slack' } }, ['ops', 'team']), env);
    expect(channels.deliverable()).toEqual([]);
    expect(channels.find('ops')).toMatchObject({ targets: ['staging'], problem: 'set NOTIFY_OPS_SECRET (JSON deliveries are always signed)' });
    expect(channels.find('team')).toMatchObject({ problem: 'set NOTIFY_TEAM_URL' });
    expect(channels.warnings).toEqual([
      expect.stringContaining('Notification channel "ops" (json, named by target staging) is not delivered by this process: set NOTIFY_OPS_SECRET'),
      expect.stringContaining('Notification channel "team" (slack, named by target staging) is not delivered by this process: set NOTIFY_TEAM_URL'),
      expect.stringContaining('runsheet.config.ts declares no channel "stray"'),
    ]);
    const complete = buildNotificationChannels(config({ ops: {} }, ['ops']), new Map([['ops', { url: 'https://hooks.example.com/ops/abc', secret: 's' }]]));
    expect(complete.warnings).toEqual([]);
    expect(complete.deliverable().map((channel) => channel.name)).toEqual(['ops']);
    expect(channelHost(complete.find('ops')!)).toBe('hooks.example.com');
  });
});
