CREATE TABLE "run_report_summaries" (
	"run_id" uuid PRIMARY KEY NOT NULL,
	"through_seq" integer NOT NULL,
	"head" text NOT NULL,
	"summary" jsonb NOT NULL,
	"computed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "run_report_summaries" ADD CONSTRAINT "run_report_summaries_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE no action ON UPDATE no action;