CREATE TABLE "run_checkpoints" (
	"run_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"head" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"keyid" text NOT NULL,
	"signed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "run_checkpoints_run_id_seq_pk" PRIMARY KEY("run_id","seq"),
	CONSTRAINT "run_checkpoints_seq_nonnegative" CHECK ("run_checkpoints"."seq" >= 0),
	CONSTRAINT "run_checkpoints_head_hex" CHECK ("run_checkpoints"."head" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
CREATE TABLE "run_events" (
	"run_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"at" text NOT NULL,
	"actor" text NOT NULL,
	"role" text,
	"type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL,
	CONSTRAINT "run_events_run_id_seq_pk" PRIMARY KEY("run_id","seq"),
	CONSTRAINT "run_events_seq_positive" CHECK ("run_events"."seq" >= 1),
	CONSTRAINT "run_events_at_format" CHECK ("run_events"."at" ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$'),
	CONSTRAINT "run_events_payload_object" CHECK (jsonb_typeof("run_events"."payload") = 'object'),
	CONSTRAINT "run_events_prev_hash_hex" CHECK ("run_events"."prev_hash" ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "run_events_hash_hex" CHECK ("run_events"."hash" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
CREATE TABLE "runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"plan_id" text NOT NULL,
	"plan_checksum" text NOT NULL,
	"target" text NOT NULL,
	"kind" text NOT NULL,
	"state" text DEFAULT 'draft' NOT NULL,
	"frozen_plan" jsonb NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"signed_off_by" text,
	"signed_off_at" timestamp with time zone,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"executed_by" text,
	"heartbeat_at" timestamp with time zone,
	"target_backend_pid" integer,
	"owner_process" text,
	"outcome" jsonb,
	CONSTRAINT "runs_kind_known" CHECK ("runs"."kind" in ('execute', 'rehearsal')),
	CONSTRAINT "runs_state_known" CHECK ("runs"."state" in ('draft', 'ready', 'applying', 'applied', 'failed', 'interrupted', 'rolling_back', 'rolled_back', 'rollback_failed', 'rehearsing', 'rehearsed', 'rehearsal_failed')),
	CONSTRAINT "runs_state_fits_kind" CHECK (("runs"."kind" = 'rehearsal' and "runs"."state" in ('draft', 'ready', 'rehearsing', 'rehearsed', 'rehearsal_failed', 'interrupted')) or ("runs"."kind" = 'execute' and "runs"."state" not in ('rehearsing', 'rehearsed', 'rehearsal_failed')))
);
--> statement-breakpoint
CREATE TABLE "signing_keys" (
	"keyid" text PRIMARY KEY NOT NULL,
	"public_key_pem" text NOT NULL,
	"first_used_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "signing_keys_keyid_hex" CHECK ("signing_keys"."keyid" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
ALTER TABLE "run_checkpoints" ADD CONSTRAINT "run_checkpoints_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "run_events" ADD CONSTRAINT "run_events_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "runs_one_active_per_target" ON "runs" USING btree ("target") WHERE "runs"."state" in ('applying', 'rolling_back', 'rehearsing');--> statement-breakpoint
CREATE INDEX "runs_target_created_idx" ON "runs" USING btree ("target","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "runs_plan_idx" ON "runs" USING btree ("plan_id","target");--> statement-breakpoint
-- Hand-written (drizzle-kit does not generate functions or triggers). The run log is append-only in
-- PostgreSQL itself, not only in code (docs/decisions/010-run-log-hash-chain.md): UPDATE, DELETE and
-- TRUNCATE of run_events and run_checkpoints raise, an event must extend its run's chain by exactly
-- one link, and a checkpoint's head must be the stored hash at its seq.
CREATE FUNCTION "run_log_genesis"("run_id" uuid) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT encode(sha256(convert_to('runsheet/run-log/v1' || chr(10) || "run_id"::text, 'UTF8')), 'hex')
$$;--> statement-breakpoint
CREATE FUNCTION "run_log_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;--> statement-breakpoint
CREATE TRIGGER "run_events_no_update_delete" BEFORE UPDATE OR DELETE ON "run_events" FOR EACH ROW EXECUTE FUNCTION "run_log_append_only"();--> statement-breakpoint
CREATE TRIGGER "run_events_no_truncate" BEFORE TRUNCATE ON "run_events" FOR EACH STATEMENT EXECUTE FUNCTION "run_log_append_only"();--> statement-breakpoint
CREATE TRIGGER "run_checkpoints_no_update_delete" BEFORE UPDATE OR DELETE ON "run_checkpoints" FOR EACH ROW EXECUTE FUNCTION "run_log_append_only"();--> statement-breakpoint
CREATE TRIGGER "run_checkpoints_no_truncate" BEFORE TRUNCATE ON "run_checkpoints" FOR EACH STATEMENT EXECUTE FUNCTION "run_log_append_only"();--> statement-breakpoint
CREATE FUNCTION "run_events_extend_chain"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	last_seq integer;
	last_hash text;
BEGIN
	SELECT e.seq, e.hash INTO last_seq, last_hash FROM run_events e WHERE e.run_id = NEW.run_id ORDER BY e.seq DESC LIMIT 1;
	IF NOT FOUND THEN
		last_seq := 0;
		last_hash := run_log_genesis(NEW.run_id);
	END IF;
	IF NEW.seq <> last_seq + 1 OR NEW.prev_hash <> last_hash THEN
		RAISE EXCEPTION 'run_events: event % of run % does not extend the chain (expected seq % with prev_hash %)', NEW.seq, NEW.run_id, last_seq + 1, last_hash
			USING ERRCODE = 'integrity_constraint_violation';
	END IF;
	RETURN NEW;
END
$$;--> statement-breakpoint
CREATE TRIGGER "run_events_extend_chain" BEFORE INSERT ON "run_events" FOR EACH ROW EXECUTE FUNCTION "run_events_extend_chain"();--> statement-breakpoint
CREATE FUNCTION "run_checkpoints_match_chain"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	stored_head text;
BEGIN
	IF NEW.seq = 0 THEN
		stored_head := run_log_genesis(NEW.run_id);
	ELSE
		SELECT e.hash INTO stored_head FROM run_events e WHERE e.run_id = NEW.run_id AND e.seq = NEW.seq;
	END IF;
	IF stored_head IS DISTINCT FROM NEW.head THEN
		RAISE EXCEPTION 'run_checkpoints: head % is not the stored hash of event % of run %', NEW.head, NEW.seq, NEW.run_id
			USING ERRCODE = 'integrity_constraint_violation';
	END IF;
	RETURN NEW;
END
$$;--> statement-breakpoint
CREATE TRIGGER "run_checkpoints_match_chain" BEFORE INSERT ON "run_checkpoints" FOR EACH ROW EXECUTE FUNCTION "run_checkpoints_match_chain"();
