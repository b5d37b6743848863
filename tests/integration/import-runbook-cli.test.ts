/**
 * A second runbook, not the seed (tests/fixtures/runbooks/012-invoice-currency.md: a NOT NULL
 * column with a default and a CHECK constraint on a table of 100,000 invoices, and a CONCURRENTLY
 * index), taken the whole way by the command line as a team would: `runsheet import`, completed
 * from its IMPORT.md, given a sandbox.sql, cleared from review, `sandbox reset --plan`, then
 * pre-checks, execute (with its verification) and rollback. Child processes of bin/runsheet.js on
 * a test store and a test sandbox target, as tests/integration/plan-008-cli.test.ts does.
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { isMap, isSeq, parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases';

const root = path.resolve(import.meta.dirname, '../..');
const RUNBOOK = path.join(root, 'tests/fixtures/runbooks/012-invoice-currency.md');
const FIXTURE = path.join(root, 'tests/fixtures/runbooks/012-invoice-currency.sandbox.sql');
const PLAN = '012-add-a-currency-to-platform-invoices';
const ENGINEER = 'engineer@invoices.test';
const TPM = 'tpm@invoices.test';

let storeDb: TestDatabase;
let sandboxDb: TestDatabase;
let env: NodeJS.ProcessEnv;
let plansDir: string;

function runsheet(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [path.join(root, 'bin/runsheet.js'), ...args], { env, cwd: root }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

async function target<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: sandboxDb.url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  [storeDb, sandboxDb] = await Promise.all([createTestDatabase('import_cli_store'), createTestDatabase('import_cli_sandbox')]);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-import-cli-'));
  plansDir = path.join(scratch, 'plans');
  fs.mkdirSync(plansDir);
  fs.mkdirSync(path.join(scratch, 'data'));
  const { privateKey } = generateKeyPairSync('ed25519');
  env = {
    NODE_ENV: 'test',
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: storeDb.url,
    // One superuser for the whole test store (the two-role set-up has its own test).
    RUNSHEET_ALLOW_SUPERUSER: '1',
    SESSION_SECRET: randomBytes(32).toString('hex'),
    SIGNING_KEY: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    TARGET_SANDBOX_URL: sandboxDb.url,
    RUNSHEET_PLANS_DIR: plansDir,
    RUNSHEET_DATA_DIR: path.join(scratch, 'data'),
  };
  for (const [email, role] of [
    [ENGINEER, 'engineer'],
    [TPM, 'tpm'],
  ] as const) {
    const added = await runsheet(['users', 'add', email, '--role', role], 'a long enough password 123\n');
    expect(added.code, added.stderr).toBe(0);
  }
});

afterAll(async () => {
  await Promise.all([storeDb?.drop(), sandboxDb?.drop()]);
});

describe('a second runbook, from Markdown to rolled back, by the command line', () => {
  it('imports it as a plan under review, listing what to decide with the runbook lines', async () => {
    const imported = await runsheet(['import', RUNBOOK]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toContain(`Imported 012-invoice-currency.md as ${path.join(plansDir, PLAN)} (under review`);
    const report = fs.readFileSync(path.join(plansDir, PLAN, 'IMPORT.md'), 'utf8');
    expect(report).toContain('3 to decide');
    expect(report).toContain('- [ ] Line 75: check verify-the-index may not prove what it says. It looks pg_indexes up by tablename and indexname without schemaname');
    expect(report).toContain('- [ ] Line 81: check verify-the-constraint has no expected result.');
    expect(report).toContain('- [ ] Line 92: check every-invoice-has-a-currency: "0".');
    expect(report).toContain('- Line 46: BEGIN … COMMIT around the migration.');

    const planYaml = fs.readFileSync(path.join(plansDir, PLAN, 'plan.yaml'), 'utf8');
    expect(planYaml.split('\n')[0]).toMatch(/^# yaml-language-server: \$schema=.*docs\/plan\.schema\.json$/);
    const schemaRef = planYaml.split('\n')[0]!.split('$schema=')[1]!;
    expect(fs.existsSync(path.resolve(plansDir, PLAN, schemaRef))).toBe(true);

    // The steps: one transaction for the column and the constraint, the CONCURRENTLY index its own kind.
    const listed = await runsheet(['plans', '--json']);
    const plan = (JSON.parse(listed.stdout) as { id: string; ok: boolean; plan: { review?: string; apply: { kind: string; transactional: boolean }[] } }[]).find((entry) => entry.id === PLAN)!;
    expect(plan.ok).toBe(true);
    expect(plan.plan.review).toBe('pending');
    expect(plan.plan.apply.map((step) => [step.kind, step.transactional])).toEqual([
      ['sql', true],
      ['create_index_concurrently', false],
    ]);

    // An id that exists is refused, and the refusal is audited.
    const again = await runsheet(['import', RUNBOOK]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/A plan "012-add-a-currency-to-platform-invoices" exists already/);
  });

  it('refuses to execute it while it is under review', async () => {
    const refused = await runsheet(['run', PLAN, '--target', 'sandbox', '--as', ENGINEER]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/The plan is not under review: plan\.yaml says review: pending/);
  });

  it('is completed from its IMPORT.md, given a sandbox.sql and cleared from review', async () => {
    const file = path.join(plansDir, PLAN, 'plan.yaml');
    const doc = parseDocument(fs.readFileSync(file, 'utf8'));
    const checkAt = (section: (string | number)[], id: string) => {
      const list = doc.getIn(section, true);
      if (!isSeq(list)) throw new Error(`no ${section.join('.')}`);
      const item = list.items.find((entry) => isMap(entry) && entry.get('id') === id);
      if (!isMap(item)) throw new Error(`no check ${id}`);
      return item;
    };
    // Line 75: look the index up in its schema.
    checkAt(['verification'], 'verify-the-index').set(
      'sql',
      "SELECT indexname FROM pg_indexes WHERE schemaname = 'platform' AND tablename = 'invoices' AND indexname = 'invoices_currency_idx'",
    );
    // Line 81: the constraint exists and is validated.
    checkAt(['verification'], 'verify-the-constraint').set('expect', doc.createNode({ type: 'rows', rows: [{ conname: 'invoices_currency_iso', convalidated: true }] }));
    // Line 92: no invoice without a valid currency.
    checkAt(['post_execution', 'data_quality'], 'every-invoice-has-a-currency').set('expect', doc.createNode({ type: 'value', column: 'missing', op: '=', value: 0 }));
    doc.delete('review');
    fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
    fs.copyFileSync(FIXTURE, path.join(plansDir, PLAN, 'sandbox.sql'));

    const listed = await runsheet(['plans']);
    expect(listed.code, listed.stdout).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`OK +${PLAN}`));
  });

  it('sets up the plan\'s starting state with sandbox reset --plan, and records the fixture it applied', async () => {
    // Before the fixture the generated sandbox has no invoices: the pre-checks would fail.
    const reset = await runsheet(['sandbox', 'reset', '--plan', PLAN, '--users', '400']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/Applied the fixture plans\/012-add-a-currency-to-platform-invoices\/sandbox\.sql \(3 statements/);
    expect(await target<{ n: string }>('select count(*) as n from platform.invoices')).toEqual([{ n: '100000' }]);

    const store = new pg.Client({ connectionString: storeDb.url });
    await store.connect();
    const { rows } = await store.query("select actor, outcome, detail from audit_log where action = 'sandbox.reset' order by id desc limit 1");
    await store.end();
    const sha256 = createHash('sha256').update(fs.readFileSync(FIXTURE)).digest('hex');
    expect(rows[0]).toMatchObject({ actor: `cli:${os.userInfo().username}`, outcome: 'ok', detail: { target: 'sandbox', fixture: { plan: PLAN, sha256, statements: 3 } } });
  });

  it('runs the pre-checks, executes with its verification, and rolls back', async () => {
    const plan = JSON.parse((await runsheet(['plans', '--json'])).stdout).find((entry: { id: string }) => entry.id === PLAN) as { plan: { prerequisites: { id: string }[] } };
    for (const item of plan.plan.prerequisites) {
      const ticked = await runsheet(['tick', PLAN, '--target', 'sandbox', '--item', item.id, '--as', TPM]);
      expect(ticked.code, ticked.stderr).toBe(0);
    }
    const prechecks = await runsheet(['prechecks', PLAN, '--target', 'sandbox', '--as', TPM]);
    expect(prechecks.code, prechecks.stdout + prechecks.stderr).toBe(0);

    const run = await runsheet(['run', PLAN, '--target', 'sandbox', '--as', ENGINEER]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/ended applied/);
    expect(run.stdout).toMatch(/verification: passed/);
    expect(run.stdout).toMatch(/post-execution: passed/);
    expect(await target('select is_nullable, column_default from information_schema.columns where table_schema = \'platform\' and table_name = \'invoices\' and column_name = \'currency\'')).toEqual([
      { is_nullable: 'NO', column_default: "'EUR'::bpchar" },
    ]);
    expect(await target("select convalidated from pg_constraint where conname = 'invoices_currency_iso'")).toEqual([{ convalidated: true }]);
    expect(await target("select i.indisvalid from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname = 'invoices_currency_idx'")).toEqual([{ indisvalid: true }]);

    const rollback = await runsheet(['rollback', PLAN, '--target', 'sandbox', '--as', ENGINEER]);
    expect(rollback.code, rollback.stdout + rollback.stderr).toBe(0);
    expect(rollback.stdout).toMatch(/rollback verification: passed/);
    expect(await target("select column_name from information_schema.columns where table_schema = 'platform' and table_name = 'invoices' and column_name = 'currency'")).toEqual([]);
    expect(await target("select 1 from pg_class where relname = 'invoices_currency_idx'")).toEqual([]);
  });
});
