import { describe, expect, it } from 'vitest';
import { signWebhookBody, verifyWebhookSignature } from './webhook-signature';

const SECRET = 'whsec-test-secret';
const BODY = JSON.stringify({ delivery_id: 'd1', kind: 'applied', run_id: 'r1', seq: 42 });
const NOW = Date.UTC(2026, 11, 3, 14, 0, 0);

describe('the X-Runsheet-Signature header', () => {
  it('verifies the body it signed with the same secret', () => {
    const header = signWebhookBody(BODY, SECRET, NOW);
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(BODY, header, SECRET, { nowMs: NOW + 10_000 })).toEqual({ ok: true, timestamp: Math.floor(NOW / 1000) });
  });

  it('rejects a tampered body, a wrong secret, an old timestamp, a moved timestamp and a missing header', () => {
    const header = signWebhookBody(BODY, SECRET, NOW);
    expect(verifyWebhookSignature(BODY.replace('applied', 'rolled_back'), header, SECRET, { nowMs: NOW })).toMatchObject({ ok: false, reason: expect.stringContaining('no v1 signature matches') });
    expect(verifyWebhookSignature(BODY, header, 'another-secret', { nowMs: NOW })).toMatchObject({ ok: false });
    expect(verifyWebhookSignature(BODY, header, SECRET, { nowMs: NOW + 301_000 })).toMatchObject({ ok: false, reason: expect.stringContaining('old') });
    expect(verifyWebhookSignature(BODY, header, SECRET, { nowMs: NOW + 61_000, toleranceSeconds: 60 })).toMatchObject({ ok: false });
    // A replay with a fresh timestamp but the old signature does not match: the timestamp is signed.
    const moved = header.replace(/^t=(\d+)/, (_whole, t: string) => `t=${Number(t) + 600}`);
    expect(verifyWebhookSignature(BODY, moved, SECRET, { nowMs: NOW + 600_000 })).toMatchObject({ ok: false, reason: expect.stringContaining('no v1 signature matches') });
    expect(verifyWebhookSignature(BODY, undefined, SECRET)).toMatchObject({ ok: false, reason: expect.stringContaining('no X-Runsheet-Signature') });
    expect(verifyWebhookSignature(BODY, 'v1=abc', SECRET)).toMatchObject({ ok: false, reason: expect.stringContaining('timestamp') });
  });
});
