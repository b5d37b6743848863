import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { asAttacker, createRunWithEvents, newSigningKeyPem } from '../../app/runs/run-log-fixtures';
import { loadSigningKey, publishedSigningKeysPem, signCheckpoint, type DsseEnvelope } from '../../app/runs/signing.server';
import type { Runtime } from '../../app/boot/runtime.server';
import { migrateStore, openStore, type Store } from '../../app/runtime/store.server';
import { createTargetRegistry } from '../../app/targets/target-registry.server';
import type { CliIo } from '../command';
import { EXIT } from '../exit-codes';
import { main } from '../main';
import { logCommands } from './log';

let database: TestDatabase;
let store: Store;
let tmp: string;
let runId: string;
let runtime: Runtime;
const signingKeyPem = newSigningKeyPem();

beforeAll(async () => {
  database = await createTestDatabase('cli_log');
  store = openStore(database.url);
  await migrateStore(store);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-cli-log-'));
  runId = await createRunWithEvents(store.pool, 5);
  await signCheckpoint(store.pool, runId, signingKeyPem);
  // Only what the log commands use of a runtime.
  runtime = { store, signingKeyPem, targets: createTargetRegistry({ addresses: new Map(), config: { targets: {} } }) } as unknown as Runtime;
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function capture(): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: (text: string) => void (io.stdout += `${text}\n`),
    err: (text: string) => void (io.stderr += `${text}\n`),
    readStdin: async () => '',
  };
  return io;
}

const [logExport, logVerify] = logCommands as [(typeof logCommands)[number], (typeof logCommands)[number]];

async function exportTo(file: string): Promise<number> {
  const io = capture();
  return logExport.run([runId, '--out', file], { io, runtime });
}

describe('runsheet log export', () => {
  it('writes the latest stored envelope', async () => {
    const file = path.join(tmp, 'export.json');
    expect(await exportTo(file)).toBe(EXIT.ok);
    const envelope = JSON.parse(fs.readFileSync(file, 'utf8')) as DsseEnvelope;
    expect(envelope.payloadType).toBe('application/vnd.in-toto+json');
  });

  it('exits 1 for a run with no signed log, 2 for a bad run id', async () => {
    const unsigned = await createRunWithEvents(store.pool, 1);
    const io = capture();
    await expect(logExport.run([unsigned], { io, runtime })).rejects.toMatchObject({ exitCode: EXIT.failed });
    await expect(logExport.run(['not-a-uuid'], { io, runtime })).rejects.toMatchObject({ exitCode: EXIT.usage });
  });
});

describe('runsheet log verify <file>', () => {
  let logFile: string;
  let keyFile: string;

  beforeAll(async () => {
    logFile = path.join(tmp, 'log.json');
    keyFile = path.join(tmp, 'signing-key.pem');
    await exportTo(logFile);
    fs.writeFileSync(keyFile, loadSigningKey(signingKeyPem).publicKeyPem);
  });

  it('prints OK with the run, head and event count, and needs no database with --key', async () => {
    const io = capture();
    expect(await main(['log', 'verify', logFile, '--key', keyFile], io)).toBe(EXIT.ok);
    expect(io.stdout).toMatch(new RegExp(`OK: .* is a valid signed log\\n  run:     ${runId}`));
    expect(io.stdout).toMatch(/events: {2}5, every hash recomputed/);
  });

  it('names the first bad event of an edited file and exits 1', async () => {
    const envelope = JSON.parse(fs.readFileSync(logFile, 'utf8')) as DsseEnvelope;
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
    statement.predicate.events[1].payload.note = 'no backup was taken';
    const edited = path.join(tmp, 'edited.json');
    fs.writeFileSync(edited, JSON.stringify({ ...envelope, payload: Buffer.from(JSON.stringify(statement)).toString('base64') }));
    const io = capture();
    expect(await main(['log', 'verify', edited, '--key', keyFile], io)).toBe(EXIT.failed);
    expect(io.stdout).toMatch(/FAILED: .*event 2/);
    expect(io.stdout).toContain('First bad event: seq 2');
  });

  it('exits 1 with the wrong key, 2 for a file that is not an envelope or a missing key file', async () => {
    const otherKey = path.join(tmp, 'other.pem');
    fs.writeFileSync(otherKey, loadSigningKey(newSigningKeyPem()).publicKeyPem);
    expect(await main(['log', 'verify', logFile, '--key', otherKey], capture())).toBe(EXIT.failed);

    const notJson = path.join(tmp, 'not.json');
    fs.writeFileSync(notJson, 'hello');
    expect(await main(['log', 'verify', notJson, '--key', keyFile], capture())).toBe(EXIT.usage);
    const notEnvelope = path.join(tmp, 'not-envelope.json');
    fs.writeFileSync(notEnvelope, '{"payload": 1}');
    expect(await main(['log', 'verify', notEnvelope, '--key', keyFile], capture())).toBe(EXIT.usage);
    expect(await main(['log', 'verify', logFile, '--key', path.join(tmp, 'missing.pem')], capture())).toBe(EXIT.usage);
    expect(await main(['log', 'verify', logFile, '--key', notJson], capture())).toBe(EXIT.usage);
    expect(await main(['log', 'verify', logFile, '--bogus'], capture())).toBe(EXIT.usage);
  });

  it('takes the keys from <url>/signing-key.pem', async () => {
    const pem = await publishedSigningKeysPem(store.pool, signingKeyPem);
    const server = http.createServer((request, response) => {
      if (request.url === '/signing-key.pem') response.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(pem);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await main(['log', 'verify', logFile, '--url', `${base}/`], capture())).toBe(EXIT.ok);
      expect(await main(['log', 'verify', logFile, '--url', `${base}/elsewhere`], capture())).toBe(EXIT.unavailable);
    } finally {
      server.close();
    }
  });
});

describe('runsheet log verify --run', () => {
  it('checks the stored log against its signed checkpoints', async () => {
    const io = capture();
    expect(await logVerify.run(['--run', runId], { io, runtime })).toBe(EXIT.ok);
    expect(io.stdout).toContain(`OK: the stored log of run ${runId} matches its signed checkpoints`);

    const tampered = await createRunWithEvents(store.pool, 4);
    await signCheckpoint(store.pool, tampered, signingKeyPem);
    await asAttacker(store.pool, `update run_events set actor = 'intruder@example.com' where run_id = $1 and seq = 2`, [tampered]);
    const failed = capture();
    expect(await logVerify.run(['--run', tampered], { io: failed, runtime })).toBe(EXIT.failed);
    expect(failed.stdout).toContain('First bad event: seq 2');
  });
});
