-- Hand-written: per-account counters give way to per-(account, address) pairs (docs/decisions/023). Old
-- account rows would never be read again; they go, so that the scope check below holds.
DELETE FROM "login_attempts" WHERE "scope" = 'account';--> statement-breakpoint
ALTER TABLE "login_attempts" ADD COLUMN "email" text;--> statement-breakpoint
CREATE INDEX "login_attempts_email_idx" ON "login_attempts" USING btree ("email");--> statement-breakpoint
ALTER TABLE "login_attempts" ADD CONSTRAINT "login_attempts_scope_known" CHECK ("login_attempts"."scope" in ('pair', 'address'));--> statement-breakpoint
ALTER TABLE "login_attempts" ADD CONSTRAINT "login_attempts_pair_has_email" CHECK (("login_attempts"."scope" = 'pair') = ("login_attempts"."email" is not null));