/**
 * What the execution engine talks to, passed in by its callers (the command line, the web app,
 * tests), and the errors it answers with. Nothing here imports the web framework.
 */
import os from 'node:os';
import type { Role } from '../accounts/permissions';
import type { Via } from '../runs/run-events';
import type { Store } from '../runtime/store.server';
import type { TargetRegistry } from '../targets/target-registry.server';

export interface EngineDeps {
  /** Runsheet's own store: runs, run log, check results. */
  store: Pick<Store, 'pool' | 'db'>;
  /** The plans folder: a run is created from the plan as it is there now. */
  plansDir: string;
  /** Ed25519 PKCS#8 PEM: signs the run log at each phase end and at completion. */
  signingKeyPem: string;
  /** The targets: where each is, its rules, and a small shared pool for checks, facts and cancelling (never for applying). */
  targets: TargetRegistry;
  /** RUNSHEET_ANCHOR_URL: each signed checkpoint is also POSTed there (docs/decisions/020). */
  anchorWebhookUrl?: string;
}

/** Who acts: a signed-in account (the web app) or the account named by `--as` (the command line). */
export interface EngineActor {
  email: string;
  role: Role;
  /** How the person reached Runsheet (the dashboard, the API, the command line): every event they cause records it. */
  via?: Via;
  /** A service account (a pipeline's identity, through an API token): it never signs off a run it opened or acted on. */
  accountKind?: 'person' | 'service';
}

/** `host:pid` of this process, stored on the run it drives. */
export function ownerProcess(): string {
  return `${os.hostname()}:${process.pid}`;
}

export interface Gate {
  id: string;
  label: string;
  passed: boolean;
  detail: string;
  /** Judged only when executing (the typed target name, the executor for four-eyes). */
  atExecute?: boolean;
}


/** The event columns of an actor: who, in which role, and how they came (kept in the payload as `via`). */
export function whoOf(actor: Pick<EngineActor, 'email' | 'via'> & { role: Role | null }): { actor: string; role: Role | null; via?: Via } {
  return { actor: actor.email, role: actor.role, ...(actor.via ? { via: actor.via } : {}) };
}
