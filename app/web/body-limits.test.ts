import { describe, expect, it } from 'vitest';
import { IMPORT_REQUEST_BYTES, bodyLimitFor } from './body-limits.server';

describe('bodyLimitFor', () => {
  it('gives every route the configured limit, refused from a declared length', () => {
    for (const path of ['/', '/_root.data', '/login', '/plans/x', '/plans/x.data', '/admin/accounts']) {
      expect(bodyLimitFor(path, 4096), path).toEqual({ bytes: 4096, routeRefusesDeclaredSize: false });
    }
  });

  it('gives the import page and its zip download their own limit, which they answer themselves', () => {
    for (const path of ['/import', '/import.data', '/import/', '/import.zip']) {
      expect(bodyLimitFor(path, 4096), path).toEqual({ bytes: IMPORT_REQUEST_BYTES, routeRefusesDeclaredSize: true });
    }
  });
});
