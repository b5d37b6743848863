import type { ActionFunctionArgs } from '@remix-run/node';
import { requireIntentPermission } from '../auth/intent-access.server';
import { requirePermission } from '../auth/require.server';
import { isRunsheetError } from '../runtime/errors';
import { IMPORT_REQUEST_BYTES } from '../web/body-limits.server';
import { refusalOf } from '../web/http-answers.server';
import { downloadRunbookImport, MAX_RUNBOOK_BYTES, safeSourceName } from '../web/import-page.server';

/**
 * The imported plan folder as a zip (for a plans folder the server cannot write): a resource
 * route, so the browser receives the file itself. The runbook is imported again from the form.
 */
export async function action({ request, context }: ActionFunctionArgs) {
  if (Number(request.headers.get('content-length') ?? 0) > IMPORT_REQUEST_BYTES) {
    await requirePermission(request, context, 'import-plan');
    return text('Runsheet imports runbooks of at most 1 MiB.', 413);
  }
  const { user, form } = await requireIntentPermission(request, context, 'routes/import[.]zip');
  const markdown = form.get('markdown');
  const id = form.get('id');
  const sourceName = form.get('sourceName');
  if (typeof markdown !== 'string' || typeof id !== 'string' || id.trim() === '') return text('The form lost its runbook: upload it again.', 400);
  if (Buffer.byteLength(markdown, 'utf8') > MAX_RUNBOOK_BYTES) return text('Runsheet imports runbooks of at most 1 MiB.', 413);
  try {
    const zip = await downloadRunbookImport(context.runtime, {
      markdown,
      id: id.trim(),
      sourceName: safeSourceName(typeof sourceName === 'string' ? sourceName : 'runbook.md'),
      user,
      ip: context.clientAddress,
    });
    return new Response(Buffer.from(zip.bytes), {
      headers: { 'Content-Type': 'application/zip', 'Content-Disposition': `attachment; filename="${zip.fileName}"`, 'Cache-Control': 'no-store' },
    });
  } catch (error) {
    if (!isRunsheetError(error)) throw error;
    const refusal = refusalOf(error);
    return text(refusal.error, refusal.status);
  }
}

function text(message: string, status: number): Response {
  return new Response(message, { status, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
}
