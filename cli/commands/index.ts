import type { CliCommand } from '../command';
import { checkCommand } from './check';
import { importCommand, newCommand } from './import';
import { sandboxResetCommand } from './sandbox';
import { usersCommands } from './users';
import { tokenCommands } from './tokens';
import { logCommands } from './log';
import { plansCommand } from './plans';
import { runCommands } from './runs';

/** Every verb of the command line, in the order `runsheet --help` lists them. */
export const commands: CliCommand[] = [plansCommand, checkCommand, importCommand, newCommand, ...runCommands, ...logCommands, ...usersCommands, ...tokenCommands, sandboxResetCommand];
