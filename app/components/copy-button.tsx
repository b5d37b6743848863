import { useState } from 'react';

/** Copies text to the clipboard; says so for a moment. Needs JavaScript; the text stays selectable without it. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      aria-label={label}
      className="shrink-0 rounded border border-slate-300 bg-white px-1.5 py-0.5 text-[11px] hover:bg-slate-100"
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => {
          setCopied(true);
          setTimeout(() => setCopied(false), 1500);
        });
      }}
    >
      {copied ? 'Copied' : 'Copy'}
    </button>
  );
}
