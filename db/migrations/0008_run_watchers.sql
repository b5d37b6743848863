CREATE TABLE "run_watchers" (
	"instance_id" text NOT NULL,
	"run_id" uuid NOT NULL,
	"email" text NOT NULL,
	"role" text NOT NULL,
	"since" timestamp with time zone DEFAULT now() NOT NULL,
	"seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "run_watchers_instance_id_run_id_email_pk" PRIMARY KEY("instance_id","run_id","email")
);
--> statement-breakpoint
ALTER TABLE "run_watchers" ADD CONSTRAINT "run_watchers_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "run_watchers_run" ON "run_watchers" USING btree ("run_id","seen_at");