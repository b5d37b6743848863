CREATE TABLE "notification_deliveries" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"channel" text NOT NULL,
	"run_id" uuid,
	"seq" integer,
	"run_state" text,
	"kind" text NOT NULL,
	"requested_by" text,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_attempt_at" timestamp with time zone,
	"delivered_at" timestamp with time zone,
	"response_code" integer,
	"last_error" text,
	CONSTRAINT "notification_deliveries_status_known" CHECK ("notification_deliveries"."status" in ('pending', 'delivered', 'failed')),
	CONSTRAINT "notification_deliveries_run_and_seq" CHECK (("notification_deliveries"."run_id" is null) = ("notification_deliveries"."seq" is null))
);
--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "notify_channels" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "notification_deliveries" ADD CONSTRAINT "notification_deliveries_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "notification_deliveries_one_per_event" ON "notification_deliveries" USING btree ("channel","run_id","seq");--> statement-breakpoint
CREATE INDEX "notification_deliveries_due_idx" ON "notification_deliveries" USING btree ("next_attempt_at") WHERE "notification_deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "notification_deliveries_channel_idx" ON "notification_deliveries" USING btree ("channel","created_at" DESC NULLS LAST);