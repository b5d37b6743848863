/** The dashboard's two button looks: a quiet one, and a red one for what changes a target. */
export const SECONDARY_BUTTON = 'rounded border border-slate-300 bg-white px-2 py-1 text-xs hover:bg-slate-100 disabled:cursor-not-allowed disabled:opacity-60';
export const DANGER_BUTTON =
  'inline-flex items-center justify-center rounded bg-red-700 px-3 py-1.5 text-xs font-semibold text-white hover:bg-red-600 disabled:cursor-not-allowed disabled:bg-slate-300 disabled:text-slate-600';
