import type { Runtime } from '../app/boot/runtime.server';

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
