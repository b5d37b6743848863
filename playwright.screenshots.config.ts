import { defineConfig } from '@playwright/test';
import { chromiumLaunchOptions } from './playwright.config';

/**
 * `npm run screenshots`: walks the dashboard through a real migration on a fresh embedded
 * database and writes docs/screenshots/*.png at 1280×800. Its own data folder and port, so it
 * never touches the e2e tests' server.
 */
const PORT = Number(process.env.SCREENSHOTS_PORT ?? 3124);
export const SCREENSHOTS_DATA_DIR = '.data/screenshots';

export default defineConfig({
  testDir: 'tests/screenshots',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 240_000,
  reporter: [['list']],
  use: {
    baseURL: `http://localhost:${PORT}`,
    viewport: { width: 1280, height: 800 },
    launchOptions: chromiumLaunchOptions,
    trace: 'retain-on-failure',
  },
  webServer: {
    command: `rm -rf ${SCREENSHOTS_DATA_DIR} && node bin/start.js`,
    url: `http://localhost:${PORT}/login`,
    reuseExistingServer: false,
    timeout: 180_000,
    env: { PORT: String(PORT), RUNSHEET_DATA_DIR: SCREENSHOTS_DATA_DIR, NODE_ENV: 'production' },
    stdout: 'pipe',
  },
});
