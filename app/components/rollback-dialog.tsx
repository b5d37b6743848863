import { Form } from '@remix-run/react';
import { useRef } from 'react';
import type { RollbackPreview } from '../engine/rollback-preview.server';
import { DANGER_BUTTON, SECONDARY_BUTTON } from './button-classes';

/**
 * Rolling back is never one click: the button opens a dialog that lists the rollback's
 * statements and the plan's objects it removes, says whether the rollback gate accepts the run,
 * and on a target with confirm_target_name asks for its name, exactly as execute does.
 */
export function RollbackDialog({ preview, allowed, busy, disabledReason }: { preview: RollbackPreview; allowed: boolean; busy: boolean; disabledReason?: string }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const runShort = preview.runId.slice(0, 8);
  return (
    <>
      <button type="button" className={DANGER_BUTTON} disabled={!allowed || busy} aria-describedby="rollback-why" onClick={() => dialog.current?.showModal()}>
        {busy ? 'Starting…' : 'Roll back…'}
      </button>
      <span id="rollback-why" className="text-[11px] text-ink-muted">
        {disabledReason ?? (preview.gate.passed ? `Rolls back run ${runShort}: ${preview.gate.detail}.` : `Not offered: ${preview.gate.detail}.`)}
      </span>
      <dialog ref={dialog} aria-labelledby="rollback-dialog-title" className="w-full max-w-2xl rounded border border-red-300 p-0 text-xs shadow-xl backdrop:bg-slate-900/40">
        <Form method="post" className="space-y-2 p-4" onSubmit={() => dialog.current?.close()}>
          <h2 id="rollback-dialog-title" className="text-sm font-semibold">
            Roll back run {runShort} on {preview.target}?
          </h2>
          <p>{preview.gate.detail}.</p>
          <section aria-label="Rollback statements">
            <h3 className="font-semibold">It runs</h3>
            {preview.steps.map((step) => (
              <div key={step.id} className="mt-1">
                <p>
                  {step.title} <span className="font-mono text-ink-muted">({step.file}, {step.transactional ? 'one transaction' : 'statement by statement'})</span>
                </p>
                <pre className="mt-1 max-h-48 overflow-auto rounded bg-slate-50 p-2 font-mono text-[11px]">
                  {step.statements.map((statement) => `-- line ${statement.line}\n${statement.sql}`).join('\n\n')}
                </pre>
              </div>
            ))}
          </section>
          {preview.removes.length > 0 ? (
            <section aria-label="Objects the rollback removes">
              <h3 className="font-semibold">It removes</h3>
              <ul className="list-disc pl-4">
                {preview.removes.map((object) => (
                  <li key={object} className="font-mono">
                    {object}
                  </li>
                ))}
              </ul>
            </section>
          ) : null}
          {preview.keeps.length > 0 ? (
            <section aria-label="What the rollback keeps a copy of">
              <h3 className="font-semibold">It keeps a copy of</h3>
              <ul className="list-disc pl-4">
                {preview.keeps.map((object) => (
                  <li key={object} className="font-mono">
                    {object}
                  </li>
                ))}
              </ul>
              <p className="text-xs text-slate-600">In the target's runsheet_backup schema, named after the run: an engineer can put it back after a re-apply.</p>
            </section>
          ) : null}
          <input type="hidden" name="runId" value={preview.runId} />
          {preview.confirmTargetName ? (
            <label className="block">
              <span className="block">
                Type the target's name, <span className="font-mono font-semibold">{preview.target}</span>, to confirm
              </span>
              <input name="typedTargetName" autoComplete="off" spellCheck={false} required className="mt-1 w-full rounded border border-slate-300 px-2 py-1 font-mono" />
            </label>
          ) : null}
          <div className="flex flex-wrap justify-end gap-2 pt-1">
            <button type="button" className={SECONDARY_BUTTON} onClick={() => dialog.current?.close()}>
              Keep it
            </button>
            <button name="intent" value="rollback" className={DANGER_BUTTON}>
              Roll back now
            </button>
          </div>
        </Form>
      </dialog>
    </>
  );
}
