import { describe, expect, it } from 'vitest';
import { watchersOf, watchRun, type Watcher } from './watchers.server';

describe('watchers of a run', () => {
  it('lists each person once, tells every stream when the set changes, and forgets closed streams', () => {
    const runId = `run-${Math.random()}`;
    const seenByFirst: Watcher[][] = [];
    const stopFirst = watchRun(runId, { email: 'tpm@example.com', role: 'tpm' }, (list) => seenByFirst.push(list));
    expect(seenByFirst.at(-1)).toEqual([{ email: 'tpm@example.com', role: 'tpm' }]);

    const stopSecond = watchRun(runId, { email: 'eng@example.com', role: 'engineer' }, () => {});
    expect(seenByFirst.at(-1)?.map((watcher) => watcher.email)).toEqual(['tpm@example.com', 'eng@example.com']);

    // A second tab of the same person changes nothing for the others.
    const before = seenByFirst.length;
    const stopThird = watchRun(runId, { email: 'eng@example.com', role: 'engineer' }, () => {});
    expect(seenByFirst.length).toBe(before);
    stopThird();
    expect(watchersOf(runId)).toHaveLength(2);

    stopSecond();
    stopSecond();
    expect(seenByFirst.at(-1)?.map((watcher) => watcher.email)).toEqual(['tpm@example.com']);
    stopFirst();
    expect(watchersOf(runId)).toEqual([]);
  });
});
