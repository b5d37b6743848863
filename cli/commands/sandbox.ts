import os from 'node:os';
import { parseArgs } from 'node:util';
import { resetSandbox } from '../../app/sandbox/reset-sandbox.server';
import type { CliCommand } from '../command';
import { EXIT, usageError } from '../exit-codes';

const USAGE = 'sandbox reset [--target sandbox] [--users N] [--seed S] [--plan <id>]';

export const sandboxResetCommand: CliCommand = {
  name: 'sandbox reset',
  summary: "Regenerate a sandbox target deterministically (default 10,000 users, seed 1), then run a plan's sandbox.sql (--plan).",
  usage: USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    let values;
    try {
      ({ values } = parseArgs({
        args,
        options: { target: { type: 'string', default: 'sandbox' }, users: { type: 'string', default: '10000' }, seed: { type: 'string', default: '1' }, plan: { type: 'string' } },
      }));
    } catch (error) {
      throw usageError(`${(error as Error).message}\nUsage: npx runsheet ${USAGE}`);
    }
    const users = Number(values.users);
    const seed = Number(values.seed);
    if (!Number.isSafeInteger(users) || users < 0) throw usageError(`--users must be a whole number ≥ 0, not "${values.users}".`);
    if (!Number.isSafeInteger(seed)) throw usageError(`--seed must be a whole number, not "${values.seed}".`);
    const reset = await resetSandbox(
      { store: runtime!.store, plansDir: runtime!.plansDir, targets: runtime!.targets, dataDir: runtime!.env.dataDir },
      { target: values.target!, users, seed, planId: values.plan, actor: `cli:${os.userInfo().username}` },
    );
    const summary = reset.generated;
    io.out(
      `Sandbox ${reset.target} regenerated (seed ${seed}): ${summary.users.toLocaleString('en-US')} users, ${summary.organizations.toLocaleString('en-US')} organizations, ` +
        `${summary.memberships.toLocaleString('en-US')} memberships, ${summary.usersWithoutOrg.toLocaleString('en-US')} users without one, in ${(summary.durationMs / 1000).toFixed(1)} s.`,
    );
    if (reset.fixture) io.out(`Applied the fixture ${reset.fixture.file} (${reset.fixture.statements} statements, sha256 ${reset.fixture.sha256.slice(0, 12)}) in ${(reset.fixture.durationMs / 1000).toFixed(1)} s.`);
    if (reset.fixtureFailure) {
      const failure = reset.fixtureFailure;
      io.err(`The fixture ${failure.file} failed at line ${failure.line}${failure.sqlstate ? ` (SQLSTATE ${failure.sqlstate})` : ''}: ${failure.message}. Nothing of it was kept; the generated sandbox stays.`);
      return EXIT.failed;
    }
    return EXIT.ok;
  },
};
