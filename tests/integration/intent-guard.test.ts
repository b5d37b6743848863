/**
 * The guard of a page with several form intents judges the same single intent the action runs:
 * a body naming two intents, or one the guard could not read, is refused and nothing runs.
 * (A viewer once passed the guard as `tick` and ran `tick-criterion`.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../app/boot/runtime.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';
import { ensureFreshBuild, freePort, makeSecrets, openRuntime, serverEnv, sessionCookieFor, startServer, type StartedServer } from './auth-harness';

describe('the intent guard of the plan page', () => {
  let database: TestDatabase;
  let runtime: Runtime;
  let server: StartedServer;

  beforeAll(async () => {
    await ensureFreshBuild();
    database = await createTestDatabase('intent_guard');
    const env = serverEnv(database.url, makeSecrets(), await freePort());
    runtime = await openRuntime(env);
    server = await startServer(env);
  });

  afterAll(async () => {
    await server?.stop();
    await runtime?.stop();
    await database?.drop();
  });

  async function post(body: string, contentType: string): Promise<number> {
    const cookie = await sessionCookieFor(runtime, 'viewer@intent.test', 'viewer');
    const response = await fetch(`${server.origin}/plans/008-add-active-org-tracking`, {
      method: 'POST',
      headers: { Cookie: cookie, Origin: server.origin, 'Content-Type': contentType, Accept: 'text/html' },
      body,
      redirect: 'manual',
    });
    return response.status;
  }

  it('refuses a form that names two intents, whatever the first one allows', async () => {
    expect(await post('intent=tick&intent=tick-criterion&index=0&ticked=true', 'application/x-www-form-urlencoded')).toBe(400);
  });

  it('reads the intent whatever the case of the content type, and refuses what the role may not do', async () => {
    expect(await post('intent=run-checks&phase=verify', 'Application/X-WWW-Form-Urlencoded')).toBe(403);
  });

  it('refuses a body that is not a form', async () => {
    expect(await post('intent=run-checks', 'text/plain')).toBe(400);
  });

  it('still refuses a viewer the intents the table gives to other roles', async () => {
    expect(await post('intent=refresh-facts', 'application/x-www-form-urlencoded')).toBe(403);
  });
});
