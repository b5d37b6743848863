ALTER TABLE "runs" DROP CONSTRAINT "runs_state_known";--> statement-breakpoint
ALTER TABLE "runs" ADD CONSTRAINT "runs_state_known" CHECK ("runs"."state" in ('draft', 'ready', 'superseded', 'applying', 'applied', 'failed', 'cancelled', 'interrupted', 'rolling_back', 'rolled_back', 'rollback_failed', 'rehearsing', 'rehearsed', 'rehearsal_failed'));--> statement-breakpoint
-- db/run-lifecycle.ts: a cancelled apply ends 'cancelled' (rolled back from there when part of it
-- committed); a rollback that failed or was cancelled may be tried again.
INSERT INTO "run_state_transitions" ("from_state", "to_state") VALUES
	('applying', 'cancelled'),
	('rolling_back', 'cancelled'),
	('cancelled', 'rolling_back'),
	('rollback_failed', 'rolling_back');
