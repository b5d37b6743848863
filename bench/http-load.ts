/**
 * The web app under load: `node bin/start.js` as a child process (the production server, as
 * `npm start` runs it), signed in through POST /login like a browser, then autocannon (its
 * programmatic API) against a page with N concurrent connections sharing that session. All traffic
 * goes to 127.0.0.1. Memory is read from /proc/<pid>/status of the server process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import autocannon from 'autocannon';
import { round } from './stats';

export interface ServerProcess {
  pid: number;
  port: number;
  /** http://127.0.0.1:PORT: where the load goes. */
  base: string;
  /** http://localhost:PORT: the app's own origin, for the Origin header of forms. */
  origin: string;
  /** Milliseconds from spawn to the first 200 from /login. */
  readyMs: number;
  output(): string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Environment of a child Runsheet: embedded mode on `dataDir`, its own targets (none inherited). */
export function serverEnv(dataDir: string, port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production', PORT: String(port), RUNSHEET_DATA_DIR: dataDir };
  for (const key of Object.keys(env)) if (key.startsWith('TARGET_') || key === 'DATABASE_URL' || key === 'RUNSHEET_ORIGIN') delete env[key];
  return env;
}

/** Starts `node bin/start.js` and waits until GET /login answers 200 (timed from the spawn). */
export async function startServerProcess(
  root: string,
  dataDir: string,
  options: { timeoutMs?: number; nodeArgs?: string[]; /** Set on top of the embedded-mode environment (e.g. a second instance on the first's store). */ env?: Record<string, string> } = {},
): Promise<ServerProcess> {
  const port = await freePort();
  const timeoutMs = options.timeoutMs ?? 180_000;
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeArgs ?? []), path.join(root, 'bin', 'start.js')], {
    cwd: root,
    env: { ...serverEnv(dataDir, port), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (chunk) => (text += chunk));
  child.stderr!.on('data', (chunk) => (text += chunk));
  const base = `http://127.0.0.1:${port}`;
  const stop = () => stopChild(child);
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before answering:\n${text.slice(-3000)}`);
      if (performance.now() - started > timeoutMs) throw new Error(`the server did not answer /login within ${timeoutMs / 1000} s:\n${text.slice(-3000)}`);
      const status = await fetch(`${base}/login`, { redirect: 'manual', signal: AbortSignal.timeout(2_000) }).then(
        (response) => response.arrayBuffer().then(() => response.status),
        () => 0,
      );
      if (status === 200) break;
      await sleep(20);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { pid: child.pid!, port, base, origin: `http://localhost:${port}`, readyMs: round(performance.now() - started), output: () => text, stop };
}

/** SIGTERM (the server stops its runtime), then SIGKILL after 30 s; by pid, only this child. */
function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const killer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    }, 30_000);
    child.once('exit', () => (clearTimeout(killer), resolve()));
    process.kill(child.pid!, 'SIGTERM');
  });
}

export interface DemoAccount {
  email: string;
  role: string;
  password: string;
}

export function readDemoAccount(dataDir: string, role: string): DemoAccount {
  const accounts = JSON.parse(fs.readFileSync(path.join(dataDir, 'demo-accounts.json'), 'utf8')) as DemoAccount[];
  const account = accounts.find((candidate) => candidate.role === role);
  if (!account) throw new Error(`no ${role} demo account in ${path.join(dataDir, 'demo-accounts.json')}`);
  return account;
}

/**
 * Signs in through the login form, as a browser on http://localhost:PORT would: the request goes
 * to 127.0.0.1 with that Host and Origin (Remix refuses an action whose Origin is not its Host).
 * Returns the "name=value" session cookie.
 */
export async function signIn(server: ServerProcess, account: DemoAccount): Promise<string> {
  const body = new URLSearchParams({ email: account.email, password: account.password, intent: 'login' }).toString();
  const { status, setCookie } = await new Promise<{ status: number; setCookie: string[] }>((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: '/login',
        method: 'POST',
        headers: {
          Host: new URL(server.origin).host,
          Origin: server.origin,
          'Content-Type': 'application/x-www-form-urlencoded',
          'Content-Length': Buffer.byteLength(body),
        },
        timeout: 30_000,
      },
      (response) => {
        response.resume();
        response.once('end', () => resolve({ status: response.statusCode ?? 0, setCookie: response.headers['set-cookie'] ?? [] }));
      },
    );
    request.once('timeout', () => request.destroy(new Error('no answer to POST /login within 30 s')));
    request.once('error', reject);
    request.end(body);
  });
  const cookie = setCookie.find((value) => value.includes('='));
  if (status < 300 || status >= 400 || !cookie) {
    throw new Error(`signing in as ${account.email} answered ${status} without a session cookie; the server said:\n${server.output().slice(-2000)}`);
  }
  return cookie.split(';')[0]!;
}

/** One signed-in GET: its status, size and time. */
export async function getOnce(server: ServerProcess, pathAndQuery: string, cookie: string): Promise<{ status: number; bytes: number; ms: number }> {
  const started = performance.now();
  const response = await fetch(`${server.base}${pathAndQuery}`, { headers: { Cookie: cookie, Accept: 'text/html' }, redirect: 'manual' });
  const body = await response.arrayBuffer();
  return { status: response.status, bytes: body.byteLength, ms: performance.now() - started };
}

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/**
 * `connections` concurrent signed-in readers for `durationS` seconds. Before, untimed,
 * `warmupRequests` requests per connection, all answered (so no backlog of the warm-up is still
 * being served when the timed load starts).
 */
export async function loadRoute(
  server: ServerProcess,
  pathAndQuery: string,
  cookie: string,
  options: { connections: number; durationS: number; warmupRequests: number },
): Promise<LoadResult> {
  const common = { url: `${server.base}${pathAndQuery}`, connections: options.connections, timeout: 30, headers: { Cookie: cookie, Accept: 'text/html' } };
  if (options.warmupRequests > 0) await autocannon({ ...common, amount: options.connections * options.warmupRequests });
  const result = await autocannon({ ...common, duration: options.durationS });
  return {
    requestsPerSecond: round(result.requests.average),
    p50Ms: round(result.latency.p50),
    p99Ms: round(result.latency.p99),
    maxMs: round(result.latency.max),
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/** Peak resident memory of a process so far (VmHWM), in bytes; undefined when it cannot be read. */
export function peakRssBytes(pid: number): number | undefined {
  return statusField(pid, 'VmHWM');
}

export function currentRssBytes(pid: number): number | undefined {
  return statusField(pid, 'VmRSS');
}

function statusField(pid: number, field: string): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
