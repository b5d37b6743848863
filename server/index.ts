/**
 * The HTTP server: security headers on every response (Strict-Transport-Security when
 * RUNSHEET_HSTS says so), static assets, and the Remix app through server/remix-handler.ts (request
 * body limits, no-store). The
 * runtime (store, embedded PostgreSQL, secrets) is started through the Remix build so that the
 * app and the server share one copy of every module.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { ServerBuild } from '@remix-run/node';
import express from 'express';
import type { Runtime, StartRuntimeOptions } from '../app/boot/runtime.server';
import { crossOriginGuard } from '../app/auth/origin.server';
import { bodyLimitFor } from '../app/web/body-limits.server';
import type { PageCache } from '../app/web/page-cache.server';
import { remixHandler } from './remix-handler';

type RunsheetBuild = ServerBuild & {
  entry: {
    module: {
      startRuntime(options: StartRuntimeOptions): Promise<Runtime>;
      startRecoveryPass(runtime: Runtime, report: (line: string) => void): () => void;
      startWatchRunner(runtime: Runtime, report: (line: string) => void, options: { pollMs: number; staleAfterMs: number }): () => Promise<void>;
      startNotificationDelivery(runtime: Runtime, report: (line: string) => void): () => Promise<void>;
      writeServerRecord(dataDir: string, url: string): void;
      removeServerRecord(dataDir: string): void;
      createPageCache(runtime: Runtime, options: { maxBytes: number; ageStepMs: number }): PageCache;
    };
  };
};

const root = path.resolve(import.meta.dirname, '..');
const development = process.env.NODE_ENV === 'development';
const log = (line: string) => console.log(`[runsheet] ${line}`);

export async function startServer(): Promise<void> {
  const startedAt = Date.now();
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);

  // Read from the environment with everything else once the runtime starts, before the server listens.
  let hsts: string | undefined;
  app.use((_request, response, next) => {
    const nonce = randomBytes(16).toString('base64');
    response.locals.cspNonce = nonce;
    setSecurityHeaders(response, nonce);
    if (hsts) response.setHeader('Strict-Transport-Security', hsts);
    next();
  });

  let loadBuild: () => Promise<RunsheetBuild>;
  if (development) {
    const vite = await import('vite');
    const viteServer = await vite.createServer({ root, server: { middlewareMode: true } });
    app.use(viteServer.middlewares);
    loadBuild = () => viteServer.ssrLoadModule('virtual:remix/server-build') as Promise<RunsheetBuild>;
  } else {
    const buildFile = path.join(root, 'build', 'server', 'index.js');
    const build = (await import(buildFile)) as RunsheetBuild;
    loadBuild = async () => build;
    app.use('/assets', express.static(path.join(root, 'build', 'client', 'assets'), { immutable: true, maxAge: '1y' }));
    app.use(express.static(path.join(root, 'build', 'client'), { maxAge: '1h' }));
  }

  const entry = (await loadBuild()).entry.module;
  const runtime = await entry.startRuntime({ log, webServer: true });
  hsts = runtime.env.RUNSHEET_HSTS;
  // Runs whose driving process died are marked interrupted now and every few seconds after (never by a page read).
  const stopRecovery = entry.startRecoveryPass(runtime, log);
  // Watch windows after verified applies: this process runs those no other live process runs (docs/decisions/030).
  const stopWatches = entry.startWatchRunner(runtime, log, { pollMs: runtime.env.RUNSHEET_WATCH_POLL, staleAfterMs: runtime.env.RUNSHEET_WATCH_STALE_AFTER });
  // Notifications in the store's outbox: this process delivers those of the channels it has an address for (docs/decisions/033).
  const stopNotifications = entry.startNotificationDelivery(runtime, log);
  for (const demo of runtime.demoAccounts ?? []) log(`Demo account ${demo.role.padEnd(8)} ${demo.email.padEnd(24)} password: ${demo.password}`);
  // Before Remix, whose own Origin/Host check would answer a cross-origin form with an unlogged 500.
  app.use(crossOriginGuard(runtime));

  app.all(
    '*',
    remixHandler({
      build: loadBuild,
      mode: development ? 'development' : 'production',
      getLoadContext: (request, response) => ({
        runtime,
        cspNonce: response.locals.cspNonce as string,
        clientAddress: request.socket.remoteAddress ?? '',
      }),
      bodyLimitFor: (pathname) => bodyLimitFor(pathname, runtime.env.RUNSHEET_BODY_LIMIT),
      // Rendered plan and report pages, sent again while nothing they show changed (docs/decisions/035).
      pageCache: development ? undefined : entry.createPageCache(runtime, { maxBytes: runtime.env.RUNSHEET_PAGE_CACHE, ageStepMs: runtime.env.RUNSHEET_PAGE_AGE_STEP }),
    }),
  );

  const port = runtime.env.PORT;
  const server = app.listen(port, () => {
    // The command line finds the sandbox's API stand-in here (embedded mode); a clean stop removes the record.
    if (runtime.env.embedded) entry.writeServerRecord(runtime.env.dataDir, `http://127.0.0.1:${port}`);
    log(`Runsheet is serving http://localhost:${port} (${development ? 'development' : 'production build'}, ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s)`);
  });
  server.on('error', async (error: NodeJS.ErrnoException) => {
    console.error(
      error.code === 'EADDRINUSE'
        ? `[runsheet] Port ${port} is in use: stop what runs there, or start with PORT=<another port>.`
        : `[runsheet] ${error.message}`,
    );
    stopRecovery();
    await stopWatches();
    await stopNotifications();
    await runtime.stop();
    process.exit(1);
  });

  const shutdown = async (signal: string) => {
    log(`${signal}: stopping`);
    server.close();
    server.closeAllConnections();
    stopRecovery();
    await stopWatches();
    await stopNotifications();
    if (runtime.env.embedded) entry.removeServerRecord(runtime.env.dataDir);
    await runtime.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

function setSecurityHeaders(response: express.Response, nonce: string): void {
  const scriptSource = development ? `'self' 'nonce-${nonce}' 'unsafe-eval'` : `'self' 'nonce-${nonce}'`;
  const connectSource = development ? "'self' ws: wss:" : "'self'";
  response.setHeader(
    'Content-Security-Policy',
    [
      "default-src 'self'",
      `script-src ${scriptSource}`,
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      `connect-src ${connectSource}`,
      "font-src 'self'",
      "object-src 'none'",
      "base-uri 'self'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join('; '),
  );
  response.setHeader('X-Content-Type-Options', 'nosniff');
  response.setHeader('Referrer-Policy', 'same-origin');
  response.setHeader('X-Frame-Options', 'DENY');
  response.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  response.setHeader('Permissions-Policy', 'camera=(), microphone=(), geolocation=()');
}
