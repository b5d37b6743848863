import { describe, expect, it } from 'vitest';
import { PREPARING_STREAM_MAX_MS, streamVerdict, type StreamFacts, type WatchedStream } from './stream-watch.server';

const NOW = Date.parse('2026-12-02T20:00:00Z');
const stream = (fields: Partial<WatchedStream> = {}): WatchedStream => ({ runId: 'run', accountId: 'account', sessionIdHash: 'session', openedAt: NOW, end: () => {}, ...fields });
const facts = (fields: Partial<Record<keyof StreamFacts, Record<string, string>>> = {}): StreamFacts => ({
  sessions: new Map(Object.entries(fields.sessions ?? { session: 'viewer' })),
  accounts: new Map(Object.entries(fields.accounts ?? {})),
  runs: new Map(Object.entries(fields.runs ?? { run: 'applying' })),
});

describe('streamVerdict', () => {
  it('lets a live session with a role that views follow a run', () => {
    expect(streamVerdict(stream(), facts(), NOW)).toBeUndefined();
  });

  it('ends a stream whose session is gone (signed out, expired, account disabled)', () => {
    expect(streamVerdict(stream(), facts({ sessions: {} }), NOW)?.reason).toBe('signed-out');
  });

  it('judges a proxy-vouched stream by its account', () => {
    const proxied = stream({ sessionIdHash: undefined });
    expect(streamVerdict(proxied, facts({ sessions: {}, accounts: { account: 'tpm' } }), NOW)).toBeUndefined();
    expect(streamVerdict(proxied, facts({ sessions: {}, accounts: {} }), NOW)?.reason).toBe('signed-out');
  });

  it('ends a stream whose account may no longer view (made an admin), or whose run is gone', () => {
    expect(streamVerdict(stream(), facts({ sessions: { session: 'admin' } }), NOW)?.reason).toBe('no-access');
    expect(streamVerdict(stream(), facts({ runs: {} }), NOW)?.reason).toBe('run-gone');
  });

  it('follows a run that has not started for 30 minutes at most; a started one as long as it goes', () => {
    const long = stream({ openedAt: NOW - PREPARING_STREAM_MAX_MS });
    for (const state of ['draft', 'ready']) {
      expect(streamVerdict(stream({ openedAt: NOW - PREPARING_STREAM_MAX_MS + 1 }), facts({ runs: { run: state } }), NOW), state).toBeUndefined();
      expect(streamVerdict(long, facts({ runs: { run: state } }), NOW)?.reason, state).toBe('preparing-too-long');
    }
    for (const state of ['applying', 'rolling_back', 'applied']) expect(streamVerdict(long, facts({ runs: { run: state } }), NOW), state).toBeUndefined();
  });
});
