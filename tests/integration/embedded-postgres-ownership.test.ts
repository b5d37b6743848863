/**
 * Issue 10, reproduction 12: after the server was killed (SIGKILL) and started again, the new
 * server attached to the surviving embedded PostgreSQL as a non-owner, `.data/postgres.json`
 * still named the dead process, and a normal stop left PostgreSQL running with no owner.
 * Now a server owns its PostgreSQL: it recognises a cluster left by a dead owner, stops it and
 * starts it again as its own, records itself, and stops it when it stops. A second server does
 * not take a cluster whose owner is alive. Real processes throughout (bin/start.js, postgres).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedServerEnv, freePort, ROOT, startServer, type StartedServer } from './auth-harness';

let dataDir: string;
const servers: StartedServer[] = [];

const record = () => JSON.parse(fs.readFileSync(path.join(dataDir, 'postgres.json'), 'utf8')) as { ownerPid: number; port: number };
const postmasterPidFile = () => path.join(dataDir, 'postgres', 'postmaster.pid');
const postmasterPid = () => Number(fs.readFileSync(postmasterPidFile(), 'utf8').split('\n')[0]);

/** Alive and not a zombie waiting for its parent to reap it. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function start(): Promise<StartedServer> {
  const server = await startServer(embeddedServerEnv(dataDir, await freePort()));
  servers.push(server);
  return server;
}

beforeAll(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-owner-'));
});

afterAll(async () => {
  for (const server of servers) await server.stop();
  // Whatever a failed assertion left behind: no postgres outlives the test.
  if (fs.existsSync(postmasterPidFile())) {
    const pid = postmasterPid();
    if (running(pid)) process.kill(pid, 'SIGINT');
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('the embedded PostgreSQL belongs to the server that runs it', () => {
  let killedPostmaster: number;
  let second: StartedServer;

  it('a server killed with SIGKILL leaves its PostgreSQL running, recorded under its dead pid', async () => {
    const first = await start();
    expect(record().ownerPid).toBe(first.pid);
    killedPostmaster = postmasterPid();
    await first.kill('SIGKILL');
    expect(running(first.pid)).toBe(false);
    expect(running(killedPostmaster)).toBe(true);
    expect(record().ownerPid).toBe(first.pid);
  });

  it('the next server takes the cluster over: it stops the orphan, starts PostgreSQL as its own and records itself', async () => {
    second = await start();
    expect(record().ownerPid).toBe(second.pid);
    expect(running(killedPostmaster)).toBe(false);
    expect(postmasterPid()).not.toBe(killedPostmaster);
    expect(running(postmasterPid())).toBe(true);
    expect(second.output()).toMatch(new RegExp(`left running by process \\d+, which is gone`));
    const login = await fetch(`${second.origin}/login`);
    await login.text();
    expect(login.status).toBe(200);
  });

  it('a second server does not take a cluster whose owner is alive: it refuses to start, saying who owns it', async () => {
    const refused = await start().then(
      () => undefined,
      (error: Error) => error.message,
    );
    expect(refused).toMatch(new RegExp(`belongs to another Runsheet server, process ${second.pid} .*which is still running`));
    expect(record().ownerPid).toBe(second.pid);
    expect(running(postmasterPid())).toBe(true);
  });

  it('a normal stop (SIGTERM) stops PostgreSQL too and removes the record', async () => {
    const postmaster = postmasterPid();
    await second.stop();
    expect(running(postmaster)).toBe(false);
    expect(fs.existsSync(postmasterPidFile())).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'postgres.json'))).toBe(false);
  });

  it('a server started while a command owns the cluster connects to it and leaves it to that command (whichever starts first owns it)', async () => {
    const command = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        "const { ensureEmbeddedPostgres } = await import('./app/runtime/embedded-postgres.server.ts');" +
          'const handle = await ensureEmbeddedPostgres(process.argv[1]);' +
          "process.on('SIGTERM', async () => { await handle.stop(); process.exit(0); });" +
          "console.log('owner ready');",
        dataDir,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        command.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('owner ready') && resolve());
        command.once('exit', (code) => reject(new Error(`the owning command exited (${code})`)));
      });
      expect(record().ownerPid).toBe(command.pid);
      const postmaster = postmasterPid();
      const guest = await start();
      expect(record().ownerPid).toBe(command.pid);
      await guest.stop();
      expect(running(postmaster)).toBe(true);
      await new Promise((resolve) => {
        command.once('exit', resolve);
        command.kill('SIGTERM');
      });
      expect(running(postmaster)).toBe(false);
    } finally {
      if (command.exitCode === null && command.signalCode === null) command.kill('SIGKILL');
    }
  });

  it('a recorded owner pid that now belongs to a process started later is no owner: the server starts', async () => {
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const password = fs.readFileSync(path.join(dataDir, 'postgres.password'), 'utf8');
      fs.writeFileSync(path.join(dataDir, 'postgres.json'), JSON.stringify({ port: await freePort(), password, ownerPid: stranger.pid, ownerRole: 'server', startedAt: '2020-01-01T00:00:00.000Z' }));
      const third = await start();
      expect(record().ownerPid).toBe(third.pid);
      await third.stop();
      expect(fs.existsSync(postmasterPidFile())).toBe(false);
    } finally {
      stranger.kill('SIGKILL');
    }
  });
});
