#!/usr/bin/env node
// The command line's JavaScript entry: Node 20 does not run TypeScript, so tsx loads the CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
