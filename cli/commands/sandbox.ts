import { parseArgs } from 'node:util';
import { eq } from 'drizzle-orm';
import { factSnapshots } from '../../db/schema/index';
import { writeSandboxApiTokens } from '../../app/boot/runtime.server';
import { generateSandbox } from '../../app/sandbox/generate-sandbox.server';
import type { CliCommand } from '../command';
import { EXIT, usageError } from '../exit-codes';

const USAGE = 'sandbox reset [--users N] [--seed S]';

export const sandboxResetCommand: CliCommand = {
  name: 'sandbox reset',
  summary: 'Regenerate the sandbox target deterministically (default 10,000 users, seed 1).',
  usage: USAGE,
  needsRuntime: true,
  async run(args, { io, runtime }) {
    let values;
    try {
      ({ values } = parseArgs({ args, options: { users: { type: 'string', default: '10000' }, seed: { type: 'string', default: '1' } } }));
    } catch (error) {
      throw usageError(`${(error as Error).message}\nUsage: npx runsheet ${USAGE}`);
    }
    const users = Number(values.users);
    const seed = Number(values.seed);
    if (!Number.isSafeInteger(users) || users < 0) throw usageError(`--users must be a whole number ≥ 0, not "${values.users}".`);
    if (!Number.isSafeInteger(seed)) throw usageError(`--seed must be a whole number, not "${values.seed}".`);
    const sandbox = runtime!.targets.find('sandbox');
    if (!sandbox?.rules.sandbox) throw usageError('No sandbox target is configured (runsheet.config.ts marks it `sandbox: true`).');

    const client = await runtime!.targets.pool('sandbox').connect();
    try {
      const summary = await generateSandbox(client, { users, seed });
      // The sandbox's own ledger described the old data: a regenerated sandbox has applied nothing.
      await client.query('drop schema if exists runsheet cascade');
      writeSandboxApiTokens(runtime!.env.dataDir, summary.apiTokens);
      // Facts read from the old sandbox no longer describe it.
      await runtime!.store.db.delete(factSnapshots).where(eq(factSnapshots.target, 'sandbox'));
      io.out(
        `Sandbox regenerated (seed ${seed}): ${summary.users.toLocaleString('en-US')} users, ${summary.organizations.toLocaleString('en-US')} organizations, ` +
          `${summary.memberships.toLocaleString('en-US')} memberships, ${summary.usersWithoutOrg.toLocaleString('en-US')} users without one, in ${(summary.durationMs / 1000).toFixed(1)} s.`,
      );
      return EXIT.ok;
    } finally {
      client.release();
    }
  },
};
