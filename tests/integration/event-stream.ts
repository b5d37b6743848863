/**
 * A live view's event stream (server-sent events) read over HTTP, as the browser's EventSource
 * would: tests wait for what the stream says (a marker, or a named event whose data matches),
 * never for a length of time.
 */
export interface SentEvent {
  id?: string;
  event: string;
  data: string;
}

export interface OpenEventStream {
  status: number;
  cacheControl: string | null;
  /** Resolves once the text so far contains `marker`. */
  until(marker: string): Promise<string>;
  /** Resolves with the parsed data of the first `event` (sent so far or later) whose data matches. */
  untilEvent<T = any>(event: string, matches: (data: T) => boolean): Promise<T>;
  /** Every event parsed so far. */
  events(): SentEvent[];
  /** The seqs of the run events received so far, in order. */
  seqs(): number[];
  /** Resolves with everything the stream sent once the server ends it. */
  ended: Promise<string>;
  cancel(): Promise<void>;
}

export function parseSentEvents(text: string): SentEvent[] {
  const events: SentEvent[] = [];
  // Only whole blocks: the last one may still be arriving.
  for (const block of text.split('\n\n').slice(0, -1)) {
    const fields: Partial<SentEvent> = {};
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const name = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (name === 'data') data.push(value);
      else if (name === 'event') fields.event = value;
      else if (name === 'id') fields.id = value;
    }
    if (data.length > 0) events.push({ id: fields.id, event: fields.event ?? 'message', data: data.join('\n') });
  }
  return events;
}

export async function openEventStream(url: string, cookie: string): Promise<OpenEventStream> {
  const response = await fetch(url, { headers: { Cookie: cookie, Accept: 'text/event-stream' } });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const waiters: (() => boolean)[] = [];
  const ended = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done) return text;
      text += decoder.decode(value, { stream: true });
      for (const waiter of [...waiters]) if (waiter()) waiters.splice(waiters.indexOf(waiter), 1);
    }
  })();
  const when = <T>(probe: () => T | undefined): Promise<T> => {
    const now = probe();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      waiters.push(() => {
        const value = probe();
        if (value !== undefined) resolve(value);
        return value !== undefined;
      });
      void ended.then(() => {
        const value = probe();
        if (value === undefined) reject(new Error(`the stream ended without it; it said:\n${text}`));
      });
    });
  };
  return {
    status: response.status,
    cacheControl: response.headers.get('cache-control'),
    until: (marker) => when(() => (text.includes(marker) ? text : undefined)),
    untilEvent: (event, matches) =>
      when(() => {
        for (const sent of parseSentEvents(text)) {
          if (sent.event !== event) continue;
          const data = JSON.parse(sent.data);
          if (matches(data)) return data;
        }
        return undefined;
      }),
    events: () => parseSentEvents(text),
    seqs: () => parseSentEvents(text).filter((sent) => sent.event === 'run-event').map((sent) => Number(sent.id)),
    ended,
    cancel: () => reader.cancel().catch(() => {}),
  };
}
