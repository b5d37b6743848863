import { describe, expect, it } from 'vitest';
import { safeRedirectPath } from './require.server';

/** Where a browser goes when it follows `Location: <value>` from a page of http://runsheet.example. */
const followed = (value: string) => new URL(value, 'http://runsheet.example/login');

describe('safeRedirectPath (issue 11, reproduction 5: open redirect)', () => {
  it('keeps a path on this site, with its query and fragment, normalised', () => {
    expect(safeRedirectPath('/plans/008?target=sandbox#gates')).toBe('/plans/008?target=sandbox#gates');
    expect(safeRedirectPath('/runs/./x/../y')).toBe('/runs/y');
    expect(safeRedirectPath('/')).toBe('/');
  });

  const hostile = [
    '/..//evil.example',
    '/./\\evil.example',
    '/.//evil.example',
    '/x/../..//evil.example',
    '/%2e%2e//evil.example',
    '/%2E%2E//evil.example',
    '/.%2e//evil.example',
    '/%2e//evil.example',
    '/..\\/evil.example',
    '/..\\\\evil.example',
    '/../\\evil.example',
    '//evil.example',
    '/\\evil.example',
    '\\\\evil.example',
    '/\t/evil.example',
    '/\n/evil.example',
    '/\r\n/evil.example',
    '/..//\tevil.example',
    '/%09/evil.example',
    'https://evil.example/',
    'http:/evil.example',
    'javascript:alert(1)',
    ' /plans',
    'plans',
    '',
  ];

  it.each(hostile)('falls back for %j, and whatever it returns stays on this site', (value) => {
    const result = safeRedirectPath(value, '/fallback');
    expect(followed(result).origin).toBe('http://runsheet.example');
    expect(result.startsWith('/')).toBe(true);
    expect(result.startsWith('//')).toBe(false);
    expect(result.startsWith('/\\')).toBe(false);
  });

  it('returns a result that is its own normal form (no second normalisation can turn it into another host)', () => {
    for (const value of [...hostile, '/a/b/../c', '/%2e%2e/x', '/a//b']) {
      const once = safeRedirectPath(value, '/fallback');
      expect(safeRedirectPath(once, '/other')).toBe(once);
    }
  });

  it('refuses non-strings', () => {
    expect(safeRedirectPath(undefined, '/f')).toBe('/f');
    expect(safeRedirectPath(null, '/f')).toBe('/f');
    expect(safeRedirectPath(['/x'], '/f')).toBe('/f');
  });
});
