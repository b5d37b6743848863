import { describe, expect, it } from 'vitest';
import { resumeSeq } from './run-page.server';

const request = (query: string, lastEventId?: string) =>
  new Request(`http://runsheet.test/runs/0b9d3c1e-5f1a-4c8e-9d2b-7a6e5f4d3c2b/events${query}`, { headers: lastEventId === undefined ? {} : { 'Last-Event-ID': lastEventId } });

describe('resumeSeq', () => {
  it('resumes after the larger of Last-Event-ID and ?after=, else from the start', () => {
    expect(resumeSeq(request(''))).toBe(0);
    expect(resumeSeq(request('?after=12'))).toBe(12);
    expect(resumeSeq(request('?after=12', '40'))).toBe(40);
  });

  it('ignores a value no run log can reach, as it ignores a malformed one', () => {
    expect(resumeSeq(request('?after=-1'))).toBe(0);
    expect(resumeSeq(request('?after=1.5'))).toBe(0);
    expect(resumeSeq(request('?after=1e15'))).toBe(0);
    expect(resumeSeq(request('?after=2147483648', '7'))).toBe(7);
    expect(resumeSeq(request('?after=2147483647'))).toBe(2147483647);
  });
});
