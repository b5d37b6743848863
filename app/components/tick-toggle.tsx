import { useFetcher } from '@remix-run/react';

/**
 * A tick that works without JavaScript (a plain form post to the page's action) and, with it,
 * answers at once: the box shows the submitted state while the request runs (optimistic), and
 * falls back to what the server recorded if it refuses.
 */
export function TickToggle({
  intent,
  fields,
  ticked,
  label,
  allowed,
  disabledReason,
}: {
  intent: string;
  /** Hidden fields that say what is ticked (itemId, index). */
  fields: Record<string, string>;
  ticked: boolean;
  /** The item's text: the button's accessible name. */
  label: string;
  allowed: boolean;
  disabledReason?: string;
}) {
  const fetcher = useFetcher<{ ok: boolean; error?: string }>();
  const pending = fetcher.formData?.get('ticked');
  const shown = typeof pending === 'string' ? pending === 'true' : ticked;
  const refused = fetcher.state === 'idle' && fetcher.data && !fetcher.data.ok ? fetcher.data.error : undefined;
  return (
    <fetcher.Form method="post" preventScrollReset className="shrink-0">
      <input type="hidden" name="intent" value={intent} />
      {Object.entries(fields).map(([name, value]) => (
        <input key={name} type="hidden" name={name} value={value} />
      ))}
      <input type="hidden" name="ticked" value={String(!shown)} />
      <button
        type="submit"
        aria-pressed={shown}
        aria-label={`Tick: ${label}`}
        title={allowed ? (shown ? 'Untick' : 'Tick') : disabledReason}
        disabled={!allowed}
        className={`flex h-5 w-5 items-center justify-center rounded border text-xs font-bold ${
          shown ? 'border-emerald-700 bg-emerald-600 text-white' : 'border-slate-400 bg-white text-transparent hover:border-slate-600'
        } disabled:cursor-not-allowed disabled:opacity-60`}
      >
        <span aria-hidden="true">✓</span>
      </button>
      {refused ? (
        <span role="alert" className="mt-1 block max-w-xs text-[11px] text-red-800">
          {refused}
        </span>
      ) : null}
    </fetcher.Form>
  );
}
