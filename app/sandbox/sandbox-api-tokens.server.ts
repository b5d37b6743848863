/**
 * The sandbox stand-in API's bearer tokens, kept in the data folder where the sandbox target's http
 * checks find them. Written whenever the sandbox is generated (at start, or by a reset).
 */
import fs from 'node:fs';
import path from 'node:path';

const SANDBOX_API_FILE = 'sandbox-api.json';

export function writeSandboxApiTokens(dataDir: string, tokens: { email: string; token: string }[]): void {
  fs.writeFileSync(path.join(dataDir, SANDBOX_API_FILE), JSON.stringify({ tokens }, null, 2), { mode: 0o600 });
}

export function readSandboxApiToken(dataDir: string): string | undefined {
  try {
    const { tokens } = JSON.parse(fs.readFileSync(path.join(dataDir, SANDBOX_API_FILE), 'utf8')) as { tokens: { token: string }[] };
    return tokens[0]?.token;
  } catch {
    return undefined;
  }
}
