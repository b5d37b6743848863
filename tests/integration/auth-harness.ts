/**
 * Helpers for the accounts / sessions / request-security tests: a fresh production build, a real
 * server started the way `npm start` starts it (on a test database), a real runtime, and signed-in
 * identities. Nothing here is mocked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ServerBuild } from '@remix-run/node';
import { sourceFingerprint } from '../../bin/build-if-stale.js';
import { createAccount, findAccount } from '../../app/accounts/accounts.server';
import type { Role } from '../../app/accounts/permissions';
import { createSession } from '../../app/auth/session.server';
import { startRuntime, type Runtime } from '../../app/boot/runtime.server';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_DIR = path.join(ROOT, 'build');

export interface TestSecrets {
  sessionSecret: string;
  signingKeyPem: string;
}

export function makeSecrets(): TestSecrets {
  const { privateKey } = generateKeyPairSync('ed25519');
  return {
    sessionSecret: `test-session-secret-${randomBytes(24).toString('base64url')}`,
    signingKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

/** The base64 body of a PEM (what would leak if a key leaked, whatever its line breaks). */
export function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
}

/**
 * Secrets the build process had in its environment when this helper built it: if any of them shows
 * up in build/client, the bundle leaks environment. Written beside the build, read by the test.
 */
const CANARY_FILE = path.join(BUILD_DIR, '.test-canary.json');

export interface BuildCanary {
  SESSION_SECRET: string;
  SIGNING_KEY: string;
  DATABASE_URL: string;
}

async function withLock<T>(lockPath: string, work: () => Promise<T>): Promise<T> {
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(lockPath, 'utf8') || 0);
      let alive = false;
      try {
        if (holder) process.kill(holder, 0);
        alive = Boolean(holder);
      } catch (probe) {
        alive = (probe as NodeJS.ErrnoException).code === 'EPERM';
      }
      if (!alive) {
        fs.rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${lockPath} held by process ${holder} for 3 minutes`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    return await work();
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}

/**
 * The production build of the checkout as it is now: reused when build/.fingerprint matches the
 * sources (the same stamp `npm start` writes and reads), built otherwise, with canary secrets in
 * the build's environment. One test file at a time builds.
 */
export async function ensureFreshBuild(options: { requireCanary?: boolean } = {}): Promise<{ built: boolean }> {
  return withLock(path.join(ROOT, '.data', 'test', 'build.lock'), async () => {
    const stamp = path.join(BUILD_DIR, '.fingerprint');
    const fingerprint = sourceFingerprint(ROOT) as string;
    const fresh =
      fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === fingerprint && fs.existsSync(path.join(BUILD_DIR, 'server', 'index.js'));
    if (fresh && (!options.requireCanary || readBuildCanary())) return { built: false };
    const { signingKeyPem } = makeSecrets();
    const canary: BuildCanary = {
      SESSION_SECRET: `canary-session-secret-${randomBytes(16).toString('hex')}`,
      SIGNING_KEY: signingKeyPem,
      DATABASE_URL: `postgres://runsheet:canary-db-password-${randomBytes(8).toString('hex')}@db.invalid:5432/runsheet`,
    };
    const cli = path.join(ROOT, 'node_modules', '@remix-run', 'dev', 'dist', 'cli.js');
    const output = await run(process.execPath, [cli, 'vite:build'], { ...process.env, NODE_ENV: 'production', ...canary });
    if (output.code !== 0) throw new Error(`The production build failed:\n${output.text.slice(-4000)}`);
    fs.writeFileSync(stamp, fingerprint);
    fs.writeFileSync(CANARY_FILE, JSON.stringify(canary));
    return { built: true };
  });
}

export function readBuildCanary(): BuildCanary | undefined {
  try {
    return JSON.parse(fs.readFileSync(CANARY_FILE, 'utf8')) as BuildCanary;
  } catch {
    return undefined;
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk) => (text += chunk));
    child.stderr.on('data', (chunk) => (text += chunk));
    child.on('close', (code) => resolve({ code, text }));
  });
}

export async function importBuild(): Promise<ServerBuild> {
  return (await import(pathToFileURL(path.join(BUILD_DIR, 'server', 'index.js')).href)) as ServerBuild;
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

/** The environment of a real (non-embedded) Runsheet on a test database. */
export function serverEnv(databaseUrl: string, secrets: TestSecrets, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'production',
    PORT: String(port),
    DATABASE_URL: databaseUrl,
    // One superuser for the whole test store (the two-role set-up has its own test).
    RUNSHEET_ALLOW_SUPERUSER: '1',
    SESSION_SECRET: secrets.sessionSecret,
    SIGNING_KEY: secrets.signingKeyPem,
    RUNSHEET_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-test-')),
    ...extra,
  };
}

export interface StartedServer {
  origin: string;
  port: number;
  /** The server process (bin/start.js). */
  pid: number;
  output(): string;
  /** SIGTERM, and waits until it exits. */
  stop(): Promise<void>;
  /** Sends a signal and waits until it exits (SIGKILL: a crash, nothing cleaned up). */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** The environment of an embedded-mode Runsheet (its own PostgreSQL under `dataDir`): no DATABASE_URL, no targets. */
export function embeddedServerEnv(dataDir: string, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return { NODE_ENV: 'production', PORT: String(port), RUNSHEET_DATA_DIR: dataDir, ...extra };
}

/** `npm start`'s own entry (bin/start.js → server/index.ts → build/), on a free port. */
export async function startServer(env: Record<string, string>): Promise<StartedServer> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const key of Object.keys(childEnv)) if ((key.startsWith('TARGET_') || key === 'DATABASE_URL') && !(key in env)) delete childEnv[key];
  const child: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'bin', 'start.js')], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 90 s:\n${text}`)), 90_000);
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('Runsheet is serving')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before serving:\n${text}`));
    });
  });
  await ready;
  const port = Number(env.PORT);
  const kill = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  return {
    origin: `http://localhost:${port}`,
    port,
    pid: child.pid!,
    output: () => text,
    stop: () => kill('SIGTERM'),
    kill,
  };
}

/** A real runtime (migrated store) from the sources, for creating accounts and sessions directly. */
export function openRuntime(env: Record<string, string>): Promise<Runtime> {
  return startRuntime({ source: { ...env } as NodeJS.ProcessEnv });
}

/** An account of `role` (created when missing, without a password) and a live session cookie for it. */
export async function sessionCookieFor(runtime: Runtime, email: string, role: Role): Promise<string> {
  const db = runtime.store.db;
  const account = (await findAccount(db, { email })) ?? (await createAccount(db, { email, role, actor: { name: 'test' } }));
  const setCookie = await createSession(runtime, new Request('http://localhost/'), { accountId: account.id, ip: '127.0.0.1', userAgent: 'vitest' });
  return cookiePair(setCookie);
}

/** "name=value" of a Set-Cookie header value. */
export function cookiePair(setCookie: string): string {
  return setCookie.split(';')[0]!;
}

/** A form posted as the app's own page posts it: its Origin, urlencoded, the answer's redirect not followed. */
export async function postForm(origin: string, path: string, cookie: string, form: Record<string, string>): Promise<{ status: number; body: string; location: string | null }> {
  const response = await fetch(`${origin}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { Cookie: cookie, Origin: origin, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, body: await response.text(), location: response.headers.get('location') };
}
