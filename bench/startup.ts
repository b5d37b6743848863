/**
 * Start-up time of `npm start` (`node bin/start.js`, the build already fresh): from the spawn to
 * the first 200 from GET /login, on an EMPTY data folder (initdb, store migrations, demo accounts,
 * the default sandbox seeded) and again on the same folder once warm. Each run uses a new folder,
 * removed afterwards.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startServerProcess } from './http-load';

export interface StartupSample {
  emptyMs: number;
  warmMs: number;
  /** The server rebuilt the bundle (a source changed during the bench): the sample is not comparable. */
  rebuilt: boolean;
}

const REBUILT = /Building the production bundle|rebuilding/;

export async function measureStartup(root: string, dir: string, log: (line: string) => void): Promise<StartupSample> {
  removeDataDir(dir);
  try {
    const empty = await startServerProcess(root, dir);
    const emptyOutput = empty.output();
    await empty.stop();
    stopLeftoverPostgres(dir);
    const warm = await startServerProcess(root, dir);
    const warmOutput = warm.output();
    await warm.stop();
    stopLeftoverPostgres(dir);
    const sample = { emptyMs: empty.readyMs, warmMs: warm.readyMs, rebuilt: REBUILT.test(emptyOutput) || REBUILT.test(warmOutput) };
    log(`  start-up: empty ${(sample.emptyMs / 1000).toFixed(2)} s, warm ${(sample.warmMs / 1000).toFixed(2)} s${sample.rebuilt ? ' (rebuilt the bundle)' : ''}`);
    return sample;
  } finally {
    stopLeftoverPostgres(dir);
    removeDataDir(dir);
  }
}

/**
 * The server stops the embedded PostgreSQL it started; should it have died first, the postmaster
 * it started on `dir` is stopped here, by the pid in its own postmaster.pid.
 */
function stopLeftoverPostgres(dir: string): void {
  const pidFile = path.join(dir, 'postgres', 'postmaster.pid');
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    process.kill(pid, 0);
  } catch {
    return;
  }
  try {
    process.kill(pid, 'SIGINT'); // PostgreSQL's "fast" shutdown
  } catch {
    return;
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}

function removeDataDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
