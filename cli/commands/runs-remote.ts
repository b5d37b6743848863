/**
 * The run verbs in remote mode (RUNSHEET_URL + RUNSHEET_TOKEN): the same verbs, options, output
 * and exit codes as the local ones (./runs.ts), through the JSON API instead of the store. The
 * token says who acts, so `--as` is refused. run/rehearse/rollback follow the run's event stream
 * and reconnect from the last event when it drops.
 */
import type { Gate } from '../../app/engine/engine-deps.server';
import type { CheckResult } from '../../app/checks/run-checks.server';
import type { RollbackPreview } from '../../app/engine/rollback-preview.server';
import type { RunEvent } from '../../app/runs/run-events';
import type { RunRecord } from '../../app/runs/run-store.server';
import { isWatchRunningState, mayRollBackFrom, type RunState } from '../../db/run-lifecycle';
import { isFinalState } from '../../app/runs/run-timeline';
import fs from 'node:fs';
import { isRunsheetError } from '../../app/runtime/errors';
import { ApiClient, readEventStream } from '../api-client';
import type { CliIo } from '../command';
import { CliError, EXIT, exitCodeOfRun, usageError, type RunAction } from '../exit-codes';
import { formatResult, parseCheckArgs } from './check';
import { parse, printChecks, printGates, printOutcome, printRollbackPreview, progressPrinter, required } from './runs';

type RemoteRun = (args: string[], context: { io: CliIo; client: ApiClient }) => Promise<number>;

/** A run as the API answers it (dates as text, no frozen plan). */
type RunJson = Omit<RunRecord, 'frozenPlan' | 'createdAt' | 'updatedAt'> & { createdAt: string; state: RunState };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The token says who acts: `--as` would be a second, unchecked answer to that. */
function refuseAs(args: string[]): void {
  if (args.some((arg) => arg === '--as' || arg.startsWith('--as='))) {
    throw usageError('--as is refused in remote mode: the API token (RUNSHEET_TOKEN) says who acts. Drop --as, or unset RUNSHEET_URL to use the store here.');
  }
}

async function workingRun(client: ApiClient, io: CliIo, input: { planId: string; target: string; newAttempt?: boolean }): Promise<RunJson> {
  const { run, opened } = await client.call<{ run: RunJson; opened: boolean }>('POST /plans/{planId}/runs', { params: { planId: input.planId }, body: { target: input.target, newAttempt: input.newAttempt ?? false } });
  io.out(`${opened ? 'Opened run' : 'Run'} ${run.id} (${run.kind}, ${run.state}) of ${run.planId} on ${run.target}, checksum ${run.planChecksum.slice(0, 12)}`);
  return run;
}

async function printReadiness(client: ApiClient, io: CliIo, runId: string): Promise<void> {
  const detail = await client.call<{ run: RunJson; gates: Gate[] | null }>('GET /runs/{runId}', { params: { runId } });
  io.out(`Run ${runId} is ${detail.run.state}.`);
  printGates(io, detail.gates ?? undefined);
}

/** How long a dropped stream waits before reconnecting, and how many failures in a row end the wait (exit 3). */
const RECONNECT_MS = 1_000;
const RECONNECT_ATTEMPTS = 10;

/**
 * Prints the run's events as the local mode does while it drives, until the stream's `end`; a
 * dropped stream reconnects with Last-Event-ID. Then prints the outcome; the exit code is the
 * local one (exitCodeOfRun).
 */
export async function followRun(client: ApiClient, io: CliIo, runId: string, action: RunAction, afterSeq: number): Promise<number> {
  const print = progressPrinter(io);
  let lastSeq = afterSeq;
  let failures = 0;
  for (;;) {
    let ended = false;
    try {
      const response = await client.raw(`/api/v1/runs/${runId}/events`, { headers: { Accept: 'text/event-stream', 'Last-Event-ID': String(lastSeq) } });
      failures = 0;
      for await (const message of readEventStream(response.body!)) {
        if (message.event === 'run-event') {
          const event = JSON.parse(message.data) as RunEvent & { seq: number };
          if (event.seq <= lastSeq) continue;
          lastSeq = event.seq;
          print(event);
          // The drive is over once the run watches (the stream goes on for the watch's rounds): the local command returns here too.
          if (event.type === 'state.changed' && isWatchRunningState(event.payload.to)) {
            ended = true;
            break;
          }
        } else if (message.event === 'end') {
          ended = true;
          break;
        }
      }
    } catch (error) {
      if (!(error instanceof CliError) && !(error instanceof TypeError) && !((error as Error).name === 'AbortError')) throw error;
      failures++;
      if (failures >= RECONNECT_ATTEMPTS) throw new CliError(`Lost the event stream of run ${runId} and could not reconnect (${(error as Error).message}). The run goes on on the server: GET /api/v1/runs/${runId}.`, EXIT.unavailable);
    }
    if (ended) break;
    // The stream closed without `end` (a proxy timeout, a restart): done if the run is final and every event was printed.
    const detail = await client.call<{ run: RunJson; lastSeq: number }>('GET /runs/{runId}', { params: { runId } });
    if (isFinalState(detail.run.state) && detail.lastSeq <= lastSeq) break;
    io.err(`  (the event stream dropped after event ${lastSeq}: reconnecting)`);
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
  const { run } = await client.call<{ run: RunJson }>('GET /runs/{runId}', { params: { runId } });
  printOutcome(io, run as unknown as RunRecord, action);
  return exitCodeOfRun(run as unknown as RunRecord, action);
}

const lastSeqOf = async (client: ApiClient, runId: string) => (await client.call<{ lastSeq: number }>('GET /runs/{runId}', { params: { runId } })).lastSeq;

export const REMOTE_RUN_COMMANDS: Readonly<Record<string, RemoteRun>> = {
  async run(args, { io, client }) {
    const usage = 'run <plan> --target T [--confirm NAME]';
    const { values, positionals } = parse(args, { target: { type: 'string' }, confirm: { type: 'string' } }, usage);
    const run = await workingRun(client, io, { planId: positionals[0]!, target: required(values, 'target', usage) });
    const after = await lastSeqOf(client, run.id);
    await client.call('POST /runs/{runId}/execute', { params: { runId: run.id }, body: { confirm: values.confirm } });
    return followRun(client, io, run.id, 'apply', after);
  },

  async rehearse(args, { io, client }) {
    const usage = 'rehearse <plan> --target T';
    const { values, positionals } = parse(args, { target: { type: 'string' } }, usage);
    const started = await client.call<{ runId: string }>('POST /plans/{planId}/rehearse', { params: { planId: positionals[0]! }, body: { target: required(values, 'target', usage) } });
    io.out(`Rehearsing in run ${started.runId}`);
    return followRun(client, io, started.runId, 'rehearse', 0);
  },

  async rollback(args, { io, client }) {
    const usage = 'rollback <run-id | plan --target T> [--confirm NAME]';
    const { values, positionals } = parse(args, { target: { type: 'string' }, confirm: { type: 'string' } }, usage);
    let runId = positionals[0]!;
    if (!UUID.test(runId)) {
      const target = required(values, 'target', usage);
      const { runs } = await client.call<{ runs: RunJson[] }>('GET /runs', { query: { plan: runId, target, limit: '20' } });
      const latest = runs.find((run) => run.kind === 'execute');
      if (!latest || !mayRollBackFrom(latest.state)) {
        throw new CliError(`No applied, failed or interrupted run of ${runId} on ${target} to roll back${latest ? ` (its latest run ${latest.id} is ${latest.state})` : ''}.`, EXIT.failed);
      }
      runId = latest.id;
      io.out(`Rolling back run ${runId} (${latest.state})`);
    }
    printRollbackPreview(io, await client.call<RollbackPreview>('GET /runs/{runId}/rollback', { params: { runId } }));
    const after = await lastSeqOf(client, runId);
    await client.call('POST /runs/{runId}/rollback', { params: { runId }, body: { confirm: values.confirm } });
    return followRun(client, io, runId, 'rollback', after);
  },

  async cancel(args, { io, client }) {
    const { positionals } = parse(args, {}, 'cancel <run-id>');
    const { message } = await client.call<{ message: string }>('POST /runs/{runId}/cancel', { params: { runId: positionals[0]! } });
    io.out(`Run ${positionals[0]}: ${message}`);
    return EXIT.ok;
  },

  async pause(args, { io, client }) {
    const { values, positionals } = parse(args, { reason: { type: 'string' } }, 'pause <run-id> [--reason "…"]');
    const { requested } = await client.call<{ requested: boolean }>('POST /runs/{runId}/pause', { params: { runId: positionals[0]! }, body: { reason: values.reason } });
    io.out(requested ? `Pause requested for run ${positionals[0]}: its backfill stops before the next batch.` : `Run ${positionals[0]}'s backfill is already paused.`);
    return EXIT.ok;
  },

  async resume(args, { io, client }) {
    const { positionals } = parse(args, {}, 'resume <run-id>');
    const { requested } = await client.call<{ requested: boolean }>('POST /runs/{runId}/resume', { params: { runId: positionals[0]! } });
    io.out(requested ? `Resume requested for run ${positionals[0]}.` : `Run ${positionals[0]}'s backfill is not paused.`);
    return EXIT.ok;
  },

  async tick(args, { io, client }) {
    const usage = 'tick <plan> --target T --item ID [--untick] [--new-attempt]';
    const { values, positionals } = parse(args, { target: { type: 'string' }, item: { type: 'string' }, untick: { type: 'boolean' }, 'new-attempt': { type: 'boolean' } }, usage);
    const target = required(values, 'target', usage);
    const itemId = required(values, 'item', usage);
    const run = await workingRun(client, io, { planId: positionals[0]!, target, newAttempt: values['new-attempt'] === true });
    const { tick } = await client.call<{ tick: { itemId: string; ticked: boolean; by: string; at: string } }>('POST /runs/{runId}/ticks', { params: { runId: run.id }, body: { itemId, ticked: values.untick !== true } });
    io.out(`${tick.ticked ? 'Ticked' : 'Unticked'} ${tick.itemId} as ${tick.by} at ${tick.at}.`);
    await printReadiness(client, io, run.id);
    return EXIT.ok;
  },

  async criterion(args, { io, client }) {
    const usage = 'criterion <plan> --target T --number N [--untick]';
    const { values, positionals } = parse(args, { target: { type: 'string' }, number: { type: 'string' }, untick: { type: 'boolean' } }, usage);
    const target = required(values, 'target', usage);
    const numberText = required(values, 'number', usage);
    if (!/^[1-9]\d*$/.test(numberText)) throw usageError(`--number is the criterion's number on the plan page (1, 2, …), not "${numberText}".\nUsage: npx runsheet ${usage}`);
    const { runs } = await client.call<{ runs: RunJson[] }>('GET /runs', { query: { plan: positionals[0]!, target, limit: '20' } });
    const run = runs.find((candidate) => candidate.kind === 'execute');
    if (!run) throw new CliError(`No run of ${positionals[0]} on ${target} yet: success criteria are ticked in a run, after it executes.`, EXIT.failed);
    const { event } = await client.call<{ event: { type: string; actor: string; at: string } }>('POST /runs/{runId}/criteria', { params: { runId: run.id }, body: { number: Number(numberText), ticked: values.untick !== true } });
    io.out(`${event.type === 'criterion.ticked' ? 'Ticked' : 'Unticked'} success criterion ${numberText} of run ${run.id} as ${event.actor} at ${event.at}.`);
    return EXIT.ok;
  },

  async 'sign-off'(args, { io, client }) {
    const usage = 'sign-off <plan> --target T';
    const { values, positionals } = parse(args, { target: { type: 'string' } }, usage);
    const run = await workingRun(client, io, { planId: positionals[0]!, target: required(values, 'target', usage) });
    const { signedOffBy } = await client.call<{ signedOffBy: string }>('POST /runs/{runId}/sign-off', { params: { runId: run.id } });
    io.out(`Signed off by ${signedOffBy}.`);
    await printReadiness(client, io, run.id);
    return EXIT.ok;
  },

  async prechecks(args, { io, client }) {
    const usage = 'prechecks <plan> --target T';
    const { values, positionals } = parse(args, { target: { type: 'string' } }, usage);
    const run = await workingRun(client, io, { planId: positionals[0]!, target: required(values, 'target', usage) });
    const { results, passed } = await client.call<{ results: CheckResult[]; passed: boolean }>('POST /runs/{runId}/checks', { params: { runId: run.id }, body: { phase: 'pre' } });
    printChecks(io, results);
    await printReadiness(client, io, run.id);
    return passed ? EXIT.ok : EXIT.failed;
  },

  async waive(args, { io, client }) {
    const usage = 'waive <plan> --target T --rule R --file F --line N --reason "…"';
    const { values, positionals } = parse(args, { target: { type: 'string' }, rule: { type: 'string' }, file: { type: 'string' }, line: { type: 'string' }, reason: { type: 'string' } }, usage);
    const lineText = required(values, 'line', usage);
    if (!/^\d+$/.test(lineText)) throw usageError(`--line is a line number, not "${lineText}".\nUsage: npx runsheet ${usage}`);
    const run = await workingRun(client, io, { planId: positionals[0]!, target: required(values, 'target', usage) });
    const { waiver, recorded } = await client.call<{ waiver: { rule: string; file: string; line: number; by: string; reason: string }; recorded: boolean }>('POST /runs/{runId}/waivers', {
      params: { runId: run.id },
      body: { rule: required(values, 'rule', usage), file: required(values, 'file', usage), line: Number(lineText), reason: required(values, 'reason', usage) },
    });
    io.out(`${recorded ? 'Waived' : 'Already waived'} ${waiver.rule} at ${waiver.file}:${waiver.line} for run ${run.id} by ${waiver.by}: ${waiver.reason}`);
    await printReadiness(client, io, run.id);
    return EXIT.ok;
  },

  async 'log export'(args, { io, client }) {
    const usage = 'log export <run-id> [--out FILE]';
    const { values, positionals } = parse(args, { out: { type: 'string' } }, usage);
    const runId = positionals[0]!;
    if (!UUID.test(runId)) throw usageError(`"${runId}" is not a run id (a uuid).\nUsage: npx runsheet ${usage}`);
    let envelope: unknown;
    try {
      envelope = await client.call('GET /runs/{runId}/log', { params: { runId } });
    } catch (error) {
      // As locally: a run without a signed log yet is "ran and found nothing to export" (exit 1).
      if (isRunsheetError(error, 'not_found')) throw new CliError(error.message, EXIT.failed);
      throw error;
    }
    const text = `${JSON.stringify(envelope, null, 2)}\n`;
    const out = values.out as string | undefined;
    if (!out) io.out(text);
    else {
      fs.writeFileSync(out, text);
      io.err(`Wrote the signed log of run ${runId} to ${out}.\nVerify it with: npx runsheet log verify ${out} --url ${client.config.url}`);
    }
    return EXIT.ok;
  },

  async check(args, { io, client }) {
    const { values, positionals } = parseCheckArgs(args);
    const phase = values.phase!;
    const outcome = await client.call<{ plan: string; checksum: string; target: string; passed: boolean; results: CheckResult[] }>('POST /plans/{planId}/check', {
      params: { planId: positionals[0]! },
      body: { target: values.target, phase },
    });
    const failed = outcome.results.filter((result) => !result.passed && !result.skipped);
    if (values.json) {
      io.out(JSON.stringify({ plan: outcome.plan, checksum: outcome.checksum, target: outcome.target, phase, passed: outcome.passed, results: outcome.results }, null, 2));
    } else {
      io.out(`${outcome.plan} on ${outcome.target}, phase ${phase} (checksum ${outcome.checksum.slice(0, 12)})`);
      for (const result of outcome.results) io.out(formatResult(result));
      const skipped = outcome.results.filter((result) => result.skipped).length;
      io.out(`${outcome.results.length - failed.length - skipped} passed, ${failed.length} failed${skipped ? `, ${skipped} skipped` : ''}`);
    }
    return failed.length === 0 ? EXIT.ok : EXIT.failed;
  },

  async runs(args, { io, client }) {
    const { values } = parse(args, { plan: { type: 'string' }, target: { type: 'string' }, json: { type: 'boolean' } }, 'runs [--plan P] [--target T] [--json]', [0, 0]);
    const { runs } = await client.call<{ runs: RunJson[] }>('GET /runs', { query: { plan: values.plan as string | undefined, target: values.target as string | undefined } });
    if (values.json) {
      io.out(JSON.stringify(runs, null, 2));
      return EXIT.ok;
    }
    if (runs.length === 0) io.out('No runs.');
    for (const run of runs) {
      io.out(`${run.id}  ${run.kind === 'rehearsal' ? 'REHEARSAL ' : ''}${run.state.padEnd(16)} ${run.planId} on ${run.target}  ${run.planChecksum.slice(0, 12)}  created ${run.createdAt} by ${run.createdBy}${run.executedBy ? `, run by ${run.executedBy}` : ''}`);
    }
    return EXIT.ok;
  },
};

/** Runs a command remotely: undefined when the command has no remote form. */
export function remoteRunner(name: string): ((args: string[], context: { io: CliIo; client: ApiClient }) => Promise<number>) | undefined {
  const run = REMOTE_RUN_COMMANDS[name];
  if (!run) return undefined;
  return (args, context) => {
    refuseAs(args);
    return run(args, context);
  };
}
