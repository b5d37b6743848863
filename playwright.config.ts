import { defineConfig, devices } from '@playwright/test';

const PORT = Number(process.env.E2E_PORT ?? 3123);
export const E2E_DATA_DIR = process.env.E2E_DATA_DIR ?? '.data/e2e';

/** Debian's Chromium; Playwright cannot download its own browsers here. */
export const chromiumLaunchOptions = {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};

export default defineConfig({
  testDir: 'tests/e2e',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  reporter: [['list'], ['json', { outputFile: '.cache/playwright.json' }]],
  use: {
    baseURL: `http://localhost:${PORT}`,
    viewport: { width: 1280, height: 800 },
    launchOptions: chromiumLaunchOptions,
    trace: 'retain-on-failure',
  },
  projects: [{ name: 'chromium', use: { ...devices['Desktop Chrome'], viewport: { width: 1280, height: 800 }, launchOptions: chromiumLaunchOptions } }],
  webServer: {
    // A fresh embedded database for every run: the tests create what they need. The plans are
    // the real ones plus a deliberately broken fixture (tests/fixtures/e2e-plans).
    command: `rm -rf ${E2E_DATA_DIR} && mkdir -p ${E2E_DATA_DIR}/plans && cp -r plans/* tests/fixtures/e2e-plans/* ${E2E_DATA_DIR}/plans/ && node bin/start.js`,
    url: `http://localhost:${PORT}/login`,
    reuseExistingServer: false,
    timeout: 180_000,
    env: { PORT: String(PORT), RUNSHEET_DATA_DIR: E2E_DATA_DIR, RUNSHEET_PLANS_DIR: `${E2E_DATA_DIR}/plans`, NODE_ENV: 'production' },
    stdout: 'pipe',
  },
});
