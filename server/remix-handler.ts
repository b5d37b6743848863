/**
 * The Express handler that hands a request to Remix (in place of @remix-run/express's own, whose
 * request and answer plumbing it follows), for three things that one does not do:
 *
 * - The request body is a lazy, counted stream: nothing is read from the socket until a loader or
 *   action reads the body (the guards look at the session cookie first), and a body past the route's
 *   limit (app/web/body-limits.server.ts) is cut off with 413 while it streams, before anything
 *   parses it. A declared Content-Length over the limit is answered 413 at once. Whatever of a body
 *   nobody read is read on and dropped for a moment after the answer, then the connection closes.
 * - Every answer of the app says `Cache-Control: no-store` (pages, single-fetch `.data`, JSON,
 *   event streams: a signed-in page must not be kept by a browser or a proxy), unless a public
 *   route marks its answer `public` (the signing key). Static assets are served before this handler
 *   and keep their own caching.
 * - A plan or report page that the page cache (app/web/page-cache.server.ts) holds for this viewer
 *   and this state of the store is sent from it, without Remix; one it may keep is kept once rendered.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequestHandler, writeReadableStreamToWritable, type AppLoadContext, type ServerBuild } from '@remix-run/node';
import type express from 'express';
import type { BodyLimit } from '../app/web/body-limits.server';
import type { PageCache } from '../app/web/page-cache.server';

export interface RemixHandlerOptions {
  build: () => Promise<ServerBuild>;
  mode: 'development' | 'production';
  getLoadContext(request: express.Request, response: express.Response): AppLoadContext;
  bodyLimitFor(pathname: string): BodyLimit;
  /** Rendered pages kept while nothing they show changed (app/web/page-cache.server.ts). */
  pageCache?: PageCache;
}

const BODILESS = new Set(['GET', 'HEAD']);

export function remixHandler(options: RemixHandlerOptions): express.RequestHandler {
  let handle: ReturnType<typeof createRequestHandler> | undefined;
  return async (request, response, next) => {
    try {
      handle ??= createRequestHandler(options.build, options.mode);
      const pathname = new URL(request.originalUrl, 'http://placeholder').pathname;
      const limit = options.bodyLimitFor(pathname);
      const declared = Number(request.headers['content-length'] ?? 0);
      if (!BODILESS.has(request.method) && !limit.routeRefusesDeclaredSize && declared > limit.bytes) {
        refuseTooLarge(request, response, limit.bytes);
        return;
      }
      const remixRequest = toFetchRequest(request, response, limit.bytes);
      const context = options.getLoadContext(request, response);
      const kept = await options.pageCache?.lookup(remixRequest, context);
      if (kept?.kind === 'hit') {
        response.status(kept.answer.status);
        for (const [name, value] of kept.answer.headers) response.append(name, value);
        response.setHeader('Cache-Control', 'no-store');
        response.setHeader('Content-Length', kept.answer.body.length);
        response.setHeader('Server-Timing', 'page-cache;desc="hit"');
        response.end(kept.answer.body);
        return;
      }
      let rendered: Response;
      try {
        rendered = await handle(remixRequest, context);
      } catch (error) {
        if (kept?.kind === 'miss') kept.abandon();
        throw error;
      }
      const answer = kept?.kind === 'miss' ? await kept.keep(rendered) : rendered;
      // Whether a page the cache could keep was rendered (the tests and an operator's browser tools read it).
      if (kept?.kind === 'miss') answer.headers.set('Server-Timing', 'page-cache;desc="miss"');
      // The body went past its limit while the route read it: the 413 is already on its way.
      if (response.headersSent) {
        await answer.body?.cancel().catch(() => {});
        return;
      }
      if (!/\bpublic\b/i.test(answer.headers.get('Cache-Control') ?? '')) answer.headers.set('Cache-Control', 'no-store');
      await sendAnswer(response, answer);
      // A body nobody read (an anonymous post refused unread): dropped, and the connection closed.
      if (!BODILESS.has(request.method)) afterAnswer(response, () => discardRest(request));
    } catch (error) {
      next(error);
    }
  };
}

/** What @remix-run/express builds, with the body as a lazy, counted stream. */
function toFetchRequest(request: express.Request, response: express.Response, limit: number): Request {
  // As the adapter: the port from Host (req.hostname drops it), the full path from originalUrl.
  const port = Number.parseInt(request.get('host')?.split(':')[1] ?? '', 10);
  const url = new URL(`${request.protocol}://${request.hostname}${Number.isSafeInteger(port) ? `:${port}` : ''}${request.originalUrl}`);
  let controller: AbortController | null = new AbortController();
  const headers = new Headers();
  for (const [name, values] of Object.entries(request.headers)) {
    for (const value of Array.isArray(values) ? values : values ? [values] : []) headers.append(name, value);
  }
  const init: RequestInit & { duplex?: 'half' } = { method: request.method, headers, signal: controller.signal };
  if (!BODILESS.has(request.method)) {
    init.body = lazyLimitedBody(request, limit, () => refuseTooLarge(request, response, limit));
    init.duplex = 'half';
  }
  // Abort loaders and actions once no answer can be written (close without finish).
  response.on('finish', () => (controller = null));
  response.on('close', () => controller?.abort());
  return new Request(url.href, init);
}

/** As @remix-run/express sends an answer; an event stream's headers go out at once. */
async function sendAnswer(response: express.Response, answer: Response): Promise<void> {
  response.statusMessage = answer.statusText;
  response.status(answer.status);
  for (const [name, value] of answer.headers.entries()) response.append(name, value);
  if (/text\/event-stream/i.test(answer.headers.get('Content-Type') ?? '')) response.flushHeaders();
  if (answer.body) await writeReadableStreamToWritable(answer.body, response);
  else response.end();
}

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`The request body is larger than ${limit} bytes.`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * The request body as a web stream that pulls from the socket only when read (high-water mark 0:
 * nothing is buffered ahead of the reader) and errors once more than `limit` bytes came in.
 */
export function lazyLimitedBody(source: IncomingMessage, limit: number, onTooLarge: () => void): ReadableStream<Uint8Array> {
  let received = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        return new Promise<void>((resolve) => {
          const settle = () => {
            source.off('readable', attempt);
            source.off('end', ended);
            source.off('error', failed);
            source.off('close', closed);
            resolve();
          };
          const ended = () => {
            settle();
            controller.close();
          };
          const failed = (error: Error) => {
            settle();
            controller.error(error);
          };
          const closed = () => {
            if (source.readableEnded) return ended();
            failed(new Error('The client closed the connection before the request body ended.'));
          };
          function attempt() {
            const chunk = source.read() as Buffer | null;
            if (chunk === null) {
              if (source.readableEnded) ended();
              return;
            }
            settle();
            received += chunk.length;
            if (received > limit) {
              onTooLarge();
              controller.error(new BodyTooLargeError(limit));
              return;
            }
            controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          }
          if (source.readableEnded) return ended();
          source.on('readable', attempt);
          source.once('end', ended);
          source.once('error', failed);
          source.once('close', closed);
          attempt();
        });
      },
    },
    { highWaterMark: 0 },
  );
}

/** 413 before (or instead of) reading on; what is left of the body is dropped and the connection closed. */
export function refuseTooLarge(request: IncomingMessage, response: ServerResponse, limit: number): void {
  if (!response.headersSent) {
    response.writeHead(413, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
    response.end(`Refused: the request body is larger than this page accepts (${formatBytes(limit)}).\n`);
  }
  afterAnswer(response, () => discardRest(request));
}

function afterAnswer(response: ServerResponse, then: () => void): void {
  if (response.writableFinished) then();
  else response.once('finish', then);
}

/** How long, and how much, the rest of an unread body is read and dropped before the connection is closed. */
const LINGER_MS = 2_000;
const LINGER_BYTES = 8 * 1024 * 1024;

/**
 * Reads and drops what is left of a body nobody will read. Closing at once would leave its bytes
 * unread, and TCP then resets the connection: a client still sending may lose the answer it was
 * given. So the server reads on for a moment (at most a few MiB, never keeping any), then closes.
 */
function discardRest(request: IncomingMessage): void {
  if (request.complete) return;
  let dropped = 0;
  const timer = setTimeout(() => close(), LINGER_MS);
  timer.unref();
  const close = () => {
    clearTimeout(timer);
    if (!request.complete) request.socket.destroy();
  };
  request.removeAllListeners('readable');
  request.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > LINGER_BYTES) close();
  });
  request.once('end', () => clearTimeout(timer));
  request.once('close', () => clearTimeout(timer));
  request.resume();
}

function formatBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
