#!/usr/bin/env node
// `npm run dev`: the same server with Vite's dev middleware (hot reload) instead of the build.
import { register } from 'tsx/esm/api';

process.env.NODE_ENV = 'development';
register();
const { startServer } = await import('../server/index.ts');
await startServer().catch((error) => {
  console.error(`[runsheet] Could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
