#!/usr/bin/env node
// `npm start`: a production build of the dashboard on the embedded PostgreSQL (or DATABASE_URL).
import path from 'node:path';
import { register } from 'tsx/esm/api';
import { buildIfStale } from './build-if-stale.js';

const root = path.resolve(import.meta.dirname, '..');
process.env.NODE_ENV ??= 'production';
buildIfStale(root);
register();
const { startServer } = await import('../server/index.ts');
await startServer().catch((error) => {
  console.error(`[runsheet] Could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(error?.name === 'ConfigurationError' ? 2 : 1);
});
