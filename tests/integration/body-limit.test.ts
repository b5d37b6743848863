/**
 * Issue 11, reproduction 7: no request size limit, and bodies were parsed before the user was
 * checked (four anonymous 200 MiB posts took the server to 2 GB). Over HTTP against the real
 * server: a body past RUNSHEET_BODY_LIMIT (default 1 MiB) is answered 413 before it is read (a
 * declared length) or while it streams in (chunked), an anonymous post is refused before its body
 * is read, and /login answers meanwhile. Nothing here measures time or memory (npm run bench does).
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, freePort, makeSecrets, openRuntime, serverEnv, sessionCookieFor, startServer, type StartedServer } from './auth-harness';

const MiB = 1024 * 1024;
const HUGE = 200 * MiB;
const PLAN_PAGE = '/plans/008-add-active-org-tracking';

interface UploadAnswer {
  status: number;
  location: string | null;
  body: string;
  /** Bytes of the body the client had written when the answer came (or when it finished). */
  sent: number;
}

describe('request bodies (issue 11, reproduction 7)', () => {
  let database: TestDatabase;
  let runtime: Runtime;
  let server: StartedServer;

  beforeAll(async () => {
    await ensureFreshBuild();
    database = await createTestDatabase('body_limit');
    const env = serverEnv(database.url, makeSecrets(), await freePort());
    runtime = await openRuntime(env);
    server = await startServer(env);
  });

  afterAll(async () => {
    await server?.stop();
    await runtime?.stop();
    await database?.drop();
  });

  /**
   * POSTs `total` bytes of form body, written as the socket takes them, and stops writing as soon
   * as an answer arrives (as a browser does). With `declareLength` the size is announced up front;
   * without it the body is chunked and only its bytes tell how large it is.
   */
  function upload(path: string, options: { total: number; declareLength: boolean; cookie?: string; accept?: string }): Promise<UploadAnswer> {
    return new Promise((resolve, reject) => {
      let sent = 0;
      let answered = false;
      const headers: Record<string, string> = {
        Host: new URL(server.origin).host,
        Origin: server.origin,
        'Content-Type': 'application/x-www-form-urlencoded',
        Accept: options.accept ?? 'text/html',
      };
      if (options.cookie) headers.Cookie = options.cookie;
      if (options.declareLength) headers['Content-Length'] = String(options.total);
      const request = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path, headers }, (response) => {
        answered = true;
        const sentWhenAnswered = sent;
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          resolve({ status: response.statusCode ?? 0, location: response.headers.location ?? null, body, sent: sentWhenAnswered });
          request.destroy();
        });
        response.on('error', () => resolve({ status: response.statusCode ?? 0, location: response.headers.location ?? null, body, sent: sentWhenAnswered }));
      });
      // Writing on after the server answered and closed is expected to fail; only an error before any answer is one.
      request.on('error', (error) => {
        if (!answered) reject(error);
      });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      // One chunk per turn of the event loop, so an answer that has arrived is seen before the next
      // chunk is written (as a browser stops sending), not after the server has stopped lingering.
      const pump = () => {
        if (answered) return;
        if (sent >= options.total) {
          request.end();
          return;
        }
        const piece = chunk.subarray(0, Math.min(chunk.length, options.total - sent));
        sent += piece.length;
        if (request.write(piece)) setImmediate(pump);
        else request.once('drain', pump);
      };
      pump();
    });
  }

  it('answers an anonymous 200 MiB post 413 from its declared length, without reading it', async () => {
    const answer = await upload(PLAN_PAGE, { total: HUGE, declareLength: true });
    expect(answer.status).toBe(413);
    expect(answer.body).toContain('larger than this page accepts (1 MiB)');
    expect(answer.sent).toBeLessThan(HUGE);
  });

  it('refuses an anonymous chunked 200 MiB post before reading its body: sent to sign in (or 401 for JSON)', async () => {
    const page = await upload(PLAN_PAGE, { total: HUGE, declareLength: false });
    expect(page.status).toBe(302);
    expect(page.location).toMatch(/^\/login\?redirectTo=/);
    expect(page.sent).toBeLessThan(HUGE);
    const json = await upload(PLAN_PAGE, { total: HUGE, declareLength: false, accept: 'application/json' });
    expect(json.status).toBe(401);
    expect(json.sent).toBeLessThan(HUGE);
  });

  it('cuts off a signed-in chunked 200 MiB post with 413 while it streams, before anything parses it', async () => {
    const cookie = await sessionCookieFor(runtime, 'engineer@body.test', 'engineer');
    const answer = await upload(PLAN_PAGE, { total: HUGE, declareLength: false, cookie });
    expect(answer.status).toBe(413);
    expect(answer.sent).toBeLessThan(HUGE);
    // The public sign-in form has the same limit.
    expect((await upload('/login', { total: 2 * MiB, declareLength: false })).status).toBe(413);
  });

  it('keeps answering /login while four anonymous 200 MiB posts arrive', async () => {
    const uploads = [0, 1, 2, 3].map((index) => upload(PLAN_PAGE, { total: HUGE, declareLength: index % 2 === 0 }));
    const login = await fetch(`${server.origin}/login`);
    expect(login.status).toBe(200);
    expect(await login.text()).toContain('Sign in to Runsheet');
    const answers = await Promise.all(uploads);
    expect(answers.map((answer) => answer.status)).toEqual([413, 302, 413, 302]);
    for (const answer of answers) expect(answer.sent).toBeLessThan(HUGE);
  });

  it('lets a body within the limit through, and gives the import page its own, larger limit', async () => {
    const cookie = await sessionCookieFor(runtime, 'engineer@body.test', 'engineer');
    // 900 KiB of form on the plan page: read, parsed, and judged (an unknown intent is 400, not 413).
    const withinLimit = await upload(PLAN_PAGE, { total: 900 * 1024, declareLength: true, cookie });
    expect(withinLimit.status).toBe(400);
    // The import page reads a runbook of up to 1 MiB and its fields: 1.03 MiB is not cut off.
    const runbook = await upload('/import', { total: Math.round(1.03 * MiB), declareLength: false, cookie });
    expect(runbook.status).not.toBe(413);
    expect(runbook.status).toBeLessThan(500);
  });
});
