/**
 * The remote command line's client of the JSON API (docs/api.md): RUNSHEET_URL and RUNSHEET_TOKEN
 * say where and who. An error answer becomes the RunsheetError it was on the server (its kind
 * decides the exit code, as locally); a server that cannot be reached is exit 3.
 */
import type { ApiRouteKey } from '../app/accounts/permissions';
import { apiPath } from '../app/api/api-contract';
import { ERROR_KINDS, RunsheetError, type ErrorKind, type OpenGate } from '../app/runtime/errors';
import { CliError, EXIT, usageError } from './exit-codes';

export interface RemoteConfig {
  url: string;
  token: string;
}

/** Remote mode when RUNSHEET_URL is set; it needs RUNSHEET_TOKEN too. */
export function remoteConfigOf(env: NodeJS.ProcessEnv): RemoteConfig | undefined {
  const url = env.RUNSHEET_URL?.trim();
  const token = env.RUNSHEET_TOKEN?.trim();
  if (!url) {
    if (token) throw usageError('RUNSHEET_TOKEN is set but RUNSHEET_URL is not: set both to use a Runsheet server (remote mode), or neither to use the store here.');
    return undefined;
  }
  if (!token) throw usageError(`RUNSHEET_URL is set (${url}) but RUNSHEET_TOKEN is not: create an API token on the accounts page (or ask an admin for a service account's) and set RUNSHEET_TOKEN.`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`RUNSHEET_URL is not a URL: "${url}" (e.g. https://runsheet.example.com).`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw usageError(`RUNSHEET_URL must be http(s), not ${parsed.protocol}`);
  return { url: parsed.origin, token };
}

const isErrorKind = (value: unknown): value is ErrorKind => typeof value === 'string' && (ERROR_KINDS as readonly string[]).includes(value);

export class ApiClient {
  constructor(readonly config: RemoteConfig) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { Authorization: `Bearer ${this.config.token}`, Accept: 'application/json', ...extra };
  }

  /** Fetch, with "could not reach" as exit 3 and the server's error answer as its RunsheetError. */
  async raw(path: string, init: RequestInit = {}): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(`${this.config.url}${path}`, { ...init, headers: { ...this.headers(), ...(init.headers as Record<string, string> | undefined) } });
    } catch (error) {
      throw new CliError(`Could not reach the Runsheet server at ${this.config.url}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`, EXIT.unavailable);
    }
    if (response.ok) return response;
    const text = await response.text();
    let body: { error?: { kind?: unknown; message?: unknown; gates?: OpenGate[] } } | undefined;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const error = body?.error;
    if (error && isErrorKind(error.kind) && typeof error.message === 'string') throw new RunsheetError(error.kind, error.message, error.gates ? { gates: error.gates } : {});
    throw new CliError(`The Runsheet server answered ${response.status}${typeof error?.message === 'string' ? `: ${error.message}` : ''}.`, EXIT.unavailable);
  }

  async call<T>(key: ApiRouteKey, options: { params?: Record<string, string>; body?: unknown; query?: Record<string, string | undefined> } = {}): Promise<T> {
    const method = key.split(' ')[0]!;
    const query = new URLSearchParams(Object.entries(options.query ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined));
    const path = `${apiPath(key, options.params)}${query.size > 0 ? `?${query}` : ''}`;
    const response = await this.raw(path, method === 'POST' ? { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(options.body ?? {}) } : { method });
    return (await response.json()) as T;
  }
}

export interface StreamMessage {
  event: string;
  id?: string;
  data: string;
}

/** Splits server-sent events as they arrive (blank line between messages; comments ignored). */
export async function* readEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<StreamMessage> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message: StreamMessage = { event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':') || line === '') continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') message.event = value;
        else if (field === 'id') message.id = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length === 0) continue;
      message.data = data.join('\n');
      yield message;
    }
  }
}
