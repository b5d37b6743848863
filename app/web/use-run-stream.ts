import { useEffect, useRef, useState } from 'react';
import type { RunEvent } from '../runs/run-events';

export interface StreamWatcher {
  email: string;
  role: string;
}

/**
 * 'connecting' until the stream opens; 'reconnecting' after it dropped (the browser retries by
 * itself, resuming from Last-Event-ID); 'ended' once the run reached a final state; 'stopped' when
 * the server ended it for a reason (signed out, or a run that has not started followed too long:
 * `stoppedBecause` says which); 'lost' when the browser gave up (the server refused the stream):
 * only a reload helps then.
 */
export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'ended' | 'stopped' | 'lost';

/** How the server learns of new events for this stream: announced by the store ('live'), or polled while it cannot hear them. */
export type FeedMode = 'live' | 'polling';

/**
 * The run's events: those the loader rendered, then those the server-sent stream brings (after
 * the last seq the page has). Events are merged by seq, so a revalidation or a replay after a
 * reconnect never duplicates one.
 */
export function useRunStream(runId: string, initial: { events: RunEvent[]; watchers: StreamWatcher[] }) {
  const [events, setEvents] = useState<RunEvent[]>(initial.events);
  const [watchers, setWatchers] = useState<StreamWatcher[]>(initial.watchers);
  const [state, setState] = useState<StreamState>('connecting');
  const [stoppedBecause, setStoppedBecause] = useState<string | null>(null);
  const [feedMode, setFeedMode] = useState<FeedMode>('live');
  const lastSeq = useRef(initial.events.at(-1)?.seq ?? 0);

  // Newer loader data (after an action) may carry events the stream has not brought yet.
  useEffect(() => {
    setEvents((current) => mergeEvents(current, initial.events));
  }, [initial.events]);

  useEffect(() => {
    lastSeq.current = events.at(-1)?.seq ?? 0;
  }, [events]);

  useEffect(() => {
    let ended = false;
    const source = new EventSource(`/runs/${runId}/events?after=${lastSeq.current}`);
    source.onopen = () => setState('open');
    source.onerror = () => {
      if (ended) return;
      setState(source.readyState === EventSource.CLOSED ? 'lost' : 'reconnecting');
    };
    source.addEventListener('run-event', (message) => {
      const event = JSON.parse((message as MessageEvent<string>).data) as RunEvent;
      setEvents((current) => mergeEvents(current, [event]));
    });
    source.addEventListener('watchers', (message) => setWatchers(JSON.parse((message as MessageEvent<string>).data) as StreamWatcher[]));
    source.addEventListener('feed', (message) => setFeedMode((JSON.parse((message as MessageEvent<string>).data) as { mode: FeedMode }).mode));
    source.addEventListener('end', () => {
      ended = true;
      source.close();
      setState('ended');
    });
    source.addEventListener('closed', (message) => {
      ended = true;
      source.close();
      setStoppedBecause((JSON.parse((message as MessageEvent<string>).data) as { message: string }).message);
      setState('stopped');
    });
    return () => {
      ended = true;
      source.close();
    };
  }, [runId]);

  return { events, watchers, state, stoppedBecause, feedMode };
}

function mergeEvents(current: RunEvent[], incoming: RunEvent[]): RunEvent[] {
  const last = current.at(-1)?.seq ?? 0;
  const fresh = incoming.filter((event) => event.seq > last);
  if (fresh.length === 0) return current;
  return [...current, ...fresh].sort((a, b) => a.seq - b.seq);
}
