CREATE TABLE "run_watches" (
	"run_id" uuid PRIMARY KEY NOT NULL,
	"checks" jsonb NOT NULL,
	"every_ms" integer NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"ends_at" timestamp with time zone NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"ended_at" timestamp with time zone,
	"runner" text,
	"heartbeat_at" timestamp with time zone,
	"next_round_at" timestamp with time zone DEFAULT now() NOT NULL,
	"rounds" integer DEFAULT 0 NOT NULL,
	"last_round_at" timestamp with time zone,
	"unchanged_rounds" integer DEFAULT 0 NOT NULL,
	"last_unchanged_at" timestamp with time zone,
	"last_results" jsonb DEFAULT '{}'::jsonb NOT NULL,
	CONSTRAINT "run_watches_status_known" CHECK ("run_watches"."status" in ('running', 'ended')),
	CONSTRAINT "run_watches_every_positive" CHECK ("run_watches"."every_ms" > 0)
);
--> statement-breakpoint
ALTER TABLE "runs" DROP CONSTRAINT "runs_state_known";--> statement-breakpoint
ALTER TABLE "run_watches" ADD CONSTRAINT "run_watches_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "run_watches_running_idx" ON "run_watches" USING btree ("next_round_at") WHERE "run_watches"."status" = 'running';--> statement-breakpoint
ALTER TABLE "runs" ADD CONSTRAINT "runs_state_known" CHECK ("runs"."state" in ('draft', 'ready', 'superseded', 'applying', 'applied', 'failed', 'cancelled', 'interrupted', 'rolling_back', 'rolled_back', 'rollback_failed', 'watching', 'watched', 'watch_alarm', 'rehearsing', 'rehearsed', 'rehearsal_failed'));--> statement-breakpoint
-- db/run-lifecycle.ts: a verified apply whose plan declares a watch enters it; the watch closes
-- clean (watched) or alarms on the first regression (watch_alarm); a rollback may start from each
-- of the three (it ends the watch first), and gives its claim back to it when the target's lock is held.
INSERT INTO "run_state_transitions" ("from_state", "to_state") VALUES
	('applied', 'watching'),
	('watching', 'watched'),
	('watching', 'watch_alarm'),
	('watching', 'rolling_back'),
	('watched', 'rolling_back'),
	('watch_alarm', 'rolling_back'),
	('rolling_back', 'watching'),
	('rolling_back', 'watched'),
	('rolling_back', 'watch_alarm');
