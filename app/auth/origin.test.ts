import { describe, expect, it } from 'vitest';
import { allowedOrigins, originVerdict, type OriginFacts } from './origin.server';

const allowed = allowedOrigins({ PORT: 3000, RUNSHEET_ORIGIN: undefined });
const post = (facts: Partial<OriginFacts>): OriginFacts => ({ method: 'POST', pathname: '/admin/accounts', origin: null, secFetchSite: null, referer: null, bearer: false, ...facts });

describe('the Origin check', () => {
  it('accepts the configured origin only (never one derived from Host)', () => {
    expect(allowedOrigins({ PORT: 3000, RUNSHEET_ORIGIN: 'https://runsheet.example.com/some/path' })).toEqual(['https://runsheet.example.com']);
    expect(allowed).toContain('http://localhost:3000');
    expect(originVerdict(post({ origin: 'http://localhost:3000' }), allowed).ok).toBe(true);
    expect(originVerdict(post({ origin: 'http://localhost:3001' }), allowed).ok).toBe(false);
    expect(originVerdict(post({ origin: 'https://localhost:3000' }), allowed).ok).toBe(false);
    expect(originVerdict(post({ origin: 'null' }), allowed).ok).toBe(false);
  });

  it('falls back to Sec-Fetch-Site, then Referer, and refuses when neither says same-origin', () => {
    expect(originVerdict(post({ secFetchSite: 'same-origin' }), allowed).ok).toBe(true);
    expect(originVerdict(post({ secFetchSite: 'same-site' }), allowed).ok).toBe(false);
    expect(originVerdict(post({ secFetchSite: 'cross-site', referer: 'http://localhost:3000/x' }), allowed).ok).toBe(false);
    expect(originVerdict(post({ referer: 'http://localhost:3000/plans/x?target=sandbox' }), allowed).ok).toBe(true);
    expect(originVerdict(post({ referer: 'http://localhost.evil.example/' }), allowed).ok).toBe(false);
    expect(originVerdict(post({ referer: 'not a url' }), allowed).ok).toBe(false);
    expect(originVerdict(post({}), allowed)).toEqual({ ok: false, reason: 'no Origin, Sec-Fetch-Site or Referer header' });
  });

  it('leaves reads and the bearer-token sandbox API alone', () => {
    expect(originVerdict(post({ method: 'GET', origin: 'https://evil.example' }), allowed).ok).toBe(true);
    expect(originVerdict(post({ pathname: '/sandbox-api/api/auth/set-active-org', origin: 'https://evil.example' }), allowed).ok).toBe(true);
  });

  it('exempts exactly the JSON API requests that carry a bearer token', () => {
    const evil = 'https://evil.example';
    expect(originVerdict(post({ pathname: '/api/v1/runs/x/execute', origin: evil, bearer: true }), allowed).ok).toBe(true);
    // Without a bearer token an API request is judged like any other (a cookie would ride on it).
    expect(originVerdict(post({ pathname: '/api/v1/runs/x/execute', origin: evil }), allowed).ok).toBe(false);
    expect(originVerdict(post({ pathname: '/api/v1/runs/x/execute' }), allowed).ok).toBe(false);
    // A bearer header elsewhere exempts nothing.
    expect(originVerdict(post({ pathname: '/plans/008', origin: evil, bearer: true }), allowed).ok).toBe(false);
    expect(originVerdict(post({ pathname: '/api/v2/x', origin: evil, bearer: true }), allowed).ok).toBe(false);
  });
});
