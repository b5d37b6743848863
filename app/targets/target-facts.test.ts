import { randomBytes } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { readTargetFacts } from './target-facts.server';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase('target_facts');
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('readTargetFacts', () => {
  it('reads version, TLS, replica, role and pooler facts of a direct connection', async () => {
    const facts = await readTargetFacts(pool);
    const { rows } = await pool.query(`select current_setting('server_version_num')::int as num`);
    expect(facts.serverVersion.num).toBe(rows[0].num);
    expect(facts.serverVersion.version).toMatch(/^\d+(\.\d+)?/);
    expect(facts.serverVersion.full).toMatch(/^PostgreSQL /);
    // The embedded test server listens on 127.0.0.1 without TLS.
    expect(facts.tls).toEqual({ ssl: false });
    expect(facts.readOnlyReplica).toBe(false);
    expect(facts.transactionPooler.detected).toBe(false);
    expect(facts.transactionPooler.evidence[0]).toMatch(/^not detected: the same backend/);
    expect(facts).toMatchObject({ currentUser: 'postgres', isSuperuser: true, canSeeAllSessions: true, database: db.name });
    expect(Math.abs(Date.parse(facts.now) - Date.now())).toBeLessThan(60_000);
    // JSON-safe, as the fact cache stores it.
    expect(JSON.parse(JSON.stringify(facts))).toEqual(facts);
  });

  it('says what a role without pg_read_all_stats cannot see', async () => {
    const role = `rs_facts_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await pool.query(`create role ${pg.escapeIdentifier(role)} login password ${pg.escapeLiteral(password)}`);
    const url = new URL(db.url);
    url.username = role;
    url.password = password;
    const rolePool = new pg.Pool({ connectionString: url.toString(), max: 1 });
    try {
      expect(await readTargetFacts(rolePool)).toMatchObject({ currentUser: role, isSuperuser: false, canSeeAllSessions: false });
      await pool.query(`grant pg_monitor to ${pg.escapeIdentifier(role)}`);
      expect((await readTargetFacts(rolePool)).canSeeAllSessions).toBe(true);
    } finally {
      await rolePool.end();
      await pool.query(`drop role ${pg.escapeIdentifier(role)}`);
    }
  });

  it('flags port 6543, the transaction pooler port, and a proxy in between', async (context) => {
    const target = new URL(db.url);
    const proxy = net.createServer((socket) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      socket.pipe(upstream).pipe(socket);
      const close = () => (socket.destroy(), upstream.destroy());
      socket.on('error', close);
      upstream.on('error', close);
    });
    const listening = await new Promise<boolean>((resolve) => {
      proxy.once('error', () => resolve(false));
      proxy.listen(6543, '127.0.0.1', () => resolve(true));
    });
    if (!listening) return context.skip();
    const viaProxy = new URL(db.url);
    viaProxy.port = '6543';
    const proxied = new pg.Pool({ connectionString: viaProxy.toString(), max: 1 });
    try {
      const facts = await readTargetFacts(proxied);
      expect(facts.transactionPooler.detected).toBe(true);
      expect(facts.transactionPooler.evidence.join('\n')).toMatch(/port 6543, the transaction-mode pooler port/);
      expect(facts.transactionPooler.evidence.join('\n')).toMatch(new RegExp(`connected on port 6543 but the server listens on ${target.port}`));
    } finally {
      await proxied.end();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});
