/**
 * The production build the server children run: rebuilt only when stale (bin/build-if-stale.js,
 * the check `npm start` makes), under the lock file the test harness builds under
 * (tests/integration/auth-harness.ts), so a concurrent test run and the bench never write build/ at once.
 * A build that fails (a source caught half-edited in a shared checkout) is tried again every 30 s
 * for up to `waitForFixMs` before the bench gives up.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export async function ensureFreshBuild(root: string, log: (line: string) => void = () => {}, waitForFixMs = 10 * 60_000): Promise<void> {
  const giveUpAt = Date.now() + waitForFixMs;
  for (;;) {
    try {
      return await buildOnce(root);
    } catch (error) {
      if (Date.now() > giveUpAt) throw error;
      log(`${(error as Error).message}; trying again in 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 30_000));
    }
  }
}

async function buildOnce(root: string): Promise<void> {
  const lockPath = path.join(root, '.data', 'test', 'build.lock');
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(lockPath, 'utf8') || 0);
      if (!holder || !isAlive(holder)) {
        fs.rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${lockPath} has been held by process ${holder} for 10 minutes`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    // In a child: buildIfStale ends its process when the build fails, and this one owns a database.
    const entry = pathToFileURL(path.join(root, 'bin', 'build-if-stale.js')).href;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', `import { buildIfStale } from ${JSON.stringify(entry)}; buildIfStale(${JSON.stringify(root)});`], {
      cwd: root,
      // Its progress goes to stderr: stdout carries only the table.
      stdio: ['ignore', 2, 2],
    });
    if (result.status !== 0) throw new Error('the production build failed (its errors are above)');
  } finally {
    fs.rmSync(lockPath, { force: true });
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
