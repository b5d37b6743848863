import { isRouteErrorResponse, Link, useRouteError } from '@remix-run/react';

/** A route's error, inside the page frame: what went wrong and a way back, never a blank page. */
export function RouteErrorBoundary() {
  const error = useRouteError();
  const status = isRouteErrorResponse(error) ? error.status : 500;
  const message = isRouteErrorResponse(error)
    ? typeof error.data === 'string'
      ? error.data
      : (error.data as { error?: string })?.error ?? error.statusText
    : error instanceof Error
      ? error.message
      : 'Unexpected error';
  return (
    <main className="mx-auto max-w-3xl px-4 py-10" role="alert">
      <h1 className="text-lg font-semibold">{status === 404 ? 'Not found' : status === 403 ? 'Not allowed' : 'Something went wrong'}</h1>
      <p className="mt-2 whitespace-pre-wrap text-ink-muted">{message}</p>
      <Link to="/" className="mt-4 inline-block text-blue-700 underline">Back to plans</Link>
    </main>
  );
}
