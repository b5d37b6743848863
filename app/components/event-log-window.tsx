import { useVirtualizer } from '@tanstack/react-virtual';
import { useCallback, useEffect, useRef, useState } from 'react';
import { storedTypeOf, type RunEvent } from '../runs/run-events';

/** One run-log event as the report's window shows it: parsed, with its place in the chain. */
export type EventLogRow = RunEvent & { prevHash: string; hash: string };

interface EventsPageJson {
  events: EventLogRow[];
  lastSeq: number;
  hasMore: boolean;
}

const ROW_HEIGHT = 32;
const VISIBLE_ROWS = 14;
const OVERSCAN = 10;
/** Events fetched per request as the list scrolls. */
const PAGE = 200;

/** The payload in one line; an event this version does not know shows the payload it was stored with. */
function payloadSummary(event: EventLogRow): string {
  const text = JSON.stringify(event.type === 'unrecognised' ? event.payload.storedPayload : event.payload);
  if (text === '{}') return '';
  return text.length > 220 ? `${text.slice(0, 219)}…` : text;
}

const atText = (at: string) => `${at.slice(0, 10)} ${at.slice(11, 23)} UTC`;

/**
 * A run's whole log in a fixed-height window, virtualised by @tanstack/react-virtual: only the rows
 * in view (plus a few) are in the DOM, and pages of events are fetched from /runs/:id/events.json
 * as they scroll into view, so a log of 10,000 events never lands in the page at once. Without JavaScript it is a plain list of the
 * first page, with a link to the next one (`nextHref`).
 */
export function EventLogWindow({
  runId,
  total,
  initial,
  nextHref,
  previousHref,
}: {
  runId: string;
  /** The highest seq (events are numbered 1…total without gaps). */
  total: number;
  initial: EventLogRow[];
  nextHref: string | null;
  previousHref: string | null;
}) {
  const [hydrated, setHydrated] = useState(false);
  const [selected, setSelected] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const loaded = useRef(new Map<number, EventLogRow>(initial.map((event) => [event.seq, event])));
  const inFlight = useRef(new Set<number>());
  const failed = useRef(new Set<number>());
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({ count: total, getScrollElement: () => scroller.current, estimateSize: () => ROW_HEIGHT, overscan: OVERSCAN });

  useEffect(() => setHydrated(true), []);

  // Open at the first event the page was asked for (a link to "event 4,812" lands there).
  const startSeq = initial[0]?.seq ?? 1;
  useEffect(() => {
    if (!hydrated) return;
    virtualizer.scrollToOffset((startSeq - 1) * ROW_HEIGHT);
  }, [hydrated, startSeq, virtualizer]);

  const items = hydrated ? virtualizer.getVirtualItems() : [];
  const first = items[0]?.index ?? 0;
  const last = (items.at(-1)?.index ?? -1) + 1;

  const loadPage = useCallback(
    async (afterSeq: number) => {
      if (inFlight.current.has(afterSeq)) return;
      inFlight.current.add(afterSeq);
      try {
        const response = await fetch(`/runs/${runId}/events.json?afterSeq=${afterSeq}&limit=${PAGE}`, { headers: { Accept: 'application/json' } });
        if (!response.ok) throw new Error(`the server answered ${response.status}`);
        const page = (await response.json()) as EventsPageJson;
        for (const event of page.events) loaded.current.set(event.seq, event);
        failed.current.delete(afterSeq);
        setError(null);
      } catch (cause) {
        failed.current.add(afterSeq);
        setError(`Could not load events ${afterSeq + 1}–${afterSeq + PAGE}: ${(cause as Error).message}.`);
      } finally {
        inFlight.current.delete(afterSeq);
        setVersion((version) => version + 1);
      }
    },
    [runId]
  );

  useEffect(() => {
    if (!hydrated) return;
    for (let index = first; index < last; index++) {
      const seq = index + 1;
      if (loaded.current.has(seq)) continue;
      const afterSeq = Math.floor(index / PAGE) * PAGE;
      if (!failed.current.has(afterSeq)) void loadPage(afterSeq);
      index = afterSeq + PAGE - 1; // the rest of this page is on its way
    }
  }, [hydrated, first, last, loadPage, version]);

  const goTo = (seq: number) => {
    const clamped = Math.min(Math.max(1, Math.trunc(seq)), total);
    virtualizer.scrollToIndex(clamped - 1, { align: 'start' });
    setSelected(clamped);
  };

  const selectedEvent = selected !== null ? loaded.current.get(selected) : undefined;

  if (total === 0) return <p className="text-xs text-ink-muted">The run log is empty.</p>;

  const header = (
    <div className="flex border-b border-slate-200 bg-slate-50 px-2 py-1 text-[11px] font-semibold uppercase tracking-wide text-ink-muted" aria-hidden="true">
      <span className="w-14 shrink-0">#</span>
      <span className="hidden w-52 shrink-0 sm:block">When (UTC)</span>
      <span className="hidden w-48 shrink-0 md:block">Who</span>
      <span className="w-40 shrink-0">Event</span>
      <span className="min-w-0 flex-1">Payload</span>
    </div>
  );

  const row = (event: EventLogRow | undefined, seq: number, style?: React.CSSProperties) => (
    <li key={seq} style={style} aria-setsize={total} aria-posinset={seq} className="border-b border-slate-100" data-event-row={seq}>
      {event ? (
        <button
          type="button"
          onClick={() => setSelected(seq)}
          aria-pressed={selected === seq}
          className={`flex w-full items-center px-2 text-left font-mono text-xs hover:bg-slate-50 ${selected === seq ? 'bg-blue-50' : ''}`}
          style={{ height: ROW_HEIGHT - 1 }}
        >
          <span className="w-14 shrink-0 tabular-nums text-ink-muted">{seq}</span>
          <span className="hidden w-52 shrink-0 tabular-nums sm:block">{atText(event.at)}</span>
          <span className="hidden w-48 shrink-0 truncate pr-2 md:block" title={event.actor}>
            {event.actor}
          </span>
          <span className="w-40 shrink-0 truncate pr-2 font-semibold">{storedTypeOf(event)}</span>
          <span className="min-w-0 flex-1 truncate text-ink-muted">{payloadSummary(event)}</span>
        </button>
      ) : (
        <div className="flex items-center px-2 font-mono text-xs text-ink-faint" style={{ height: ROW_HEIGHT - 1 }}>
          <span className="w-14 shrink-0 tabular-nums">{seq}</span>
          <span>loading…</span>
        </div>
      )}
    </li>
  );

  if (!hydrated) {
    // Server-rendered (and without JavaScript): one page of events as a plain list, and links to page on.
    return (
      <div>
        <div className="overflow-hidden rounded border border-slate-200 bg-white">
          {header}
          <div className="max-h-[28rem] overflow-y-auto" tabIndex={0} role="region" aria-label={`Run events ${startSeq}–${initial.at(-1)?.seq ?? startSeq} of ${total}`}>
            <ol className="m-0 list-none p-0">{initial.map((event) => row(event, event.seq))}</ol>
          </div>
        </div>
        <p className="mt-2 flex flex-wrap gap-3 text-xs">
          {previousHref ? (
            <a href={previousHref} className="text-blue-700 underline">
              ← Earlier events
            </a>
          ) : null}
          {nextHref ? (
            <a href={nextHref} className="text-blue-700 underline">
              Later events →
            </a>
          ) : null}
        </p>
      </div>
    );
  }

  const rows = items.map((item) => row(loaded.current.get(item.index + 1), item.index + 1, { position: 'absolute', top: item.start, left: 0, right: 0, height: item.size }));

  return (
    <div>
      <form
        className="mb-2 flex flex-wrap items-center gap-2 text-xs print:hidden"
        onSubmit={(event) => {
          event.preventDefault();
          const value = Number(new FormData(event.currentTarget).get('seq'));
          if (Number.isFinite(value) && value >= 1) goTo(value);
        }}
      >
        <label htmlFor="event-jump" className="text-ink-muted">
          Go to event
        </label>
        <input id="event-jump" name="seq" type="number" min={1} max={total} inputMode="numeric" className="w-24 rounded border border-slate-300 px-1.5 py-0.5" />
        <button type="submit" className="rounded border border-slate-300 bg-white px-2 py-0.5 hover:bg-slate-100">
          Go
        </button>
        <span className="text-ink-muted">{total.toLocaleString('en-US')} events; rows load as you scroll.</span>
      </form>
      <div className="overflow-hidden rounded border border-slate-200 bg-white">
        {header}
        <div
          ref={scroller}
          tabIndex={0}
          role="region"
          aria-label={`Run events, ${total} in all (scrollable)`}
          className="relative overflow-y-auto"
          style={{ height: Math.min(VISIBLE_ROWS, total) * ROW_HEIGHT }}
        >
          <ol className="relative m-0 list-none p-0" style={{ height: virtualizer.getTotalSize() }}>
            {rows}
          </ol>
        </div>
      </div>
      {error ? (
        <p role="alert" className="mt-2 text-xs text-red-800">
          {error}{' '}
          <button
            type="button"
            className="underline"
            onClick={() => {
              failed.current.clear();
              setError(null);
              setVersion((current) => current + 1);
            }}
          >
            Retry
          </button>
        </p>
      ) : null}
      {selected !== null ? (
        <section aria-label={`Event ${selected}`} className="mt-3 rounded border border-slate-200 bg-white p-3 text-xs">
          {selectedEvent ? (
            <>
              <div className="flex flex-wrap items-baseline gap-x-4 gap-y-1">
                <span className="font-semibold">
                  Event {selectedEvent.seq}: <span className="font-mono">{selectedEvent.type}</span>
                </span>
                <span>{atText(selectedEvent.at)}</span>
                <span>
                  {selectedEvent.actor}
                  {selectedEvent.role ? ` (${selectedEvent.role})` : ''}
                </span>
                <button type="button" className="ml-auto underline" onClick={() => setSelected(null)}>
                  Close
                </button>
              </div>
              <dl className="mt-2 grid grid-cols-[auto_1fr] gap-x-3 gap-y-0.5 font-mono text-[11px]">
                <dt className="text-ink-muted">prev_hash</dt>
                <dd className="break-all">{selectedEvent.prevHash}</dd>
                <dt className="text-ink-muted">hash</dt>
                <dd className="break-all">{selectedEvent.hash}</dd>
              </dl>
              <pre
                className="mt-2 max-h-72 overflow-auto rounded bg-slate-50 p-2 font-mono text-[11px]"
                tabIndex={0}
                role="region"
                aria-label={`Payload of event ${selectedEvent.seq}`}
              >
                {JSON.stringify(selectedEvent.payload, null, 2)}
              </pre>
            </>
          ) : (
            <p>Loading event {selected}…</p>
          )}
        </section>
      ) : null}
    </div>
  );
}
