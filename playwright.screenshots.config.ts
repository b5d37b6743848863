import { defineConfig } from '@playwright/test';
import { chromiumLaunchOptions } from './playwright.config';

/**
 * `npm run screenshots`: walks the dashboard through a real migration on a fresh embedded
 * database and writes docs/screenshots/*.png at 1280×800. Its own data folder and port, so it
 * never touches the e2e tests' server.
 */
const PORT = Number(process.env.SCREENSHOTS_PORT ?? 3124);
export const SCREENSHOTS_DATA_DIR = '.data/screenshots';
/** Where the spec's stand-in webhook receivers listen: the server posts the runs' notifications there. */
export const SCREENSHOTS_RECEIVER_PORT = Number(process.env.SCREENSHOTS_RECEIVER_PORT ?? PORT + 500);
export const SCREENSHOTS_NOTIFY_SECRET = 'screenshots-notify-secret';
/**
 * The server's own copy of plans/ (still named plans, so the pages name files as they do for the
 * committed folder): the walk gives plan 008 a watch window there late on, and plans/ stays as committed.
 */
const PLANS_COPY = '.data/screenshots-plans';
export const SCREENSHOTS_PLANS_DIR = `${PLANS_COPY}/plans`;

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
    command: `rm -rf ${SCREENSHOTS_DATA_DIR} ${PLANS_COPY} && mkdir -p ${PLANS_COPY} && cp -R plans ${SCREENSHOTS_PLANS_DIR} && node bin/start.js`,
    url: `http://localhost:${PORT}/login`,
    reuseExistingServer: false,
    timeout: 180_000,
    env: {
      PORT: String(PORT),
      RUNSHEET_DATA_DIR: SCREENSHOTS_DATA_DIR,
      RUNSHEET_PLANS_DIR: SCREENSHOTS_PLANS_DIR,
      NODE_ENV: 'production',
      NOTIFY_OPS_URL: `http://127.0.0.1:${SCREENSHOTS_RECEIVER_PORT}/ops`,
      NOTIFY_OPS_SECRET: SCREENSHOTS_NOTIFY_SECRET,
      NOTIFY_TEAM_URL: `http://127.0.0.1:${SCREENSHOTS_RECEIVER_PORT}/team`,
      RUNSHEET_NOTIFY_RETRY_BASE: '1s',
    },
    stdout: 'pipe',
  },
});
