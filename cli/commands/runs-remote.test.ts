/**
 * The remote command line's stream following, against a stand-in of the server's two endpoints
 * over real HTTP: a stream that drops mid-run is resumed with Last-Event-ID from the last event
 * printed (nothing printed twice, nothing missed), and the exit code is the local one. And a server
 * that cannot be reached is exit 3, a token without a URL exit 2. An apply that goes on into its
 * watch is followed until the run watches (the stream goes on for the watch's rounds), not for the
 * whole window.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../api-client';
import type { CliIo } from '../command';
import { main } from '../main';
import { followRun } from './runs-remote';

const RUN = '11111111-2222-4333-8444-555555555555';
const WATCHED = '11111111-2222-4333-8444-666666666666';
const event = (seq: number, phase: string) => ({ seq, type: 'phase.started', actor: 'ci@service.invalid', role: 'engineer', at: '2026-12-03T12:00:00.000Z', payload: { phase, plannedMs: 1000 } });

let server: http.Server;
let origin: string;
const streamRequests: (string | undefined)[] = [];
let state = 'applying';

beforeAll(async () => {
  server = http.createServer((request, response) => {
    if (request.headers.authorization !== 'Bearer rs_test') return void response.writeHead(401).end();
    if (request.url === `/api/v1/runs/${RUN}/events`) {
      streamRequests.push(request.headers['last-event-id'] as string | undefined);
      response.writeHead(200, { 'Content-Type': 'text/event-stream' });
      response.write('retry: 100\n\n');
      if (streamRequests.length === 1) {
        // Two events, then the connection drops (no `end`) once they are on the wire.
        response.write(`id: 1\nevent: run-event\ndata: ${JSON.stringify(event(1, 'snapshot'))}\n\n`);
        response.write(`id: 2\nevent: run-event\ndata: ${JSON.stringify(event(2, 'apply'))}\n\n`, () => setTimeout(() => response.destroy(), 50));
        return;
      }
      // The reconnect: what came after the last event it had, then the end.
      state = 'applied';
      response.write(`id: 3\nevent: run-event\ndata: ${JSON.stringify(event(3, 'verify'))}\n\n`);
      response.end(`event: end\ndata: ${JSON.stringify({ state: 'applied', lastSeq: 3 })}\n\n`);
      return;
    }
    if (request.url === `/api/v1/runs/${WATCHED}/events`) {
      // The apply ends verified, the run watches; the stream stays open for the watch's rounds.
      response.writeHead(200, { 'Content-Type': 'text/event-stream' });
      response.write(`id: 1\nevent: run-event\ndata: ${JSON.stringify(event(1, 'apply'))}\n\n`);
      const changed = (seq: number, from: string, to: string) => ({ ...event(seq, 'apply'), type: 'state.changed', payload: { from, to, reason: 'test' } });
      response.write(`id: 2\nevent: run-event\ndata: ${JSON.stringify(changed(2, 'applying', 'applied'))}\n\n`);
      response.write(`id: 3\nevent: run-event\ndata: ${JSON.stringify(changed(3, 'applied', 'watching'))}\n\n`);
      return;
    }
    if (request.url === `/api/v1/runs/${WATCHED}`) {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      return void response.end(JSON.stringify({ run: { id: WATCHED, state: 'watching', outcome: { verified: true, phases: [{ phase: 'apply', ok: true }] } }, lastSeq: 3 }));
    }
    if (request.url === `/api/v1/runs/${RUN}`) {
      const outcome = state === 'applied' ? { verified: true, phases: [{ phase: 'apply', ok: true }] } : null;
      response.writeHead(200, { 'Content-Type': 'application/json' });
      return void response.end(JSON.stringify({ run: { id: RUN, state, outcome }, lastSeq: state === 'applied' ? 3 : 2 }));
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(
  () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
);

function memoryIo(): CliIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (text) => lines.push(text), err: (text) => errors.push(text), readStdin: async () => '' };
}

describe('following a run remotely', () => {
  it('reconnects a dropped stream from the last event, prints each event once, and exits as locally', async () => {
    const io = memoryIo();
    const code = await followRun(new ApiClient({ url: origin, token: 'rs_test' }), io, RUN, 'apply', 0);
    expect(streamRequests).toEqual(['0', '2']);
    expect(io.lines.filter((line) => line.startsWith('▶'))).toEqual(['▶ snapshot (planned 1.0 s)', '▶ apply (planned 1.0 s)', '▶ verify (planned 1.0 s)']);
    expect(io.errors.join('\n')).toMatch(/the event stream dropped after event 2: reconnecting/);
    expect(io.lines).toContain(`Run ${RUN} ended applied.`);
    expect(code).toBe(0);
  });

  it('follows an apply that goes on into its watch until the run watches, and exits 0 as locally', async () => {
    const io = memoryIo();
    const code = await followRun(new ApiClient({ url: origin, token: 'rs_test' }), io, WATCHED, 'apply', 0);
    expect(io.lines).toContain(`Run ${WATCHED} ended watching.`);
    expect(code).toBe(0);
  });

  it('a server that cannot be reached is exit 3; a token without a URL, or a URL without a token, is exit 2', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const io = memoryIo();
    expect(await main(['runs'], io, { NODE_ENV: 'test', RUNSHEET_URL: `http://127.0.0.1:${port}`, RUNSHEET_TOKEN: 'rs_x' })).toBe(3);
    expect(io.errors.join('\n')).toMatch(/Could not reach the Runsheet server/);
    expect(await main(['runs'], memoryIo(), { NODE_ENV: 'test', RUNSHEET_TOKEN: 'rs_x' })).toBe(2);
    expect(await main(['runs'], memoryIo(), { NODE_ENV: 'test', RUNSHEET_URL: origin })).toBe(2);
  });
});
