/**
 * The concurrent writer load of the apply benchmark: a few connections, each updating one random
 * user (`update platform.users set updated_at = now() where id = $1`) or inserting a user, paced at
 * a fixed rate. It runs in a child process of its own (bench/writer-process.ts), so that work in the
 * bench process (the engine hashing its log, splitting SQL) never delays a writer's clock. Every
 * write is recorded with its start and end in epoch milliseconds, comparable with the parent's.
 *
 * Bounded: the child stops by itself after `maxDurationMs`, and its sessions carry that as their
 * statement_timeout; the parent kills it (by pid) if it does not answer a stop.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { epochMs } from './stats';

export interface WriterLoadOptions {
  url: string;
  connections: number;
  /** Writes per second per connection. A closed loop: a slow write delays that connection's next one. */
  ratePerConnection: number;
  /** Every `insertEvery`-th write of a connection inserts a user; the others update one. */
  insertEvery: number;
  /** Ids to update, each write picks one at random. */
  userIds: string[];
  /** The load stops by itself after this long, whatever the parent says. */
  maxDurationMs: number;
  /** Lower-case letters and digits: part of inserted e-mails, so two loads never collide. */
  tag: string;
}

export interface WriteRecord {
  writer: number;
  kind: 'update' | 'insert';
  startMs: number;
  endMs: number;
  error?: string;
}

export interface WriterLoad {
  /** When every connection was open and writing (epoch ms). */
  startedAtMs: number;
  pid: number;
  /** Stops the writers after their current write and returns every write. */
  stop(): Promise<WriteRecord[]>;
}

type ParentMessage = { type: 'start'; options: WriterLoadOptions } | { type: 'stop' };
type ChildMessage = { type: 'ready'; startedAtMs: number } | { type: 'done'; writes: WriteRecord[] } | { type: 'failed'; message: string };

const APPLICATION_NAME = 'runsheet-bench-writer';
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Parent side

export async function startWriterLoad(options: WriterLoadOptions): Promise<WriterLoad> {
  if (!/^[a-z0-9]+$/.test(options.tag)) throw new Error(`writer tag must be lower-case letters and digits, got "${options.tag}"`);
  if (options.userIds.length === 0) throw new Error('the writer load needs at least one user id to update');
  const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const child = fork(path.join(import.meta.dirname, 'writer-process.ts'), [], {
    execArgv: ['--import', tsxLoader],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages = messageQueue(child);
  child.send({ type: 'start', options } satisfies ParentMessage);
  const ready = await messages.next(READY_TIMEOUT_MS).catch((error: Error) => {
    killChild(child);
    throw error;
  });
  if (ready.type !== 'ready') {
    killChild(child);
    throw new Error(`the writer load did not start: ${ready.type === 'failed' ? ready.message : ready.type}`);
  }
  let stopped: Promise<WriteRecord[]> | undefined;
  return {
    startedAtMs: ready.startedAtMs,
    pid: child.pid!,
    stop: () =>
      (stopped ??= (async () => {
        if (child.connected) child.send({ type: 'stop' } satisfies ParentMessage);
        try {
          const done = await messages.next(options.maxDurationMs + STOP_GRACE_MS);
          if (done.type !== 'done') throw new Error(`the writer load failed: ${done.type === 'failed' ? done.message : done.type}`);
          return done.writes;
        } finally {
          killChild(child);
        }
      })()),
  };
}

/** Messages from the child, one at a time; rejects when the child exits or the wait times out. */
function messageQueue(child: ChildProcess): { next(timeoutMs: number): Promise<ChildMessage> } {
  const queued: ChildMessage[] = [];
  const waiting: { resolve(message: ChildMessage): void; reject(error: Error): void }[] = [];
  let exited: Error | undefined;
  child.on('message', (message: ChildMessage) => {
    const waiter = waiting.shift();
    if (waiter) waiter.resolve(message);
    else queued.push(message);
  });
  child.once('exit', (code, signal) => {
    exited = new Error(`the writer process exited (${signal ?? code})`);
    for (const waiter of waiting.splice(0)) waiter.reject(exited);
  });
  return {
    next: (timeoutMs) => {
      const message = queued.shift();
      if (message) return Promise.resolve(message);
      if (exited) return Promise.reject(exited);
      return new Promise<ChildMessage>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer from the writer process within ${timeoutMs / 1000} s`)), timeoutMs);
        waiting.push({
          resolve: (value) => (clearTimeout(timer), resolve(value)),
          reject: (error) => (clearTimeout(timer), reject(error)),
        });
      });
    },
  };
}

function killChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null && child.pid) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Child side (bench/writer-process.ts)

export function runWriterChild(): void {
  let stopRequested = false;
  let finish: Promise<void> | undefined;
  const send = (message: ChildMessage) => process.send?.(message);
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'stop') {
      stopRequested = true;
      return;
    }
    if (message.type === 'start' && !finish) {
      finish = runWriters(message.options, () => stopRequested, send)
        .catch((error: Error) => void send({ type: 'failed', message: error.message }))
        .finally(() => process.disconnect?.());
    }
  });
  // The parent is gone: nobody will read the results.
  process.on('disconnect', () => {
    stopRequested = true;
  });
}

async function runWriters(options: WriterLoadOptions, stopRequested: () => boolean, send: (message: ChildMessage) => void): Promise<void> {
  const clients: pg.Client[] = [];
  try {
    for (let index = 0; index < options.connections; index++) {
      const client = new pg.Client({
        connectionString: options.url,
        application_name: APPLICATION_NAME,
        statement_timeout: options.maxDurationMs,
        connectionTimeoutMillis: 10_000,
      });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
    }
    const deadline = epochMs() + options.maxDurationMs;
    const intervalMs = 1000 / options.ratePerConnection;
    const writes: WriteRecord[] = [];
    const startedAtMs = epochMs();
    const loops = clients.map((client, writer) => writeLoop(client, writer, { ...options, intervalMs, deadline, stopRequested }, writes));
    send({ type: 'ready', startedAtMs });
    await Promise.all(loops);
    send({ type: 'done', writes });
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => {})));
  }
}

async function writeLoop(
  client: pg.Client,
  writer: number,
  options: WriterLoadOptions & { intervalMs: number; deadline: number; stopRequested(): boolean },
  writes: WriteRecord[],
): Promise<void> {
  let next = epochMs();
  for (let n = 0; !options.stopRequested() && epochMs() < options.deadline; n++) {
    const kind = n % options.insertEvery === options.insertEvery - 1 ? 'insert' : 'update';
    const startMs = epochMs();
    let error: string | undefined;
    try {
      if (kind === 'update') {
        const id = options.userIds[Math.floor(Math.random() * options.userIds.length)]!;
        await client.query('update platform.users set updated_at = now() where id = $1', [id]);
      } else {
        await client.query('insert into platform.users (email, display_name) values ($1, $2)', [
          `bench-${options.tag}-${writer}-${n}@bench.example`,
          'Bench writer',
        ]);
      }
    } catch (failure) {
      error = (failure as Error).message;
    }
    writes.push({ writer, kind, startMs, endMs: epochMs(), ...(error ? { error } : {}) });
    next += options.intervalMs;
    const wait = next - epochMs();
    // Behind schedule (a slow write): start again from now rather than burst to catch up.
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    else next = epochMs();
  }
}
