CREATE TABLE "check_results" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"target" text NOT NULL,
	"plan_id" text NOT NULL,
	"plan_checksum" text NOT NULL,
	"check_id" text NOT NULL,
	"phase" text NOT NULL,
	"kind" text NOT NULL,
	"passed" boolean NOT NULL,
	"skipped" boolean DEFAULT false NOT NULL,
	"expected" jsonb NOT NULL,
	"actual" jsonb,
	"sql_text" text,
	"error" jsonb,
	"duration_ms" integer NOT NULL,
	"ran_at" timestamp with time zone NOT NULL,
	"run_id" uuid,
	"ran_by" text
);
--> statement-breakpoint
CREATE TABLE "fact_snapshots" (
	"target" text NOT NULL,
	"plan_id" text DEFAULT '' NOT NULL,
	"kind" text NOT NULL,
	"facts" jsonb NOT NULL,
	"computed_at" timestamp with time zone NOT NULL,
	"duration_ms" integer NOT NULL,
	CONSTRAINT "fact_snapshots_target_plan_id_kind_pk" PRIMARY KEY("target","plan_id","kind")
);
--> statement-breakpoint
CREATE INDEX "check_results_latest_idx" ON "check_results" USING btree ("target","plan_id","check_id","ran_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "check_results_run_idx" ON "check_results" USING btree ("run_id") WHERE "check_results"."run_id" is not null;