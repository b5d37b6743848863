import { describe, expect, it } from 'vitest';
import { parseByteSize, readEnv as readProcessEnv } from './env.server';

const readEnv = (values: Record<string, string>) => readProcessEnv(values as NodeJS.ProcessEnv);

describe('RUNSHEET_BODY_LIMIT and RUNSHEET_HSTS', () => {
  it('reads a size in bytes or with a binary unit, 1 MiB when unset', () => {
    expect(readEnv({}).RUNSHEET_BODY_LIMIT).toBe(1024 * 1024);
    expect(readEnv({ RUNSHEET_BODY_LIMIT: '4MiB' }).RUNSHEET_BODY_LIMIT).toBe(4 * 1024 * 1024);
    expect(parseByteSize('512 KiB')).toBe(512 * 1024);
    expect(parseByteSize('1.5mib')).toBe(1.5 * 1024 * 1024);
    expect(parseByteSize('65536')).toBe(65536);
    expect(parseByteSize('1GiB')).toBe(1024 ** 3);
  });

  it('refuses what is not a size, or too small for any form, with what to write', () => {
    for (const value of ['lots', '10 MB', '-1', '100', '0x1000', '']) expect(parseByteSize(value), value).toBeUndefined();
    expect(() => readEnv({ RUNSHEET_BODY_LIMIT: 'lots' })).toThrow(/RUNSHEET_BODY_LIMIT: "lots" is not a size: write bytes \(1048576\) or a number with KiB, MiB or GiB/);
  });

  it('takes HSTS as max-age with the usual flags, and nothing else', () => {
    expect(readEnv({}).RUNSHEET_HSTS).toBeUndefined();
    expect(readEnv({ RUNSHEET_HSTS: 'max-age=63072000; includeSubDomains; preload' }).RUNSHEET_HSTS).toBe('max-age=63072000; includeSubDomains; preload');
    for (const value of ['max-age=1y', 'includeSubDomains', 'max-age=10, evil: header']) expect(() => readEnv({ RUNSHEET_HSTS: value }), value).toThrow(/RUNSHEET_HSTS/);
  });
});

describe('RUNSHEET_WATCH_POLL and RUNSHEET_WATCH_STALE_AFTER', () => {
  it('reads durations, 2 s and 30 s when unset', () => {
    expect(readEnv({})).toMatchObject({ RUNSHEET_WATCH_POLL: 2_000, RUNSHEET_WATCH_STALE_AFTER: 30_000 });
    expect(readEnv({ RUNSHEET_WATCH_POLL: '250ms', RUNSHEET_WATCH_STALE_AFTER: '3s' })).toMatchObject({ RUNSHEET_WATCH_POLL: 250, RUNSHEET_WATCH_STALE_AFTER: 3_000 });
  });

  it('refuses what is no duration, a poll under 100 ms, and a takeover sooner than three heartbeats', () => {
    expect(() => readEnv({ RUNSHEET_WATCH_POLL: 'often' })).toThrow(/RUNSHEET_WATCH_POLL: "often" is not a duration/);
    expect(() => readEnv({ RUNSHEET_WATCH_POLL: '10ms' })).toThrow(/RUNSHEET_WATCH_POLL: 10 ms is too often: write at least "100ms"/);
    expect(() => readEnv({ RUNSHEET_WATCH_POLL: '2s', RUNSHEET_WATCH_STALE_AFTER: '5s' })).toThrow(/RUNSHEET_WATCH_STALE_AFTER: 5000 ms must be at least three times RUNSHEET_WATCH_POLL \(2000 ms\)/);
  });
});

describe('RUNSHEET_PAGE_CACHE and RUNSHEET_PAGE_AGE_STEP', () => {
  it('keeps 64 MiB of pages with ages at most 2 s behind when unset; "off" keeps none', () => {
    expect(readEnv({})).toMatchObject({ RUNSHEET_PAGE_CACHE: 64 * 1024 ** 2, RUNSHEET_PAGE_AGE_STEP: 2_000 });
    expect(readEnv({ RUNSHEET_PAGE_CACHE: 'off', RUNSHEET_PAGE_AGE_STEP: '500ms' })).toMatchObject({ RUNSHEET_PAGE_CACHE: 0, RUNSHEET_PAGE_AGE_STEP: 500 });
    expect(readEnv({ RUNSHEET_PAGE_CACHE: '8MiB' }).RUNSHEET_PAGE_CACHE).toBe(8 * 1024 ** 2);
  });

  it('refuses what is no size and no duration, and says what to write', () => {
    expect(() => readEnv({ RUNSHEET_PAGE_CACHE: 'lots' })).toThrow(/RUNSHEET_PAGE_CACHE: "lots" is not a size: write "off" or a number with KiB, MiB or GiB/);
    expect(() => readEnv({ RUNSHEET_PAGE_AGE_STEP: 'soon' })).toThrow(/RUNSHEET_PAGE_AGE_STEP: "soon" is not a duration/);
  });
});
