import type { Runtime } from '../app/boot/runtime.server';
import { terminalText } from './terminal-text';

/** What every command writes with: out and err pass through terminalText, so no control character reaches a terminal raw. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** All of standard input (passwords are read from it). */
  readStdin(): Promise<string>;
}

export interface CliCommand {
  /** e.g. "check" or "users add". */
  name: string;
  summary: string;
  usage: string;
  /** Commands that only read files (validate plans, verify a log file) need no database. */
  needsRuntime: boolean;
  /** Commands that act on or read runs: the recovery pass runs first (a run whose driver died is marked interrupted). */
  touchesRuns?: boolean;
  run(args: string[], context: { io: CliIo; runtime?: Runtime }): Promise<number>;
}

/** The io a command is given: whatever it prints has its control characters escaped (idempotent). */
export function terminalSafeIo(io: CliIo): CliIo {
  return { out: (text) => io.out(terminalText(text)), err: (text) => io.err(terminalText(text)), readStdin: () => io.readStdin() };
}
