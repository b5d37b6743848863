// Builds the production bundle when it is missing or older than its sources, so that
// `npm start` always serves what the checkout holds. The fingerprint covers every input of the build.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const INPUTS = ['app', 'db', 'public', 'vite.config.ts', 'tailwind.config.ts', 'runsheet.config.ts', 'package-lock.json', 'tsconfig.json'];

export function sourceFingerprint(root) {
  const hash = createHash('sha256');
  const visit = (entry) => {
    const full = path.join(root, entry);
    if (!fs.existsSync(full)) return;
    const stat = fs.statSync(full);
    if (stat.isDirectory()) {
      for (const child of fs.readdirSync(full).sort()) visit(path.join(entry, child));
    } else if (!/\.test\.tsx?$/.test(entry)) {
      hash.update(entry).update('\0').update(fs.readFileSync(full)).update('\0');
    }
  };
  INPUTS.forEach(visit);
  return hash.digest('hex');
}

export function buildIfStale(root) {
  const stampFile = path.join(root, 'build', '.fingerprint');
  const fingerprint = sourceFingerprint(root);
  const current = fs.existsSync(stampFile) ? fs.readFileSync(stampFile, 'utf8') : '';
  if (current === fingerprint && fs.existsSync(path.join(root, 'build', 'server', 'index.js'))) return;
  console.log(current ? '[runsheet] Sources changed since the last build: rebuilding…' : '[runsheet] Building the production bundle (first start)…');
  const result = spawnSync(process.execPath, [path.join(root, 'node_modules', '@remix-run', 'dev', 'dist', 'cli.js'), 'vite:build'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  if (result.status !== 0) {
    console.error('[runsheet] The build failed (its errors are above). Fix them, then run npm start again.');
    process.exit(1);
  }
  fs.writeFileSync(stampFile, fingerprint);
}
