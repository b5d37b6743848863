import { describe, expect, it } from 'vitest';
import { API_ACCESS, PERMISSIONS, ROLES, ROLE_PERMISSIONS, ROUTE_ACCESS, accessAllows, can, homePathFor, isPublicPath, roleCan, type Access } from './permissions';

describe('the permission table', () => {
  it('says what PRODUCT.md says each person does', () => {
    expect(ROLE_PERMISSIONS.viewer).toEqual(['view']);
    expect([...ROLE_PERMISSIONS.tpm].sort()).toEqual(['add-note', 'end-watch', 'run-checks', 'sign-off', 'tick', 'view']);
    expect([...ROLE_PERMISSIONS.engineer].sort()).toEqual(
      ['add-note', 'cancel', 'end-watch', 'execute', 'import-plan', 'notifications', 'rehearse', 'reset-sandbox', 'restore', 'rollback', 'run-checks', 'sign-off', 'tick', 'view'].sort(),
    );
    for (const action of ROLE_PERMISSIONS.tpm) expect(roleCan('engineer', action)).toBe(true);
  });

  it('keeps duties apart: a TPM never applies or rolls back; an admin only manages accounts', () => {
    for (const action of ['execute', 'rollback', 'rehearse', 'cancel', 'import-plan', 'reset-sandbox', 'notifications'] as const) expect(roleCan('tpm', action)).toBe(false);
    for (const action of ['import-plan', 'reset-sandbox'] as const) expect(roleCan('viewer', action)).toBe(false);
    expect(ROLE_PERMISSIONS.admin).toEqual(['manage-accounts']);
    for (const role of ROLES.filter((role) => role !== 'admin')) expect(roleCan(role, 'manage-accounts')).toBe(false);
  });

  it('gives every action to some role', () => {
    for (const action of PERMISSIONS) expect(ROLES.some((role) => roleCan(role, action))).toBe(true);
  });

  it('can() hides everything from a signed-out visitor', () => {
    expect(can(null, 'view')).toBe(false);
    expect(can(undefined, 'view')).toBe(false);
    expect(can({ role: 'viewer' }, 'view')).toBe(true);
    expect(can({ role: 'viewer' }, 'tick')).toBe(false);
  });

  it('sends an admin, who may not view plans, to the accounts page', () => {
    expect(homePathFor('admin')).toBe('/admin/accounts');
    expect(homePathFor('viewer')).toBe('/');
  });

  it('names only known permissions in the route table', () => {
    const valid = (access: Access) => ['public', 'signed-in', 'bearer-token', 'api-token', ...PERMISSIONS].includes(access);
    for (const [id, entry] of Object.entries(ROUTE_ACCESS)) {
      if (entry.loader) expect(valid(entry.loader), id).toBe(true);
      for (const access of Object.values(entry.actions ?? {})) expect(valid(access), id).toBe(true);
    }
    expect(ROUTE_ACCESS['routes/login']?.loader).toBe('public');
    // The JSON API's endpoints name permissions of the same table (or any valid token).
    for (const [endpoint, access] of Object.entries(API_ACCESS)) expect(['signed-in', ...PERMISSIONS].includes(access), endpoint).toBe(true);
  });

  it('knows the public paths', () => {
    expect(isPublicPath('/login')).toBe(true);
    expect(isPublicPath('/signing-key.pem')).toBe(true);
    expect(isPublicPath('/sandbox-api/api/auth/validate')).toBe(true);
    expect(isPublicPath('/admin/accounts')).toBe(false);
    expect(accessAllows('signed-in', undefined)).toBe(false);
    expect(accessAllows('public', undefined)).toBe(true);
  });
});
