/**
 * The signature of a JSON notification (docs/decisions/033): the header
 * `X-Runsheet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the channel's
 * secret>`. The timestamp is signed with the body, so a receiver that rejects old timestamps
 * refuses a captured request replayed later. verifyWebhookSignature is what a receiver runs (the
 * README shows it); Runsheet's own tests use it too.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Runsheet-Signature';
export const DELIVERY_HEADER = 'X-Runsheet-Delivery';
/** How old a signature a receiver accepts by default (and how far in the future, for clock skew). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signatureHex(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
}

/** The header value for `body` signed now (or at `nowMs`). */
export function signWebhookBody(body: string, secret: string, nowMs: number = Date.now()): string {
  const timestamp = Math.floor(nowMs / 1000);
  return `t=${timestamp},v1=${signatureHex(secret, timestamp, body)}`;
}

export type SignatureVerdict = { ok: true; timestamp: number } | { ok: false; reason: string };

/** Checks a received body against its X-Runsheet-Signature header: the right secret, the exact body, a recent timestamp. */
export function verifyWebhookSignature(
  body: string,
  header: string | null | undefined,
  secret: string,
  options: { toleranceSeconds?: number; nowMs?: number } = {},
): SignatureVerdict {
  if (!header) return { ok: false, reason: `no ${SIGNATURE_HEADER} header` };
  const parts = new Map<string, string[]>();
  for (const part of header.split(',')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    const key = part.slice(0, at).trim();
    parts.set(key, [...(parts.get(key) ?? []), part.slice(at + 1).trim()]);
  }
  const timestampText = parts.get('t')?.[0];
  if (!timestampText || !/^\d+$/.test(timestampText)) return { ok: false, reason: 'the header has no timestamp t=<unix seconds>' };
  const timestamp = Number(timestampText);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const ageSeconds = Math.floor((options.nowMs ?? Date.now()) / 1000) - timestamp;
  if (Math.abs(ageSeconds) > tolerance) return { ok: false, reason: `the timestamp is ${ageSeconds} s old, more than the ${tolerance} s accepted` };
  const expected = Buffer.from(signatureHex(secret, timestamp, body), 'hex');
  const matches = (parts.get('v1') ?? []).some((candidate) => {
    const given = /^[0-9a-f]+$/i.test(candidate) ? Buffer.from(candidate, 'hex') : Buffer.alloc(0);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return matches ? { ok: true, timestamp } : { ok: false, reason: 'no v1 signature matches the body with this secret' };
}
