import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { fromRoot } from '../runtime/paths.server';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { asAttacker, createRun, createRunWithEvents, newSigningKeyPem, PLAN_MANIFEST } from './run-log-fixtures';
import { appendRunEvent, canonicalJson, genesisHash, hashRunEvent, readStoredRunEvents, runEventBody, sha256Hex } from './run-log.server';
import { exportRunLog, keyIdOf, loadSigningKey, preAuthEncoding, publishedSigningKeys, publishedSigningKeysPem, signCheckpoint, signEnvelope, type DsseEnvelope, type RunLogStatement } from './signing.server';
import { verifyEnvelope } from './verify-run-log.server';
import { loader as signingKeyLoader } from '../routes/signing-key[.]pem';
import type { Runtime } from '../boot/runtime.server';
import type { LoaderFunctionArgs } from '@remix-run/node';

let database: TestDatabase;
let store: Store;
let tmp: string;
const signingKeyPem = newSigningKeyPem();
const signingKey = loadSigningKey(signingKeyPem);

beforeAll(async () => {
  database = await createTestDatabase('run_signing');
  store = openStore(database.url);
  await migrateStore(store);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-signing-'));
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const statementOf = (envelope: DsseEnvelope) => JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as RunLogStatement;

/** Re-encode an edited Statement, as an attacker editing the file would (the signature stays). */
function withStatement(envelope: DsseEnvelope, edit: (statement: RunLogStatement) => void): DsseEnvelope {
  const statement = statementOf(envelope);
  edit(statement);
  return { ...envelope, payload: Buffer.from(canonicalJson(statement), 'utf8').toString('base64') };
}

describe('DSSE and key formats (docs/decisions/011-signed-log-dsse-in-toto.md)', () => {
  it('builds the PAE of the DSSE specification', () => {
    expect(preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
    // Lengths count bytes, not characters.
    expect(preAuthEncoding('t', Buffer.from('é')).toString()).toBe('DSSEv1 1 t 2 é');
  });

  it('derives the keyid as openssl does: sha256 of the public key DER (SPKI)', () => {
    const pemFile = path.join(tmp, 'public.pem');
    fs.writeFileSync(pemFile, signingKey.publicKeyPem);
    const der = execFileSync('openssl', ['pkey', '-pubin', '-in', pemFile, '-outform', 'DER']);
    expect(signingKey.keyid).toBe(sha256Hex(der));
    expect(keyIdOf(createPublicKey(createPrivateKey(signingKeyPem)))).toBe(signingKey.keyid);
  });

  it('refuses a signing key that is not Ed25519 PKCS#8', () => {
    expect(() => loadSigningKey('not a key')).toThrow(/PKCS#8/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(() => loadSigningKey(ec)).toThrow(/Ed25519/);
  });
});

describe('signCheckpoint, exportRunLog and verifyEnvelope', () => {
  it('signs the run and every event, stores the envelope, and export returns the latest one', async () => {
    const runId = await createRunWithEvents(store.pool, 5);
    expect(await exportRunLog(store.pool, runId)).toBeUndefined();

    const first = await signCheckpoint(store.pool, runId, signingKeyPem);
    expect(first.seq).toBe(5);
    await store.pool.query(`update runs set state = 'ready' where id = $1`, [runId]);
    await store.pool.query(`update runs set state = 'applying' where id = $1`, [runId]);
    await store.pool.query(`update runs set state = 'applied', finished_at = now(), outcome = '{"result": "applied"}' where id = $1`, [runId]);
    await appendRunEvent(store.pool, { runId, actor: 'system', type: 'state.changed', payload: { from: 'applying', to: 'applied', reason: 'applied and verified' } });
    const second = await signCheckpoint(store.pool, runId, signingKeyPem);
    expect(second.seq).toBe(6);

    const exported = (await exportRunLog(store.pool, runId))!;
    expect(exported).toEqual(second.envelope);
    expect(Object.keys(exported)).toEqual(['payloadType', 'payload', 'signatures']);
    expect(exported.payloadType).toBe('application/vnd.in-toto+json');
    expect(exported.signatures).toEqual([{ keyid: signingKey.keyid, sig: expect.any(String) }]);

    const statement = statementOf(exported);
    const events = await readStoredRunEvents(store.pool, runId);
    expect(Buffer.from(exported.payload, 'base64').toString('utf8')).toBe(canonicalJson(statement));
    expect(statement).toMatchObject({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: `run/${runId}`, digest: { sha256: events.at(-1)!.hash } }],
      predicateType: 'https://runsheet.dev/run-log/v1',
      predicate: {
        run: { id: runId, plan_id: '008-active-org-tracking', plan_checksum: sha256Hex(PLAN_MANIFEST), kind: 'execute', state: 'applied', outcome: { result: 'applied' } },
        frozen_plan_manifest: PLAN_MANIFEST,
      },
    });
    expect(statement.predicate.run.finished_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    expect(statement.predicate.events).toHaveLength(6);
    expect(statement.predicate.events[0]).toEqual({ ...eventWithout(events[0]!) });

    const verdict = verifyEnvelope(exported, [signingKey.publicKeyPem]);
    expect(verdict).toMatchObject({ ok: true, runId, head: events.at(-1)!.hash, keyid: signingKey.keyid });
    expect(verdict.ok && verdict.events).toHaveLength(6);
    expect(verifyEnvelope(first.envelope, [signingKey.publicKey])).toMatchObject({ ok: true, head: events[4]!.hash });
  });

  it('returns the stored checkpoint when nothing changed, and refuses when the run changed without an event', async () => {
    const runId = await createRunWithEvents(store.pool, 2);
    const first = await signCheckpoint(store.pool, runId, signingKeyPem);
    expect(await signCheckpoint(store.pool, runId, signingKeyPem)).toEqual(first);
    await store.pool.query(`update runs set state = 'ready' where id = $1`, [runId]);
    await expect(signCheckpoint(store.pool, runId, signingKeyPem)).rejects.toThrow(/append an event/);
  });

  it('signs a run with no events yet: the head is the genesis', async () => {
    const runId = await createRun(store.pool);
    const checkpoint = await signCheckpoint(store.pool, runId, signingKeyPem);
    expect(checkpoint).toMatchObject({ seq: 0, head: genesisHash(runId) });
    expect(verifyEnvelope(checkpoint.envelope, [signingKey.publicKeyPem])).toMatchObject({ ok: true, head: genesisHash(runId), events: [] });
  });

  it('works inside the caller\'s transaction (the engine signs with its own client)', async () => {
    const runId = await createRunWithEvents(store.pool, 3);
    const client = await store.pool.connect();
    try {
      await client.query('begin');
      await appendRunEvent(client, { runId, actor: 'system', type: 'phase.started', payload: { phase: 'verify', plannedMs: null } });
      const checkpoint = await signCheckpoint(client, runId, signingKeyPem);
      expect(checkpoint.seq).toBe(4);
      await client.query('commit');
    } finally {
      client.release();
    }
    expect(statementOf((await exportRunLog(store.pool, runId))!).predicate.events).toHaveLength(4);
  });

  it('refuses to sign a stored log that was changed', async () => {
    const runId = await createRunWithEvents(store.pool, 4);
    await asAttacker(store.pool, `update run_events set payload = '{"n": 99}' where run_id = $1 and seq = 3`, [runId]);
    const error = await signCheckpoint(store.pool, runId, signingKeyPem).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ kind: 'integrity', message: expect.stringContaining('event 3') });
  });
});

describe('verifyEnvelope on an edited file', () => {
  let runId: string;
  let envelope: DsseEnvelope;

  beforeAll(async () => {
    runId = await createRunWithEvents(store.pool, 8);
    envelope = (await signCheckpoint(store.pool, runId, signingKeyPem)).envelope;
  });

  it("names the event whose payload was edited", () => {
    const edited = withStatement(envelope, (statement) => {
      statement.predicate.events[3]!.payload = { ...statement.predicate.events[3]!.payload, approved: true };
    });
    const verdict = verifyEnvelope(edited, [signingKey.publicKeyPem]);
    expect(verdict).toMatchObject({ ok: false, firstBadSeq: 4 });
    expect(!verdict.ok && verdict.reason).toMatch(/event 4 .* does not match its hash.*signature does not verify/);
  });

  it('fails on any single changed byte of the payload', () => {
    const body = Buffer.from(envelope.payload, 'base64');
    const positions = [10, Math.floor(body.length / 3), Math.floor(body.length / 2), body.length - 5];
    for (const position of positions) {
      const changed = Buffer.from(body);
      changed[position] = changed[position]! ^ 0x01;
      expect(verifyEnvelope({ ...envelope, payload: changed.toString('base64') }, [signingKey.publicKeyPem]).ok).toBe(false);
    }
  });

  it('names the first event of a changed actor, a reordering or a deletion', () => {
    const edited = withStatement(envelope, (statement) => {
      statement.predicate.events[1]!.actor = 'someone-else@example.com';
    });
    expect(verifyEnvelope(edited, [signingKey.publicKeyPem])).toMatchObject({ ok: false, firstBadSeq: 2 });
    const reordered = withStatement(envelope, (statement) => {
      const events = statement.predicate.events;
      [events[5], events[6]] = [events[6]!, events[5]!];
    });
    expect(verifyEnvelope(reordered, [signingKey.publicKeyPem])).toMatchObject({ ok: false, firstBadSeq: 6 });
    const dropped = withStatement(envelope, (statement) => {
      statement.predicate.events.splice(2, 1);
    });
    expect(verifyEnvelope(dropped, [signingKey.publicKeyPem])).toMatchObject({ ok: false, firstBadSeq: 3 });
  });

  it('catches, by the signature alone, an attacker who redid every hash and the subject', () => {
    const rewritten = withStatement(envelope, (statement) => {
      statement.predicate.events[2]!.payload = { forged: true };
      rechain(runId, statement);
    });
    const verdict = verifyEnvelope(rewritten, [signingKey.publicKeyPem]);
    expect(verdict).toMatchObject({ ok: false, reason: expect.stringMatching(/signature does not verify/) });
  });

  it('fails a validly signed Statement whose events do not hash as they claim', () => {
    const statement = statementOf(envelope);
    statement.predicate.events[4]!.type = 'signoff';
    const signedAnyway = signEnvelope(Buffer.from(canonicalJson(statement)), signingKey);
    expect(verifyEnvelope(signedAnyway, [signingKey.publicKeyPem])).toMatchObject({ ok: false, firstBadSeq: 5 });
  });

  it('fails with the wrong key, and with a signature forged under the trusted keyid', () => {
    const otherPem = newSigningKeyPem();
    const other = loadSigningKey(otherPem);
    const wrongKey = verifyEnvelope(envelope, [other.publicKeyPem]);
    expect(wrongKey).toMatchObject({ ok: false });
    expect(!wrongKey.ok && wrongKey.reason).toMatch(/not among the 1 trusted key/);

    const forged = sign(null, preAuthEncoding(envelope.payloadType, Buffer.from(envelope.payload, 'base64')), other.privateKey);
    const verdict = verifyEnvelope({ ...envelope, signatures: [{ keyid: signingKey.keyid, sig: forged.toString('base64') }] }, [signingKey.publicKeyPem]);
    expect(!verdict.ok && verdict.reason).toMatch(/signature does not verify/);
    expect(verifyEnvelope(envelope, [])).toMatchObject({ ok: false });
  });

  it('refuses something that is not an envelope', () => {
    expect(verifyEnvelope({ hello: 'world' }, [signingKey.publicKeyPem])).toMatchObject({ ok: false, reason: expect.stringMatching(/not a DSSE envelope/) });
    expect(verifyEnvelope({ ...envelope, payloadType: 'text/plain' }, [signingKey.publicKeyPem])).toMatchObject({ ok: false });
  });
});

describe('published keys and rotation', () => {
  it('publishes the current key first and keeps earlier ones, so old logs keep verifying', async () => {
    const oldPem = newSigningKeyPem();
    const old = loadSigningKey(oldPem);
    const runId = await createRunWithEvents(store.pool, 2);
    const oldLog = (await signCheckpoint(store.pool, runId, oldPem)).envelope;
    await appendRunEvent(store.pool, { runId, actor: 'system', type: 'note.added', payload: { text: 'after rotation' } });
    const newLog = (await signCheckpoint(store.pool, runId, signingKeyPem)).envelope;

    const keys = await publishedSigningKeys(store.pool, signingKeyPem);
    expect(keys[0]).toMatchObject({ keyid: signingKey.keyid, current: true });
    expect(keys.map((key) => key.keyid)).toContain(old.keyid);

    const pem = await publishedSigningKeysPem(store.pool, signingKeyPem);
    expect(pem.indexOf(signingKey.keyid)).toBeLessThan(pem.indexOf(old.keyid));
    expect(verifyEnvelope(oldLog, [pem])).toMatchObject({ ok: true, keyid: old.keyid });
    expect(verifyEnvelope(newLog, [pem])).toMatchObject({ ok: true, keyid: signingKey.keyid });
  });

  it('serves them at /signing-key.pem as application/x-pem-file', async () => {
    const context = { runtime: { store, signingKeyPem } as unknown as Runtime, cspNonce: '', clientAddress: '' };
    const response = await signingKeyLoader({ request: new Request('http://localhost/signing-key.pem'), context, params: {} } as LoaderFunctionArgs);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-pem-file');
    const body = await response.text();
    expect(body).toBe(await publishedSigningKeysPem(store.pool, signingKeyPem));
    expect(body.match(/-----BEGIN PUBLIC KEY-----/g)!.length).toBeGreaterThanOrEqual(2);
  });
});

describe('the openssl recipe (docs/verify-signed-log.sh)', () => {
  const script = fromRoot('docs', 'verify-signed-log.sh');

  function runRecipe(envelope: DsseEnvelope, keysPem: string) {
    const logFile = path.join(tmp, `log-${Math.random().toString(36).slice(2)}.json`);
    const keyFile = path.join(tmp, `keys-${Math.random().toString(36).slice(2)}.pem`);
    fs.writeFileSync(logFile, `${JSON.stringify(envelope, null, 2)}\n`);
    fs.writeFileSync(keyFile, keysPem);
    return spawnSync('sh', [script, logFile, keyFile], { encoding: 'utf8' });
  }

  it('verifies a real exported log with the published keys, with no Runsheet code', async () => {
    const runId = await createRunWithEvents(store.pool, 6);
    await signCheckpoint(store.pool, runId, newSigningKeyPem()); // an earlier key, still published
    await appendRunEvent(store.pool, { runId, actor: 'system', type: 'state.changed', payload: { from: 'applying', to: 'applied', reason: 'applied' } });
    await signCheckpoint(store.pool, runId, signingKeyPem);
    const envelope = (await exportRunLog(store.pool, runId))!;
    const head = statementOf(envelope).subject[0].digest.sha256;

    const result = runRecipe(envelope, await publishedSigningKeysPem(store.pool, signingKeyPem));
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Signature Verified Successfully');
    expect(result.stdout).toContain(`OK: run ${runId} (execute, draft), head ${head}, 7 events, signed by key ${signingKey.keyid}`);
  });

  it('rejects a changed payload, an unknown key, and events that do not link up', async () => {
    const runId = await createRunWithEvents(store.pool, 3);
    const envelope = (await signCheckpoint(store.pool, runId, signingKeyPem)).envelope;
    const keys = signingKey.publicKeyPem;

    const edited = withStatement(envelope, (statement) => {
      statement.predicate.events[1]!.payload = { forged: true };
    });
    const changed = runRecipe(edited, keys);
    expect(changed.status).toBe(1);
    expect(changed.stdout).toContain('Signature Verification Failure');
    expect(changed.stderr).toMatch(/does not verify/);

    const unknown = runRecipe(envelope, loadSigningKey(newSigningKeyPem()).publicKeyPem);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/no signature .* was made by a key/);

    // Validly signed, but the events do not link to the signed head (a signer's bug): step 5 catches it.
    const statement = statementOf(envelope);
    statement.predicate.events[2]!.prev_hash = genesisHash(runId);
    const unlinked = runRecipe(signEnvelope(Buffer.from(canonicalJson(statement)), signingKey), keys);
    expect(unlinked.stdout).toContain('Signature Verified Successfully');
    expect(unlinked.status).toBe(1);
    expect(unlinked.stderr).toMatch(/do not link up/);
  });
});

function eventWithout(event: Awaited<ReturnType<typeof readStoredRunEvents>>[number]) {
  return {
    seq: event.seq,
    at: event.at,
    actor: event.actor,
    role: event.role,
    type: event.type,
    payload: event.payload,
    prev_hash: event.prevHash,
    hash: event.hash,
  };
}

/** What an attacker with the spec but not the key can do: recompute every hash and the subject digest. */
function rechain(runId: string, statement: RunLogStatement): void {
  let previous = genesisHash(runId);
  for (const event of statement.predicate.events) {
    event.prev_hash = previous;
    event.hash = hashRunEvent(previous, runEventBody(runId, event));
    previous = event.hash;
  }
  statement.subject[0].digest.sha256 = previous;
}
