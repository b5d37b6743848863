/**
 * Verification of signed run logs (docs/decisions/011-signed-log-dsse-in-toto.md). Two checks:
 * - verifyEnvelope: an exported file, offline: the signature (with keys given by the caller,
 *   never taken from the file), every hash recomputed from the events, the head against the
 *   signed subject digest;
 * - verifyStoredRunLog: the events as stored now against the signed checkpoints, which catches a
 *   row changed, deleted or reordered in the database after signing, even with its hash redone.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import {
  assertRunId,
  canonicalJson,
  checkChain,
  genesisHash,
  pgExecutor,
  readStoredRunEvents,
  utcText,
  type ChainLink,
  type StoredRunEvent,
  type StoreExecutor,
} from './run-log.server';
import {
  DSSE_PAYLOAD_TYPE,
  IN_TOTO_STATEMENT_TYPE,
  keyIdOf,
  preAuthEncoding,
  RUN_LOG_DELTA_PREDICATE_TYPE,
  RUN_LOG_PREDICATE_TYPE,
  type DsseEnvelope,
  type RunLogDeltaStatement,
  type RunLogStatement,
  type StatementEvent,
  type StatementRun,
} from './signing.server';
import { RunsheetError } from '../runtime/errors';

export interface TrustedKey {
  keyid: string;
  key: KeyObject;
}

/** A KeyObject, or PEM text holding one or more `PUBLIC KEY` blocks (a /signing-key.pem file). */
export type PublicKeyInput = KeyObject | string;

export type EnvelopeVerification =
  | { ok: true; runId: string; head: string; keyid: string; run: StatementRun; frozenPlanManifest: string | null; events: StatementEvent[] }
  | { ok: false; reason: string; firstBadSeq?: number };

export type StoredLogVerification =
  | {
      ok: true;
      runId: string;
      /** Head of the stored chain (it may run past the last checkpoint). */
      head: string;
      eventCount: number;
      /** The last event covered by a signed checkpoint; 0 when the run has none yet. */
      signedSeq: number;
      checkpointCount: number;
      /** Whether this verdict came from the in-memory cache (the stored rows had not changed). */
      cached: boolean;
    }
  | { ok: false; runId: string; reason: string; firstBadSeq?: number; cached: boolean };

const PEM_PUBLIC_KEY = /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Every key given, as Ed25519 public keys with the keyid derived from the key itself. */
export function parsePublicKeys(inputs: readonly PublicKeyInput[]): TrustedKey[] {
  // Published keys arrive as PEM text on every report view: parsed once per text.
  if (inputs.every((input) => typeof input === 'string')) {
    const cacheKey = inputs.join('\n');
    const known = parsedKeyTexts.get(cacheKey);
    if (known) return known;
    const keys = parseKeys(inputs);
    if (parsedKeyTexts.size >= 16) parsedKeyTexts.delete(parsedKeyTexts.keys().next().value!);
    parsedKeyTexts.set(cacheKey, keys);
    return keys;
  }
  return parseKeys(inputs);
}

const parsedKeyTexts = new Map<string, TrustedKey[]>();

function parseKeys(inputs: readonly PublicKeyInput[]): TrustedKey[] {
  const keys: TrustedKey[] = [];
  for (const input of inputs) {
    const objects =
      typeof input === 'string'
        ? (input.match(PEM_PUBLIC_KEY) ?? []).map((block) => createPublicKey({ key: block, format: 'pem' }))
        : [input.type === 'private' ? createPublicKey(input) : input];
    if (typeof input === 'string' && objects.length === 0) throw new Error('no "-----BEGIN PUBLIC KEY-----" block in the key text');
    for (const key of objects) {
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a trusted key is ${key.asymmetricKeyType ?? 'unknown'}, not Ed25519`);
      const keyid = keyIdOf(key);
      if (!keys.some((known) => known.keyid === keyid)) keys.push({ keyid, key });
    }
  }
  return keys;
}

const EnvelopeSchema = z.object({
  payloadType: z.string(),
  payload: z.string().regex(BASE64, 'payload is not standard base64'),
  signatures: z.array(z.object({ keyid: z.string(), sig: z.string().regex(BASE64, 'sig is not standard base64') })).min(1),
});

/** The envelope's shape (not its validity): a file that is not a DSSE envelope is bad input. */
export function parseEnvelope(value: unknown): DsseEnvelope {
  const parsed = EnvelopeSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RunsheetError('invalid_input', `not a DSSE envelope: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  return parsed.data;
}

const Hex = z.string().regex(/^[0-9a-f]{64}$/, 'not a lower-case hex sha256');
const NullableText = z.string().nullable();
const StatementSchema = z.object({
  _type: z.literal(IN_TOTO_STATEMENT_TYPE),
  subject: z
    .array(z.object({ name: z.string().regex(/^run\/[0-9a-f-]{36}$/), digest: z.object({ sha256: Hex }) }))
    .length(1),
  predicateType: z.literal(RUN_LOG_PREDICATE_TYPE),
  predicate: z.object({
    run: z.object({
      id: z.string(),
      plan_id: z.string(),
      plan_checksum: z.string(),
      target: z.string(),
      kind: z.string(),
      state: z.string(),
      created_by: z.string(),
      created_at: z.string(),
      signed_off_by: NullableText,
      signed_off_at: NullableText,
      executed_by: NullableText,
      started_at: NullableText,
      finished_at: NullableText,
      outcome: z.unknown(),
    }),
    frozen_plan_manifest: NullableText,
    events: z.array(
      z.object({
        seq: z.number().int(),
        at: z.string(),
        actor: z.string(),
        role: NullableText,
        type: z.string(),
        payload: z.record(z.string(), z.unknown()),
        prev_hash: z.string(),
        hash: z.string(),
      }),
    ),
  }),
});

/** A delta checkpoint's Statement: the events since the checkpoint it follows. */
const DeltaStatementSchema = StatementSchema.extend({
  predicateType: z.literal(RUN_LOG_DELTA_PREDICATE_TYPE),
  predicate: StatementSchema.shape.predicate.extend({ previous: z.object({ seq: z.number().int().min(0), head: Hex }).nullable() }),
});

interface OpenedEnvelope {
  /** Undefined when a trusted key's signature verifies. */
  signatureProblem?: string;
  keyid?: string;
  statement?: RunLogStatement;
  statementProblem?: string;
}

/** Check the signature, then decode and shape-check the Statement (kept apart so a bad signature still names the bad event). */
function openEnvelope(value: unknown, keys: readonly TrustedKey[], schema: z.ZodType = StatementSchema): OpenedEnvelope {
  const envelope = parseEnvelope(value);
  const body = Buffer.from(envelope.payload, 'base64');
  const opened: OpenedEnvelope = {};

  if (envelope.payloadType !== DSSE_PAYLOAD_TYPE) {
    opened.signatureProblem = `payloadType is "${envelope.payloadType}", not "${DSSE_PAYLOAD_TYPE}"`;
  } else {
    const pae = preAuthEncoding(envelope.payloadType, body);
    const candidates = envelope.signatures.filter((signature) => keys.some((key) => key.keyid === signature.keyid));
    const good = candidates.find((signature) => {
      const key = keys.find((trusted) => trusted.keyid === signature.keyid)!;
      try {
        return verify(null, pae, key.key, Buffer.from(signature.sig, 'base64'));
      } catch {
        return false;
      }
    });
    if (good) opened.keyid = good.keyid;
    else if (candidates.length === 0) {
      opened.signatureProblem =
        `signed by key ${envelope.signatures.map((signature) => signature.keyid).join(', ')}, which is not among the ` +
        `${keys.length} trusted key(s) (${keys.map((key) => key.keyid.slice(0, 16)).join(', ') || 'none'})`;
    } else {
      opened.signatureProblem = 'the signature does not verify: the payload was changed after signing';
    }
  }

  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    opened.statementProblem = 'the payload is not JSON';
    return opened;
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    opened.statementProblem = `the payload is not a Runsheet run-log Statement: ${issue.path.join('.')}: ${issue.message}`;
    return opened;
  }
  // Hash the values exactly as decoded (the schema only checked their shape).
  opened.statement = json as RunLogStatement;
  return opened;
}

const statementLinks = (events: readonly StatementEvent[]): ChainLink[] =>
  events.map((event) => ({ ...event, prevHash: event.prev_hash }));

/**
 * Verify an exported envelope with trusted keys (never keys from the file): the signature, every
 * event hash recomputed in order, and the subject digest against the recomputed head. A failure
 * names the first bad event when the events show one.
 */
export function verifyEnvelope(envelope: unknown, publicKeys: readonly PublicKeyInput[]): EnvelopeVerification {
  let keys: TrustedKey[];
  try {
    keys = parsePublicKeys(publicKeys);
  } catch (error) {
    return { ok: false, reason: `the trusted keys cannot be read: ${(error as Error).message}` };
  }
  return verifyEnvelopeWith(envelope, keys);
}

function verifyEnvelopeWith(envelope: unknown, keys: readonly TrustedKey[]): EnvelopeVerification {
  let opened: OpenedEnvelope;
  try {
    opened = openEnvelope(envelope, keys);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  const { statement, signatureProblem } = opened;
  const also = signatureProblem ? `; and ${signatureProblem}` : '';
  if (!statement) return { ok: false, reason: `${signatureProblem ? `${signatureProblem}; and ` : ''}${opened.statementProblem}` };

  const runId = statement.predicate.run.id;
  if (statement.subject[0].name !== `run/${runId}`) {
    return { ok: false, reason: `the subject ${statement.subject[0].name} is not run/${runId}${also}` };
  }
  const chain = checkChain(runId, statementLinks(statement.predicate.events));
  if (!chain.ok) return { ok: false, reason: `${chain.reason}${also}`, firstBadSeq: chain.firstBadSeq };
  if (statement.subject[0].digest.sha256 !== chain.head) {
    return { ok: false, reason: `the signed head ${statement.subject[0].digest.sha256} is not the head of the events, ${chain.head}${also}` };
  }
  if (signatureProblem) return { ok: false, reason: signatureProblem };
  return {
    ok: true,
    runId,
    head: chain.head,
    keyid: opened.keyid!,
    run: statement.predicate.run,
    frozenPlanManifest: statement.predicate.frozen_plan_manifest,
    events: statement.predicate.events,
  };
}

// ---------------------------------------------------------------------------------------------
// The store check

interface RunFactsRow {
  id: string;
  plan_id: string;
  plan_checksum: string;
  target: string;
  kind: string;
  created_by: string;
  created_at: string;
  frozen_plan_manifest: string | null;
}

interface CheckpointRow {
  seq: number;
  head: string;
  keyid: string;
  kind: 'full' | 'delta';
  envelope: unknown;
}

interface Problem {
  seq?: number;
  reason: string;
}

type Verdict = Omit<Extract<StoredLogVerification, { ok: true }>, 'cached'> | Omit<Extract<StoredLogVerification, { ok: false }>, 'cached'>;

/** Verdicts by (run, stored head, versions of the stored rows, trusted keys); bounded, oldest dropped first. */
const verdictCache = new Map<string, Verdict>();
const VERDICT_CACHE_SIZE = 500;

/**
 * Check a run's log as stored now against its signed checkpoints: the stored chain is recomputed
 * from every row; each checkpoint's signature is checked with `publicKeys`; the latest
 * checkpoint's signed events are compared, column by column, with the stored ones; every earlier
 * checkpoint must be a prefix of it; the run's identity (plan, checksum, target, kind, creator,
 * frozen manifest) must be what was signed. Events after the last checkpoint are checked by the
 * chain only. Cached per (run, head, row versions): a page view does not re-hash an unchanged log.
 */
export async function verifyStoredRunLog(
  executor: StoreExecutor,
  runId: string,
  publicKeys: readonly PublicKeyInput[],
): Promise<StoredLogVerification> {
  const id = assertRunId(runId);
  const keys = parsePublicKeys(publicKeys);
  return inReadSnapshot(executor, async (client) => {
    const fingerprint = await storedFingerprint(client, id);
    if (!fingerprint) return { ok: false, runId: id, reason: `run ${id} does not exist`, cached: false };
    const cacheKey = [id, fingerprint, ...keys.map((key) => key.keyid).sort()].join('|');
    const hit = verdictCache.get(cacheKey);
    if (hit) return { ...hit, cached: true };

    const verdict = await checkStoredLog(client, id, keys);
    verdictCache.set(cacheKey, verdict);
    if (verdictCache.size > VERDICT_CACHE_SIZE) verdictCache.delete(verdictCache.keys().next().value!);
    return { ...verdict, cached: false };
  });
}

/**
 * What identifies the stored rows without reading their contents: the head, and each row's
 * version (xmin, ctid), which any UPDATE or DELETE + INSERT changes, even one that disabled the
 * triggers. Cheap: payloads and envelopes are not detoasted.
 */
async function storedFingerprint(client: pg.ClientBase, runId: string): Promise<string | undefined> {
  const { rows } = await client.query<{ runExists: boolean; head: string | null; events: string | null; checkpoints: string | null; facts: string | null }>(
    `select exists (select 1 from runs where id = $1) as "runExists",
            (select hash from run_events where run_id = $1 order by seq desc limit 1) as head,
            (select count(*) || ':' || md5(string_agg(seq || '@' || xmin::text || ctid::text, ',' order by seq)) from run_events where run_id = $1) as events,
            (select count(*) || ':' || md5(string_agg(seq || '@' || xmin::text || ctid::text, ',' order by seq)) from run_checkpoints where run_id = $1) as checkpoints,
            (select md5(jsonb_build_array(plan_id, plan_checksum, target, kind, created_by, created_at, frozen_plan->>'manifest')::text) from runs where id = $1) as facts`,
    [runId],
  );
  const row = rows[0]!;
  return row.runExists ? [row.head ?? 'genesis', row.events, row.checkpoints, row.facts].join('|') : undefined;
}

async function checkStoredLog(client: pg.ClientBase, runId: string, keys: readonly TrustedKey[]): Promise<Verdict> {
  const facts = (
    await client.query<RunFactsRow>(
      `select id::text as id, plan_id, plan_checksum, target, kind, created_by, ${utcText('created_at')} as created_at,
              frozen_plan->>'manifest' as frozen_plan_manifest
         from runs where id = $1`,
      [runId],
    )
  ).rows[0]!;
  const events = await readStoredRunEvents(client, runId);
  const checkpoints = (await client.query<CheckpointRow>('select seq, head, keyid, kind, envelope from run_checkpoints where run_id = $1 order by seq', [runId])).rows;

  const problems: Problem[] = [];
  const chain = checkChain(runId, events);
  if (!chain.ok) problems.push({ seq: chain.firstBadSeq, reason: `stored ${chain.reason}` });

  // Each delta is linked to the checkpoint before it: one deleted from the middle breaks the link.
  for (const [index, checkpoint] of checkpoints.entries()) {
    if (checkpoint.kind !== 'delta') continue;
    const problem = checkDeltaCheckpoint(checkpoint, checkpoints[index - 1], runId, events, keys);
    if (problem) problems.push(problem);
  }

  const latest = checkpoints.filter((checkpoint) => checkpoint.kind === 'full').at(-1);
  if (latest) {
    const signed = verifyEnvelopeWith(latest.envelope, keys);
    if (!signed.ok) {
      problems.push({ seq: signed.firstBadSeq, reason: `the signed checkpoint through event ${latest.seq} does not verify: ${signed.reason}` });
    } else if (signed.runId !== runId || signed.head !== latest.head || signed.events.length !== latest.seq) {
      problems.push({ reason: `the checkpoint row through event ${latest.seq} does not match the envelope it holds` });
    } else {
      // A sound stored chain whose hash at the checkpoint is the signed head holds exactly the
      // signed events (sha256 binds every earlier link); only otherwise look for the difference.
      const intact = chain.ok && events.length >= latest.seq && (latest.seq === 0 || events[latest.seq - 1]!.hash === latest.head);
      const difference = intact ? undefined : firstDifference(signed.events, events, latest.seq);
      if (difference) problems.push(difference);
      problems.push(...factDifferences(signed.run, signed.frozenPlanManifest, facts));
      for (const earlier of checkpoints.filter((checkpoint) => checkpoint.kind === 'full' && checkpoint.seq < latest.seq)) {
        const problem = checkEarlierCheckpoint(earlier, runId, signed.events, keys);
        if (problem) problems.push(problem);
      }
    }
  }

  if (problems.length > 0) {
    const withSeq = problems.filter((problem) => problem.seq !== undefined).sort((a, b) => a.seq! - b.seq!);
    const ordered = [...withSeq, ...problems.filter((problem) => problem.seq === undefined)];
    return { ok: false, runId, reason: ordered.map((problem) => problem.reason).join('; '), firstBadSeq: withSeq[0]?.seq };
  }
  return {
    ok: true,
    runId,
    head: chain.ok ? chain.head : '',
    eventCount: events.length,
    signedSeq: checkpoints.at(-1)?.seq ?? 0,
    checkpointCount: checkpoints.length,
  };
}

/**
 * A delta checkpoint: signed by a trusted key, a delta of this run, linked to the stored checkpoint
 * before it (the same last event and head), its head the stored chain's at its last event, and
 * its events as stored.
 */
function checkDeltaCheckpoint(checkpoint: CheckpointRow, before: CheckpointRow | undefined, runId: string, stored: readonly StoredRunEvent[], keys: readonly TrustedKey[]): Problem | undefined {
  let opened: OpenedEnvelope;
  try {
    opened = openEnvelope(checkpoint.envelope, keys, DeltaStatementSchema);
  } catch (error) {
    return { reason: `the checkpoint through event ${checkpoint.seq} holds ${(error as Error).message}` };
  }
  if (opened.signatureProblem || !opened.statement) {
    return { reason: `the signed checkpoint through event ${checkpoint.seq} does not verify: ${opened.signatureProblem ?? opened.statementProblem}` };
  }
  const statement = opened.statement as unknown as RunLogDeltaStatement;
  const previous = statement.predicate.previous;
  if (statement.predicate.run.id !== runId || statement.subject[0].digest.sha256 !== checkpoint.head) {
    return { reason: `the checkpoint row through event ${checkpoint.seq} does not match the envelope it holds` };
  }
  if ((previous?.seq ?? null) !== (before?.seq ?? null) || (previous && previous.head !== before?.head)) {
    return {
      seq: previous ? previous.seq || undefined : undefined,
      reason: previous
        ? `the checkpoint through event ${previous.seq} (head ${previous.head.slice(0, 16)}…), which the signed checkpoint through event ${checkpoint.seq} follows, is missing from the store or changed`
        : `the signed checkpoint through event ${checkpoint.seq} is the first, but the store holds one before it`,
    };
  }
  const storedHead = checkpoint.seq === 0 ? genesisHash(runId) : stored[checkpoint.seq - 1]?.hash;
  if (storedHead === checkpoint.head) return undefined;
  return (
    firstDifference(statement.predicate.events, stored, checkpoint.seq) ?? {
      seq: checkpoint.seq,
      reason: `the stored events no longer lead to the head signed at event ${checkpoint.seq}`,
    }
  );
}

const EVENT_FIELDS = ['at', 'actor', 'role', 'type', 'payload', 'prev_hash', 'hash'] as const;

/** The first signed event that the store no longer holds as signed, naming the columns that differ. */
function firstDifference(signedEvents: readonly StatementEvent[], stored: readonly StoredRunEvent[], throughSeq: number): Problem | undefined {
  const storedBySeq = new Map(stored.map((event) => [event.seq, event]));
  for (const signedEvent of signedEvents) {
    const row = storedBySeq.get(signedEvent.seq);
    if (!row) {
      return { seq: signedEvent.seq, reason: `event ${signedEvent.seq} (${signedEvent.type}), signed at the checkpoint through event ${throughSeq}, is missing from the store` };
    }
    const asStored: Record<(typeof EVENT_FIELDS)[number], unknown> = {
      at: row.at,
      actor: row.actor,
      role: row.role,
      type: row.type,
      payload: row.payload,
      prev_hash: row.prevHash,
      hash: row.hash,
    };
    const changed = EVENT_FIELDS.filter((field) => canonicalJson(asStored[field]) !== canonicalJson(signedEvent[field]));
    if (changed.length > 0) {
      return {
        seq: signedEvent.seq,
        reason: `event ${signedEvent.seq} (${signedEvent.type}) differs from what was signed at the checkpoint through event ${throughSeq}: ${changed.join(', ')} changed`,
      };
    }
  }
  return undefined;
}

/** What a run is (not its state, which moves) must stay what was signed. */
function factDifferences(signed: StatementRun, signedManifest: string | null, facts: RunFactsRow): Problem[] {
  const fields = ['plan_id', 'plan_checksum', 'target', 'kind', 'created_by', 'created_at'] as const;
  const problems: Problem[] = fields
    .filter((field) => signed[field] !== facts[field])
    .map((field) => ({ reason: `the run's ${field} is "${facts[field]}" in the store but "${signed[field]}" in the signed log` }));
  if (signedManifest !== facts.frozen_plan_manifest) problems.push({ reason: `the run's frozen plan manifest differs from the signed one` });
  return problems;
}

/** An earlier checkpoint must be signed by a trusted key and its head must be the latest signed chain's hash at its seq. */
function checkEarlierCheckpoint(checkpoint: CheckpointRow, runId: string, latestEvents: readonly StatementEvent[], keys: readonly TrustedKey[]): Problem | undefined {
  let opened: OpenedEnvelope;
  try {
    opened = openEnvelope(checkpoint.envelope, keys);
  } catch (error) {
    return { seq: checkpoint.seq || undefined, reason: `the checkpoint through event ${checkpoint.seq} holds ${(error as Error).message}` };
  }
  if (opened.signatureProblem || !opened.statement) {
    return { reason: `the signed checkpoint through event ${checkpoint.seq} does not verify: ${opened.signatureProblem ?? opened.statementProblem}` };
  }
  const digest = opened.statement.subject[0].digest.sha256;
  const expected = checkpoint.seq === 0 ? genesisHash(runId) : latestEvents[checkpoint.seq - 1]?.hash;
  if (digest !== checkpoint.head || digest !== expected || opened.statement.predicate.run.id !== runId) {
    return {
      seq: checkpoint.seq || undefined,
      reason: `the checkpoint signed through event ${checkpoint.seq} disagrees with the latest one: the signed log was rewritten after it`,
    };
  }
  return undefined;
}

/** Reads that see one snapshot: REPEATABLE READ, read only, unless the caller's transaction is already open. */
async function inReadSnapshot<T>(executor: StoreExecutor, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  const target = pgExecutor(executor);
  const isClient = typeof (target as pg.ClientBase).getTransactionStatus === 'function';
  if (isClient && (target as pg.ClientBase).getTransactionStatus() === 'T') return work(target as pg.ClientBase);
  const client = isClient ? (target as pg.ClientBase) : await (target as pg.Pool).connect();
  try {
    await client.query('begin isolation level repeatable read read only');
    try {
      const result = await work(client);
      await client.query('commit');
      return result;
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    }
  } finally {
    if (!isClient) (client as pg.PoolClient).release();
  }
}

// ---------------------------------------------------------------------------------------------
// The anchors outside the store

export type AnchorVerdict =
  /** Every anchor on the target is a checkpoint the store holds, with the same head. */
  | { status: 'anchored'; target: string; anchors: number; throughSeq: number }
  /** Nothing to anchor: the run never drove its target (being prepared, refused) or is a rehearsal (webhook only). */
  | { status: 'none'; target: string; reason: string }
  /** The run drove its target, and the target holds no anchor of it (it could not be written, or was removed). */
  | { status: 'missing'; target: string; reason: string }
  /** The target cannot be read now: nothing is judged. */
  | { status: 'unreadable'; target: string; reason: string }
  /** The store lacks or changed a checkpoint the target anchored: the log was cut back or rewritten. */
  | { status: 'broken'; target: string; reason: string; seq: number };

/**
 * The store's checkpoints against the heads the run's target keeps (its ledger rows and the
 * drives' end anchors): a stored log cut back to an earlier checkpoint (events and checkpoints
 * deleted together) keeps a valid chain and valid signatures, and only this finds it.
 */
export async function verifyRunAnchors(
  executor: StoreExecutor,
  runId: string,
  target: { name: string; readAnchors: () => Promise<{ source: 'ledger' | 'end'; seq: number; head: string; checkpoints: number; at: string }[]> },
): Promise<AnchorVerdict> {
  const id = assertRunId(runId);
  const store = pgExecutor(executor);
  const { rows: stored } = await store.query<{ seq: number; head: string }>('select seq, head from run_checkpoints where run_id = $1 order by seq', [id]);
  const { rows: facts } = await store.query<{ kind: string; drove: boolean }>(
    `select kind, exists (select 1 from run_events where run_id = $1 and type in ('execute.started', 'rollback.started')) as drove from runs where id = $1`,
    [id],
  );
  const run = facts[0];
  const nothingExpected = !run || run.kind === 'rehearsal' || !run.drove;
  const why = !run || run.kind === 'rehearsal' ? 'a rehearsal writes nothing to its target (anchored only by RUNSHEET_ANCHOR_URL, when set)' : 'the run has not driven its target: nothing is anchored there yet';
  let anchors;
  try {
    anchors = await target.readAnchors();
  } catch (error) {
    // Read whatever the store says (a cut-back log may no longer show its drive); only then is "nothing to anchor" believed.
    const problem = `the anchors on target ${target.name} cannot be read: ${(error as Error).message}`;
    return nothingExpected ? { status: 'none', target: target.name, reason: `${why} (${problem})` } : { status: 'unreadable', target: target.name, reason: problem };
  }
  if (anchors.length === 0) {
    if (nothingExpected) return { status: 'none', target: target.name, reason: why };
    return { status: 'missing', target: target.name, reason: `target ${target.name} holds no anchor of this run, which drove it: it could not be written then, or was removed since` };
  }
  const bySeq = new Map(stored.map((checkpoint) => [checkpoint.seq, checkpoint.head]));
  for (const anchor of anchors) {
    const where = `anchored on target ${target.name} at ${anchor.at.replace('T', ' ').slice(0, 19)} UTC (${anchor.source === 'ledger' ? 'its ledger row' : "the drive's end"})`;
    const head = bySeq.get(anchor.seq);
    if (head === undefined) {
      return { status: 'broken', target: target.name, seq: anchor.seq, reason: `the signed checkpoint through event ${anchor.seq} (head ${anchor.head.slice(0, 16)}…), ${where}, is missing from the store: the log was cut back` };
    }
    if (head !== anchor.head) {
      return { status: 'broken', target: target.name, seq: anchor.seq, reason: `the checkpoint through event ${anchor.seq} in the store has head ${head.slice(0, 16)}…, but ${anchor.head.slice(0, 16)}… was ${where}: the log was rewritten` };
    }
    if (stored.length < anchor.checkpoints) {
      return { status: 'broken', target: target.name, seq: anchor.seq, reason: `the store holds ${stored.length} checkpoints, but ${anchor.checkpoints} existed when event ${anchor.seq} was ${where}: checkpoints were deleted` };
    }
  }
  return { status: 'anchored', target: target.name, anchors: anchors.length, throughSeq: Math.max(...anchors.map((anchor) => anchor.seq)) };
}
