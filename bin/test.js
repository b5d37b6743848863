#!/usr/bin/env node
// `npm test`: every test, unit to browser, against real PostgreSQL and real Chromium.
// Vitest first (its global setup builds the production bundle that the route matrix and the
// browser tests use), then Playwright, and one closing "N passed, N failed" line over both.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const cache = path.join(root, '.cache');
fs.mkdirSync(cache, { recursive: true });
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const extra = process.argv.slice(2);

const vitestJson = path.join(cache, 'vitest.json');
const playwrightJson = path.join(cache, 'playwright.json');
fs.rmSync(vitestJson, { force: true });
fs.rmSync(playwrightJson, { force: true });

const vitest = spawnSync(bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson}`, ...extra], { cwd: root, stdio: 'inherit' });
const playwright = spawnSync(bin('playwright'), ['test'], { cwd: root, stdio: 'inherit' });

const counts = { passed: 0, failed: 0, skipped: 0 };
try {
  const report = JSON.parse(fs.readFileSync(vitestJson, 'utf8'));
  counts.passed += report.numPassedTests;
  counts.failed += report.numFailedTests;
  counts.skipped += report.numPendingTests + report.numTodoTests;
} catch {
  counts.failed += 1; // no report: Vitest itself failed to run
}
try {
  const stats = JSON.parse(fs.readFileSync(playwrightJson, 'utf8')).stats;
  counts.passed += stats.expected;
  counts.failed += stats.unexpected + stats.flaky;
  counts.skipped += stats.skipped;
} catch {
  counts.failed += 1;
}
const ok = vitest.status === 0 && playwright.status === 0 && counts.failed === 0;
console.log(`\nvitest: ${vitest.status === 0 ? 'ok' : 'FAILED'}, playwright: ${playwright.status === 0 ? 'ok' : 'FAILED'}`);
console.log(`${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ''}`);
process.exit(ok ? 0 : 1);
