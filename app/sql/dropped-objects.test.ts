import { describe, expect, it } from 'vitest';
import { findDroppedObjects } from './dropped-objects.server';

describe('findDroppedObjects', () => {
  it('finds DROP COLUMN and DROP TABLE in the parse tree, not in comments or strings', async () => {
    const dropped = await findDroppedObjects(`
      -- ALTER TABLE platform.users DROP COLUMN in_a_comment;
      SELECT 'DROP TABLE in_a_string';
      ALTER TABLE platform.users DROP COLUMN IF EXISTS active_org_id, DROP COLUMN other;
      ALTER TABLE ONLY shop.widgets ADD COLUMN sku text;
      DROP TABLE IF EXISTS shop.widget_skus, loose;
      DROP INDEX IF EXISTS platform.idx_users_active_org;`);
    expect(dropped).toEqual({
      columns: [
        { schema: 'platform', table: 'users', column: 'active_org_id' },
        { schema: 'platform', table: 'users', column: 'other' },
      ],
      tables: [
        { schema: 'shop', name: 'widget_skus' },
        { schema: 'public', name: 'loose' },
      ],
    });
  });
});
