/**
 * Issue 10, reproduction 7 (second half): the command line sent the sandbox's API checks, bearer
 * token included, to http://localhost:$PORT (3000 by default), whatever port the server ran on.
 * Now the server records its URL under the data folder while it runs (server.json), and the
 * command line uses that record once the server answers there as this Runsheet; with no record,
 * or a stale one, it refuses with what to do, and sends no token anywhere.
 * Embedded mode: a real server (bin/start.js) and the command line (bin/runsheet.js) share one
 * data folder and its PostgreSQL; a stand-in "wrong server" records whatever reaches it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedServerEnv, freePort, ROOT, startServer, type StartedServer } from './auth-harness';

interface SeenRequest {
  method: string;
  url: string;
  authorization: string | undefined;
}

let dataDir: string;
let plansDir: string;
let server: StartedServer | undefined;
/** Listens where the old code guessed (the CLI's PORT): it must never hear a bearer token. */
let wrongServer: http.Server;
let wrongPort: number;
const seenByWrongServer: SeenRequest[] = [];

function runsheet(args: string[], extra: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', RUNSHEET_DATA_DIR: dataDir, RUNSHEET_PLANS_DIR: plansDir, PORT: String(wrongPort), ...extra };
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/runsheet.js'), ...args], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

const recordFile = () => path.join(dataDir, 'server.json');
const checkPost = (extra: Record<string, string> = {}) => runsheet(['check', 'api-plan', '--phase', 'post', '--json'], extra);

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-api-data-'));
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-api-plans-'));
  fs.mkdirSync(path.join(plansDir, 'api-plan'));
  fs.writeFileSync(
    path.join(plansDir, 'api-plan', 'plan.yaml'),
    [
      'id: api-plan',
      'title: One http check against the sandbox stand-in',
      'apply:',
      '  - { id: noop, title: Nothing, file: apply.sql }',
      'post_execution:',
      '  api_tests:',
      '    # Before plan 008 the stand-in knows the token but answers 503 (not migrated): it was reached, with the token.',
      '    - { id: validate, kind: http, title: GET /api/auth/validate, request: { method: GET, path: /api/auth/validate }, expect: { type: http, status: 503, json_has: [error] } }',
      'rollback:',
      '  steps:',
      '    - { id: undo, title: Nothing, file: apply.sql }',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(plansDir, 'api-plan', 'apply.sql'), 'SELECT 1;\n');
  wrongServer = http.createServer((request, response) => {
    seenByWrongServer.push({ method: request.method ?? '', url: request.url ?? '', authorization: request.headers.authorization });
    response.writeHead(200, { 'content-type': 'text/plain' }).end('not runsheet');
  });
  await new Promise<void>((resolve) => wrongServer.listen(0, '127.0.0.1', resolve));
  wrongPort = (wrongServer.address() as AddressInfo).port;
});

afterAll(async () => {
  await server?.stop();
  await new Promise((resolve) => wrongServer.close(resolve));
  fs.rmSync(plansDir, { recursive: true, force: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('the sandbox API stand-in, from the command line', () => {
  it('goes to the running server, found through its record, and never to the port the command line would guess', async () => {
    const port = await freePort();
    server = await startServer(embeddedServerEnv(dataDir, port, { RUNSHEET_PLANS_DIR: plansDir }));

    const { code, stdout, stderr } = await checkPost();
    expect(seenByWrongServer).toEqual([]);
    expect(code, stderr).toBe(0);
    const [result] = (JSON.parse(stdout) as { results: { passed: boolean; actual: { status: number; request: { url: string } } }[] }).results;
    expect(result).toMatchObject({ passed: true, actual: { status: 503, request: { url: `http://127.0.0.1:${port}/sandbox-api/api/auth/validate` } } });
    const record = JSON.parse(fs.readFileSync(recordFile(), 'utf8')) as { url: string; pid: number };
    expect(record).toMatchObject({ url: `http://127.0.0.1:${port}`, pid: server.pid });
  });

  it('with no server running (its record removed by the clean stop), refuses before running and says to set TARGET_SANDBOX_API_URL', async () => {
    await server!.stop();
    server = undefined;
    expect(fs.existsSync(recordFile())).toBe(false);

    const { code, stderr } = await checkPost();
    expect(code).toBe(3);
    expect(stderr).toMatch(/no running server has recorded its address .*server\.json is absent\)\. Start the server \(npm start\), or set TARGET_SANDBOX_API_URL/);
    const run = await runsheet(['run', 'api-plan', '--target', 'sandbox', '--as', 'engineer@runsheet.local']);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/Nothing was run: api-plan has http checks on sandbox \(validate\)/);
    expect(run.stdout).not.toMatch(/applying/);
    expect(seenByWrongServer).toEqual([]);
  });

  it('a stale record (nothing answers there) is an error, not a place to send the token', async () => {
    const closedPort = await freePort();
    fs.writeFileSync(recordFile(), JSON.stringify({ url: `http://127.0.0.1:${closedPort}`, pid: 2 ** 22 + 1, startedAt: '2026-01-01T00:00:00.000Z' }));
    const { code, stderr } = await checkPost();
    expect(code).toBe(3);
    expect(stderr).toMatch(new RegExp(`serves http://127\\.0\\.0\\.1:${closedPort}, but nothing answers there .*: the record is stale\\. Start the server again, or set TARGET_SANDBOX_API_URL`));
  });

  it('a record whose address answers as something else is stale too: it is asked only for /signing-key.pem, without a token', async () => {
    fs.writeFileSync(recordFile(), JSON.stringify({ url: `http://127.0.0.1:${wrongPort}`, pid: process.pid, startedAt: '2026-01-01T00:00:00.000Z' }));
    const { code, stderr } = await checkPost();
    expect(code).toBe(3);
    expect(stderr).toMatch(/what answers there is not this Runsheet/);
    expect(seenByWrongServer).toEqual([{ method: 'GET', url: '/signing-key.pem', authorization: undefined }]);
    fs.rmSync(recordFile());
  });

  it('TARGET_SANDBOX_API_URL, when set, is where the checks go', async () => {
    seenByWrongServer.length = 0;
    const { stdout } = await checkPost({ TARGET_SANDBOX_API_URL: `http://127.0.0.1:${wrongPort}/api-here` });
    const [result] = (JSON.parse(stdout) as { results: { actual: { request: { url: string } } }[] }).results;
    expect(result!.actual.request.url).toBe(`http://127.0.0.1:${wrongPort}/api-here/api/auth/validate`);
    expect(seenByWrongServer).toEqual([{ method: 'GET', url: '/api-here/api/auth/validate', authorization: expect.stringMatching(/^Bearer /) }]);
  });
});
