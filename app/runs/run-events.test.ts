import fs from 'node:fs';
import path from 'node:path';
import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import { RUN_EVENT_DESCRIPTIONS, RUN_EVENT_EXAMPLES } from './run-event-examples';
import { driveEdgeOf, eventsOf, parseRunEvent, RUN_EVENT_TYPES, RunEventBodySchema, storedTypeOf } from './run-events';

const header = { runId: '00000000-0000-4000-8000-000000000001', seq: 1, at: '2026-12-03T07:33:15.207538Z', actor: 'system', role: null };

describe('the run-event union', () => {
  it('describes every type with an example that parses without losing a key', () => {
    expect(Object.keys(RUN_EVENT_EXAMPLES).sort()).toEqual([...RUN_EVENT_TYPES].sort());
    expect(Object.keys(RUN_EVENT_DESCRIPTIONS).sort()).toEqual([...RUN_EVENT_TYPES].sort());
    for (const type of RUN_EVENT_TYPES) {
      const parsed = RunEventBodySchema.safeParse({ type, payload: RUN_EVENT_EXAMPLES[type] });
      expect(parsed.success, type).toBe(true);
      expect(canonicalize(parsed.data!.payload), type).toBe(canonicalize(RUN_EVENT_EXAMPLES[type]));
    }
  });

  it('reads every event of the logs exported before it existed (tests/fixtures/run-logs-v1) as a known event', () => {
    const folder = path.resolve(import.meta.dirname, '../../tests/fixtures/run-logs-v1');
    let count = 0;
    for (const file of fs.readdirSync(folder).filter((name) => name.endsWith('.json'))) {
      const envelope = JSON.parse(fs.readFileSync(path.join(folder, file), 'utf8')) as { payload: string };
      const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as { predicate: { events: { seq: number; type: string; payload: unknown }[] } };
      for (const event of statement.predicate.events) {
        const parsed = parseRunEvent({ ...header, seq: event.seq, type: event.type, payload: event.payload });
        expect(parsed.type, `${file} event ${event.seq}: ${parsed.type === 'unrecognised' ? parsed.payload.problem : ''}`).toBe(event.type);
        count++;
      }
    }
    expect(count).toBe(54 + 45 + 17);
  });

  it('reads an unknown type, or a known one whose payload does not fit, as the unrecognised fallback, never an error', () => {
    const future = parseRunEvent({ ...header, type: 'watch.result', payload: { check: 'c' } });
    expect(future).toMatchObject({ type: 'unrecognised', payload: { storedType: 'watch.result', storedPayload: { check: 'c' }, problem: expect.stringContaining('does not know') } });
    const broken = parseRunEvent({ ...header, type: 'phase.completed', payload: { phase: 7 } });
    expect(broken).toMatchObject({ type: 'unrecognised', payload: { storedType: 'phase.completed', problem: expect.stringContaining('phase') } });
    expect(storedTypeOf(broken)).toBe('phase.completed');
    expect(parseRunEvent({ ...header, type: 'note.added', payload: null })).toMatchObject({ type: 'unrecognised' });
  });

  it('narrows by type, and knows which events start, end or refuse a drive', () => {
    const events = [parseRunEvent({ ...header, type: 'note.added', payload: { text: 'a' } }), parseRunEvent({ ...header, seq: 2, type: 'rollback.started', payload: RUN_EVENT_EXAMPLES['rollback.started'] })];
    expect(eventsOf(events, 'note.added').map((event) => event.payload.text)).toEqual(['a']);
    expect(driveEdgeOf(events[1]!)).toEqual({ action: 'rollback', edge: 'started' });
    expect(driveEdgeOf(events[0]!)).toBeUndefined();
  });
});
