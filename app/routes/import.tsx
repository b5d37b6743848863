import { data, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from '@remix-run/node';
import { Form, Link, useActionData, useLoaderData, useNavigation } from '@remix-run/react';
import { requireIntentPermission } from '../auth/intent-access.server';
import { requirePermission, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { PlanErrorList } from '../components/plan-error-list';
import { PlanOutlineView } from '../components/plan-outline';
import { StatusBadge } from '../components/status-badge';
import type { ImportItem } from '../plans/import-report';
import { plansDirWritable } from '../plans/plan-folder.server';
import { isRunsheetError } from '../runtime/errors';
import { IMPORT_REQUEST_BYTES } from '../web/body-limits.server';
import { refusalOf } from '../web/http-answers.server';
import {
  MAX_RUNBOOK_BYTES,
  previewRunbookImport,
  readRunbookUpload,
  safeSourceName,
  saveRunbookImport,
  type ImportPreview,
} from '../web/import-page.server';

export const meta: MetaFunction = () => [{ title: 'Import a runbook · Runsheet' }];


export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'import-plan');
  return { user: pageViewerOf(user), writable: await plansDirWritable(context.runtime.plansDir) };
}

interface ActionResult {
  ok: boolean;
  error?: string;
  preview?: ImportPreview;
}

export async function action({ request, context }: ActionFunctionArgs) {
  const length = Number(request.headers.get('content-length') ?? 0);
  // A request larger than a runbook and its form fields is refused before its body is read.
  if (length > IMPORT_REQUEST_BYTES) {
    await requirePermission(request, context, 'import-plan');
    return data<ActionResult>({ ok: false, error: `The upload is ${(length / 1024 / 1024).toFixed(1)} MiB: Runsheet imports runbooks of at most 1 MiB.` }, { status: 413 });
  }
  const { user, intent, form } = await requireIntentPermission(request, context, 'routes/import');
  const runtime = context.runtime;
  const requestedId = stringField(form, 'id')?.trim() || undefined;
  try {
    if (intent === 'preview') {
      const upload = await readRunbookUpload(form.get('runbook'));
      return data<ActionResult>({ ok: true, preview: await previewRunbookImport(runtime, { ...upload, id: requestedId }) });
    }
    const markdown = stringField(form, 'markdown');
    const id = requestedId;
    if (markdown === undefined || !id) return data<ActionResult>({ ok: false, error: 'The form lost its runbook: upload it again.' }, { status: 400 });
    if (Buffer.byteLength(markdown, 'utf8') > MAX_RUNBOOK_BYTES) return data<ActionResult>({ ok: false, error: 'Runsheet imports runbooks of at most 1 MiB.' }, { status: 413 });
    const input = { markdown, id, sourceName: safeSourceName(stringField(form, 'sourceName') ?? 'runbook.md'), user, ip: context.clientAddress };
    // The only other intent the guard lets through (ROUTE_ACCESS): save.
    const saved = await saveRunbookImport(runtime, input);
    throw redirect(`/plans/${saved.id}`);
  } catch (error) {
    if (!isRunsheetError(error)) throw error;
    const refusal = refusalOf(error);
    return data<ActionResult>({ ok: false, error: refusal.error }, { status: refusal.status });
  }
}

function stringField(form: FormData, name: string): string | undefined {
  const value = form.get(name);
  return typeof value === 'string' ? value : undefined;
}

export default function ImportPage() {
  const { user, writable } = useLoaderData<typeof loader>();
  const result = useActionData<ActionResult>();
  const navigation = useNavigation();
  const busy = navigation.state !== 'idle';
  const preview = result?.preview;
  return (
    <>
      <AppHeader user={user} />
      <main className="mx-auto max-w-7xl px-3 py-4 sm:px-4 sm:py-6">
        <nav aria-label="Breadcrumb" className="text-xs text-ink-muted">
          <Link to="/" className="hover:underline">
            Plans
          </Link>{' '}
          / import
        </nav>
        <h1 className="mt-2 text-xl font-semibold">Import a runbook</h1>
        <p className="mt-1 text-xs text-ink-muted">
          A Markdown runbook (up to 1 MiB) becomes a plan under review, with an import report of every part to decide, each with its line in the runbook. Nothing is saved until you
          save it.
        </p>
        {result && !result.ok ? (
          <p role="alert" className="mt-3 rounded border border-red-300 bg-red-50 px-3 py-2 text-xs text-red-900">
            {result.error}
          </p>
        ) : null}

        <Form method="post" encType="multipart/form-data" className="mt-3 flex flex-wrap items-end gap-3 rounded border border-slate-200 bg-white p-3 text-xs">
          <label className="block">
            <span className="block font-medium">Runbook (.md)</span>
            <input name="runbook" type="file" accept=".md,.markdown,.txt,text/markdown,text/plain" required className="mt-1" />
          </label>
          <label className="block">
            <span className="block font-medium">Plan id (optional)</span>
            <input name="id" placeholder="derived from the title" pattern="[a-z0-9][a-z0-9_\-]*" className="mt-1 rounded border border-slate-300 px-2 py-1 font-mono" />
          </label>
          <button name="intent" value="preview" disabled={busy} className="rounded bg-slate-800 px-3 py-1.5 font-semibold text-white hover:bg-slate-700 disabled:opacity-60">
            {busy ? 'Importing…' : 'Import'}
          </button>
        </Form>

        {preview ? <Preview preview={preview} writable={writable} busy={busy} /> : null}
      </main>
    </>
  );
}

function Preview({ preview, writable, busy }: { preview: ImportPreview; writable: boolean; busy: boolean }) {
  const hidden = (
    <>
      <input type="hidden" name="markdown" value={preview.markdown} />
      <input type="hidden" name="sourceName" value={preview.sourceName} />
      <input type="hidden" name="id" value={preview.id} />
    </>
  );
  const saveBlocked = preview.exists ? `A plan "${preview.id}" exists already: choose another id and import again.` : !writable ? 'The plans folder cannot be written by the server: download the folder as a zip instead.' : null;
  return (
    <section aria-labelledby="preview-title" className="mt-5">
      <div className="flex flex-wrap items-center gap-2 border-b border-slate-200 pb-2">
        <h2 id="preview-title" className="text-base font-semibold">
          Imported as <span className="font-mono">{preview.id}</span>
        </h2>
        <span className="text-xs text-ink-muted">
          from {preview.sourceName} · {preview.files.map((file) => file.path).join(', ')}
        </span>
        <div className="ml-auto flex flex-wrap items-center gap-2 text-xs">
          <Form method="post" encType="multipart/form-data">
            {hidden}
            <button name="intent" value="save" disabled={busy || saveBlocked !== null} aria-describedby={saveBlocked ? 'save-blocked' : undefined} className="rounded bg-slate-800 px-3 py-1.5 font-semibold text-white hover:bg-slate-700 disabled:cursor-not-allowed disabled:bg-slate-300 disabled:text-slate-600">
              Save to the plans folder
            </button>
          </Form>
          {/* A resource route: the browser receives the zip itself. */}
          <Form method="post" action="/import.zip" encType="multipart/form-data" reloadDocument>
            {hidden}
            <button name="intent" value="download" className="rounded border border-slate-300 bg-white px-3 py-1.5 hover:bg-slate-100">
              Download {preview.id}.zip
            </button>
          </Form>
        </div>
        {saveBlocked ? (
          <p id="save-blocked" className="w-full text-[11px] text-amber-900">
            {saveBlocked}
          </p>
        ) : null}
      </div>
      <div className="mt-3 grid gap-4 lg:grid-cols-[minmax(0,3fr)_minmax(0,2fr)]">
        <div aria-label="The imported plan" role="region">
          {preview.outline ? (
            <PlanOutlineView outline={preview.outline} />
          ) : (
            <div className="rounded border border-red-300 bg-red-50 p-3">
              <p className="text-sm font-semibold text-red-900">The imported plan does not load yet: its IMPORT.md says what to add.</p>
              <PlanErrorList errors={preview.errors} className="mt-1 text-xs" />
            </div>
          )}
        </div>
        <ImportReport items={preview.items} counts={preview.counts} />
      </div>
    </section>
  );
}

const KIND_TITLES: Record<ImportItem['kind'], string> = {
  decide: 'To decide before the review is cleared',
  guess: 'Guessed: confirm or change',
  skipped: 'Not carried over',
};

function ImportReport({ items, counts }: { items: ImportItem[]; counts: ImportPreview['counts'] }) {
  return (
    <aside aria-labelledby="import-report-title" className="rounded border border-amber-300 bg-amber-50/40 p-3 text-xs">
      <h3 id="import-report-title" className="text-sm font-semibold">
        Import report (IMPORT.md)
      </h3>
      <p className="mt-1 text-ink-muted">
        {counts.decide} to decide, {counts.guess} guessed, {counts.skipped} not carried over. The plan stays under review (review: pending) until an engineer has resolved them and
        removed that line.
      </p>
      {(['decide', 'guess', 'skipped'] as const).map((kind) => {
        const ofKind = items.filter((item) => item.kind === kind);
        if (ofKind.length === 0) return null;
        return (
          <section key={kind} className="mt-3" aria-label={KIND_TITLES[kind]}>
            <h4 className="flex items-center gap-2 font-semibold">
              {KIND_TITLES[kind]} <StatusBadge status={kind === 'decide' ? 'gate_open' : kind === 'guess' ? 'stale' : 'skipped'} label={String(ofKind.length)} />
            </h4>
            <ul className="mt-1 space-y-1">
              {ofKind.map((item, index) => (
                <li key={`${item.line}-${index}`} className="rounded border border-slate-200 bg-white p-1.5">
                  <span className="font-mono font-semibold">Line {item.line}</span>: {item.subject}. <span className="text-ink-muted">{item.text}</span>
                </li>
              ))}
            </ul>
          </section>
        );
      })}
    </aside>
  );
}

export { RouteErrorBoundary as ErrorBoundary } from '../components/route-error-boundary';
