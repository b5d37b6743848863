/**
 * Signed checkpoints of a run log (docs/decisions/011-signed-log-dsse-in-toto.md): a DSSE
 * envelope, Ed25519 over the pre-authentication encoding, of an in-toto Statement v1 whose
 * subject is the run and whose digest is the chain head. Signing stores the envelope; export
 * returns the latest stored one and never signs.
 */
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import {
  canonicalJson,
  checkChain,
  genesisHash,
  inStoreTransaction,
  lockRunLog,
  assertRunId,
  pgExecutor,
  readStoredRunEvents,
  sha256Hex,
  utcText,
  type StoreExecutor,
} from './run-log.server';
import { RunsheetError } from '../runtime/errors';

export const DSSE_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const RUN_LOG_PREDICATE_TYPE = 'https://runsheet.dev/run-log/v1';
/** A delta checkpoint: the events since the checkpoint before it, linked to that one's head (docs/decisions/020). */
export const RUN_LOG_DELTA_PREDICATE_TYPE = 'https://runsheet.dev/run-log-delta/v1';

export type CheckpointKind = 'full' | 'delta';

export interface DsseSignature {
  /** sha256 hex of the signing key's public key, DER (SubjectPublicKeyInfo). */
  keyid: string;
  /** Ed25519 signature over the PAE, standard base64. */
  sig: string;
}

export interface DsseEnvelope {
  payloadType: string;
  /** The Statement's canonical JSON (RFC 8785), standard base64. */
  payload: string;
  signatures: DsseSignature[];
}

/** One event as the signed Statement carries it. */
export interface StatementEvent {
  seq: number;
  at: string;
  actor: string;
  role: string | null;
  type: string;
  payload: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

/** The run as the signed Statement carries it; timestamps in the run log's `at` format. */
export interface StatementRun {
  id: string;
  plan_id: string;
  plan_checksum: string;
  target: string;
  kind: string;
  state: string;
  created_by: string;
  created_at: string;
  signed_off_by: string | null;
  signed_off_at: string | null;
  executed_by: string | null;
  started_at: string | null;
  finished_at: string | null;
  outcome: unknown;
}

export interface RunLogPredicate {
  run: StatementRun;
  /** The frozen plan's manifest (`<sha256>  <path>\n` per file); its sha256 is run.plan_checksum. */
  frozen_plan_manifest: string | null;
  events: StatementEvent[];
}

export interface RunLogStatement {
  _type: typeof IN_TOTO_STATEMENT_TYPE;
  subject: [{ name: string; digest: { sha256: string } }];
  predicateType: typeof RUN_LOG_PREDICATE_TYPE;
  predicate: RunLogPredicate;
}

/** The checkpoint a delta follows: its last event and head (null: the delta starts at the first event). */
export interface CheckpointLink {
  seq: number;
  head: string;
}

export interface RunLogDeltaPredicate extends RunLogPredicate {
  previous: CheckpointLink | null;
}

export interface RunLogDeltaStatement {
  _type: typeof IN_TOTO_STATEMENT_TYPE;
  subject: [{ name: string; digest: { sha256: string } }];
  predicateType: typeof RUN_LOG_DELTA_PREDICATE_TYPE;
  predicate: RunLogDeltaPredicate;
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`). */
  publicKeyPem: string;
  keyid: string;
}

export interface RunCheckpoint {
  runId: string;
  seq: number;
  head: string;
  keyid: string;
  kind: CheckpointKind;
  envelope: DsseEnvelope;
  /** How many checkpoints the run has with this one (what an anchor records). */
  count: number;
}

/** DSSE v1 PAE: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body; lengths in bytes, ASCII decimal. */
export function preAuthEncoding(payloadType: string, body: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `, 'ascii'), type, Buffer.from(` ${body.length} `, 'ascii'), body]);
}

/** sha256 hex of the public key's DER SubjectPublicKeyInfo (`openssl pkey -pubin -outform DER | sha256sum`). */
export function keyIdOf(publicKey: KeyObject): string {
  return sha256Hex(publicKey.export({ type: 'spki', format: 'der' }));
}

/** SIGNING_KEY: an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`). */
export function loadSigningKey(pkcs8Pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pkcs8Pem, format: 'pem' });
  } catch (error) {
    throw new Error(`The signing key is not a PKCS#8 PEM private key: ${(error as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(`The signing key must be Ed25519, not ${privateKey.asymmetricKeyType ?? 'unknown'} (openssl genpkey -algorithm ed25519).`);
  }
  const publicKey = createPublicKey(privateKey);
  return {
    privateKey,
    publicKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyid: keyIdOf(publicKey),
  };
}

/** A DSSE envelope over `body`, signed with Ed25519 (deterministic: same key and body, same signature). */
export function signEnvelope(body: Uint8Array, key: SigningKey, payloadType = DSSE_PAYLOAD_TYPE): DsseEnvelope {
  const signature = sign(null, preAuthEncoding(payloadType, body), key.privateKey);
  return {
    payloadType,
    payload: Buffer.from(body).toString('base64'),
    signatures: [{ keyid: key.keyid, sig: signature.toString('base64') }],
  };
}

interface RunStatementRow extends StatementRun {
  frozen_plan_manifest: string | null;
}

/**
 * The Statement for a run's log as stored now (caller holds the run-log lock for a consistent
 * read): every event ('full'), or the events since the latest stored checkpoint ('delta').
 */
export async function buildRunLogStatement(
  client: pg.ClientBase,
  runId: string,
  kind: CheckpointKind = 'full',
): Promise<{ statement: RunLogStatement | RunLogDeltaStatement; head: string; seq: number }> {
  const id = assertRunId(runId);
  const { rows } = await client.query<RunStatementRow>(
    `select id::text as id, plan_id, plan_checksum, target, kind, state,
            created_by, ${utcText('created_at')} as created_at,
            signed_off_by, ${utcText('signed_off_at')} as signed_off_at,
            executed_by, ${utcText('started_at')} as started_at, ${utcText('finished_at')} as finished_at,
            outcome, frozen_plan->>'manifest' as frozen_plan_manifest
       from runs where id = $1`,
    [id],
  );
  const row = rows[0];
  if (!row) throw new Error(`run ${id} does not exist`);
  const events = await readStoredRunEvents(client, id);

  const chain = checkChain(id, events);
  // Signing a changed log would launder the change.
  if (!chain.ok) throw new RunsheetError('integrity', `Refusing to sign run ${id}: ${chain.reason}.`);
  // The stored chain must still end in every head signed before (else it was rewritten since).
  const signed = await client.query<{ seq: number; head: string }>('select seq, head from run_checkpoints where run_id = $1 order by seq', [id]);
  for (const checkpoint of signed.rows) {
    const storedHead = checkpoint.seq === 0 ? genesisHash(id) : chain.hashes[checkpoint.seq - 1];
    if (storedHead !== checkpoint.head) {
      throw new RunsheetError('integrity', 
        `Refusing to sign run ${id}: the stored events no longer lead to the head signed at event ${checkpoint.seq} ` +
          `(npx runsheet log verify --run ${id} names the event).`,
      );
    }
  }

  const { frozen_plan_manifest, ...run } = row;
  const previous = signed.rows.at(-1);
  const from = kind === 'delta' && previous ? previous.seq : 0;
  const predicate: RunLogPredicate = {
      run: {
        id: run.id,
        plan_id: run.plan_id,
        plan_checksum: run.plan_checksum,
        target: run.target,
        kind: run.kind,
        state: run.state,
        created_by: run.created_by,
        created_at: run.created_at,
        signed_off_by: run.signed_off_by,
        signed_off_at: run.signed_off_at,
        executed_by: run.executed_by,
        started_at: run.started_at,
        finished_at: run.finished_at,
        outcome: run.outcome ?? null,
      },
      frozen_plan_manifest: frozen_plan_manifest ?? null,
      events: events
        .filter((event) => event.seq > from)
        .map((event) => ({
          seq: event.seq,
          at: event.at,
          actor: event.actor,
          role: event.role,
          type: event.type,
          payload: event.payload,
          prev_hash: event.prevHash,
          hash: event.hash,
        })),
  };
  const subject: RunLogStatement['subject'] = [{ name: `run/${id}`, digest: { sha256: chain.head } }];
  const statement: RunLogStatement | RunLogDeltaStatement =
    kind === 'delta'
      ? { _type: IN_TOTO_STATEMENT_TYPE, subject, predicateType: RUN_LOG_DELTA_PREDICATE_TYPE, predicate: { ...predicate, previous: previous ? { seq: previous.seq, head: previous.head } : null } }
      : { _type: IN_TOTO_STATEMENT_TYPE, subject, predicateType: RUN_LOG_PREDICATE_TYPE, predicate };
  return { statement, head: chain.head, seq: events.length };
}

/**
 * Sign the run's log as stored now and store the envelope (run_checkpoints), registering the
 * public key (signing_keys). The engine signs a 'full' checkpoint at drive start, each phase end
 * and completion, and a small 'delta' one after every human action (docs/decisions/020). Signing
 * twice at the same event returns the checkpoint already stored; if the run row changed without
 * an event in between, it refuses: append an event (e.g. state.changed) first.
 */
export async function signCheckpoint(executor: StoreExecutor, runId: string, signingKeyPem: string, kind: CheckpointKind = 'full'): Promise<RunCheckpoint> {
  const key = loadSigningKey(signingKeyPem);
  const id = assertRunId(runId);
  return inStoreTransaction(executor, async (client) => {
    await lockRunLog(client, id);
    const latest = await client.query<{ seq: number; count: number }>('select max(seq) as seq, count(*)::int as count from run_checkpoints where run_id = $1', [id]);
    const { statement, head, seq } = await buildRunLogStatement(client, id, kind);
    const envelope = signEnvelope(Buffer.from(canonicalJson(statement), 'utf8'), key);
    await client.query('insert into signing_keys (keyid, public_key_pem) values ($1, $2) on conflict (keyid) do nothing', [key.keyid, key.publicKeyPem]);
    // Nothing new since the latest checkpoint: a delta adds nothing (the full one before it stands).
    if (kind === 'delta' && latest.rows[0]?.seq === seq) return existingCheckpoint(client, id, seq, latest.rows[0].count);
    const inserted = await client.query(
      `insert into run_checkpoints (run_id, seq, head, envelope, keyid, kind) values ($1, $2, $3, $4::jsonb, $5, $6)
       on conflict (run_id, seq) do nothing`,
      [id, seq, head, JSON.stringify(envelope), key.keyid, kind],
    );
    const count = (latest.rows[0]?.count ?? 0) + (inserted.rowCount === 1 ? 1 : 0);
    if (inserted.rowCount === 1) return { runId: id, seq, head, keyid: key.keyid, kind, envelope, count };

    const existing = await existingCheckpoint(client, id, seq, count);
    // A full checkpoint asked where a delta stands keeps the delta (the next full one covers all).
    if (existing.kind === kind && existing.envelope.payload !== envelope.payload) {
      throw new Error(
        `Run ${id} already has a checkpoint signed at event ${seq}, and the run has changed since without a run event: ` +
          `append an event (e.g. state.changed) before signing again.`,
      );
    }
    return existing;
  });
}

async function existingCheckpoint(client: pg.ClientBase, runId: string, seq: number, count: number): Promise<RunCheckpoint> {
  const { rows } = await client.query<{ envelope: DsseEnvelope; keyid: string; head: string; kind: CheckpointKind }>(
    'select envelope, keyid, head, kind from run_checkpoints where run_id = $1 and seq = $2',
    [runId, seq],
  );
  const stored = rows[0]!;
  return { runId, seq, head: stored.head, keyid: stored.keyid, kind: stored.kind, envelope: envelopeInOrder(stored.envelope), count };
}

/** jsonb reorders keys; files and answers use the DSSE field order. */
function envelopeInOrder(envelope: DsseEnvelope): DsseEnvelope {
  return {
    payloadType: envelope.payloadType,
    payload: envelope.payload,
    signatures: envelope.signatures.map((signature) => ({ keyid: signature.keyid, sig: signature.sig })),
  };
}

/** What a front end says when a run has nothing signed in full yet. */
export const noSignedLogYet = (runId: string) =>
  `Run ${runId} has no signed log yet to export: the whole log is signed when a drive starts, at each phase end and at completion (its preparation is signed in small checkpoints, which npx runsheet log verify --run checks).`;

/** The latest stored full signed envelope of a run (every event); undefined before its first. Never signs. */
export async function exportRunLog(executor: StoreExecutor, runId: string): Promise<DsseEnvelope | undefined> {
  const id = assertRunId(runId);
  const target = pgExecutor(executor);
  const { rows } = await target.query<{ envelope: DsseEnvelope }>(
    `select envelope from run_checkpoints where run_id = $1 and kind = 'full' order by seq desc limit 1`,
    [id],
  );
  const row = rows[0];
  return row ? envelopeInOrder(row.envelope) : undefined;
}

export interface PublishedKey {
  keyid: string;
  publicKeyPem: string;
  current: boolean;
  /** When it first signed; null for a current key that has not signed yet. */
  firstUsedAt: string | null;
}

/** The current public key first, then every earlier one that signed, newest first. */
export async function publishedSigningKeys(executor: StoreExecutor, currentSigningKeyPem: string): Promise<PublishedKey[]> {
  const current = currentPublicKey(currentSigningKeyPem);
  const target = pgExecutor(executor);
  const { rows } = await target.query<{ keyid: string; publicKeyPem: string; firstUsedAt: string }>(
    `select keyid, public_key_pem as "publicKeyPem", ${utcText('first_used_at')} as "firstUsedAt"
       from signing_keys order by first_used_at desc, keyid`,
  );
  const currentRow = rows.find((row) => row.keyid === current.keyid);
  return [
    { keyid: current.keyid, publicKeyPem: current.publicKeyPem, current: true, firstUsedAt: currentRow?.firstUsedAt ?? null },
    ...rows.filter((row) => row.keyid !== current.keyid).map((row) => ({ ...row, current: false })),
  ];
}

/** The current key's public half and keyid, derived once per key (a report view asks for them every time). */
function currentPublicKey(pkcs8Pem: string): { keyid: string; publicKeyPem: string } {
  if (derivedPublic?.pem !== pkcs8Pem) {
    const { keyid, publicKeyPem } = loadSigningKey(pkcs8Pem);
    derivedPublic = { pem: pkcs8Pem, keyid, publicKeyPem };
  }
  return derivedPublic;
}

let derivedPublic: { pem: string; keyid: string; publicKeyPem: string } | undefined;

/** The body of /signing-key.pem: every published key as a PUBLIC KEY block, each after a `#` line naming it. */
export async function publishedSigningKeysPem(executor: StoreExecutor, currentSigningKeyPem: string): Promise<string> {
  const keys = await publishedSigningKeys(executor, currentSigningKeyPem);
  const blocks = keys.map((key) => {
    const label = key.current ? 'current signing key' : `earlier signing key, first used ${key.firstUsedAt}`;
    return `# ${label}, keyid ${key.keyid}\n${key.publicKeyPem.trim()}\n`;
  });
  return [
    '# Runsheet run-log signing keys (Ed25519). keyid = sha256 of the key\'s DER (SubjectPublicKeyInfo).\n',
    '# Verify a signed log with the key whose keyid its signature names (README: "How to verify a signed log").\n',
    ...blocks,
  ].join('');
}
