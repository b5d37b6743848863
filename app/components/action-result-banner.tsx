import type { ReactNode } from 'react';

/** What a form's action answered, at the top of its page: a status when it worked, an alert when it did not. */
export function ActionResultBanner({ result, children }: { result: { ok: true; message: string } | { ok: false; error: string }; children?: ReactNode }) {
  return (
    <div
      role={result.ok ? 'status' : 'alert'}
      className={`rounded border px-3 py-2 text-sm ${result.ok ? 'border-emerald-200 bg-emerald-50 text-emerald-900' : 'border-red-200 bg-red-50 text-red-800'}`}
    >
      {result.ok ? result.message : result.error}
      {children}
    </div>
  );
}
