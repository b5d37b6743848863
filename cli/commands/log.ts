/**
 * `runsheet log export` and `runsheet log verify`: the signed run log for auditors
 * (docs/decisions/011-signed-log-dsse-in-toto.md). Verifying a file needs no database when the
 * keys come from --key or --url; the keys are never taken from the file being checked.
 */
import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { assertRunId } from '../../app/runs/run-log.server';
import { exportRunLog, noSignedLogYet, publishedSigningKeys, type RunLogStatement } from '../../app/runs/signing.server';
import { parseEnvelope, parsePublicKeys, verifyEnvelope, verifyRunAnchors, verifyStoredRunLog } from '../../app/runs/verify-run-log.server';
import { readRunAnchors } from '../../app/targets/ledger.server';
import { startRuntime, type Runtime } from '../../app/boot/runtime.server';
import type { CliCommand, CliIo } from '../command';
import { CliError, EXIT, unavailableError, usageError } from '../exit-codes';
import { isRunsheetError } from '../../app/runtime/errors';

const EXPORT_USAGE = 'log export <run-id> [--out FILE]';
const VERIFY_USAGE = 'log verify <file> [--key PEM-FILE]… [--url BASE-URL]  |  log verify --run <run-id> [--key PEM-FILE]…';

function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, usage: string) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw usageError(`${error instanceof Error ? error.message : String(error)}\nUsage: npx runsheet ${usage}`);
  }
}

function runIdArgument(value: string | undefined, usage: string): string {
  if (!value) throw usageError(`Usage: npx runsheet ${usage}`);
  try {
    return assertRunId(value);
  } catch (error) {
    if (isRunsheetError(error, 'invalid_input')) throw usageError(error.message);
    throw error;
  }
}

const logExport: CliCommand = {
  name: 'log export',
  summary: "Write a run's latest signed log (a DSSE envelope); it never signs (exit 1 when the run has none yet)",
  usage: EXPORT_USAGE,
  needsRuntime: true,
  touchesRuns: true,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(args, { out: { type: 'string' } }, EXPORT_USAGE);
    if (positionals.length !== 1) throw usageError(`Usage: npx runsheet ${EXPORT_USAGE}`);
    const runId = runIdArgument(positionals[0], EXPORT_USAGE);
    if (!runtime) throw unavailableError('runsheet log export needs the store, which did not start.');
    const envelope = await exportRunLog(runtime.store.pool, runId);
    if (!envelope) throw new CliError(noSignedLogYet(runId), EXIT.failed);
    const text = `${JSON.stringify(envelope, null, 2)}\n`;
    const out = values.out as string | undefined;
    if (!out) {
      io.out(text);
      return EXIT.ok;
    }
    fs.writeFileSync(out, text);
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as RunLogStatement;
    io.err(
      `Wrote the signed log of run ${runId} (${statement.predicate.events.length} events, head ${statement.subject[0].digest.sha256}) to ${out}.\n` +
        `Verify it with: npx runsheet log verify ${out} --url <runsheet address>`,
    );
    return EXIT.ok;
  },
};

/** Trusted keys from --key files and --url; undefined when neither was given. */
async function keysFromOptions(keyFiles: string[], url: string | undefined): Promise<string[] | undefined> {
  if (keyFiles.length === 0 && !url) return undefined;
  const pems: string[] = [];
  for (const file of keyFiles) {
    try {
      pems.push(fs.readFileSync(file, 'utf8'));
    } catch (error) {
      throw usageError(`Cannot read the key file ${file}: ${(error as Error).message}`);
    }
  }
  if (url) pems.push(await fetchPublishedKeys(url));
  try {
    parsePublicKeys(pems);
  } catch (error) {
    throw usageError(`The trusted keys cannot be read: ${(error as Error).message}`);
  }
  return pems;
}

async function fetchPublishedKeys(base: string): Promise<string> {
  let address: URL;
  try {
    address = new URL(`${base.replace(/\/+$/, '')}/signing-key.pem`);
  } catch {
    throw usageError(`--url must be Runsheet's address, e.g. https://runsheet.example.com (got "${base}").`);
  }
  let response: Response;
  try {
    response = await fetch(address, { signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    throw unavailableError(`Could not fetch ${address}: ${(error as Error).message}`);
  }
  if (!response.ok) throw unavailableError(`Could not fetch ${address}: HTTP ${response.status}.`);
  return response.text();
}

/** The run's checkpoints against the heads its target anchored. */
async function verifyAnchorsOf(runtime: Runtime, runId: string) {
  const { rows } = await runtime.store.pool.query<{ target: string }>('select target from runs where id = $1', [runId]);
  const name = rows[0]?.target ?? '(unknown run)';
  const target = runtime.targets.find(name);
  return verifyRunAnchors(runtime.store.pool, runId, {
    name,
    readAnchors: () => (target ? readRunAnchors(runtime.targets.pool(name), runId) : Promise.reject(new Error(`target ${name} is not configured here (TARGET_${name.toUpperCase()}_URL)`))),
  });
}

/** The keys this installation publishes (what /signing-key.pem serves). */
async function publishedKeys(runtime: Runtime): Promise<string[]> {
  return (await publishedSigningKeys(runtime.store.pool, runtime.signingKeyPem)).map((key) => key.publicKeyPem);
}

/** `log verify` needs the store only for --run, or to read the published keys when none are given. */
async function withRuntime<T>(given: Runtime | undefined, io: CliIo, work: (runtime: Runtime) => Promise<T>): Promise<T> {
  if (given) return work(given);
  const runtime = await startRuntime({ log: (line) => io.err(line) });
  try {
    return await work(runtime);
  } finally {
    await runtime.stop();
  }
}

function readEnvelopeFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw usageError(`Cannot read ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw usageError(`${file} is not JSON: ${(error as Error).message}`);
  }
  try {
    parseEnvelope(value);
  } catch (error) {
    if (isRunsheetError(error, 'invalid_input')) throw usageError(`${file} is ${error.message}`);
    throw error;
  }
  return value;
}

const logVerify: CliCommand = {
  name: 'log verify',
  summary: 'Verify a signed log file (keys from --key or --url, never from the file), or a stored run log with --run',
  usage: VERIFY_USAGE,
  needsRuntime: false,
  async run(args, { io, runtime }) {
    const { values, positionals } = parse(
      args,
      { key: { type: 'string', multiple: true }, url: { type: 'string' }, run: { type: 'string' } },
      VERIFY_USAGE,
    );
    const keyFiles = (values.key as string[] | undefined) ?? [];
    const url = values.url as string | undefined;

    if (values.run !== undefined) {
      if (positionals.length !== 0) throw usageError(`Give a file or --run, not both.\nUsage: npx runsheet ${VERIFY_USAGE}`);
      const runId = runIdArgument(values.run as string, VERIFY_USAGE);
      const given = await keysFromOptions(keyFiles, url);
      const { result, anchors } = await withRuntime(runtime, io, async (started) => ({
        result: await verifyStoredRunLog(started.store.pool, runId, given ?? (await publishedKeys(started))),
        anchors: await verifyAnchorsOf(started, runId),
      }));
      if (!result.ok) {
        io.out(`FAILED: the stored log of run ${runId} does not match what was signed: ${result.reason}`);
        if (result.firstBadSeq !== undefined) io.out(`First bad event: seq ${result.firstBadSeq}`);
        return EXIT.failed;
      }
      if (anchors.status === 'broken') {
        io.out(`FAILED: the stored log of run ${runId} does not hold what its target anchored: ${anchors.reason}`);
        io.out(`Missing or changed checkpoint: through event ${anchors.seq}`);
        return EXIT.failed;
      }
      const tail = result.eventCount - result.signedSeq;
      io.out(
        [
          result.checkpointCount > 0
            ? `OK: the stored log of run ${runId} matches its signed checkpoints`
            : `OK: the stored log of run ${runId} chains correctly, but has no signed checkpoint yet`,
          `  head:    ${result.head}`,
          `  events:  ${result.eventCount}`,
          `  signed:  through event ${result.signedSeq} (${result.checkpointCount} checkpoint${result.checkpointCount === 1 ? '' : 's'})`,
          ...(tail > 0 ? [`  ${tail} later event${tail === 1 ? ' is' : 's are'} chained but not signed yet`] : []),
          anchors.status === 'anchored'
            ? `  anchors: ${anchors.anchors} on target ${anchors.target}, through event ${anchors.throughSeq}, all held by the store`
            : `  anchors: ${anchors.status === 'none' ? 'none' : anchors.status.toUpperCase()}: ${anchors.reason}`,
        ].join('\n'),
      );
      // An anchor the target should hold and does not is not a pass; a target that cannot be read now could not be checked.
      if (anchors.status === 'missing') return EXIT.failed;
      if (anchors.status === 'unreadable') return EXIT.unavailable;
      return EXIT.ok;
    }

    if (positionals.length !== 1) throw usageError(`Usage: npx runsheet ${VERIFY_USAGE}`);
    const file = positionals[0]!;
    const envelope = readEnvelopeFile(file);
    const keys = (await keysFromOptions(keyFiles, url)) ?? (await withRuntime(runtime, io, publishedKeys));
    const result = verifyEnvelope(envelope, keys);
    if (!result.ok) {
      io.out(`FAILED: ${file} does not verify: ${result.reason}`);
      if (result.firstBadSeq !== undefined) io.out(`First bad event: seq ${result.firstBadSeq}`);
      return EXIT.failed;
    }
    io.out(
      [
        `OK: ${file} is a valid signed log`,
        `  run:     ${result.runId} (${result.run.kind}, ${result.run.state}) of plan ${result.run.plan_id} on ${result.run.target}`,
        `  head:    ${result.head}`,
        `  events:  ${result.events.length}, every hash recomputed`,
        `  key:     ${result.keyid}`,
      ].join('\n'),
    );
    return EXIT.ok;
  },
};

export const logCommands: CliCommand[] = [logExport, logVerify];
