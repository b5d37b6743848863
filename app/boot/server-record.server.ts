/**
 * Where the running web server can be reached, recorded under the data folder (`server.json`):
 * the server writes it once it listens and removes it when it stops cleanly. The command line
 * reads it for the sandbox's API stand-in, which the web server serves: it never guesses a port,
 * and before it sends a bearer token there it checks that the address answers as this Runsheet
 * (its /signing-key.pem names this data folder's signing key as current).
 */
import fs from 'node:fs';
import path from 'node:path';
import { keyIdOf, loadSigningKey } from '../runs/signing.server';

export const SERVER_RECORD_FILE = 'server.json';
/** The stand-in of the platform API, under the web server's own URL. */
export const SANDBOX_API_PATH = '/sandbox-api';
const ANSWER_TIMEOUT_MS = 2_000;

export interface ServerRecord {
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  pid: number;
  startedAt: string;
}

export function serverRecordPath(dataDir: string): string {
  return path.join(dataDir, SERVER_RECORD_FILE);
}

export function writeServerRecord(dataDir: string, url: string): void {
  fs.mkdirSync(dataDir, { recursive: true });
  const record: ServerRecord = { url, pid: process.pid, startedAt: new Date().toISOString() };
  fs.writeFileSync(serverRecordPath(dataDir), JSON.stringify(record, null, 2));
}

/** Removes the record if this process wrote it (a second server on the same folder may have written its own since). */
export function removeServerRecord(dataDir: string): void {
  if (readServerRecord(dataDir)?.pid === process.pid) fs.rmSync(serverRecordPath(dataDir), { force: true });
}

export function readServerRecord(dataDir: string): ServerRecord | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(serverRecordPath(dataDir), 'utf8')) as Partial<ServerRecord>;
    return typeof parsed.url === 'string' && typeof parsed.pid === 'number' ? (parsed as ServerRecord) : undefined;
  } catch {
    return undefined;
  }
}

export type SandboxApiAddress = { ok: true; apiUrl: string } | { ok: false; problem: string };

/**
 * The sandbox API stand-in's URL from the running server's record, once the server answers there
 * as this Runsheet; otherwise why not, in words that say what to do.
 */
export async function sandboxApiFromServerRecord(dataDir: string, signingKeyPem: string): Promise<SandboxApiAddress> {
  const file = serverRecordPath(dataDir);
  const record = readServerRecord(dataDir);
  const instead = 'or set TARGET_SANDBOX_API_URL (with TARGET_SANDBOX_API_TOKEN) to the stand-in\'s address';
  if (!record) {
    return {
      ok: false,
      problem: `The sandbox's http checks call the API stand-in that Runsheet's web server serves, and no running server has recorded its address (${file} is absent). Start the server (npm start), ${instead}.`,
    };
  }
  const stale = (why: string): SandboxApiAddress => ({
    ok: false,
    problem: `${file} says a Runsheet server (pid ${record.pid}, started ${record.startedAt}) serves ${record.url}, but ${why}: the record is stale. Start the server again, ${instead}.`,
  });
  let body: string;
  try {
    const response = await fetch(`${record.url.replace(/\/+$/, '')}/signing-key.pem`, { signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
    if (!response.ok) return stale(`it answered ${response.status} to /signing-key.pem`);
    body = await response.text();
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return stale(`nothing answers there (${cause ?? (error as Error).message})`);
  }
  const keyid = keyIdOf(loadSigningKey(signingKeyPem).publicKey);
  if (!body.includes(`current signing key, keyid ${keyid}`)) return stale('what answers there is not this Runsheet (its current signing key is another one)');
  return { ok: true, apiUrl: `${record.url.replace(/\/+$/, '')}${SANDBOX_API_PATH}` };
}
