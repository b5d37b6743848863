/**
 * `npx runsheet …`: a thin front end over the same domain modules as the web app.
 * Exit codes: 0 ok, 1 failed or refused, 2 bad usage or input, 3 could not run.
 */
import { startRuntime, type Runtime } from '../app/boot/runtime.server';
import { terminalSafeIo, type CliCommand, type CliIo } from './command';
import { markInterruptedRuns } from '../app/engine/crash-recovery.server';
import { isRunsheetError } from '../app/runtime/errors';
import { CliError, EXIT, EXIT_CODE_BY_KIND, usageError } from './exit-codes';
import { commands } from './commands/index';
import { ApiClient, remoteConfigOf } from './api-client';
import { remoteRunner } from './commands/runs-remote';

const processIo: CliIo = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  readStdin: async () => {
    if (process.stdin.isTTY) return '';
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

export function helpText(): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  return [
    'Usage: npx runsheet <command> [options]',
    '',
    ...commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    '',
    'Exit codes: 0 ok; 1 something ran and failed, or a gate refused; 2 bad usage or input; 3 could not run.',
    'Remote mode: with RUNSHEET_URL and RUNSHEET_TOKEN set, the commands that act on runs use that server\'s API (the token says who acts; --as is refused).',
    'Run `npx runsheet <command> --help` for a command\'s options.',
  ].join('\n');
}

/** The longest command name that prefixes argv wins ("users add" before "users"). */
function findCommand(argv: string[]): { command: CliCommand; rest: string[] } | undefined {
  const matches = commands
    .map((command) => ({ command, words: command.name.split(' ') }))
    .filter(({ words }) => words.every((word, index) => argv[index] === word))
    .sort((a, b) => b.words.length - a.words.length);
  const best = matches[0];
  return best ? { command: best.command, rest: argv.slice(best.words.length) } : undefined;
}

export async function main(argv: string[], rawIo: CliIo = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const io = terminalSafeIo(rawIo);
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === 'help') {
    io.out(helpText());
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  const found = findCommand(argv);
  if (!found) {
    io.err(`Unknown command "${argv.join(' ')}".\n\n${helpText()}`);
    return EXIT.usage;
  }
  const { command, rest } = found;
  if (rest.includes('--help')) {
    io.out(`Usage: npx runsheet ${command.usage}\n\n${command.summary}`);
    return EXIT.ok;
  }
  let runtime: Runtime | undefined;
  try {
    // Remote mode (RUNSHEET_URL + RUNSHEET_TOKEN): what acts on runs goes through the JSON API, never the store.
    const remote = remoteConfigOf(env);
    const runner = remote ? remoteRunner(command.name) : undefined;
    if (remote && runner) return await runner(rest, { io, client: new ApiClient(remote) });
    if (remote && command.touchesRuns) throw usageError(`runsheet ${command.name} works on the store of this machine only: unset RUNSHEET_URL to use it here.`);
    if (command.needsRuntime) runtime = await startRuntime({ log: (line) => io.err(line) });
    if (runtime && command.touchesRuns) await markInterruptedRuns(runtime).catch((error: Error) => io.err(`Could not check for interrupted runs: ${error.message}`));
    return await runCommand(command, rest, { io, runtime });
  } catch (error) {
    return exitCodeOf(error, io, command.name);
  } finally {
    await runtime?.stop();
  }
}

/** Runs one command; whatever it throws becomes its exit code (and a message on stderr). */
export async function runCommand(command: CliCommand, args: string[], context: { io: CliIo; runtime?: Runtime }): Promise<number> {
  const io = terminalSafeIo(context.io);
  try {
    return await command.run(args, { ...context, io });
  } catch (error) {
    return exitCodeOf(error, io, command.name);
  }
}

/** The one place an error becomes an exit code: CliError carries its own, a RunsheetError's kind decides. */
function exitCodeOf(error: unknown, io: CliIo, commandName: string): number {
  if (error instanceof CliError) {
    io.err(error.message);
    return error.exitCode;
  }
  if (isRunsheetError(error)) {
    const gates = error.kind === 'gate' ? ['Refused: these gates are open:', ...(error.gates ?? []).map((gate) => `  ✗ ${gate.label}: ${gate.detail}`), 'Nothing was changed on the target.'] : [];
    io.err(gates.length > 0 ? gates.join('\n') : error.message);
    return EXIT_CODE_BY_KIND[error.kind];
  }
  io.err(`runsheet ${commandName}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return EXIT.unavailable;
}
